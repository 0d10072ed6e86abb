"""The two training stages of N3F and their shared loop.

* :func:`pretrain_rgb` fits density and colour (and, for NeuralDiff, the
  uncertainty) to the frames: loss = |RGB - RGB*|^2 (NeRF-W form with beta).
* :func:`distill` continues from that model and adds the feature loss:
  loss = |RGB - RGB*|^2 + lambda |F - F*|^2, with every parameter except the
  feature heads (for ``grid``: the whole feature branch, which stage 1 never
  trained) frozen for the first ``freeze_steps`` steps, so the untrained
  heads cannot pull geometry around through the rendering weights.

Both use Adam with a short warm-up and cosine annealing, write
``<out>/metrics/loss.csv``, checkpoint every ``checkpoint_every`` steps and on
SIGTERM/SIGUSR1 (see :mod:`n3f.train.checkpoint`), resume from
``<out>/checkpoint.pt``, and finish with ``model.pt`` and ``metrics.json``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from n3f.atomic import atomic_write_text
from n3f.device import resolve_device
from n3f.errors import N3FInputError
from n3f.features.store import FeatureStore
from n3f.fields import build_field
from n3f.render.composite import distortion_loss
from n3f.render.model_io import build_renderer, load_model_file, model_meta, save_model
from n3f.render.renderer import Renderer, SamplerConfig
from n3f.render.space import space_for_scene
from n3f.scene.store import SceneStore
from n3f.train.checkpoint import (
    CHECKPOINT,
    StopFlag,
    TrainingInterrupted,
    fingerprint,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from n3f.settings import check_known, parse, validate
from n3f.train.config import TrainConfig
from n3f.train.data import RaySampler
from n3f.train.evaluate import evaluate, psnr

log = logging.getLogger(__name__)

LOG_COLUMNS = ["step", "loss", "rgb_mse", "psnr", "feature_mse", "lr", "elapsed_s"]
# settings that may change between a run and its resumption without changing what it computes
# (``steps`` is not one of them: the learning-rate schedule depends on it)
_RESUMABLE = {"checkpoint_every", "log_every", "eval_frames", "eval_chunk", "progress", "device", "threads", "amp"}


def new_renderer(scene: SceneStore, cfg: TrainConfig, feature_dim: int) -> Renderer:
    """A fresh renderer for ``scene`` with the configured field, space and sampler."""
    from n3f.render.space import SceneSpace

    train = scene.split("train")
    check_known("training settings: space", cfg.space, [f for f in SceneSpace.__dataclass_fields__])
    parse(SamplerConfig, cfg.sampler, "training settings: sampler")
    field = build_field(cfg.field, feature_dim, cfg.field_config, scene.timestamps, train)
    space = space_for_scene(scene.attrs["layout"], scene.c2w, scene.intrinsics, scene.bounds, scene.image_size, **cfg.space)
    return Renderer(field, space, SamplerConfig.for_field(field, cfg.sampler), cfg.background)


def adam_kwargs(device: torch.device) -> dict[str, Any]:
    """Fused Adam: one kernel over every parameter instead of a dozen per tensor.

    The plane grids hold most parameters and every step updates all of them, so
    the per-tensor optimiser was a quarter of a CPU step (bench/NOTES.md)."""
    return {"fused": True} if device.type in ("cpu", "cuda") else {}


def renderer_from_init(init: str | Path, feature_dim: int) -> tuple[Renderer, dict[str, Any]]:
    """Rebuild the stage-1 renderer; feature heads are re-created if the width changes."""
    data = load_model_file(init)
    meta = {k: v for k, v in data.items() if k != "state_dict"}
    state = data["state_dict"]
    if int(meta["feature_dim"]) != feature_dim:
        meta["feature_dim"] = feature_dim
        renderer = build_renderer(meta)
        prefixes = tuple("field." + p for p in renderer.field.feature_state_prefixes()) + ("background.feature_head.",)
        state = {k: v for k, v in state.items() if not k.startswith(prefixes)}
        missing, _ = renderer.load_state_dict(state, strict=False)
        assert all(k.startswith(prefixes) for k in missing), missing
    else:
        renderer = build_renderer(meta)
        renderer.load_state_dict(state)
    return renderer, meta


def _lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        prog = min(1.0, step / max(1, cfg.steps))
        return warm * (cfg.lr_final_factor + (1 - cfg.lr_final_factor) * 0.5 * (1 + math.cos(math.pi * prog)))

    return f


def _loss(out: dict[str, Any], rgb: torch.Tensor, feats: torch.Tensor | None, cfg: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    mse = ((out["rgb"] - rgb) ** 2).mean()
    if "beta" in out and cfg.uncertainty_loss:  # NeRF-W / NeuralDiff: residual weighted by predicted uncertainty
        beta = out["beta"]
        loss = (((out["rgb"] - rgb) ** 2).sum(-1, keepdim=True) / (2 * beta**2)).mean() + torch.log(beta).mean()
    else:
        loss = mse
    if "coarse" in out:
        loss = loss + ((out["coarse"]["rgb"] - rgb) ** 2).mean()
    parts = {"rgb_mse": mse.item(), "feature_mse": float("nan")}
    if feats is not None:
        fmse = ((out["features"] - feats) ** 2).mean()
        floss = fmse + (((out["coarse"]["features"] - feats) ** 2).mean() if "coarse" in out else 0.0)
        loss = loss + cfg.feature_lambda * floss
        parts["feature_mse"] = fmse.item()
    for name, value in out.get("losses", {}).items():
        if name == "sparsity":
            loss = loss + cfg.sparsity_lambda * value
    if cfg.distortion_lambda:  # computed only when asked for: off by default
        loss = loss + cfg.distortion_lambda * distortion_loss(out["weights"], out["s_edges"])
    parts["loss"] = loss.item()
    return loss, parts


class _LossLog:
    """Append-only CSV of training losses that survives resumption (rows past the checkpoint are dropped)."""

    def __init__(self, path: Path, resume_step: int):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = []
        if resume_step > 0 and path.exists():
            with open(path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, LOG_COLUMNS)
            w.writeheader()
            w.writerows(rows)
        self._fh = open(path, "a", newline="")
        self._w = csv.DictWriter(self._fh, LOG_COLUMNS)

    def write(self, row: dict[str, Any]) -> None:
        self._w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in LOG_COLUMNS})
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def run_training(
    stage: str,
    scene_path: str | Path,
    out_dir: str | Path,
    cfg: TrainConfig,
    features_path: str | Path | None = None,
    init: str | Path | None = None,
) -> dict[str, Any]:
    """Train one stage ("rgb" or "distill") into ``out_dir``; returns the metrics written to metrics.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scene = SceneStore(scene_path)
    features = FeatureStore(features_path) if features_path is not None else None
    if stage == "distill" and (features is None or init is None):
        raise N3FInputError("distill needs --features (teacher feature store) and --init (the RGB model).")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)

    if init is not None:
        renderer, init_meta = renderer_from_init(init, features.channels if features is not None else 64)
        cfg = TrainConfig(**{**cfg.to_dict(), "field": init_meta["field"]})
    else:
        renderer = new_renderer(scene, cfg, features.channels if features is not None else cfg.feature_dim)
    requested = cfg.to_dict()  # as asked for: what a resumed run must agree with
    cfg = cfg.resolved(stage)
    validate(cfg, "training settings")
    renderer.to(device).train()

    train_frames = scene.split("train")
    sampler = RaySampler(scene, train_frames, features, cfg.frames_per_step, cfg.frame_cache, cfg.feature_sampling)
    groups = renderer.field.param_groups(cfg.lr)
    if renderer.background is not None:
        groups.append({"params": list(renderer.background.parameters()), "lr": cfg.lr, "name": "background"})
    optim = torch.optim.Adam(groups, lr=cfg.lr, eps=cfg.adam_eps, **adam_kwargs(device))
    sched = torch.optim.lr_scheduler.LambdaLR(optim, _lr_lambda(cfg))
    np_rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)

    ckpt_path = out_dir / CHECKPOINT
    step, elapsed = 0, 0.0
    # what a checkpoint must share with this run to be resumed: stage, settings, inputs
    init_file = Path(init) / "model.pt" if init is not None and Path(init).is_dir() else init
    inputs = {"scene": scene_path, "features": features_path, "init": init_file}
    run = {
        "stage": stage,
        "settings": {k: v for k, v in requested.items() if k not in _RESUMABLE},
        "inputs": {k: fingerprint(p) for k, p in inputs.items() if p is not None},
    }
    ckpt = load_checkpoint(ckpt_path, run)
    if ckpt is not None:
        renderer.load_state_dict(ckpt["renderer"])
        optim.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        restore_rng(ckpt["rng"], np_rng, gen)
        step, elapsed = int(ckpt["step"]), float(ckpt["elapsed_s"])
        log.info("resuming from %s at step %d", ckpt_path, step)
    last_saved = step

    meta = model_meta(renderer, scene.timestamps, train_frames, stage=stage, scene=scene.name)
    with_features = stage == "distill"
    outputs = ("rgb", "features") if with_features else ("rgb",)
    feat_ids = {id(p) for p in renderer.feature_parameters()}
    freeze_steps = cfg.freeze_steps if with_features else 0

    def set_frozen(frozen: bool) -> None:
        for p in renderer.parameters():
            p.requires_grad_(not frozen or id(p) in feat_ids)

    def checkpoint() -> None:
        nonlocal last_saved
        save_checkpoint(
            ckpt_path,
            {
                **run,
                "step": step,
                "elapsed_s": elapsed,
                "config": cfg.to_dict(),
                "requested": requested,
                "renderer": renderer.state_dict(),
                "optimizer": optim.state_dict(),
                "scheduler": sched.state_dict(),
                "rng": rng_state(np_rng, gen),
                "meta": meta,
            },
        )
        last_saved = step

    amp = cfg.amp and device.type == "cuda"
    loss_log = _LossLog(out_dir / "metrics" / "loss.csv", step)
    bar = tqdm(
        total=cfg.steps, initial=step, desc=f"{stage} {scene.name}", disable=not cfg.progress,
        mininterval=1.0 if sys.stderr.isatty() else 30.0, file=sys.stderr,
    )
    set_frozen(step < freeze_steps)
    try:
        with StopFlag() as stop:
            while step < cfg.steps:
                t0 = time.perf_counter()
                if step == freeze_steps:
                    set_frozen(False)
                rays, rgb, feats = sampler.sample(cfg.batch_rays, np_rng, with_features)
                rays, rgb = rays.to(device), rgb.to(device)
                feats = feats.to(device) if feats is not None else None
                with torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext():
                    out = renderer.render_rays(rays, outputs, train=True, generator=gen)
                loss, parts = _loss(out, rgb, feats, cfg)
                if not math.isfinite(parts["loss"]):
                    raise N3FInputError(_non_finite_message(stage, step + 1, parts, cfg, ckpt_path, last_saved))
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                sched.step()
                step += 1
                elapsed += time.perf_counter() - t0
                if step % cfg.log_every == 0 or step == cfg.steps:
                    row = {"step": step, **parts, "psnr": psnr(parts["rgb_mse"]), "lr": sched.get_last_lr()[0], "elapsed_s": elapsed}
                    loss_log.write(row)
                    bar.set_postfix(loss=f"{parts['loss']:.4f}", psnr=f"{row['psnr']:.2f}", refresh=False)
                bar.update(1)
                if stop.signum is not None:
                    checkpoint()
                    raise TrainingInterrupted(stop.signum, step)
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                    checkpoint()
            checkpoint()
    finally:
        bar.close()
        loss_log.close()

    set_frozen(False)
    metrics = evaluate(
        renderer, scene, features if with_features else None, max_frames=cfg.eval_frames,
        feature_mode=cfg.feature_sampling, chunk=cfg.eval_chunk,
    )
    metrics = {
        "stage": stage,
        "field": cfg.field,
        "scene": scene.name,
        "steps": step,
        "train_time_s": round(elapsed, 2),
        "rays_per_s": round(step * cfg.batch_rays / max(elapsed, 1e-9), 1),
        "device": str(device),
        **metrics,
    }
    save_model(renderer, out_dir / "model.pt", {**meta, "step": step})
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    # finished: the resume state (optimiser moments, 3x the model) has done its job
    ckpt_path.unlink(missing_ok=True)
    return metrics


