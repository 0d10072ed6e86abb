"""Camera geometry shared by every importer and the scene store: checks and pose helpers.

Each importer reads poses, image sizes, masks and depth bounds in its own file
format, but what makes them usable downstream is the same everywhere: rigid
camera-to-world matrices, one image size per scene (the store holds one
``(N, H, W, 3)`` array), masks on the pixels of their frame, and positive
near < far. Checking that in one place keeps the rules (and their tolerances,
documented in ``docs/importers.md``) identical for every source, and each
failure is one :class:`N3FInputError` that names the file, the frame and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from n3f.errors import N3FInputError

# Largest |R R^T - I| entry accepted for the rotation block of a camera-to-world
# matrix. Poses written with 6 significant digits are off by ~1e-6; a matrix
# off by more than 1e-3 carries a scale, a shear or corrupt numbers.
ROTATION_TOLERANCE = 1e-3
# Largest deviation of a 4x4 matrix's last row from (0, 0, 0, 1).
BOTTOM_ROW_TOLERANCE = 1e-6
# Two image sizes have "the same aspect ratio" when scaling one onto the other
# moves the far edge by at most this many pixels (rounded downsampled copies).
ASPECT_TOLERANCE_PX = 1.5


def _label(labels: Sequence[str] | None, i: int) -> str:
    return f"frame '{labels[i]}'" if labels is not None else f"frame {i}"


def pose_matrix(value: Any, where: str) -> np.ndarray:
    """One camera-to-world matrix (3x4 or 4x4, finite) as 4x4 float64, or raise naming ``where``."""
    try:
        mat = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise N3FInputError(
            f"{where}: the pose is not a matrix of numbers ({str(value)[:80]}); expected a 3x4 or 4x4 "
            "camera-to-world matrix [R | t]."
        ) from None
    if mat.shape not in ((3, 4), (4, 4)):
        raise N3FInputError(
            f"{where}: the pose matrix has shape {'x'.join(map(str, mat.shape)) or 'scalar'}; expected a 3x4 or "
            "4x4 camera-to-world matrix [R | t]."
        )
    if not np.isfinite(mat).all():
        raise N3FInputError(f"{where}: the pose contains NaN/Inf; re-estimate or drop this frame.")
    if mat.shape == (4, 4):
        if np.abs(mat[3] - (0.0, 0.0, 0.0, 1.0)).max() > BOTTOM_ROW_TOLERANCE:
            raise N3FInputError(
                f"{where}: the last row of the 4x4 pose is {mat[3].tolist()}, not [0, 0, 0, 1]; "
                "it is not a camera-to-world matrix (a projection matrix, or a transposed one?)."
            )
        return mat
    out = np.eye(4)
    out[:3] = mat
    return out


def closest_point_to_axes(c2w: np.ndarray) -> np.ndarray:
    """Least-squares point nearest to every camera's optical axis.

    For a walk-around capture this is the object the cameras look at, which
    is a better centre than the mean camera position.
    """
    origins = c2w[:, :3, 3]
    dirs = c2w[:, :3, 2]
    dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    proj = np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]
    a = proj.sum(axis=0)
    b = (proj @ origins[:, :, None]).sum(axis=0)[:, 0]
    if np.linalg.cond(a) > 1e8:  # parallel axes (forward-facing): no unique point
        return origins.mean(axis=0)
    return np.linalg.solve(a, b)


def rotation_errors(c2w: np.ndarray) -> np.ndarray:
    """Per matrix, the largest entry of |R R^T - I| of its rotation block."""
    rot = np.asarray(c2w, dtype=np.float64)[:, :3, :3]
    return np.abs(rot @ rot.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))


def check_rigid(c2w: np.ndarray, labels: Sequence[str] | None, where: str, fix: str = "") -> None:
    """Refuse camera-to-world matrices that are not rotations + translations (orthonormal, det +1)."""
    c2w = np.asarray(c2w, dtype=np.float64)
    fix = f" {fix}" if fix else ""
    err = rotation_errors(c2w)
    if (err > ROTATION_TOLERANCE).any():
        i = int(np.flatnonzero(err > ROTATION_TOLERANCE)[0])
        raise N3FInputError(
            f"{where}: the camera-to-world rotation of {_label(labels, i)} is not orthonormal (error "
            f"{err[i]:.2g} > tolerance {ROTATION_TOLERANCE:g}): not a rigid transform, the poses are "
            f"scaled, sheared or corrupt.{fix}"
        )
    det = np.linalg.det(c2w[:, :3, :3])
    if (det < 0).any():
        i = int(np.flatnonzero(det < 0)[0])
        raise N3FInputError(
            f"{where}: the camera-to-world rotation of {_label(labels, i)} is a mirror image (determinant "
            f"{det[i]:.3g}): the axes are in another convention than this importer expects.{fix}"
        )


def check_bounds(bounds: np.ndarray, labels: Sequence[str] | None, where: str, fix: str = "") -> None:
    """Refuse near/far depth bounds that are not finite with 0 < near < far."""
    bounds = np.asarray(bounds, dtype=np.float64)
    fix = f" {fix}" if fix else ""
    for i, (near, far) in enumerate(bounds.reshape(-1, 2)):
        if not (np.isfinite(near) and np.isfinite(far)):
            raise N3FInputError(f"{where}: near/far of {_label(labels, i)} is ({near}, {far}), not finite.{fix}")
        if near <= 0:
            raise N3FInputError(
                f"{where}: near bound of {_label(labels, i)} is {near:g}; it must be > 0 (depth in front of "
                f"the camera).{fix}"
            )
        if far <= near:
            raise N3FInputError(
                f"{where}: far bound of {_label(labels, i)} is {far:g}, not beyond its near bound {near:g}.{fix}"
            )


def check_intrinsics(k: np.ndarray, labels: Sequence[str] | None, where: str, fix: str = "") -> None:
    """Refuse pinhole matrices that are not finite with positive focal lengths."""
    k = np.asarray(k, dtype=np.float64).reshape(-1, 3, 3)
    fix = f" {fix}" if fix else ""
    bad = ~np.isfinite(k.reshape(len(k), -1)).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        who = f" of {_label(labels, i)}" if labels is not None or len(k) > 1 else ""
        raise N3FInputError(f"{where}: intrinsics{who} contain NaN/Inf.{fix}")
    focal = k[:, [0, 1], [0, 1]]
    if (focal <= 0).any():
        i = int(np.flatnonzero((focal <= 0).any(axis=1))[0])
        who = f" of {_label(labels, i)}" if labels is not None or len(k) > 1 else ""
        raise N3FInputError(f"{where}: focal length{who} (fx, fy) is {focal[i].tolist()}; it must be > 0.{fix}")


def same_aspect(size_wh: tuple[int, int], other_wh: tuple[int, int], tol_px: float = ASPECT_TOLERANCE_PX) -> bool:
    """True if ``other_wh`` is ``size_wh`` scaled uniformly, up to ``tol_px`` pixels of rounding."""
    sx, sy = other_wh[0] / size_wh[0], other_wh[1] / size_wh[1]
    return abs(sx - sy) * max(size_wh) <= tol_px


def _wh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def check_one_size(
    sizes: Sequence[tuple[int, int] | None], paths: Sequence[Path], fix: str = ""
) -> tuple[int, int] | None:
    """All known (w, h) sizes equal; return it. ``None`` entries (header unreadable) are skipped."""
    known = [(s, p) for s, p in zip(sizes, paths) if s is not None]
    if not known:
        return None
    first, first_path = known[0]
    fix = fix or "all frames of a scene must have one size: replace the odd file, or remove it with its pose."
    for size, path in known[1:]:
        if tuple(size) != tuple(first):
            kind = "size" if same_aspect(first, size) else "size and aspect ratio"
            raise N3FInputError(f"image {path} is {_wh(size)} but {first_path.name} is {_wh(first)} (another {kind}); {fix}")
    return tuple(first)


def check_aspect(declared_wh: tuple[int, int], path: Path, disk_wh: tuple[int, int] | None, what: str, fix: str) -> None:
    """An image on disk may be a uniformly scaled copy of the camera it belongs to, never stretched."""
    if disk_wh is None or tuple(disk_wh) == tuple(declared_wh) or same_aspect(declared_wh, disk_wh):
        return
    raise N3FInputError(
        f"image {path} is {_wh(disk_wh)} but {what} is {_wh(declared_wh)} (different aspect ratio); {fix}"
    )


def check_mask_size(mask_path: Path, mask_hw: tuple[int, int], frame_path: Path, frame_hw: tuple[int, int]) -> None:
    """A mask must cover its frame pixel for pixel; resizing it would misalign it silently."""
    if tuple(mask_hw) != tuple(frame_hw):
        raise N3FInputError(
            f"mask {mask_path} is {mask_hw[1]}x{mask_hw[0]} but its frame {frame_path} is "
            f"{frame_hw[1]}x{frame_hw[0]}; masks must have the size of their frame on disk (use the mask "
            "folder made for this image folder, e.g. masks_8 with images_8)."
        )
