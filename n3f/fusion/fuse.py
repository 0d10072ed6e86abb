"""``fuse``: lift a teacher's features onto an RGB-trained field's geometry, without training.

For rays through a strided subset of every training frame's pixels, the frozen field gives
the fine samples and their compositing weights; each sample adds ``weight x`` the teacher
feature of its pixel to the :class:`~n3f.fusion.volume.FeatureVolume` (for NeuralDiff, to each
stream by its share of the density), and each ray's leftover transmittance goes to a
background feature. The fused feature of a voxel is then the weighted mean of every
observation of it: the rendering weights are the weights (LUDVIG's aggregation). Frames are
streamed one at a time, rays in chunks, so memory is the volume plus one chunk.

Rendering the fused model composites those features with the same field's weights, so its
features render, query and segment exactly as a distilled model's do.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from n3f.atomic import atomic_write_text
from n3f.device import resolve_device
from n3f.features.store import SAMPLING_MODES, FeatureStore, pixel_to_grid, sample_grid
from n3f.fusion.volume import FeatureVolume
from n3f.render.model_io import build_renderer, load_model_file, save_model
from n3f.render.rays import rays_from_pixels
from n3f.render.renderer import Renderer, default_chunk
from n3f.scene.store import SceneStore
from n3f.settings import setting
from n3f.train.data import check_feature_store

log = logging.getLogger(__name__)


@dataclass
class FuseConfig:
    """Settings of the ``fuse`` stage (``fusion:`` in the config)."""

    enabled: bool = True
    """Fuse every (scene, field, teacher) and evaluate the fused features beside the distilled ones
    (method ``fused`` in the retrieval and task tables). The workflow reads it; ``n3f fuse`` ignores it."""
    tasks: bool = True
    """With ``enabled``: also score the synthetic scenes' tasks (segment3d, edit, amodal) on the fused field,
    which doubles the tasks' cost (``bench/results/pipeline.md``). The workflow reads it."""
    queries: bool = True
    """With ``enabled``: also run each scene's ``queries:`` on the fused field (into ``fused/queries/``),
    which doubles the queries' cost. The workflow reads it."""
    stride: int = setting(8, min=1)
    """Rays through every ``stride``-th pixel of each training frame in x and y (offset per frame, so
    frames cover different pixels). A teacher patch spans several pixels, so every pixel would repeat
    the same feature: on toy_static strides 4, 8 and 16 gave the same retrieval mAP (70.3-70.7,
    bench/results/fusion.md); 8 leaves a margin for finer teachers."""
    resolution: int = setting(64, min=2)
    """Voxels per axis of the fused volume over the field's cube [-1, 1]^3 (per stream). Not tuned: on
    toy_static 32 scored higher (80.0 mAP against 70.7) and 128 lower (65.1), because coarse voxels
    average more views; the best size follows the teacher patch's footprint and the objects' size
    (bench/NOTES.md, session 9)."""
    min_weight: float = setting(1e-3, min=0)
    """Samples whose compositing weight (times stream share) is at most this are not splatted."""
    feature_sampling: str = setting("nearest", choices=SAMPLING_MODES)
    """How the teacher's patch features are read at the ray pixels (as distillation reads them)."""
    eval_frames: int = setting(1, min=0)
    """Held-out frames rendered for the fused features' cosine to the teacher in metrics.json."""
    chunk: int = setting(0, min=0)
    """Rays per forward pass (0: the device's default)."""
    device: str = "auto"
    """cpu, cuda, cuda:1 ... (auto: CUDA when present)."""
    threads: int = setting(0, min=0)
    """torch CPU threads (0: leave as is)."""


