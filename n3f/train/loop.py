"""The two training stages of N3F and their shared loop.

* :func:`pretrain_rgb` fits density and colour (and, for NeuralDiff, the
  uncertainty) to the frames: loss = |RGB - RGB*|^2 (NeRF-W form with beta).
* :func:`distill` continues from that model and adds the feature loss:
  loss = |RGB - RGB*|^2 + lambda |F - F*|^2, with every parameter except the
  feature heads (for ``grid``: the whole feature branch, which stage 1 never
  trained) frozen for the first ``freeze_steps`` steps, so the untrained
  heads cannot pull geometry around through the rendering weights.

Both run a :class:`Trainer`: Adam with a short warm-up and cosine annealing,
``<out>/metrics/loss.csv``, a checkpoint every ``checkpoint_every`` steps and on
SIGTERM/SIGUSR1 (see :mod:`n3f.train.checkpoint`), resumption from
``<out>/checkpoint.pt``, and ``model.pt`` and ``metrics.json`` at the end.
The loss is the same for every architecture, plus the regularisers a field
declares (``Field.extra_losses``, weighed by ``Field.loss_weights``).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from n3f.atomic import atomic_write_text
from n3f.device import resolve_device
from n3f.errors import N3FInputError
from n3f.features.store import FeatureStore
from n3f.fields.registry import build_field
from n3f.fields.settings import FieldSettings, settings_for
from n3f.fields.sizing import appearance_default, grid_defaults, unbounded_default
from n3f.render.composite import distortion_loss
from n3f.render.model_io import build_renderer, load_model_file, model_meta, save_model
from n3f.render.pose_offsets import PoseOffsets
from n3f.render.renderer import Renderer
from n3f.render.space import SceneSpace, space_for_scene
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
from n3f.settings import validate
from n3f.train.config import TrainConfig
from n3f.train.data import RaySampler
from n3f.train.evaluate import evaluate, psnr

log = logging.getLogger(__name__)

LOG_COLUMNS = ["step", "loss", "rgb_mse", "psnr", "feature_mse", "lr", "elapsed_s"]
# settings that may change between a run and its resumption without changing what it computes
# (``steps`` is not one of them: the learning-rate schedule depends on it)
_RESUMABLE = {"checkpoint_every", "log_every", "eval_frames", "eval_chunk", "eval_renders", "progress", "device", "threads", "amp"}


def new_renderer(scene: SceneStore, cfg: TrainConfig, feature_dim: int) -> Renderer:
    """A fresh renderer for ``scene`` with the configured field, space and sampler."""
    train = scene.split("train")
    layout = scene.attrs["layout"]
    given = cfg.space.given()
    if (given.get("kind") or "contract") == "contract" and layout != "forward":
        given.setdefault("unbounded", unbounded_default(layout, scene.attrs.get("source")))
    space = space_for_scene(layout, scene.c2w, scene.intrinsics, scene.bounds, scene.image_size, **given)
    field = build_field(cfg.field, feature_dim, scene_field_settings(scene, cfg, space), scene.timestamps, train)
    offsets = PoseOffsets(scene.c2w, train) if cfg.camera_refinement else None
    return Renderer(field, space, cfg.sampler_settings(), cfg.background, pose_offsets=offsets)


def scene_field_settings(scene: SceneStore, cfg: TrainConfig, space: SceneSpace) -> FieldSettings:
    """The field's settings for a new model of ``scene``: for ``grid``, the geometry planes sized
    from the scene at ``cfg.quality`` and per-frame appearance codes for photo collections
    (:mod:`n3f.fields.sizing`), under whatever ``field_config`` sets explicitly."""
    given = cfg.field_config.to_dict() if isinstance(cfg.field_config, FieldSettings) else dict(cfg.field_config)
    if cfg.field != "grid" or isinstance(cfg.field_config, FieldSettings):
        return cfg.field_settings()
    sized = grid_defaults(space.to_dict(), scene.c2w, scene.intrinsics, scene.image_size, cfg.quality,
                          background=bool(given.get("bg_resolutions")))
    sized["appearance_dim"] = appearance_default(scene.attrs.get("source"))
    return settings_for(cfg.field, {**sized, **given}, "training settings.field_config")


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


def split_pretrained(groups: list[dict[str, Any]], feature_ids: set[int], factor: float) -> list[dict[str, Any]]:
    """Optimiser groups with every parameter outside ``feature_ids`` moved to a twin group at
    ``factor`` times its learning rate: distillation fine-tunes the already fitted field gently
    (``TrainConfig.pretrained_lr_factor``) while the new feature branch learns at full rate."""
    out = []
    for g in groups:
        new = [p for p in g["params"] if id(p) in feature_ids]
        old = [p for p in g["params"] if id(p) not in feature_ids]
        rest = {k: v for k, v in g.items() if k not in ("params", "lr", "name")}
        name = g.get("name", "params")
        if new:
            out.append({**rest, "params": new, "lr": g["lr"], "name": name})
        if old:
            out.append({**rest, "params": old, "lr": g["lr"] * factor, "name": f"{name} (pretrained)"})
    return out


def lr_lambda(cfg: TrainConfig):
    """Learning-rate factor per step: linear warm-up, then cosine annealing to ``lr_final_factor``."""
    def f(step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        prog = min(1.0, step / max(1, cfg.steps))
        return warm * (cfg.lr_final_factor + (1 - cfg.lr_final_factor) * 0.5 * (1 + math.cos(math.pi * prog)))

    return f


def training_loss(
    out: dict[str, Any], rgb: torch.Tensor, feats: torch.Tensor | None, cfg: TrainConfig,
    extra_weights: Mapping[str, float],
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch and its terms (floats, for the log).

    ``out`` is ``Renderer.render_rays(..., train=True)``; ``extra_weights`` weighs
    each of the field's own losses (``out["losses"]``), from ``Field.loss_weights``.
    """
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
        loss = loss + extra_weights[name] * value
    if cfg.distortion_lambda:  # computed only when on (n3f.fields.sizing.distortion_default)
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


