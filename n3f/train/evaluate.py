"""Held-out metrics: RGB PSNR and cosine of rendered to teacher features on 'val' frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from n3f.features.store import FeatureStore, upsample_grid
from n3f.metrics import psnr_from_mse
from n3f.render.renderer import Renderer
from n3f.scene.store import SceneStore

TRAIN_PSNR_CAP = 120.0  # dB, an mse of 1e-12: the cap of training's logged and held-out PSNR


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


@torch.no_grad()
def evaluate(
    renderer: Renderer,
    scene: SceneStore,
    features: FeatureStore | None = None,
    frames: np.ndarray | None = None,
    max_frames: int = 8,
    feature_mode: str = "nearest",
    chunk: int | None = None,
) -> dict[str, Any]:
    """Render held-out frames; PSNR is the mean of per-frame PSNRs, cosine the mean over pixels."""
    renderer.eval()
    frames = eval_frames(scene, max_frames) if frames is None else np.asarray(frames)
    outputs = ("rgb", "features") if features is not None else ("rgb",)
    psnrs, cosines = [], []
    for i in frames:
        out = renderer.render_frame(scene, int(i), chunk=chunk or None, outputs=outputs)
        gt = scene.frame(int(i)).astype(np.float32) / 255.0
        psnrs.append(psnr(float(np.mean((np.clip(out["rgb"], 0, 1) - gt) ** 2))))
        if features is not None:
            teacher = upsample_grid(torch.from_numpy(features.grid(int(i))), scene.image_size, feature_mode)
            pred = torch.from_numpy(out["features"])
            cosines.append(float(torch.nn.functional.cosine_similarity(pred, teacher, dim=-1).mean()))
    result: dict[str, Any] = {
        "frames": [int(i) for i in frames],
        "psnr": float(np.mean(psnrs)),
        "psnr_per_frame": [round(p, 3) for p in psnrs],
    }
    if features is not None:
        result["feature_cosine"] = float(np.mean(cosines))
        result["feature_cosine_per_frame"] = [round(c, 4) for c in cosines]
    return result
