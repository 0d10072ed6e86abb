"""Held-out metrics: RGB PSNR and SSIM, cosine of rendered to teacher features, on 'val' frames.

Optionally a few renders beside the metrics ([photo | render | error] strips),
so that a reader sees what the numbers mean.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from n3f.atomic import atomic_dir, atomic_write_bytes
from n3f.features.store import FeatureStore, upsample_grid
from n3f.metrics import psnr_from_mse, ssim
from n3f.render.renderer import Renderer
from n3f.scene.store import SceneStore

log = logging.getLogger(__name__)

TRAIN_PSNR_CAP = 120.0  # dB, an mse of 1e-12: the cap of training's logged and held-out PSNR
RENDERS = "renders"  # the folder of held-out renders inside a stage's output folder
# |render - photo| (mean over channels) shown white at and above this: one fixed scale for every
# frame and stage, so the heat maps compare (0.25 is a plainly wrong colour; below ~0.02 is near black)
ERROR_VMAX = 0.25


def psnr(mse: float) -> float:
    """:func:`n3f.metrics.psnr_from_mse` at training's cap: the training log's ``psnr`` column and ``metrics.json``."""
    return psnr_from_mse(mse, TRAIN_PSNR_CAP)


def eval_frames(scene: SceneStore, max_frames: int = 8) -> np.ndarray:
    """Held-out frames to score: 'val' split (evenly thinned to ``max_frames``), else train frames."""
    frames = scene.split("val")
    if len(frames) == 0:
        frames = scene.split("train")
    if max_frames and len(frames) > max_frames:
        frames = frames[np.linspace(0, len(frames) - 1, max_frames).round().astype(int)]
    return frames


def error_heat_map(pred: np.ndarray, target: np.ndarray, vmax: float = ERROR_VMAX) -> np.ndarray:
    """(H, W, 3) uint8 'magma' picture of the per-pixel |pred - target| (channel mean) on the fixed scale [0, vmax]."""
    from matplotlib import colormaps

    err = np.abs(pred.astype(np.float64) - target.astype(np.float64)).mean(axis=-1)
    rgba = colormaps["magma"](np.clip(err / vmax, 0.0, 1.0))
    return np.round(rgba[..., :3] * 255).astype(np.uint8)


def render_strip(photo: np.ndarray, render: np.ndarray) -> np.ndarray:
    """[photo | render | error] side by side: (H, 3W, 3) uint8 from two (H, W, 3) images in [0, 1]."""
    to_uint8 = lambda im: np.round(np.clip(im, 0.0, 1.0) * 255).astype(np.uint8)  # noqa: E731
    return np.concatenate([to_uint8(photo), to_uint8(render), error_heat_map(render, photo)], axis=1)


def render_name(frame: int) -> str:
    """File name of frame ``frame``'s strip: by index, which (unlike a photo's name) is always a safe file name."""
    return f"frame_{frame:04d}.png"


def write_png(path: Path, image: np.ndarray) -> None:
    """PNG of a uint8 image, written atomically (a reader never sees a truncated PNG)."""
    import imageio.v3 as iio

    atomic_write_bytes(path, iio.imwrite("<bytes>", image, extension=".png"))


def write_renders(out_dir: Path, strips: dict[int, np.ndarray]) -> list[str]:
    """Replace ``<out_dir>/renders/`` with one PNG per frame; returns the paths relative to ``out_dir``.

    The folder is built aside and renamed into place, so an earlier run's
    strips (other frames, more of them) never mix with this run's; no strips
    removes the folder.
    """
    folder = out_dir / RENDERS
    if not strips:
        shutil.rmtree(folder, ignore_errors=True)
        return []
    with atomic_dir(folder) as tmp:
        for frame, strip in strips.items():
            write_png(tmp / render_name(frame), strip)
    return [f"{RENDERS}/{render_name(frame)}" for frame in strips]


@torch.no_grad()
def evaluate(
    renderer: Renderer,
    scene: SceneStore,
    features: FeatureStore | None = None,
    frames: np.ndarray | None = None,
    max_frames: int = 8,
    feature_mode: str = "nearest",
    chunk: int | None = None,
    renders_dir: str | Path | None = None,
    n_renders: int = 3,
) -> dict[str, Any]:
    """Render held-out frames; PSNR and SSIM are means of per-frame scores, cosine the mean over pixels.

    With ``renders_dir``, the first ``n_renders`` evaluated frames are also saved
    as [photo | render | error] strips in ``<renders_dir>/renders/``, listed
    (relative to ``renders_dir``) under ``renders`` in the result.
    """
    renderer.eval()
    frames = eval_frames(scene, max_frames) if frames is None else np.asarray(frames)
    outputs = ("rgb", "features") if features is not None else ("rgb",)
    psnrs, ssims, cosines = [], [], []
    strips: dict[int, np.ndarray] = {}
    for i in frames:
        out = renderer.render_frame(scene, int(i), chunk=chunk or None, outputs=outputs)
        gt = scene.frame(int(i)).astype(np.float32) / 255.0
        rgb = np.clip(out["rgb"], 0, 1)
        psnrs.append(psnr(float(np.mean((rgb - gt) ** 2))))
        ssims.append(ssim(rgb, gt))
        if renders_dir is not None and len(strips) < n_renders:
            strips[int(i)] = render_strip(gt, rgb)
        if features is not None:
            teacher = upsample_grid(torch.from_numpy(features.grid(int(i))), scene.image_size, feature_mode)
            pred = torch.from_numpy(out["features"])
            cosines.append(float(torch.nn.functional.cosine_similarity(pred, teacher, dim=-1).mean()))
    result: dict[str, Any] = {
        "frames": [int(i) for i in frames],
        "psnr": float(np.mean(psnrs)),
        "psnr_per_frame": [round(p, 3) for p in psnrs],
        "ssim": float(np.mean(ssims)),
        "ssim_per_frame": [round(s, 4) for s in ssims],
    }
    if features is not None:
        result["feature_cosine"] = float(np.mean(cosines))
        result["feature_cosine_per_frame"] = [round(c, 4) for c in cosines]
    if renders_dir is not None:
        result["renders"] = write_renders(Path(renders_dir), strips)
        log.info("wrote %d held-out renders to %s", len(strips), Path(renders_dir) / RENDERS)
    return result
