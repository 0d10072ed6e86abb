"""Import a COLMAP sparse model (text or binary) as :class:`SceneData`.

COLMAP already uses the OpenCV camera axes, so a frame's ``c2w`` is the
inverse of its ``cam_from_world``. Distorted cameras (SIMPLE_RADIAL, OPENCV,
fisheye...) are undistorted, since everything downstream assumes a pinhole:
COLMAP picks the pinhole camera (``pycolmap.undistort_camera``, as ``colmap
image_undistorter`` does) and OpenCV's ``remap`` resamples the pixels through
a table built from the camera's own projection, which supports every COLMAP
model without translating its parameters. Frames are read and undistorted
lazily, one at a time, so no undistorted copy is written; all end up with the
size of the first frame (after the optional ``max_size``), intrinsics scaled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pycolmap

from n3f.errors import N3FInputError
from n3f.io.annotations import AnnotationPaths, nearest_resizer, read_annotations
from n3f.io.checks import check_aspect, check_bounds, check_intrinsics, check_rigid, same_aspect
from n3f.io.images import image_size, read_image, resize_factor_for, scale_intrinsics
from n3f.io.video import INDEX_FILE, frame_times
from n3f.scene_data import SceneData

log = logging.getLogger(__name__)

MODEL_FILES = ("cameras", "images", "points3D")
PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE")

# Percentiles of observed point depths used as near/far, and the margin applied
# to them; like LLFF's poses_bounds.npy, but a little more robust to outliers.
BOUND_PERCENTILES = (1.0, 99.0)
BOUND_MARGIN = (0.9, 1.1)
MIN_POINTS_FOR_BOUNDS = 8


def _model_format(model_dir: Path) -> str | None:
    """'bin' or 'txt' if ``model_dir`` holds a complete model, else None."""
    for ext in ("bin", "txt"):
        if all((model_dir / f"{name}.{ext}").is_file() for name in MODEL_FILES):
            return ext
    return None


def find_model_dir(model_dir: str | Path) -> Path:
    """The folder holding ``cameras/images/points3D.{bin,txt}``.

    Accepts the model folder itself, or a COLMAP ``sparse/`` folder with
    numbered sub-models (``sparse/0``, ``sparse/1``...), in which case the
    sub-model with the most registered images is used, as COLMAP users expect.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise N3FInputError(
            f"COLMAP model folder not found: {model_dir}; point it at the folder holding "
            "cameras.bin/images.bin/points3D.bin (or the .txt versions), e.g. <project>/sparse/0."
        )
    if _model_format(model_dir):
        return model_dir
    subs = sorted(p for p in model_dir.iterdir() if p.is_dir() and _model_format(p))
    if subs:
        if len(subs) == 1:
            return subs[0]
        sizes = [pycolmap.Reconstruction(str(p)).num_reg_images() for p in subs]
        best = subs[int(np.argmax(sizes))]
        log.info("%s holds %d models; using the largest, %s (%d registered images)",
                 model_dir, len(subs), best.name, max(sizes))
        return best
    present = sorted(p.name for p in model_dir.iterdir())
    for ext in ("bin", "txt"):
        have = [n for n in MODEL_FILES if (model_dir / f"{n}.{ext}").is_file()]
        if have:
            missing = [f"{n}.{ext}" for n in MODEL_FILES if n not in have]
            raise N3FInputError(
                f"COLMAP model {model_dir} is incomplete: missing {', '.join(missing)}; "
                "re-export the model (colmap model_converter) or copy the missing files."
            )
    raise N3FInputError(
        f"no COLMAP model in {model_dir} (expected cameras/images/points3D .bin or .txt, found "
        f"{present[:8]}); point the path at the sparse model folder, e.g. <project>/sparse/0."
    )


def read_model(model_dir: str | Path) -> pycolmap.Reconstruction:
    """Read a COLMAP model (binary preferred, else text), with readable errors."""
    path = find_model_dir(model_dir)
    try:
        rec = pycolmap.Reconstruction(str(path))
    except Exception as exc:  # pycolmap raises generic RuntimeErrors
        raise N3FInputError(f"cannot read COLMAP model {path}: {exc}; the files may be truncated.") from exc
    return rec


def cam_from_world_matrix(image: pycolmap.Image) -> np.ndarray:
    """4x4 world-to-camera matrix (``cam_from_world`` is a property in older pycolmap, a method in 4.x)."""
    cfw = image.cam_from_world
    if callable(cfw):
        cfw = cfw()
    out = np.eye(4)
    out[:3, :] = cfw.matrix()
    return out