class Trainer:
    """One training stage ("rgb" or "distill") into ``out_dir``.

    :meth:`setup` opens the inputs and builds the renderer, optimiser and RNGs;
    :meth:`resume` continues a checkpoint of the same run; :meth:`step` is one
    optimisation step; :meth:`train` steps to the end of the schedule with the
    loss log, progress bar, periodic checkpoints and stop signals; :meth:`finish`
    evaluates and writes ``model.pt`` and ``metrics.json``.

    A checkpoint belongs to one run: :attr:`run` holds the stage, the settings as
    requested (minus those in ``_RESUMABLE``) and a fingerprint of every input.
    """

    def __init__(
        self,
        stage: str,
        scene_path: str | Path,
        out_dir: str | Path,
        cfg: TrainConfig,
        features_path: str | Path | None = None,
        init: str | Path | None = None,
    ):
        self.stage = stage
        self.scene_path = scene_path
        self.out_dir = Path(out_dir)
        self.given = cfg
        self.features_path = features_path
        self.init = init
        self.ckpt_path = self.out_dir / CHECKPOINT
        self.steps_done, self.elapsed, self.last_saved = 0, 0.0, 0

    # -- setup -------------------------------------------------------------
    def setup(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.scene = SceneStore(self.scene_path)
        self.features = FeatureStore(self.features_path) if self.features_path is not None else None
        if self.stage == "distill" and (self.features is None or self.init is None):
            raise N3FInputError("distill needs --features (teacher feature store) and --init (the RGB model).")
        cfg = self.given
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)  # before the renderer: its initialisation draws from it

        if self.init is not None:
            self.renderer, init_meta = renderer_from_init(self.init, self.features.channels if self.features is not None else 64)
            cfg = replace(cfg, field=init_meta["field"])
        else:
            self.renderer = new_renderer(self.scene, cfg, self.features.channels if self.features is not None else cfg.feature_dim)
        self.requested = cfg.to_dict()  # as asked for: what a resumed run must agree with
        h, w = self.scene.image_size
        pixels = len(self.scene.split("train")) * h * w
        self.cfg = cfg = replace(cfg.resolved(self.stage, train_pixels=pixels, space=self.renderer.space.to_dict()), field_config=self.renderer.field.settings)
        validate(cfg, "training settings")
        self.renderer.to(self.device).train()
        if self.stage == "distill" and cfg.feature_init:
            from n3f.fusion.init import fit_features_to_fused
            from n3f.render.model_io import load_renderer

            fused = load_renderer(cfg.feature_init, self.device)
            if fused.fused is None:
                raise N3FInputError(f"training.distill.feature_init: {cfg.feature_init} holds no fused features; "
                                    "point it at the model.pt that 'n3f fuse' wrote.")
            mse = fit_features_to_fused(self.renderer, fused, cfg.feature_init_steps, seed=cfg.seed,
                                        frames=torch.as_tensor(self.scene.split("train")))
            log.info("feature branch fitted to %s (mse %.5f)", cfg.feature_init, mse)

        self.train_frames = self.scene.split("train")
        self.rays = RaySampler(self.scene, self.train_frames, self.features, cfg.frames_per_step, cfg.frame_cache,
                               cfg.feature_sampling)
        groups = self.renderer.field.param_groups(cfg.lr)
        if self.renderer.background is not None:
            groups.append({"params": list(self.renderer.background.parameters()), "lr": cfg.lr, "name": "background"})
        self.feature_ids = {id(p) for p in self.renderer.feature_parameters()}
        if self.stage == "distill" and cfg.pretrained_lr_factor != 1.0:
            groups = split_pretrained(groups, self.feature_ids, cfg.pretrained_lr_factor)
        cameras = self.renderer.pose_offsets
        # distillation keeps the RGB stage's camera corrections: they are not trained again
        self.fixed_ids = {id(p) for p in cameras.parameters()} if cameras is not None and self.stage == "distill" else set()
        if cameras is not None and self.stage == "rgb":
            groups.append({"params": list(cameras.parameters()), "lr": cfg.camera_lr, "name": "cameras"})
        self.optim = torch.optim.Adam(groups, lr=cfg.lr, eps=cfg.adam_eps, **adam_kwargs(self.device))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.optim, lr_lambda(cfg))
        self.np_rng = np.random.default_rng(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)

        # what a checkpoint must share with this run to be resumed: stage, settings, inputs
        init_file = Path(self.init) / "model.pt" if self.init is not None and Path(self.init).is_dir() else self.init
        inputs = {"scene": self.scene_path, "features": self.features_path, "init": init_file}
        self.run = {
            "stage": self.stage,
            "settings": {k: v for k, v in self.requested.items() if k not in _RESUMABLE},
            "inputs": {k: fingerprint(p) for k, p in inputs.items() if p is not None},
        }
        self.meta = model_meta(self.renderer, self.scene.timestamps, self.train_frames, stage=self.stage, scene=self.scene.name)
        self.with_features = self.stage == "distill"
        self.outputs = ("rgb", "features") if self.with_features else ("rgb",)
        self.freeze_steps = cfg.freeze_steps if self.with_features else 0
        self.loss_weights = self.renderer.field.loss_weights(cfg)
        self.amp = cfg.amp and self.device.type == "cuda"

    def resume(self) -> None:
        """Continue from ``checkpoint.pt`` if it belongs to this run (else it is discarded or set aside)."""
        ckpt = load_checkpoint(self.ckpt_path, self.run)
        if ckpt is not None:
            self.renderer.load_state_dict(ckpt["renderer"])
            self.optim.load_state_dict(ckpt["optimizer"])
            self.sched.load_state_dict(ckpt["scheduler"])
            restore_rng(ckpt["rng"], self.np_rng, self.gen)
            self.steps_done, self.elapsed = int(ckpt["step"]), float(ckpt["elapsed_s"])
            log.info("resuming from %s at step %d", self.ckpt_path, self.steps_done)
        self.last_saved = self.steps_done

    # -- steps -------------------------------------------------------------
    def _set_frozen(self, frozen: bool) -> None:
        """Frozen: only the feature heads train (the start of distillation)."""
        for p in self.renderer.parameters():
            p.requires_grad_((not frozen or id(p) in self.feature_ids) and id(p) not in self.fixed_ids)

    def step(self) -> dict[str, float]:
        """One optimisation step; returns its loss terms. A non-finite loss stops the stage
        (:class:`N3FInputError` naming the step) before the optimiser applies it."""
        cfg = self.cfg
        t0 = time.perf_counter()
        if self.steps_done == self.freeze_steps:
            self._set_frozen(False)
        self.renderer.update_occupancy(self.steps_done, self.gen)
        rays, rgb, feats = self.rays.sample(cfg.batch_rays, self.np_rng, self.with_features)
        rays, rgb = rays.to(self.device), rgb.to(self.device)
        if self.renderer.pose_offsets is not None:  # camera refinement: the corrected cameras' rays
            rays = self.renderer.pose_offsets.apply(rays)
        feats = feats.to(self.device) if feats is not None else None
        with torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else nullcontext():
            out = self.renderer.render_rays(rays, self.outputs, train=True, generator=self.gen)
        loss, parts = training_loss(out, rgb, feats, cfg, self.loss_weights)
        if not math.isfinite(parts["loss"]):
            raise N3FInputError(_non_finite_message(self.stage, self.steps_done + 1, parts, cfg, self.ckpt_path, self.last_saved))
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        self.sched.step()
        self.steps_done += 1
        self.elapsed += time.perf_counter() - t0
        return parts

    def checkpoint(self) -> None:
        save_checkpoint(
            self.ckpt_path,
            {
                **self.run,
                "step": self.steps_done,
                "elapsed_s": self.elapsed,
                "config": self.cfg.to_dict(),
                "requested": self.requested,
                "renderer": self.renderer.state_dict(),
                "optimizer": self.optim.state_dict(),
                "scheduler": self.sched.state_dict(),
                "rng": rng_state(self.np_rng, self.gen),
                "meta": self.meta,
            },
        )
        self.last_saved = self.steps_done

    def train(self) -> None:
        """Step to ``cfg.steps``: loss log, progress, periodic checkpoints, and on SIGTERM/SIGUSR1 a
        checkpoint and :class:`TrainingInterrupted`. Ends with a checkpoint of the last step."""
        cfg = self.cfg
        loss_log = _LossLog(self.out_dir / "metrics" / "loss.csv", self.steps_done)
        bar = tqdm(
            total=cfg.steps, initial=self.steps_done, desc=f"{self.stage} {self.scene.name}", disable=not cfg.progress,
            mininterval=1.0 if sys.stderr.isatty() else 30.0, file=sys.stderr,
        )
        self._set_frozen(self.steps_done < self.freeze_steps)
        try:
            with StopFlag() as stop:
                while self.steps_done < cfg.steps:
                    parts = self.step()
                    step = self.steps_done
                    if step % cfg.log_every == 0 or step == cfg.steps:
                        row = {"step": step, **parts, "psnr": psnr(parts["rgb_mse"]), "lr": self.sched.get_last_lr()[0],
                               "elapsed_s": self.elapsed}
                        loss_log.write(row)
                        bar.set_postfix(loss=f"{parts['loss']:.4f}", psnr=f"{row['psnr']:.2f}", refresh=False)
                    bar.update(1)
                    if stop.signum is not None:
                        self.checkpoint()
                        raise TrainingInterrupted(stop.signum, step)
                    if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                        self.checkpoint()
                self.checkpoint()
        finally:
            bar.close()
            loss_log.close()

    # -- outputs -----------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Evaluate on held-out frames (``renders/`` first), write ``model.pt`` and ``metrics.json``, delete the checkpoint.

        The renders come before ``model.pt`` and ``metrics.json`` (the rules' outputs), so a stage
        that Snakemake sees finished always has the renders its metrics.json lists."""
        cfg = self.cfg
        self._set_frozen(False)
        metrics = evaluate(
            self.renderer, self.scene, self.features if self.with_features else None, max_frames=cfg.eval_frames,
            feature_mode=cfg.feature_sampling, chunk=cfg.eval_chunk, renders_dir=self.out_dir, n_renders=cfg.eval_renders,
        )
        metrics = {
            "stage": self.stage,
            "field": cfg.field,
            "scene": self.scene.name,
            "steps": self.steps_done,
            "train_time_s": round(self.elapsed, 2),
            "rays_per_s": round(self.steps_done * cfg.batch_rays / max(self.elapsed, 1e-9), 1),
            "device": str(self.device),
            **metrics,
        }
        if self.renderer.pose_offsets is not None:
            metrics["camera_offsets"] = self.renderer.pose_offsets.summary()
        save_model(self.renderer, self.out_dir / "model.pt", {**self.meta, "step": self.steps_done})
        atomic_write_text(self.out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        # finished: the resume state (optimiser moments, 3x the model) has done its job
        self.ckpt_path.unlink(missing_ok=True)
        return metrics


def run_training(
    stage: str,
    scene_path: str | Path,
    out_dir: str | Path,
    cfg: TrainConfig,
    features_path: str | Path | None = None,
    init: str | Path | None = None,
) -> dict[str, Any]:
    """Train one stage ("rgb" or "distill") into ``out_dir``; returns the metrics written to metrics.json."""
    trainer = Trainer(stage, scene_path, out_dir, cfg, features_path=features_path, init=init)
    trainer.setup()
    trainer.resume()
    trainer.train()
    return trainer.finish()


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
