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
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from n3f.errors import N3FInputError
from n3f.io.annotations import AnnotationPaths, nearest_resizer, read_annotations
from n3f.io.checks import (
    ROTATION_TOLERANCE, check_aspect, check_bounds, check_rigid, closest_point_to_axes, pose_matrix, same_aspect,
)
from n3f.io.images import LazyFrames, image_size, read_image, resize_factor_for
from n3f.io.undistort import undistorter
from n3f.scene_data import SceneData

log = logging.getLogger(__name__)

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
_CAMERA_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "p1", "p2", "camera_angle_x", "camera_angle_y")


def _camera(meta: dict[str, Any], frame: dict[str, Any], path: Path, label: str = "") -> dict[str, float]:
    cam = {k: meta[k] for k in _CAMERA_KEYS if k in meta}
    cam.update({k: frame[k] for k in _CAMERA_KEYS if k in frame})
    where = f"{path}{f' (frame {label})' if label else ''}"
    for key, value in cam.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise N3FInputError(f"{where}: '{key}' is {value!r}; it must be a finite number.")
    if "w" not in cam or "h" not in cam:
        raise N3FInputError(f"{path}: image size 'w'/'h' missing (top level or per frame).")
    for key in ("w", "h"):
        if cam[key] <= 0 or cam[key] != int(cam[key]):
            raise N3FInputError(f"{where}: image size '{key}' is {cam[key]!r}; it must be a positive whole number of pixels.")
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
    if cam["fl_x"] <= 0 or cam["fl_y"] <= 0:
        raise N3FInputError(f"{where}: focal length ({cam['fl_x']:g}, {cam['fl_y']:g}) must be > 0.")
    return cam


def _resolve(root: Path, file_path: str) -> Path:
    p = root / file_path
    if p.suffix:
        return p
    for suffix in (".png", ".jpg", ".jpeg"):  # nerf-synthetic omits the extension
        if p.with_suffix(suffix).exists():
            return p.with_suffix(suffix)
    return p


def _unscale_rotations(c2w: np.ndarray, path: Path) -> np.ndarray:
    """Remove a uniform scale folded into the rotation blocks (some exporters write s * R).

    The camera centre (translation column) is unaffected by such a scale, so
    normalising the rotation columns recovers the pose exactly; anything else
    that is not a rotation is left for :func:`check_rigid` to refuse.
    """
    norms = np.linalg.norm(c2w[:, :3, :3], axis=1)  # (N, 3) column norms
    scale = norms.mean(axis=1)
    uniform = (np.abs(norms / scale[:, None] - 1) <= ROTATION_TOLERANCE).all(axis=1) & (scale > 0)
    scaled = uniform & (np.abs(scale - 1) > ROTATION_TOLERANCE)
    if not scaled.any():
        return c2w
    out = c2w.copy()
    out[scaled, :3, :3] /= scale[scaled, None, None]
    log.warning(
        "%s: %d transform_matrix rotation(s) carry a uniform scale (e.g. %.4g); it is removed, camera centres "
        "are unchanged", path, int(scaled.sum()), float(scale[scaled][0]),
    )
    return out


