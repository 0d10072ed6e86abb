"""The canonical scene store: one zarr v3 group per scene.

Layout of ``results/<scene>/scene.zarr`` (see ``docs/scene_store.md``)::

    attrs            format, name, source, layout, dynamic, convention,
                     normalisation {centre, scale}, image_size, frame_names,
                     n_frames, objects, and importer extras (e.g. geometry)
    frames           uint8  (N, H, W, 3), one chunk per frame
    c2w              float64 (N, 4, 4), normalised world, OpenCV camera axes
    intrinsics       float64 (N, 3, 3)
    bounds           float64 (N, 2) near/far in normalised units
    timestamps       float64 (N,)
    split/{train,val,query,gallery}   int64 frame indices
    masks/frames     int64 (M,) annotated frame indices
    masks/modal      bool (M, K, H, W), one chunk per annotated frame
    masks/amodal     bool (M, K, H, W) where known

The store is written through :func:`n3f.atomic.atomic_dir`: it appears only
when complete, so a killed job never leaves a store that looks finished.
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from n3f.atomic import atomic_dir
from n3f.errors import N3FInputError
from n3f.io.checks import BOTTOM_ROW_TOLERANCE, check_bounds, check_intrinsics, check_rigid
from n3f.scene_data import LAYOUTS, SPLIT_NAMES, SceneData
from n3f.scene.normalise import normalisation_for, apply_normalisation
from n3f.scene.split import default_split

log = logging.getLogger(__name__)

FORMAT = "n3f.scene/1"


def _validate(scene: SceneData) -> tuple[int, int, int]:
    n = len(scene.frame_names)
    where = f"scene '{scene.name}' (source: {scene.source})"
    if n == 0:
        raise N3FInputError(f"{where}: no frames to import; check the input folder.")
    if len(scene.frames) != n:
        raise N3FInputError(
            f"{where}: {len(scene.frames)} frames but {n} frame names; the importer lost track of files."
        )
    for arr_name, shape in (("c2w", (n, 4, 4)), ("intrinsics", (n, 3, 3)), ("bounds", (n, 2))):
        arr = np.asarray(getattr(scene, arr_name))
        if arr.shape != shape:
            raise N3FInputError(f"{where}: {arr_name} has shape {arr.shape}, expected {shape} (one per frame).")
        bad = ~np.isfinite(arr.reshape(n, -1)).all(axis=1)
        if bad.any():
            names = [scene.frame_names[i] for i in np.flatnonzero(bad)[:5]]
            raise N3FInputError(
                f"{where}: {arr_name} contains NaN/Inf for frame(s) {names}; fix or remove those poses."
            )
    # The backstop behind every importer's own checks (n3f.io.checks): a new
    # importer that forgets one still cannot write a store that looks right.
    c2w = np.asarray(scene.c2w, dtype=np.float64)
    bottom = np.abs(c2w[:, 3] - (0.0, 0.0, 0.0, 1.0)).max(axis=1)
    if (bottom > BOTTOM_ROW_TOLERANCE).any():
        i = int(np.argmax(bottom))
        raise N3FInputError(
            f"{where}: c2w of frame '{scene.frame_names[i]}' has last row {c2w[i, 3].tolist()}, not [0, 0, 0, 1]."
        )
    fix = "the poses file is corrupt or in an unexpected layout."
    check_rigid(c2w, scene.frame_names, where, fix)
    check_intrinsics(scene.intrinsics, scene.frame_names, where, "fix the camera intrinsics of the source.")
    check_bounds(scene.bounds, scene.frame_names, where, "fix the near/far bounds of the source.")
    if scene.layout not in LAYOUTS:
        raise N3FInputError(f"{where}: layout '{scene.layout}' unknown; use one of {LAYOUTS}.")
    first = np.asarray(scene.frames[0])
    if first.ndim != 3 or first.shape[2] != 3 or first.dtype != np.uint8:
        raise N3FInputError(f"{where}: frames must be uint8 H x W x 3, got {first.dtype} {first.shape}.")
    h, w = first.shape[:2]
    if scene.annotations is not None:
        ann = scene.annotations
        idx = np.asarray(ann.frame_indices)
        m, k = len(idx), len(ann.object_names)
        if m and (idx.min() < 0 or idx.max() >= n or len(np.unique(idx)) != m):
            raise N3FInputError(f"{where}: annotated frame indices {idx.tolist()[:8]} are not distinct frames of 0..{n - 1}.")
        for kind, arr in (("modal", ann.modal), ("amodal", ann.amodal)):
            if arr is not None and tuple(np.shape(arr)) != (m, k, h, w):
                raise N3FInputError(
                    f"{where}: {kind} masks have shape {tuple(np.shape(arr))}, expected {(m, k, h, w)} "
                    "(annotated frames x objects x frame size); masks must have the size of their frames."
                )
    return n, h, w


def write_scene(scene: SceneData, path: str | Path, *, normalise: bool = True, progress: bool = True) -> Path:
    """Validate ``scene`` and write it atomically as a zarr store at ``path``."""
    n, h, w = _validate(scene)
    path = Path(path)

    c2w = np.asarray(scene.c2w, dtype=np.float64)
    bounds = np.asarray(scene.bounds, dtype=np.float64)
    centre, scale = normalisation_for(c2w, bounds, scene.layout) if normalise else (np.zeros(3), 1.0)
    c2w_n, bounds_n = apply_normalisation(c2w, bounds, centre, scale)

    split = scene.split or default_split(n, scene.annotations)
    timestamps = (
        np.arange(n, dtype=np.float64) if scene.timestamps is None else np.asarray(scene.timestamps, np.float64)
    )
    # atomic_dir also removes what an earlier, killed import left.
    with atomic_dir(path) as tmp:
        _write_arrays(scene, tmp, n, h, w, c2w_n, bounds_n, split, timestamps, centre, scale, progress)
    return path


def _write_arrays(scene, tmp, n, h, w, c2w_n, bounds_n, split, timestamps, centre, scale, progress) -> None:
    root = zarr.open_group(str(tmp), mode="w")
    frames = root.create_array("frames", shape=(n, h, w, 3), dtype="uint8", chunks=(1, h, w, 3))
    for i in range(n):
        img = np.asarray(scene.frames[i])
        if img.shape != (h, w, 3):
            raise N3FInputError(
                f"scene '{scene.name}': frame '{scene.frame_names[i]}' is {img.shape[1]}x{img.shape[0]}, "
                f"the first frame is {w}x{h}; all frames must share one size (resize or crop the inputs)."
            )
        frames[i] = img
        if progress and (i % 50 == 49 or i == n - 1):
            log.info("scene '%s': wrote %d/%d frames", scene.name, i + 1, n)
    root.create_array("c2w", data=c2w_n)
    root.create_array("intrinsics", data=np.asarray(scene.intrinsics, np.float64))
    root.create_array("bounds", data=bounds_n)
    root.create_array("timestamps", data=timestamps)
    split_group = root.create_group("split")
    for name in SPLIT_NAMES:
        split_group.create_array(name, data=np.asarray(split.get(name, []), dtype=np.int64))

    objects: list[str] = []
    if scene.annotations is not None:
        ann = scene.annotations
        objects = list(ann.object_names)
        m, k = len(ann.frame_indices), len(objects)
        masks = root.create_group("masks")
        masks.create_array("frames", data=np.asarray(ann.frame_indices, np.int64))
        for kind, arr in (("modal", ann.modal), ("amodal", ann.amodal)):
            if arr is None:
                continue
            if arr.shape != (m, k, h, w):
                raise N3FInputError(
                    f"scene '{scene.name}': {kind} masks have shape {arr.shape}, expected {(m, k, h, w)} "
                    "(annotated frames x objects x frame size)."
                )
            masks.create_array(kind, data=np.asarray(arr, bool), chunks=(1, k, h, w))

    root.attrs.update(
        {
            "format": FORMAT,
            "name": scene.name,
            "source": scene.source,
            "layout": scene.layout,
            "dynamic": bool(scene.dynamic),
            "convention": "c2w, OpenCV camera axes (x right, y down, z forward)",
            "normalisation": {"centre": [float(c) for c in centre], "scale": float(scale)},
            "image_size": [int(h), int(w)],
            "n_frames": int(n),
            "frame_names": list(scene.frame_names),
            "objects": objects,
            **scene.attrs,
        }
    )


class SceneStore:
    """Lazy reader of a scene store: pixel data is read per frame on access."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "zarr.json").exists():
            raise N3FInputError(
                f"{self.path} is not a scene store (no zarr.json); run the 'scene' stage for this scene first."
            )
        self._root = zarr.open_group(str(self.path), mode="r")
        if self._root.attrs.get("format") != FORMAT:
            raise N3FInputError(f"{self.path}: unknown store format {self._root.attrs.get('format')!r}.")

    @cached_property
    def attrs(self) -> dict[str, Any]:
        return dict(self._root.attrs)

    @property
    def name(self) -> str:
        return self.attrs["name"]

    @property
    def n_frames(self) -> int:
        return int(self.attrs["n_frames"])

    @property
    def image_size(self) -> tuple[int, int]:
        h, w = self.attrs["image_size"]
        return int(h), int(w)

    @property
    def frames(self) -> zarr.Array:
        """The (N, H, W, 3) uint8 array; index it to read only what you need."""
        return self._root["frames"]

    def frame(self, index: int) -> np.ndarray:
        return np.asarray(self._root["frames"][index])

    @cached_property
    def c2w(self) -> np.ndarray:
        return np.asarray(self._root["c2w"][:])

    @cached_property
    def intrinsics(self) -> np.ndarray:
        return np.asarray(self._root["intrinsics"][:])

    @cached_property
    def bounds(self) -> np.ndarray:
        return np.asarray(self._root["bounds"][:])

    @cached_property
    def timestamps(self) -> np.ndarray:
        return np.asarray(self._root["timestamps"][:])

    def split(self, name: str) -> np.ndarray:
        if name not in SPLIT_NAMES:
            raise KeyError(f"unknown split '{name}'; one of {SPLIT_NAMES}")
        return np.asarray(self._root["split"][name][:])

    @property
    def object_names(self) -> list[str]:
        return list(self.attrs.get("objects", []))

    @property
    def has_masks(self) -> bool:
        return "masks" in self._root

    @property
    def has_amodal(self) -> bool:
        return self.has_masks and "amodal" in self._root["masks"]

    @cached_property
    def annotated_frames(self) -> np.ndarray:
        if not self.has_masks:
            return np.zeros(0, np.int64)
        return np.asarray(self._root["masks"]["frames"][:])

    def masks(self, frame_index: int, kind: str = "modal") -> np.ndarray:
        """(K, H, W) bool masks of every object in one annotated frame."""
        rows = np.flatnonzero(self.annotated_frames == frame_index)
        if len(rows) == 0:
            raise KeyError(f"frame {frame_index} of scene '{self.name}' has no annotation")
        return np.asarray(self._root["masks"][kind][int(rows[0])])

    def to_normalised(self, points: np.ndarray) -> np.ndarray:
        """Map world-unit points (as the importer saw them) into the store's frame."""
        norm = self.attrs["normalisation"]
        return (np.asarray(points) - np.asarray(norm["centre"])) * float(norm["scale"])