def _has_distortion(camera: pycolmap.Camera) -> bool:
    """True unless the camera is already a pinhole (or a distortion model with zero coefficients)."""
    model = camera.model.name
    if model in PINHOLE_MODELS:
        return False
    if "FISHEYE" in model:  # fisheye models map angles, not tangents: never pinhole
        return True
    extra = list(camera.extra_params_idxs())
    return bool(np.any(np.asarray(camera.params)[extra] != 0))


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header; decodes the image only as a fallback (naming a corrupt file)."""
    size = image_size(path)
    if size is not None:
        return size
    img = read_image(path)
    return img.shape[1], img.shape[0]


@dataclass(frozen=True)
class _CameraKey:
    """What determines one frame's pixel transform (shared by frames of one camera)."""

    camera_id: int
    disk_size: tuple[int, int]  # (w, h) of the file on disk


class _Warp:
    """Undistort (if needed) and resize one camera's images to the common size."""

    def __init__(self, camera: pycolmap.Camera, target_wh: tuple[int, int] | None = None):
        self.camera = camera
        self.distorted = _has_distortion(camera)
        if self.distorted:
            if not camera.is_perspective():
                raise N3FInputError(
                    f"COLMAP camera {camera.camera_id} uses the non-perspective model {camera.model.name}, "
                    "which cannot be undistorted to a pinhole camera; use a perspective camera model."
                )
            self.pinhole = pycolmap.undistort_camera(pycolmap.UndistortCameraOptions(), camera)
        else:
            self.pinhole = camera
        self.k_native = np.asarray(self.pinhole.calibration_matrix(), dtype=np.float64)
        self.native_wh = (int(self.pinhole.width), int(self.pinhole.height))
        self.target_wh = target_wh or self.native_wh

    @property
    def k(self) -> np.ndarray:
        sx = self.target_wh[0] / self.native_wh[0]
        sy = self.target_wh[1] / self.native_wh[1]
        return scale_intrinsics(self.k_native, sx, sy)

    def maps(self) -> tuple[np.ndarray, np.ndarray]:
        """cv2.remap lookup tables: for each undistorted pixel, where to sample the source.

        COLMAP puts pixel centres at integer + 0.5, OpenCV's remap at integers,
        hence the half-pixel shifts.
        """
        w, h = self.native_wh
        u, v = np.meshgrid(np.arange(w, dtype=np.float64) + 0.5, np.arange(h, dtype=np.float64) + 0.5)
        pix = np.stack([u.ravel(), v.ravel()], axis=1)
        rays = self.pinhole.cam_from_img(pix)
        pts = np.concatenate([rays, np.ones((len(rays), 1))], axis=1)
        src = self.camera.img_from_cam(pts, check_cheirality=False)
        src = np.nan_to_num(src, nan=-1e6, posinf=-1e6, neginf=-1e6) - 0.5
        return (
            src[:, 0].reshape(h, w).astype(np.float32),
            src[:, 1].reshape(h, w).astype(np.float32),
        )

    def __call__(self, img: np.ndarray) -> np.ndarray:
        cw, ch = int(self.camera.width), int(self.camera.height)
        if (img.shape[1], img.shape[0]) != (cw, ch):
            img = cv2.resize(img, (cw, ch), interpolation=cv2.INTER_AREA)
        if self.distorted:
            mx, my = _cached_maps(self)
            img = cv2.remap(img, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if (img.shape[1], img.shape[0]) != tuple(self.target_wh):
            img = cv2.resize(img, tuple(self.target_wh), interpolation=cv2.INTER_AREA)
        return img


@lru_cache(maxsize=4)
def _cached_maps(warp: _Warp) -> tuple[np.ndarray, np.ndarray]:
    # A handful of cameras at a time: per-image cameras would otherwise hold
    # two float32 full-size tables each.
    return warp.maps()


class ColmapFrames:
    """Lazily read, undistorted, resized frames (one transform per frame)."""

    def __init__(self, paths: list[Path], transforms: list[Callable[[np.ndarray], np.ndarray]]):
        self.paths = paths
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        img = read_image(self.paths[index])
        camera = getattr(self.transforms[index], "camera", None)
        if camera is not None:  # the decoded pixels, not only the header, must fit the camera
            check_aspect(
                (int(camera.width), int(camera.height)), self.paths[index], (img.shape[1], img.shape[0]),
                f"COLMAP camera {camera.camera_id}", "use the images the model was built from.",
            )
        return self.transforms[index](img)


def _depth_bounds(rec: pycolmap.Reconstruction, image_ids: list[int], w2c: np.ndarray) -> np.ndarray:
    """Per-image near/far from the depths of the 3D points each image observes."""
    xyz_of = {pid: np.asarray(p.xyz) for pid, p in rec.points3D.items()}
    bounds = np.full((len(image_ids), 2), np.nan)
    for row, image_id in enumerate(image_ids):
        image = rec.images[image_id]
        ids = [p.point3D_id for p in image.points2D if p.has_point3D() and p.point3D_id in xyz_of]
        if len(ids) < MIN_POINTS_FOR_BOUNDS:
            continue
        pts = np.stack([xyz_of[i] for i in ids])
        z = pts @ w2c[row, 2, :3] + w2c[row, 2, 3]
        z = z[z > 0]
        if len(z) < MIN_POINTS_FOR_BOUNDS:
            continue
        lo, hi = np.percentile(z, BOUND_PERCENTILES)
        bounds[row] = lo * BOUND_MARGIN[0], hi * BOUND_MARGIN[1]
    missing = np.isnan(bounds[:, 0])
    if missing.all():
        # No usable 3D points (e.g. poses-only model): derive a generous range
        # from the spread of the cameras instead.
        centres = np.linalg.inv(w2c)[:, :3, 3]
        spread = float(np.linalg.norm(centres - centres.mean(0), axis=1).max()) if len(centres) > 1 else 0.0
        spread = spread if spread > 0 else 1.0
        log.warning("model has no 3D points observed by its images; near/far set from camera spread")
        bounds[:] = 0.01 * spread, 4.0 * spread
    elif missing.any():
        bounds[missing] = np.median(bounds[~missing], axis=0)
    return bounds


def _video_timestamps(images_dir: Path, names: list[str]) -> np.ndarray | None:
    """Seconds of each frame if ``images_dir`` was written by :func:`n3f.io.video.extract_frames`.

    This is how a video scene keeps its time code through the frames -> sfm ->
    scene stages without another argument.
    """
    if not (images_dir / INDEX_FILE).is_file():
        return None
    times = frame_times(images_dir)
    if not all(n in times for n in names):
        return None
    return np.array([times[n] for n in names], dtype=np.float64)


def load_colmap(
    model_dir: str | Path,
    images_dir: str | Path,
    *,
    name: str = "scene",
    max_size: int | None = None,
    layout: str = "object",
    annotation_paths: AnnotationPaths | None = None,
    annotations_base: str | Path | None = None,
) -> SceneData:
    """Load registered images of a COLMAP model as a :class:`SceneData`.

    ``annotation_paths``: object masks of the frames (:mod:`n3f.io.annotations`), relative to
    ``annotations_base`` (default: the image folder's parent).

    ``model_dir`` is the folder with ``cameras/images/points3D`` (``.bin`` or
    ``.txt``) or a ``sparse/`` folder of numbered models; ``images_dir`` the
    folder the model's image names are relative to. Images on disk that are a
    uniformly downscaled version of the model's camera (e.g. LLFF's
    ``images_4``) are accepted and the camera rescaled. Frames are sorted by
    image name. ``max_size`` caps the longer side of the stored frames. If
    ``images_dir`` holds frames extracted from a video (``frames.json``), their
    timestamps in seconds are kept.
    """
    images_dir = Path(images_dir)
    path = find_model_dir(model_dir)
    rec = read_model(path)
    if not images_dir.is_dir():
        raise N3FInputError(f"image folder not found: {images_dir}; pass the folder the COLMAP model was built from.")

    image_ids = sorted(rec.reg_image_ids(), key=lambda i: rec.images[i].name)
    if not image_ids:
        raise N3FInputError(
            f"COLMAP model {path} has no registered images (no camera poses); "
            "the reconstruction failed or the wrong model folder was given."
        )
    n_unreg = rec.num_images() - len(image_ids)
    if n_unreg > 0:
        log.warning("%d image(s) in %s have no pose and are skipped", n_unreg, path)

    names = [rec.images[i].name for i in image_ids]
    paths = [images_dir / n for n in names]
    missing = [n for n, p in zip(names, paths) if not p.is_file()]
    if missing:
        raise N3FInputError(
            f"{len(missing)} image(s) of COLMAP model {path} not found in {images_dir}, e.g. "
            f"{missing[:3]}; pass the image folder the model was built from."
        )

    # One transform per (camera, file size); a camera whose images on disk are
    # smaller (downsampled copies) is rescaled to the file size first.
    warps: dict[_CameraKey, _Warp] = {}
    keys: list[_CameraKey] = []
    for image_id, p in zip(image_ids, paths):
        cam = rec.cameras[rec.images[image_id].camera_id]
        key = _CameraKey(int(cam.camera_id), _image_size(p))
        keys.append(key)
        if key in warps:
            continue
        w, h = key.disk_size
        if (w, h) != (cam.width, cam.height):
            check_aspect(
                (int(cam.width), int(cam.height)), p, (w, h), f"COLMAP camera {cam.camera_id}",
                "use the images the model was built from.",
            )
            cam = pycolmap.Camera(cam.todict())
            cam.rescale(w, h)
        warps[key] = _Warp(cam)

    # The store holds one frame size: cameras of one aspect ratio are scaled to
    # the first frame's size (intrinsics scaled with them); another aspect
    # ratio would be stretched, so it is refused.
    first_key = keys[0]
    for key, p in zip(keys, paths):
        if not same_aspect(first_key.disk_size, key.disk_size):
            raise N3FInputError(
                f"image {p} (COLMAP camera {key.camera_id}) is {key.disk_size[0]}x{key.disk_size[1]} but the first "
                f"frame {paths[0].name} (camera {first_key.camera_id}) is {first_key.disk_size[0]}x"
                f"{first_key.disk_size[1]} (different aspect ratio); a scene holds frames of one size, so import "
                "the frames of each aspect ratio as a separate scene."
            )
    first = warps[keys[0]]
    factor = resize_factor_for(first.native_wh[::-1], max_size)
    target = (max(1, round(first.native_wh[0] * factor)), max(1, round(first.native_wh[1] * factor)))
    sizes = {w.native_wh for w in warps.values()}
    if len(sizes) > 1:
        log.warning("cameras differ in size %s; all frames are resized to %dx%d", sorted(sizes), *target)
    for w in warps.values():
        w.target_wh = target

    w2c = np.stack([cam_from_world_matrix(rec.images[i]) for i in image_ids])
    c2w = np.linalg.inv(w2c)
    c2w[:, 3, :] = (0.0, 0.0, 0.0, 1.0)
    intrinsics = np.stack([warps[k].k for k in keys])
    bounds = _depth_bounds(rec, image_ids, w2c)
    check_rigid(c2w, names, str(path), "the model's image poses are corrupt; re-run the reconstruction.")
    check_intrinsics(intrinsics, names, str(path), "the model's cameras are corrupt; re-run the reconstruction.")
    check_bounds(bounds, names, str(path), "no 3D point lies in front of this camera; re-run the reconstruction.")

    models = sorted({rec.cameras[rec.images[i].camera_id].model.name for i in image_ids})
    mask_warps = [warps[k] if warps[k].distorted else nearest_resizer(target) for k in keys]
    annotations, summary = read_annotations(
        annotation_paths or AnnotationPaths(), Path(annotations_base or images_dir.parent), paths,
        [k.disk_size[::-1] for k in keys], target[::-1], mask_warps)
    return SceneData(
        annotations=annotations,
        timestamps=_video_timestamps(images_dir, names),
        name=name,
        source=str(path),
        frames=ColmapFrames(paths, [warps[k] for k in keys]),
        frame_names=names,
        c2w=c2w,
        intrinsics=intrinsics,
        bounds=bounds,
        layout=layout,
        attrs={
            "colmap": {
                "model": str(path),
                "camera_models": models,
                "undistorted": any(w.distorted for w in warps.values()),
                "n_points3D": int(rec.num_points3D()),
            },
            **({"annotations": summary, "import": (annotation_paths or AnnotationPaths()).record()} if summary else {}),
        },
    )


def import_colmap(
    path: str | Path,
    *,
    name: str = "scene",
    model: str = "sparse/0",
    images: str = "images",
    max_size: int | None = None,
    layout: str = "object",
    masks: str | None = None,
    labels: str | None = None,
    objects: str | None = None,
    amodal_masks: str | None = None,
    amodal_labels: str | None = None,
) -> SceneData:
    """The ``colmap`` source: a COLMAP project at ``path``, with ``model`` and ``images`` folders under it.

    ``masks``, ``labels``, ``objects``, ``amodal_masks``, ``amodal_labels``: annotations under ``path``
    (:mod:`n3f.io.annotations`).
    """
    path = Path(path)
    return load_colmap(path / model, path / images, name=name, max_size=max_size, layout=layout,
                       annotation_paths=AnnotationPaths(masks, labels, objects, amodal_masks, amodal_labels), annotations_base=path)


def import_sfm_model(
    path: str | Path,
    *,
    name: str = "scene",
    images: str | Path,
    max_size: int | None = None,
    layout: str = "object",
    masks: str | None = None,
    labels: str | None = None,
    objects: str | None = None,
    amodal_masks: str | None = None,
    amodal_labels: str | None = None,
) -> SceneData:
    """The ``video`` and ``images`` sources: the model the sfm stage wrote at ``path``, and the frames it posed.

    Both come from the pipeline (``n3f scene --colmap-model --images``), not from the config entry.
    Annotation options as :func:`import_colmap`, relative paths under the photo folder's parent.
    """
    return load_colmap(path, images, name=name, max_size=max_size, layout=layout,
                       annotation_paths=AnnotationPaths(masks, labels, objects, amodal_masks, amodal_labels), annotations_base=Path(images).parent)
