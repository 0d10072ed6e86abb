"""Structure from motion for unposed images and videos, with pycolmap on CPU.

COLMAP's classic pipeline: SIFT features, sequential or exhaustive matching
with geometric verification, incremental mapping. It runs on the CPU so it
works anywhere (COLMAP's GPU SIFT needs OpenGL/CUDA builds); features are
computed on images capped at ``max_image_size`` pixels, which keeps CPU SfM
fast enough for a few hundred frames. One camera is shared by all images by
default (``single_camera``): frames of one video or photo series come from one
camera, and shared intrinsics make self-calibration far better conditioned.

Results go into ``work_dir`` (``database.db``, the chosen ``model/`` and
``sfm.json``), written atomically; a finished run is reused when called again
with the same inputs and options.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import pycolmap

from n3f.atomic import atomic_dir, atomic_move, atomic_write_text, scratch_dir
from n3f.errors import N3FInputError
from n3f.io.colmap import load_colmap
from n3f.io.images import list_images
from n3f.io.video import extract_frames
from n3f.scene_data import SceneData

log = logging.getLogger(__name__)

MODEL_DIR = "model"
SUMMARY_FILE = "sfm.json"
DATABASE_FILE = "database.db"


def _threads(num_threads: int | None) -> int:
    """Requested threads, else the cores this process may use (respects SLURM/taskset)."""
    if num_threads:
        return int(num_threads)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_sfm(
    images_dir: str | Path,
    work_dir: str | Path,
    *,
    matcher: Literal["sequential", "exhaustive"] = "sequential",
    camera_model: str = "SIMPLE_RADIAL",
    camera_params: list[float] | None = None,
    single_camera: bool = True,
    max_image_size: int = 1024,
    max_num_features: int = 4096,
    overlap: int = 10,
    min_registered_fraction: float = 0.5,
    num_threads: int | None = None,
    seed: int = 0,
    verbose: bool = False,
) -> Path:
    """Reconstruct the images in ``images_dir``; return the largest model's folder.

    ``matcher="sequential"`` matches each image with the next ``overlap``
    images (and a few further ones, quadratic spacing): right for ordered
    video frames and linear in the number of frames. ``"exhaustive"`` matches
    all pairs: better for unordered photos or closing a loop, quadratic cost.
    ``camera_params`` fixes known intrinsics (in ``camera_model``'s parameter
    order) instead of self-calibrating. Raises :class:`N3FInputError` if fewer
    than ``min_registered_fraction`` of the images register.
    """
    images_dir = Path(images_dir)
    work_dir = Path(work_dir)
    images = _check_inputs(images_dir, matcher, camera_model)
    names = [p.name for p in images]
    settings = {
        # Names, sizes and times: re-extracted or edited images invalidate the model.
        "images": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in images],
        "matcher": matcher,
        "camera_model": camera_model,
        "camera_params": list(camera_params) if camera_params else None,
        "single_camera": single_camera,
        "max_image_size": max_image_size,
        "max_num_features": max_num_features,
        "overlap": overlap,
        "seed": seed,
    }
    done = _finished_run(work_dir, settings)
    if done is not None:
        _check_registered(done["registered"], len(names), min_registered_fraction, images_dir)
        return work_dir / MODEL_DIR

    threads = _threads(num_threads)
    work_dir.mkdir(parents=True, exist_ok=True)
    for legacy in work_dir.glob(".sfm-partial-*"):  # scratch name used before n3f.atomic
        shutil.rmtree(legacy, ignore_errors=True)
    with _colmap_log(verbose), scratch_dir(work_dir / "sfm") as scratch:
        pycolmap.set_random_seed(seed)
        database = scratch / DATABASE_FILE
        _extract_features(database, images_dir, names, camera_model, camera_params, single_camera,
                          max_image_size, max_num_features, threads)
        _match(database, matcher, overlap, threads)
        models = _map(database, images_dir, scratch / "sparse", len(names), camera_params, threads, seed)
        best = _choose_model(models, len(names), images_dir)
        registered = best.num_reg_images() if best is not None else 0
        _check_registered(registered, len(names), min_registered_fraction, images_dir)
        _write_results(work_dir, best, database, _summary(settings, best, len(names), len(models)))
    return work_dir / MODEL_DIR


def _check_inputs(images_dir: Path, matcher: str, camera_model: str) -> list[Path]:
    """Refuse what would fail deep inside COLMAP with an unreadable error; return the images."""
    images = list_images(images_dir)
    if matcher not in ("sequential", "exhaustive"):
        raise N3FInputError(f"unknown matcher {matcher!r}; use 'sequential' or 'exhaustive'.")
    if len(images) < 2:
        raise N3FInputError(f"SfM needs at least 2 images, {images_dir} has {len(images)}.")
    try:
        pycolmap.CameraModelId.__members__[camera_model]
    except KeyError:
        raise N3FInputError(
            f"unknown camera model {camera_model!r}; use one of {list(pycolmap.CameraModelId.__members__)[1:]}."
        ) from None
    return images


def _finished_run(work_dir: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of a finished run with these inputs and settings, if any: SfM takes minutes, reuse is free."""
    summary_path, model_dir = work_dir / SUMMARY_FILE, work_dir / MODEL_DIR
    if not (summary_path.is_file() and model_dir.is_dir()):
        return None
    done = json.loads(summary_path.read_text())
    return done if done.get("settings") == settings else None


