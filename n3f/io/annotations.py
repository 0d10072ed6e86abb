"""Object annotations of a capture, in the layouts users have, matched to frames by file stem.

Every importer of real captures (llff, colmap, transforms, images, video) reads
its masks here, so that one scene can carry several objects and their amodal
(full-extent) masks whatever its poses came from. Layouts (``docs/annotations.md``):

* ``masks: <folder>`` holding ``<frame stem>.png`` binary masks: one object,
  ``foreground`` (the layout of LLFF/NeuS object captures);
* ``masks: <folder>`` holding one sub-folder per object,
  ``<folder>/<object>/<frame stem>.png``: the object is named by its folder;
* ``labels: <folder>`` of instance-label images ``<frame stem>.png``: 0 is
  background, k > 0 object k (8- or 16-bit grey, or palette PNGs as DAVIS-style
  tools export them, read as indices, never as colours), with an optional
  ``objects.json``/``.yaml`` (``{id: name}``; default: the one in the folder) naming ids;
* ``amodal_masks`` / ``amodal_labels``: the same two layouts for full extents.

Masks must have their frame's size on disk and follow the frame's resizing
with nearest-neighbour. A frame without a file is not annotated; an object
without a file on an annotated frame is absent there. Files that match no frame
are counted and reported, never silently dropped; an object folder or an
objects-file id that matches nothing is an error.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from n3f.errors import N3FInputError
from n3f.io.images import IMAGE_SUFFIXES
from n3f.scene_data import Annotations

log = logging.getLogger(__name__)

ANNOTATION_KEYS = ("masks", "labels", "objects", "amodal_masks", "amodal_labels")
OBJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # object names become file and folder names
OBJECT_FILES = ("objects.json", "objects.yaml", "objects.yml")
FOREGROUND = "foreground"


@dataclass(frozen=True)
class AnnotationPaths:
    """Where a scene's annotations are (None: not given); relative paths are under the importer's data folder."""

    masks: str | None = None  # binary masks: <stem>.png (one object) or <object>/<stem>.png
    labels: str | None = None  # instance-label images <stem>.png
    objects: str | None = None  # names of label ids (JSON/YAML {id: name}); default: objects.* in the labels folder
    amodal_masks: str | None = None  # full extents, layout as masks
    amodal_labels: str | None = None  # full extents, layout as labels (ids named by the same objects file)

    def record(self) -> dict[str, str]:
        """The given paths, for the store's import attrs."""
        return {k: getattr(self, k) for k in ANNOTATION_KEYS if getattr(self, k)}

    @property
    def given(self) -> bool:
        return any(getattr(self, k) for k in ("masks", "labels", "amodal_masks", "amodal_labels"))


def _images_by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def _folder(base: Path, value: str, key: str) -> Path:
    folder = base / value
    if not folder.is_dir():
        raise N3FInputError(f"{key} folder not found: {folder}; fix '{key}' in the scene's options or remove it.")
    return folder


def _check_name(name: str, where: Path) -> str:
    if not OBJECT_NAME.match(name):
        raise N3FInputError(f"{where}: object name '{name}' must be letters, digits, '_', '.', '-' (it names "
                            "result files); rename the folder or the entry.")
    return name


