"""Structure from motion for unposed images and videos, with pycolmap on CPU.

The pipeline is COLMAP's classic one: SIFT features, sequential or exhaustive
matching with geometric verification, incremental mapping. It runs on the CPU
so that it works anywhere (the GPU SIFT of COLMAP needs OpenGL/CUDA builds);
features are computed on images capped at ``max_image_size`` pixels, which is
what makes CPU SfM fast enough for a few hundred frames.

One camera is shared by all images by default (``single_camera``): frames of a
video or a photo series come from one camera, and sharing the intrinsics makes
self-calibration far better conditioned than one camera per image.

Results go into ``work_dir`` (``database.db`` and the chosen ``model/``), written
atomically; a finished run is reused when called again with the same inputs
and options.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Literal

import pycolmap

from n3f.atomic import atomic_dir, atomic_write_text, remove_stale_partials
from n3f.errors import N3FInputError
from n3f.io.colmap import load_colmap
from n3f.io.images import list_images
from n3f.io.video import extract_frames
from n3f.scene_data import SceneData

MODEL_DIR = "model"
SUMMARY_FILE = "sfm.json"


def _threads(num_threads: int | None) -> int:
    """Requested threads, else the cores this process may use (respects SLURM/taskset)."""
    if num_threads:
        return int(num_threads)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _pick_largest(models: dict[int, pycolmap.Reconstruction]) -> pycolmap.Reconstruction | None:
    if not models:
        return None
    return max(models.values(), key=lambda r: r.num_reg_images())


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
    summary_path = work_dir / SUMMARY_FILE
    model_dir = work_dir / MODEL_DIR
    if summary_path.is_file() and model_dir.is_dir():
        done = json.loads(summary_path.read_text())
        if done.get("settings") == settings:
            _check_registered(done["registered"], len(names), min_registered_fraction, images_dir)
            return model_dir

    threads = _threads(num_threads)
    log_level = int(pycolmap.logging.minloglevel)
    if not verbose:
        # COLMAP's INFO/WARNING lines run to thousands; our own summary says what matters.
        pycolmap.logging.minloglevel = max(log_level, 2)
    pycolmap.set_random_seed(seed)

    work_dir.mkdir(parents=True, exist_ok=True)
    # Scratch workspace (database, all sub-models) beside the results; a killed
    # run's workspace is removed by the next one.
    workspace = work_dir / "sfm"
    remove_stale_partials(workspace)
    for legacy in work_dir.glob(".sfm-partial-*"):  # name used before n3f.atomic
        shutil.rmtree(legacy, ignore_errors=True)
    tmp = workspace.with_name(f"{workspace.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        database = tmp / "database.db"
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

        matching = pycolmap.FeatureMatchingOptions()
        matching.use_gpu = False
        matching.num_threads = threads
        if matcher == "sequential":
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = overlap
            pairing.loop_detection = False  # needs a vocabulary tree download
            pairing.num_threads = threads
            pycolmap.match_sequential(database, matching_options=matching, pairing_options=pairing,
                                      device=pycolmap.Device.cpu)
        else:
            pycolmap.match_exhaustive(database, matching_options=matching, device=pycolmap.Device.cpu)

        mapping = pycolmap.IncrementalPipelineOptions()
        mapping.num_threads = threads
        mapping.random_seed = seed
        mapping.extract_colors = False
        mapping.min_model_size = min(mapping.min_model_size, max(3, len(names) // 4))
        if camera_params:
            mapping.ba_refine_focal_length = False
            mapping.ba_refine_extra_params = False
        models = pycolmap.incremental_mapping(database, images_dir, tmp / "sparse", options=mapping)
        best = _pick_largest(models)
        registered = best.num_reg_images() if best is not None else 0
        sizes = sorted((m.num_reg_images() for m in models.values()), reverse=True)
        extra = f"; largest of {len(sizes)} models of {sizes} frames" if len(sizes) > 1 else ""
        print(f"[sfm] registered {registered}/{len(names)} frames ({images_dir}{extra})", file=sys.stderr, flush=True)
        _check_registered(registered, len(names), min_registered_fraction, images_dir)

        summary = {
            "settings": settings,
            "registered": registered,
            "n_images": len(names),
            "n_models": len(models),
            "n_points3D": best.num_points3D(),
            "mean_reprojection_error": best.compute_mean_reprojection_error(),
            "cameras": {int(i): c.params_to_string() for i, c in best.cameras.items()},
        }
        # Replace the previous results only once the new ones are complete; the
        # summary goes last, as it is what marks the model as reusable.
        summary_path.unlink(missing_ok=True)
        with atomic_dir(model_dir) as out_model:
            out_model.mkdir()
            best.write_binary(str(out_model))
        os.replace(tmp / "database.db", work_dir / "database.db")
        atomic_write_text(summary_path, json.dumps(summary, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        pycolmap.logging.minloglevel = log_level
    return model_dir


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
        print(
            f"[sfm] warning: {dropped} of {len(names)} frames of {where} did not register and are dropped "
            f"(e.g. {missing[:3]})",
            file=sys.stderr,
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