def estimate_bounds(c2w: np.ndarray) -> np.ndarray:
    """Near/far per frame when the format has none: from camera-to-centre distances."""
    centre = closest_point_to_axes(c2w)
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
    masks: str | None = None,
    labels: str | None = None,
    objects: str | None = None,
    amodal_masks: str | None = None,
    amodal_labels: str | None = None,
) -> SceneData:
    """Import a ``transforms.json`` file (or a folder holding one).

    ``masks``, ``labels``, ``objects``, ``amodal_masks``, ``amodal_labels``: annotations under the
    file's folder (:mod:`n3f.io.annotations`); undistorted frames take their masks through the same warp.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "transforms.json"
    if not path.is_file():
        raise N3FInputError(f"transforms file not found: {path}")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise N3FInputError(f"{path} is not valid JSON: {err}") from err
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not frames:
        raise N3FInputError(f"{path} lists no 'frames'.")
    if not isinstance(frames, list):
        raise N3FInputError(f"{path}: 'frames' must be a list of frame objects, got {type(frames).__name__}.")
    root = path.parent

    kept, missing = [], []
    for frame in frames:
        if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
            raise N3FInputError(f"{path}: a frame lacks 'file_path' or 'transform_matrix': {str(frame)[:120]}")
        if not isinstance(frame["file_path"], str) or not frame["file_path"]:
            raise N3FInputError(f"{path}: a frame's 'file_path' is {frame['file_path']!r}; it must be a file name.")
        img_path = _resolve(root, frame["file_path"])
        (kept if img_path.is_file() else missing).append((frame, img_path))
    if missing:
        log.warning(
            "%d of %d frames listed in %s have no image (e.g. %s); skipping them",
            len(missing), len(frames), path, missing[0][1],
        )
    if not kept:
        raise N3FInputError(f"none of the {len(frames)} images listed in {path} exist; check 'file_path' entries.")
    kept.sort(key=lambda fi: fi[1].name)

    frame_labels = [p.name for _, p in kept]
    c2w = np.stack(
        [pose_matrix(f["transform_matrix"], f"{path}: transform_matrix of frame '{label}'") for (f, _), label in zip(kept, frame_labels)]
    )
    c2w = _unscale_rotations(c2w, path)
    c2w = c2w @ OPENGL_TO_OPENCV
    check_rigid(
        c2w, frame_labels, str(path),
        "transform_matrix must be a camera-to-world [R | t] in OpenGL axes (x right, y up, z back), as "
        "instant-ngp and nerfstudio write it.",
    )

    cams = [_camera(meta, f, path, label) for (f, _), label in zip(kept, frame_labels)]
    first = cams[0]
    w, h = int(first["w"]), int(first["h"])
    fix = "use the images this transforms.json was written for (w/h, top level or per frame)."
    for cam, (_, img_path) in zip(cams, kept):
        declared = (int(cam["w"]), int(cam["h"]))
        check_aspect(declared, img_path, image_size(img_path), "its camera in the transforms file", fix)
        if not same_aspect((w, h), declared):
            raise N3FInputError(
                f"{path}: frame '{img_path.name}' declares a {declared[0]}x{declared[1]} camera but the first frame "
                f"'{kept[0][1].name}' a {w}x{h} one (different aspect ratio); a scene holds frames of one size, "
                "so import frames of one aspect ratio (split the capture into two scenes)."
            )
    factor = resize_factor_for((h, w), max_size)
    out_wh = (round(w * factor), round(h * factor))
    intrinsics = np.zeros((len(kept), 3, 3))
    transforms: dict[tuple, Any] = {}
    per_frame, mask_warps = [], []
    for i, cam in enumerate(cams):
        k = np.array([[cam["fl_x"], 0, cam["cx"]], [0, cam["fl_y"], cam["cy"]], [0, 0, 1]], dtype=np.float64)
        dist = np.array([cam.get("k1", 0), cam.get("k2", 0), cam.get("p1", 0), cam.get("p2", 0), cam.get("k3", 0)])
        key = tuple(k.ravel()) + tuple(dist) + (int(cam["w"]), int(cam["h"]))
        if key not in transforms:
            transforms[key] = undistorter(k, dist, (int(cam["w"]), int(cam["h"])), out_wh)
        per_frame.append(transforms[key][0])
        mask_warps.append(transforms[key][0] if np.any(dist != 0) else nearest_resizer(out_wh))
        intrinsics[i] = transforms[key][1]

    paths = [p for _, p in kept]
    frames_seq = _PerFrameTransform(paths, per_frame, [(int(c["w"]), int(c["h"])) for c in cams])
    bounds = estimate_bounds(c2w)
    if near is not None:
        bounds[:, 0] = near
    if far is not None:
        bounds[:, 1] = far
    check_bounds(
        bounds, [p.name for p in paths], str(path),
        "Bounds come from the 'near'/'far' options where given, else from the camera spread; set both "
        "options with 0 < near < far.",
    )
    ann_paths = AnnotationPaths(masks, labels, objects, amodal_masks, amodal_labels)
    ann, summary = read_annotations(ann_paths, root, paths, [(image_size(p) or (int(c["w"]), int(c["h"])))[::-1] for p, c in zip(paths, cams)],
                                    out_wh[::-1], mask_warps)
    return SceneData(
        annotations=ann,
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
                **ann_paths.record(),
            },
            **({"annotations": summary} if summary else {}),
        },
    )


class _PerFrameTransform(LazyFrames):
    """Lazy frames where each frame has its own (camera-specific) undistortion."""

    def __init__(self, paths: list[Path], transforms: list, declared_wh: list[tuple[int, int]] | None = None):
        super().__init__(paths)
        self._transforms = transforms
        self._declared = declared_wh

    def __getitem__(self, index: int) -> np.ndarray:
        img = read_image(self.paths[index])
        if self._declared is not None:  # also for files whose header the import could not read
            check_aspect(
                self._declared[index], self.paths[index], (img.shape[1], img.shape[0]),
                "its camera in the transforms file", "use the images this transforms.json was written for.",
            )
        return self._transforms[index](img)