def read_label_image(path: Path) -> np.ndarray:
    """(H, W) int64 ids of an instance-label image: palette PNGs as indices, 8/16-bit grey as values."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
            arr = np.asarray(im)
    except Exception as err:  # PIL raises many types for a bad file
        raise N3FInputError(f"cannot decode label image {path} ({err}); replace or remove it.") from err
    if mode in ("RGB", "RGBA"):
        rgb = arr[..., :3]
        if not ((rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])).all():
            raise N3FInputError(
                f"{path} is a colour (RGB) image; label images hold one id per pixel: save it as a palette "
                "(indexed) PNG or as 8/16-bit grey, 0 for background and k for object k.")
        arr = rgb[..., 0]
    elif mode not in ("P", "L", "I", "I;16", "I;16B", "I;16L", "1"):
        raise N3FInputError(f"{path}: label images must be palette or 8/16-bit grey PNGs, not mode {mode}.")
    return arr.astype(np.int64)


def _object_names_file(labels_dir: Path | None, base: Path, value: str | None) -> tuple[dict[int, str], Path | None]:
    """{id: name} from the objects file (given, or objects.* beside the label images), {} if none."""
    path = None
    if value:
        path = base / value
        if not path.is_file():
            raise N3FInputError(f"objects file not found: {path}; fix 'objects' in the scene's options or remove it.")
    elif labels_dir is not None:
        path = next((labels_dir / n for n in OBJECT_FILES if (labels_dir / n).is_file()), None)
    if path is None:
        return {}, None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
        else:
            import yaml

            data = yaml.safe_load(path.read_text())
    except Exception as err:
        raise N3FInputError(f"cannot parse {path} ({err}); it maps label ids to object names, e.g. "
                            '{"1": "cape", "2": "stand"}.') from err
    if not isinstance(data, dict) or not data:
        raise N3FInputError(f"{path} must map label ids to object names, e.g. {{\"1\": \"cape\", \"2\": \"stand\"}}.")
    names: dict[int, str] = {}
    for k, v in data.items():
        try:
            kid = int(k)
        except (TypeError, ValueError):
            kid = -1
        if kid <= 0 or not isinstance(v, str):
            raise N3FInputError(f"{path}: entry {k!r}: {v!r} must be a label id > 0 mapped to an object name "
                                "(0 is the background).")
        names[kid] = _check_name(v, path)
    if len(set(names.values())) != len(names):
        raise N3FInputError(f"{path}: object names repeat ({sorted(names.values())}); give each id its own name.")
    return names, path


class _Layout:
    """The masks of one kind (modal or amodal) in one layout: which frame stems and objects it has."""

    name = ""

    def __init__(self, kind: str, key: str, folder: Path):
        self.kind, self.key, self.folder = kind, key, folder
        self.stems: set[str] = set()
        self.objects: list[str] = []

    def frame_masks(self, stem: str, reader) -> dict[str, np.ndarray]:
        """{object: (H, W) bool} of one frame stem (objects without a mask there are left out)."""
        raise NotImplementedError


class _MaskFolders(_Layout):
    name = "masks"

    def __init__(self, kind: str, key: str, folder: Path):
        super().__init__(kind, key, folder)
        subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
        files = _images_by_stem(folder)
        if subdirs and files:
            raise N3FInputError(
                f"{folder} holds both mask images and sub-folders; use one layout: <stem>.png for one object, or "
                "one sub-folder of <stem>.png per object.")
        if files:
            self.by_object = {FOREGROUND: files}
        else:
            self.by_object = {_check_name(d.name, d): _images_by_stem(d) for d in subdirs}
            empty = [d for d in subdirs if not self.by_object[d.name]]
            if empty:
                raise N3FInputError(f"{empty[0]} holds no mask images; remove the folder or add its masks.")
        if not self.by_object:
            raise N3FInputError(f"{folder} holds no masks ({', '.join(IMAGE_SUFFIXES)}) and no object sub-folders.")
        self.objects = list(self.by_object)
        self.name = "masks" if self.objects == [FOREGROUND] else "mask folders"
        self.stems = set().union(*(set(m) for m in self.by_object.values()))

    def object_stems(self) -> dict[str, set[str]]:
        return {o: set(m) for o, m in self.by_object.items()}

    def frame_masks(self, stem: str, reader) -> dict[str, np.ndarray]:
        return {o: reader(m[stem], mask=True) for o, m in self.by_object.items() if stem in m}


class _LabelImages(_Layout):
    name = "labels"

    def __init__(self, kind: str, key: str, folder: Path, names: dict[int, str]):
        super().__init__(kind, key, folder)
        self.files = _images_by_stem(folder)
        if not self.files:
            raise N3FInputError(f"{folder} holds no label images ({', '.join(IMAGE_SUFFIXES)}).")
        self.names = names
        self.stems = set(self.files)
        self.id_names: dict[int, str] = {}  # filled by scan()

    def scan(self, stems: Sequence[str]) -> dict[int, str]:
        """The ids of the matched label images (read from the files' pixels, not kept: read again per
        frame, which bounds memory on long captures); returns {id: object name}."""
        ids: set[int] = set()
        for s in stems:
            ids.update(int(v) for v in np.unique(read_label_image(self.files[s])) if v > 0)
        self.id_names = {i: self.names.get(i, f"object_{i}") for i in sorted(ids)}
        self.objects = list(self.id_names.values())
        return self.id_names

    def frame_masks(self, stem: str, reader) -> dict[str, np.ndarray]:
        return {self.id_names[i]: m for i, m in reader(self.files[stem], mask=False).items()}


MaskWarp = Callable[[np.ndarray], np.ndarray]
"""A frame's geometric transform (resize, undistortion) applied to a (H, W) uint8 0/255 mask."""