@contextmanager
def _colmap_log(verbose: bool) -> Iterator[None]:
    """Hide COLMAP's INFO/WARNING lines unless ``verbose``: they run to thousands, our summary says what matters."""
    level = int(pycolmap.logging.minloglevel)
    if not verbose:
        pycolmap.logging.minloglevel = max(level, 2)
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = level


def _extract_features(
    database: Path, images_dir: Path, names: list[str], camera_model: str, camera_params: list[float] | None,
    single_camera: bool, max_image_size: int, max_num_features: int, threads: int,
) -> None:
    """SIFT on the CPU, on images capped at ``max_image_size``: the size sets both the cost and the accuracy.

    The camera model (and known intrinsics) are fixed here, when COLMAP creates
    the cameras; with ``single_camera`` every image shares one.
    """
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = camera_model
    if camera_params:
        reader.camera_params = ",".join(str(float(p)) for p in camera_params)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.use_gpu = False
    extraction.num_threads = threads
    extraction.max_image_size = max_image_size
    extraction.sift.max_num_features = max_num_features
    pycolmap.extract_features(
        database,
        images_dir,
        image_names=names,
        camera_mode=pycolmap.CameraMode.SINGLE if single_camera else pycolmap.CameraMode.AUTO,
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )


def _match(database: Path, matcher: str, overlap: int, threads: int) -> None:
    """Match image pairs and verify them geometrically.

    Sequential matching pairs each frame with its ``overlap`` successors, linear
    in the number of frames (video); exhaustive matching pairs all images, for
    unordered photos. Loop detection is off: it needs a vocabulary-tree download.
    """
    matching = pycolmap.FeatureMatchingOptions()
    matching.use_gpu = False
    matching.num_threads = threads
    if matcher == "sequential":
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = overlap
        pairing.loop_detection = False
        pairing.num_threads = threads
        pycolmap.match_sequential(database, matching_options=matching, pairing_options=pairing,
                                  device=pycolmap.Device.cpu)
    else:
        pycolmap.match_exhaustive(database, matching_options=matching, device=pycolmap.Device.cpu)


