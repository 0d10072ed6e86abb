"""The ``idr`` source: IDR / NeuS / VolSDF captures (DTU and BlendedMVS releases).

Layout: ``cameras_sphere.npz`` (or ``cameras.npz``) with ``world_mat_<i>`` (the
4x4 projection K [R | t] of image i, world to pixels) and ``scale_mat_<i>``
(the 4x4 similarity taking the unit sphere around the object to world
coordinates), ``image/`` and optionally ``mask/``, images paired with matrices in
sorted file order. As NeuS does, each ``world_mat @ scale_mat`` is decomposed
(OpenCV's ``decomposeProjectionMatrix``) into intrinsics and a camera-to-world
pose in the sphere's coordinates, so the object lies in the unit sphere.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from n3f.errors import N3FInputError
from n3f.io.annotations import AnnotationPaths, read_annotations
from n3f.io.checks import check_bounds, check_intrinsics, check_one_size, check_rigid
from n3f.io.images import LazyFrames, image_size, list_images, read_image, resize_factor_for, resizer, scale_intrinsics
from n3f.scene_data import SceneData

log = logging.getLogger(__name__)

CAMERA_FILES = ("cameras_sphere.npz", "cameras.npz")
SPHERE_RADIUS = 1.0  # scale_mat maps this sphere onto the object's bounding sphere (IDR's convention)


def decompose_projection(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K (3, 3), camera-to-world (4, 4), OpenCV axes) of a 3x4 projection matrix (NeuS' load_K_Rt_from_P)."""
    import cv2

    k, r, c = cv2.decomposeProjectionMatrix(np.asarray(p, np.float64)[:3, :4])[:3]
    k = k / k[2, 2]
    c2w = np.eye(4)
    c2w[:3, :3] = r.T
    c2w[:3, 3] = (c[:3] / c[3])[:, 0]
    return k, c2w


def load_idr(
    path: str | Path,
    *,
    name: str = "scene",
    images: str = "image",
    cameras: str | None = None,
    max_size: int | None = None,
    masks: str | None = None,
    labels: str | None = None,
    objects: str | None = None,
    amodal_masks: str | None = None,
    amodal_labels: str | None = None,
) -> SceneData:
    """Import an IDR/NeuS capture at ``path`` (module docstring).

    ``cameras``: the camera file under ``path`` (default ``cameras_sphere.npz``, else ``cameras.npz``).
    ``masks`` etc.: object annotations (:mod:`n3f.io.annotations`); without any, the release's
    ``mask/`` folder is read as the object ``foreground`` when it is there.
    """
    root = Path(path)
    cam_path = root / cameras if cameras else next((root / c for c in CAMERA_FILES if (root / c).is_file()), None)
    if cam_path is None or not cam_path.is_file():
        raise N3FInputError(f"IDR cameras not found in {root}: expected {' or '.join(CAMERA_FILES)} (world_mat_i, "
                            "scale_mat_i per image); point 'path' at the scan folder.")
    try:
        cams = dict(np.load(cam_path))
    except Exception as err:
        raise N3FInputError(f"cannot read {cam_path} ({err}); it must be an .npz of world_mat_i / scale_mat_i.") from err
    files = list_images(root / images)
    n = len(files)
    missing = [f"world_mat_{i}" for i in range(n) if f"world_mat_{i}" not in cams]
    if missing:
        raise N3FInputError(f"{cam_path} lacks {missing[:3]} for the {n} images in {root / images}; IDR pairs "
                            "world_mat_i with the i-th image in sorted order, so both must list the same frames.")
    ks, c2ws = [], []
    for i, f in enumerate(files):
        world = np.asarray(cams[f"world_mat_{i}"], np.float64)
        scale = np.asarray(cams.get(f"scale_mat_{i}", np.eye(4)), np.float64)
        if world.shape != (4, 4) or scale.shape != (4, 4) or not (np.isfinite(world).all() and np.isfinite(scale).all()):
            raise N3FInputError(f"{cam_path}: world_mat_{i}/scale_mat_{i} (image {f.name}) must be finite 4x4 "
                                "matrices.")
        k, c2w = decompose_projection(world @ scale)
        ks.append(k)
        c2ws.append(c2w)
    c2w, k = np.stack(c2ws), np.stack(ks)
    labels_ = [f.name for f in files]
    check_rigid(c2w, labels_, str(cam_path), "world_mat_i must be K [R | t] of image i; regenerate the file.")
    check_intrinsics(k, labels_, str(cam_path), "world_mat_i must be K [R | t] of image i; regenerate the file.")

    h0, w0 = read_image(files[0]).shape[:2]
    check_one_size([(w0, h0)] + [image_size(f) for f in files[1:]], files)
    factor = resize_factor_for((h0, w0), max_size)
    out_w, out_h = round(w0 * factor), round(h0 * factor)
    k = scale_intrinsics(k, out_w / w0, out_h / h0)
    dist = np.linalg.norm(c2w[:, :3, 3], axis=1)  # the object is in the unit sphere around the origin
    bounds = np.stack([np.maximum(dist - SPHERE_RADIUS, 0.05 * dist), dist + SPHERE_RADIUS], axis=1)
    check_bounds(bounds, labels_, str(cam_path), "a camera inside the object's sphere: check scale_mat_i.")

    if masks is None and labels is None and (root / "mask").is_dir():
        masks = "mask"
        log.info("reading the release's masks from %s as the object 'foreground'", root / "mask")
    paths = AnnotationPaths(masks, labels, objects, amodal_masks, amodal_labels)
    annotations, summary = read_annotations(paths, root, files, (h0, w0), (out_h, out_w))
    return SceneData(
        name=name,
        source="idr",
        frames=LazyFrames(files, resizer((out_w, out_h)), expect_wh=(w0, h0)),
        frame_names=labels_,
        c2w=c2w,
        intrinsics=k,
        bounds=bounds,
        layout="object",
        annotations=annotations,
        attrs={"import": {"path": str(root), "cameras": cam_path.name, "images": images, "max_size": max_size,
                          **paths.record()}, **({"annotations": summary} if summary else {})},
    )
