"""LLFF ``poses_bounds.npy`` importer (as written by LLFF's ``imgs2poses.py``).

Each row holds a 3x5 matrix ``[R | t | hwf]`` whose rotation columns are in
LLFF's "down, right, back" order, followed by near and far depth bounds. The
``hwf`` column refers to the images COLMAP saw (usually full resolution), so
the focal length is rescaled to the folder actually read (``images_8`` ...).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from n3f.errors import N3FInputError
from n3f.io.checks import check_aspect, check_bounds, check_one_size, check_rigid
from n3f.io.annotations import AnnotationPaths, read_annotations
from n3f.io.images import LazyFrames, image_size, list_images, read_image, resize_factor_for, resizer
from n3f.scene_data import SceneData

log = logging.getLogger(__name__)


def llff_to_opencv_c2w(poses_bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split rows of ``poses_bounds.npy`` into OpenCV c2w (N,4,4), hwf (N,3), bounds (N,2)."""
    mats = poses_bounds[:, :15].reshape(-1, 3, 5)
    down, right, back, t = mats[:, :, 0], mats[:, :, 1], mats[:, :, 2], mats[:, :, 3]
    c2w = np.tile(np.eye(4), (len(mats), 1, 1))
    c2w[:, :3, 0] = right
    c2w[:, :3, 1] = down
    c2w[:, :3, 2] = -back
    c2w[:, :3, 3] = t
    return c2w, mats[:, :, 4], poses_bounds[:, 15:17]


def load_llff(
    path: str | Path,
    *,
    name: str = "scene",
    images: str = "images",
    masks: str | None = None,
    labels: str | None = None,
    objects: str | None = None,
    amodal_masks: str | None = None,
    amodal_labels: str | None = None,
    max_size: int | None = None,
    layout: str = "forward",
    n_frames: int | None = None,
) -> SceneData:
    """Import an LLFF capture: ``path/poses_bounds.npy`` and ``path/<images>/``.

    ``masks``, ``labels``, ``objects``, ``amodal_masks``, ``amodal_labels``:
    object annotations under ``path`` (:mod:`n3f.io.annotations`).
    """
    root = Path(path)
    pb_path = root / "poses_bounds.npy"
    if not pb_path.is_file():
        raise N3FInputError(f"LLFF poses not found: {pb_path}; point 'path' at the folder holding poses_bounds.npy.")
    try:
        pb = np.load(pb_path)
    except (ValueError, OSError) as err:
        raise N3FInputError(f"cannot read {pb_path}: {err}") from err
    if pb.ndim != 2 or pb.shape[1] != 17:
        raise N3FInputError(f"{pb_path} has shape {pb.shape}; LLFF expects (N, 17) rows of 3x5 pose + near/far.")
    if not np.issubdtype(pb.dtype, np.number):
        raise N3FInputError(f"{pb_path} holds {pb.dtype} values, not numbers; regenerate it with LLFF's imgs2poses.py.")
    pb = pb.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(pb).all(axis=1))
    if len(bad):
        raise N3FInputError(f"{pb_path}: rows {bad[:5].tolist()} contain NaN/Inf; re-run pose estimation for them.")
    files = list_images(root / images)
    if len(files) != len(pb):
        raise N3FInputError(
            f"{root / images} holds {len(files)} images but {pb_path} has {len(pb)} poses; LLFF pairs them in "
            "sorted file order, so both must list the same frames."
        )
    if n_frames is not None and n_frames < len(files):
        keep = np.linspace(0, len(files) - 1, n_frames).round().astype(int)
        files, pb = [files[i] for i in keep], pb[keep]
    c2w, hwf, bounds = llff_to_opencv_c2w(pb)
    names = [f.name for f in files]
    where = str(pb_path)
    check_rigid(
        c2w, names, where,
        "LLFF rows hold [down, right, back | t | hwf] camera-to-world columns (imgs2poses.py); regenerate the "
        "file with LLFF's imgs2poses.py if it was written by another tool.",
    )
    check_bounds(bounds, names, where, "Columns 15 and 16 of each row are the near and far depth; re-run imgs2poses.py.")
    if (hwf <= 0).any():
        i = int(np.flatnonzero((hwf <= 0).any(axis=1))[0])
        raise N3FInputError(f"{where}: image height/width/focal of frame '{names[i]}' is {hwf[i].tolist()}; all must be > 0.")

    h0, w0 = read_image(files[0]).shape[:2]
    sizes = [(w0, h0)] + [image_size(f) for f in files[1:]]
    check_one_size(sizes, files)
    for f, size, (h_full, w_full, _) in zip(files, sizes, hwf):
        check_aspect(
            (round(w_full), round(h_full)), f, size, f"{pb_path.name}'s image size for it (hwf)",
            "the poses were estimated on other images; use the image folder made from them (images, images_4...).",
        )
    factor = resize_factor_for((h0, w0), max_size)
    out_w, out_h = round(w0 * factor), round(h0 * factor)
    intrinsics = np.zeros((len(pb), 3, 3))
    for i, (h_full, w_full, focal) in enumerate(hwf):
        sx, sy = out_w / w_full, out_h / h_full
        intrinsics[i] = [[focal * sx, 0, out_w / 2], [0, focal * sy, out_h / 2], [0, 0, 1]]

    paths = AnnotationPaths(masks, labels, objects, amodal_masks, amodal_labels)
    annotations, summary = read_annotations(paths, root, files, (h0, w0), (out_h, out_w))

    return SceneData(
        name=name,
        source="llff",
        frames=LazyFrames(files, resizer((out_w, out_h)), expect_wh=(w0, h0)),
        frame_names=[f.name for f in files],
        c2w=c2w,
        intrinsics=intrinsics,
        bounds=bounds,
        layout=layout,
        annotations=annotations,
        attrs={"import": {"path": str(root), "images": images, "max_size": max_size, **paths.record()},
               **({"annotations": summary} if summary else {})},
    )