def strided_pixels(height: int, width: int, stride: int, offset: int) -> torch.Tensor:
    """Pixel centres (P, 2) of every ``stride``-th pixel, shifted by ``offset`` (wrapped per axis)."""
    ox, oy = offset % stride, (offset // stride) % stride
    v, u = torch.meshgrid(torch.arange(oy, height, stride, dtype=torch.float32),
                          torch.arange(ox, width, stride, dtype=torch.float32), indexing="ij")
    return torch.stack([u + 0.5, v + 0.5], dim=-1).reshape(-1, 2)


@torch.no_grad()
def fuse_frame(renderer: Renderer, volume: FeatureVolume, rays, teacher: torch.Tensor, min_weight: float,
               chunk: int) -> tuple[int, int]:
    """Splat one frame's rays (with their teacher features (R, C)); returns (rays, samples splatted)."""
    splatted = 0
    for i in range(0, len(rays), chunk):
        part, feats = rays[i : i + chunk], teacher[i : i + chunk]
        res = renderer.render_rays(part, outputs=(), train=False, keep_samples=True)
        weights = res["weights"].float()  # (R, S)
        r, s = weights.shape
        ray_of = torch.arange(r, device=weights.device).repeat_interleave(s)
        for name, (coords, share) in renderer.field.feature_streams(res["samples"], res["field_out"]).items():
            w = weights.reshape(-1) if share is None else weights.reshape(-1) * share.float().reshape(-1)
            keep = (w > min_weight).nonzero().squeeze(1)
            volume.splat(name, coords[keep], w[keep], feats[ray_of[keep]])
            splatted += len(keep)
        volume.splat_background((1.0 - weights.sum(-1)).clamp_min(0), feats)
    return len(rays), splatted


def fuse(scene_path: str | Path, features_path: str | Path, init: str | Path, out_dir: str | Path,
         cfg: FuseConfig | None = None) -> dict[str, Any]:
    """Fuse the teacher features of ``features_path`` into the RGB model ``init``; writes
    ``<out>/model.pt`` (the RGB model with the fused volume) and then ``<out>/metrics.json``."""
    from n3f.train.evaluate import evaluate

    cfg = cfg or FuseConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scene, feats = SceneStore(scene_path), FeatureStore(features_path)
    check_feature_store(scene, feats)
    data = load_model_file(init)
    meta = {k: v for k, v in data.items() if k != "state_dict"}
    device = resolve_device(cfg.device)
    renderer = build_renderer(meta)
    renderer.load_state_dict(data["state_dict"])
    renderer.to(device).eval()
    volume = FeatureVolume(renderer.field.fusion_streams, cfg.resolution, feats.channels).to(device)
    chunk = cfg.chunk or default_chunk(device)
    h, w = scene.image_size
    frames = np.asarray(meta.get("train_frames") or scene.split("train"), np.int64)
    started = time.perf_counter()
    n_rays = n_samples = 0
    for n, f in enumerate(frames):
        f = int(f)
        uv = strided_pixels(h, w, cfg.stride, offset=n * 7)
        c2w = torch.as_tensor(renderer.stored_pose(scene.c2w[f], f), dtype=torch.float32)
        rays = rays_from_pixels(c2w, torch.as_tensor(scene.intrinsics[f], dtype=torch.float32), uv,
                                torch.as_tensor(np.asarray(scene.bounds[f], np.float32)), f).to(device)
        grid = torch.from_numpy(np.asarray(feats.grid(f), np.float32))
        xy = torch.from_numpy(pixel_to_grid(uv.numpy(), (h, w), feats.grid_size)).float()
        teacher = sample_grid(grid, xy, cfg.feature_sampling).to(device)
        r, s = fuse_frame(renderer, volume, rays, teacher, cfg.min_weight, chunk)
        n_rays, n_samples = n_rays + r, n_samples + s
        if (n + 1) % 10 == 0 or n + 1 == len(frames):
            log.info("fused %d/%d frames (%d rays, %d samples)", n + 1, len(frames), n_rays, n_samples)
    volume.finish()
    fuse_time = time.perf_counter() - started
    renderer.fused = volume
    metrics: dict[str, Any] = {
        "stage": "fuse", "field": meta["field"], "scene": scene.name, "fuse_time_s": round(fuse_time, 2),
        "frames": len(frames), "rays": n_rays, "samples": n_samples, "voxels": int(volume.index.numel()),
        "resolution": cfg.resolution, "stride": cfg.stride, "device": str(device),
    }
    if cfg.eval_frames:
        held_out = evaluate(renderer, scene, feats, max_frames=cfg.eval_frames, feature_mode=cfg.feature_sampling,
                            chunk=cfg.chunk or None)
        metrics.update({k: held_out[k] for k in ("psnr", "ssim", "feature_cosine") if k in held_out})
        metrics["eval_frames"] = held_out["frames"]
    save_model(renderer, out / "model.pt", {**meta, "fused": volume.describe(), "stage": "fuse", "scene": scene.name})
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