def nearest_resizer(out_wh: tuple[int, int]) -> MaskWarp:
    """The mask warp of a frame that is only resized: nearest-neighbour, so masks stay exact."""
    import cv2

    def warp(mask: np.ndarray) -> np.ndarray:
        if (mask.shape[1], mask.shape[0]) == tuple(out_wh):
            return mask
        return cv2.resize(mask, tuple(out_wh), interpolation=cv2.INTER_NEAREST)

    return warp


def read_annotations(
    paths: AnnotationPaths,
    base: Path,
    frame_files: Sequence[Path],
    frame_hw: Sequence[tuple[int, int]] | tuple[int, int],
    out_hw: tuple[int, int],
    warps: Sequence[MaskWarp] | None = None,
) -> tuple[Annotations | None, dict[str, Any]]:
    """The scene's object masks for ``frame_files`` (matched by stem), as the stored frames see them.

    ``frame_hw``: each frame's size on disk (one size for all, or one per
    frame); a mask of another size is an error. ``warps``: each frame's
    transform applied to its masks (default: nearest-neighbour resizing to
    ``out_hw``); a frame that is undistorted passes its own warp, which
    resamples the 0/255 mask, thresholded at half. Returns the annotations
    (None if none were given) and a summary of what matched, for the store's
    attrs and the import log.
    """
    if not paths.given:
        return None, {}
    from n3f.io.checks import check_mask_size

    stems = [Path(f).stem for f in frame_files]
    frame_of = {s: i for i, s in enumerate(stems)}
    if len(frame_of) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise N3FInputError(f"two frames share the file stem '{dup}'; masks are matched to frames by stem, so "
                            "rename one of them.")
    sizes = [tuple(frame_hw)] * len(stems) if np.ndim(frame_hw) == 1 else [tuple(x) for x in frame_hw]
    warps = list(warps) if warps is not None else [nearest_resizer((out_hw[1], out_hw[0]))] * len(stems)

    def warped(binary: np.ndarray, f: int) -> np.ndarray:
        out = warps[f](np.where(binary, 255, 0).astype(np.uint8))
        if out.shape[:2] != tuple(out_hw):
            raise AssertionError(f"mask warp of frame {f} gave {out.shape[:2]}, expected {out_hw}")
        return out >= 128

    def reader(path: Path, mask: bool) -> Any:
        """A binary mask file -> (H, W) bool, or a label image -> {id: (H, W) bool}, as the stored frame sees it."""
        f = frame_of[path.stem]
        if mask:
            import cv2

            data = np.fromfile(str(path), dtype=np.uint8)
            img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
            if img is None:
                raise N3FInputError(f"cannot decode mask {path}; replace or remove it.")
            check_mask_size(path, img.shape[:2], Path(frame_files[f]), sizes[f])
            return warped(img > 127 if img.max() > 1 else img > 0, f)
        lab = read_label_image(path)
        check_mask_size(path, lab.shape[:2], Path(frame_files[f]), sizes[f])
        return {int(i): warped(lab == i, f) for i in np.unique(lab) if i > 0}

    labels_dir = _folder(base, paths.labels, "labels") if paths.labels else None
    amodal_labels_dir = _folder(base, paths.amodal_labels, "amodal_labels") if paths.amodal_labels else None
    names, names_file = _object_names_file(labels_dir or amodal_labels_dir, base, paths.objects)

    layouts: dict[str, _Layout] = {}
    for kind, mkey, lkey in (("modal", "masks", "labels"), ("amodal", "amodal_masks", "amodal_labels")):
        mval, lval = getattr(paths, mkey), getattr(paths, lkey)
        if mval and lval:
            raise N3FInputError(f"give either '{mkey}' or '{lkey}', not both: they are two layouts of the same masks.")
        if mval:
            layouts[kind] = _MaskFolders(kind, mkey, _folder(base, mval, mkey))
        elif lval:
            layouts[kind] = _LabelImages(kind, lkey, _folder(base, lval, lkey), names)
    if "modal" not in layouts:
        raise N3FInputError("amodal masks need the visible (modal) masks too: add 'masks' or 'labels'.")

    summary: dict[str, Any] = {"frames": len(stems)}
    id_names: dict[str, dict[int, str]] = {}
    for kind, lay in layouts.items():
        unmatched = sorted(lay.stems - set(frame_of))
        matched = sorted(lay.stems & set(frame_of), key=frame_of.get)
        if not matched:
            raise N3FInputError(f"no file in {lay.folder} matches a frame's file stem (frames look like "
                                f"'{stems[0]}'); masks must be named like their frames.")
        if isinstance(lay, _MaskFolders):
            for obj, s in lay.object_stems().items():
                if not s & set(frame_of):
                    where = lay.folder / obj if obj != FOREGROUND else lay.folder
                    raise N3FInputError(f"{where}: none of its {len(s)} masks matches a frame (frames look like "
                                        f"'{stems[0]}'); name masks like their frames or remove the folder.")
        else:
            id_names[kind] = lay.scan(matched)
        summary[f"{kind}_files_without_frame"] = len(unmatched)
        if unmatched:
            summary[f"{kind}_unmatched_examples"] = unmatched[:5]
            log.warning("%d %s annotation files in %s match no frame (e.g. %s); they are left out", len(unmatched),
                        kind, lay.folder, ", ".join(unmatched[:3]))
    if names_file is not None:
        seen = set().union(*(set(d) for d in id_names.values())) if id_names else set()
        never = sorted(set(names) - seen)
        if never:
            raise N3FInputError(f"{names_file}: id(s) {never} ({', '.join(names[i] for i in never)}) occur in no "
                                "label image that matches a frame; remove them or fix the label images.")
    modal = layouts["modal"]
    objects = list(modal.objects)
    if "amodal" in layouts:
        extra = [o for o in layouts["amodal"].objects if o not in objects]
        if extra:
            raise N3FInputError(f"{layouts['amodal'].folder}: amodal masks of {extra}, which have no visible "
                                f"(modal) masks; the modal objects are {objects}.")
    annotated = sorted((frame_of[s] for s in modal.stems & set(frame_of)))
    h, w = out_hw
    arrays = {k: np.zeros((len(annotated), len(objects), h, w), bool) for k in layouts}
    for row, f in enumerate(annotated):
        for kind, lay in layouts.items():
            stem = stems[f]
            if stem not in lay.stems:
                continue
            for obj, m in lay.frame_masks(stem, reader).items():
                arrays[kind][row, objects.index(obj)] = m
    amodal = None
    if "amodal" in arrays:
        amodal = arrays["amodal"] | arrays["modal"]  # the full extent includes what is visible
        summary["amodal_frames"] = int(sum(stems[f] in layouts["amodal"].stems for f in annotated))
    summary.update({"objects": objects, "layout": modal.name, "annotated_frames": len(annotated),
                    "frames_without_annotations": len(stems) - len(annotated)})
    log.info("annotations: %d object(s) %s on %d of %d frames (%d without annotations)", len(objects),
             objects[:6], len(annotated), len(stems), len(stems) - len(annotated))
    return Annotations(np.asarray(annotated, np.int64), objects, arrays["modal"], amodal), summary