def _map(
    database: Path, images_dir: Path, out_dir: Path, n_images: int, camera_params: list[float] | None,
    threads: int, seed: int,
) -> dict[int, pycolmap.Reconstruction]:
    """Incremental mapping; returns every model it built (a capture that breaks apart gives several).

    COLMAP's minimum model size is lowered to a quarter of the images (at least
    3), so a short capture still gives a model; known intrinsics are held fixed
    in bundle adjustment.
    """
    mapping = pycolmap.IncrementalPipelineOptions()
    mapping.num_threads = threads
    mapping.random_seed = seed
    mapping.extract_colors = False
    mapping.min_model_size = min(mapping.min_model_size, max(3, n_images // 4))
    if camera_params:
        mapping.ba_refine_focal_length = False
        mapping.ba_refine_extra_params = False
    return pycolmap.incremental_mapping(database, images_dir, out_dir, options=mapping)


def _choose_model(
    models: dict[int, pycolmap.Reconstruction], n_images: int, images_dir: Path
) -> pycolmap.Reconstruction | None:
    """The model with the most registered images (None if there is none): one scene is one connected capture."""
    best = max(models.values(), key=lambda r: r.num_reg_images()) if models else None
    registered = best.num_reg_images() if best is not None else 0
    sizes = sorted((m.num_reg_images() for m in models.values()), reverse=True)
    extra = f"; largest of {len(sizes)} models of {sizes} frames" if len(sizes) > 1 else ""
    log.info("registered %d/%d frames (%s%s)", registered, n_images, images_dir, extra)
    return best


def _summary(settings: dict[str, Any], best: pycolmap.Reconstruction, n_images: int, n_models: int) -> dict[str, Any]:
    """What ``sfm.json`` records: the settings a rerun must match to reuse the model, and how well it registered."""
    return {
        "settings": settings,
        "registered": best.num_reg_images(),
        "n_images": n_images,
        "n_models": n_models,
        "n_points3D": best.num_points3D(),
        "mean_reprojection_error": best.compute_mean_reprojection_error(),
        "cameras": {int(i): c.params_to_string() for i, c in best.cameras.items()},
    }


def _write_results(work_dir: Path, best: pycolmap.Reconstruction, database: Path, summary: dict[str, Any]) -> None:
    """Replace the previous results only once the new ones are complete.

    The summary goes last: it is what marks the model as reusable, so a run
    killed in between leaves no model that looks finished.
    """
    (work_dir / SUMMARY_FILE).unlink(missing_ok=True)
    with atomic_dir(work_dir / MODEL_DIR) as out_model:
        out_model.mkdir()
        best.write_binary(str(out_model))
    atomic_move(database, work_dir / DATABASE_FILE)
    atomic_write_text(work_dir / SUMMARY_FILE, json.dumps(summary, indent=1))


def _check_registered(registered: int, total: int, min_fraction: float, images_dir: Path) -> None:
    if registered < 2 or registered < min_fraction * total:
        raise N3FInputError(
            f"SfM registered only {registered}/{total} frames of {images_dir} (need {min_fraction:.0%}); "
            "the images may overlap too little, be blurred or lack texture. Try matcher='exhaustive', "
            "more frames (slower camera motion), a larger max_image_size, or provide poses."
        )


def _warn_dropped(scene: SceneData, names: list[str], where: Path) -> None:
    dropped = len(names) - len(scene.frame_names)
    if dropped > 0:
        missing = sorted(set(names) - set(scene.frame_names))
        log.warning(
            "%d of %d frames of %s did not register and are dropped (e.g. %s)", dropped, len(names), where, missing[:3]
        )


def load_images_with_sfm(
    images_dir: str | Path,
    work_dir: str | Path,
    *,
    name: str = "scene",
    layout: str = "object",
    max_size: int | None = None,
    **sfm_options,
) -> SceneData:
    """Pose a folder of unposed images with :func:`run_sfm` and import them.

    Images that SfM could not register are dropped with a warning.
    ``sfm_options`` are passed to :func:`run_sfm`.
    """
    images_dir = Path(images_dir)
    model = run_sfm(images_dir, work_dir, **sfm_options)
    scene = load_colmap(model, images_dir, name=name, max_size=max_size, layout=layout)
    scene.source = str(images_dir)
    _warn_dropped(scene, [p.name for p in list_images(images_dir)], images_dir)
    scene.attrs["sfm"] = {"work_dir": str(work_dir), "registered": len(scene.frame_names)}
    return scene


def load_video_with_sfm(
    video_path: str | Path,
    work_dir: str | Path,
    *,
    name: str = "scene",
    layout: str = "object",
    every: int | None = None,
    target_count: int | None = None,
    max_size: int | None = None,
    frame_max_size: int | None = None,
    **sfm_options,
) -> SceneData:
    """Extract frames of a video, pose them with SfM and import them.

    Frames go to ``work_dir/frames`` (``every``/``target_count`` select them,
    ``frame_max_size`` caps their size on disk), SfM results to ``work_dir``.
    Timestamps (seconds) come from the video. ``max_size`` caps the stored
    frames as in :func:`n3f.io.colmap.load_colmap`.
    """
    video_path = Path(video_path)
    work_dir = Path(work_dir)
    frames_dir = work_dir / "frames"
    files = extract_frames(video_path, frames_dir, every=every, target_count=target_count, max_size=frame_max_size)
    model = run_sfm(frames_dir, work_dir, **sfm_options)
    scene = load_colmap(model, frames_dir, name=name, max_size=max_size, layout=layout)
    scene.source = str(video_path)
    _warn_dropped(scene, [p.name for p in files], video_path)
    if scene.timestamps is None:  # load_colmap reads them from frames.json
        raise N3FInputError(f"{frames_dir / 'frames.json'} lacks some frames; delete {frames_dir} and rerun.")
    scene.attrs["sfm"] = {"work_dir": str(work_dir), "registered": len(scene.frame_names)}
    return scene
