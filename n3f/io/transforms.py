"""instant-ngp / nerfstudio ``transforms.json`` importer.

Camera-to-world matrices there use OpenGL axes (x right, y up, z back); they
are flipped to the OpenCV axes of the scene store. Intrinsics may be shared at
the top level or given per frame; OpenCV radial-tangential distortion
(k1 k2 p1 p2 [k3]) is removed by undistorting images and intrinsics.
Frames listed in the file whose image is missing are skipped with a warning
(real captures are often trimmed after pose estimation).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from n3f.errors import N3FInputError
from n3f.io.images import LazyFrames, read_image, resize_factor_for
from n3f.io.undistort import undistorter
from n3f.scene.data import SceneData
from n3f.scene.normalise import _closest_point_to_axes

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
_CAMERA_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "p1", "p2", "camera_angle_x", "camera_angle_y")


def _camera(meta: dict[str, Any], frame: dict[str, Any], path: Path) -> dict[str, float]:
    cam = {k: meta[k] for k in _CAMERA_KEYS if k in meta}
    cam.update({k: frame[k] for k in _CAMERA_KEYS if k in frame})
    if "w" not in cam or "h" not in cam:
        raise N3FInputError(f"{path}: image size 'w'/'h' missing (top level or per frame).")
    if "fl_x" not in cam:
        if "camera_angle_x" not in cam:
            raise N3FInputError(f"{path}: no focal length: give 'fl_x' (and 'fl_y') or 'camera_angle_x'.")
        cam["fl_x"] = 0.5 * cam["w"] / math.tan(0.5 * cam["camera_angle_x"])
    if "fl_y" not in cam:
        cam["fl_y"] = (
            0.5 * cam["h"] / math.tan(0.5 * cam["camera_angle_y"]) if "camera_angle_y" in cam else cam["fl_x"]
        )
    cam.setdefault("cx", cam["w"] / 2)
    cam.setdefault("cy", cam["h"] / 2)
    return cam


def _resolve(root: Path, file_path: str) -> Path:
    p = root / file_path
    if p.suffix:
        return p
    for suffix in (".png", ".jpg", ".jpeg"):  # nerf-synthetic omits the extension
        if p.with_suffix(suffix).exists():
            return p.with_suffix(suffix)
    return p


def estimate_bounds(c2w: np.ndarray) -> np.ndarray:
    """Near/far per frame when the format has none: from camera-to-centre distances."""
    centre = _closest_point_to_axes(c2w)
    dist = np.linalg.norm(c2w[:, :3, 3] - centre, axis=1)
    near, far = 0.05 * float(np.median(dist)), 3.0 * float(dist.max())
    return np.tile([near, far], (len(c2w), 1))


def load_transforms(
    path: str | Path,
    *,
    name: str = "scene",
    max_size: int | None = None,
    layout: str = "object",
    near: float | None = None,
    far: float | None = None,
) -> SceneData:
    """Import a ``transforms.json`` file (or a folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "transforms.json"
    if not path.is_file():
        raise N3FInputError(f"transforms file not found: {path}")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise N3FInputError(f"{path} is not valid JSON: {err}") from err
    frames = meta.get("frames")
    if not frames:
        raise N3FInputError(f"{path} lists no 'frames'.")
    root = path.parent

    kept, missing = [], []
    for frame in frames:
        if "file_path" not in frame or "transform_matrix" not in frame:
            raise N3FInputError(f"{path}: a frame lacks 'file_path' or 'transform_matrix': {str(frame)[:120]}")
        img_path = _resolve(root, frame["file_path"])
        (kept if img_path.is_file() else missing).append((frame, img_path))
    if missing:
        print(
            f"[transforms] warning: {len(missing)} of {len(frames)} frames listed in {path} have no image "
            f"(e.g. {missing[0][1]}); skipping them",
            file=sys.stderr,
        )
    if not kept:
        raise N3FInputError(f"none of the {len(frames)} images listed in {path} exist; check 'file_path' entries.")
    kept.sort(key=lambda fi: fi[1].name)

    c2w = np.stack([np.asarray(f["transform_matrix"], dtype=np.float64) for f, _ in kept])
    if c2w.shape[1:] != (4, 4):
        raise N3FInputError(f"{path}: transform_matrix must be 4x4, got {c2w.shape[1:]}.")
    bad = np.flatnonzero(~np.isfinite(c2w).reshape(len(c2w), -1).all(axis=1))
    if len(bad):
        raise N3FInputError(
            f"{path}: transform_matrix of {[str(kept[i][1].name) for i in bad[:5]]} contains NaN/Inf; "
            "re-estimate or drop those frames."
        )
    c2w = c2w @ OPENGL_TO_OPENCV

    cams = [_camera(meta, f, path) for f, _ in kept]
    first = cams[0]
    w, h = int(first["w"]), int(first["h"])
    factor = resize_factor_for((h, w), max_size)
    out_wh = (round(w * factor), round(h * factor))
    intrinsics = np.zeros((len(kept), 3, 3))
    transforms: dict[tuple, Any] = {}
    per_frame = []
    for i, cam in enumerate(cams):
        k = np.array([[cam["fl_x"], 0, cam["cx"]], [0, cam["fl_y"], cam["cy"]], [0, 0, 1]], dtype=np.float64)
        dist = np.array([cam.get("k1", 0), cam.get("k2", 0), cam.get("p1", 0), cam.get("p2", 0), cam.get("k3", 0)])
        key = tuple(k.ravel()) + tuple(dist) + (int(cam["w"]), int(cam["h"]))
        if key not in transforms:
            transforms[key] = undistorter(k, dist, (int(cam["w"]), int(cam["h"])), out_wh)
        per_frame.append(transforms[key][0])
        intrinsics[i] = transforms[key][1]

    paths = [p for _, p in kept]
    frames_seq = _PerFrameTransform(paths, per_frame)
    bounds = estimate_bounds(c2w)
    if near is not None:
        bounds[:, 0] = near
    if far is not None:
        bounds[:, 1] = far
    return SceneData(
        name=name,
        source="transforms",
        frames=frames_seq,
        frame_names=[p.name for p in paths],
        c2w=c2w,
        intrinsics=intrinsics,
        bounds=bounds,
        layout=layout,
        attrs={
            "import": {
                "path": str(path),
                "listed_frames": len(frames),
                "missing_frames": [str(p.name) for _, p in missing],
                "max_size": max_size,
                "undistorted": any(abs(v) > 0 for key in transforms for v in key[9:14]),
            }
        },
    )


class _PerFrameTransform(LazyFrames):
    """Lazy frames where each frame has its own (camera-specific) undistortion."""

    def __init__(self, paths: list[Path], transforms: list):
        super().__init__(paths)
        self._transforms = transforms

    def __getitem__(self, index: int) -> np.ndarray:
        return self._transforms[index](read_image(self.paths[index]))