def _non_finite_message(stage: str, step: int, parts: dict[str, float], cfg: TrainConfig, ckpt: Path, saved: int) -> str:
    terms = ("rgb_mse", "feature_mse") if stage == "distill" else ("rgb_mse",)
    which = [k for k in terms if not math.isfinite(parts.get(k, 0.0))]
    kept = f"the last good checkpoint ({ckpt}, step {saved}) is kept" if saved and ckpt.exists() else "no checkpoint was written yet"
    return (
        f"training stage '{stage}': the loss became non-finite at step {step} ({', '.join(which) or 'an extra loss term'}); "
        f"{kept} and no model was written. Likely causes: a learning rate too high for this scene "
        f"(lr {cfg.lr}: lower training.{stage}.lr), or non-finite input data (rerun the scene / teacher_features stage)."
    )


def pretrain_rgb(scene_path: str | Path, out_dir: str | Path, cfg: TrainConfig | None = None) -> dict[str, Any]:
    """Stage 1: fit the field to the frames' colours."""
    return run_training("rgb", scene_path, out_dir, cfg or TrainConfig())


def distill(
    scene_path: str | Path, features_path: str | Path, init: str | Path, out_dir: str | Path, cfg: TrainConfig | None = None
) -> dict[str, Any]:
    """Stage 2: continue from the RGB model, adding the teacher feature loss."""
    return run_training("distill", scene_path, out_dir, cfg or TrainConfig(), features_path=features_path, init=init)
