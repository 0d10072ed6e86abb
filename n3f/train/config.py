"""Training settings: one dataclass, defaults per field, overridable from JSON/YAML or flags.

Defaults for ``grid``/``neuraldiff`` are tuned for the built-in synthetic scenes
on a CPU (see bench/results/training.md); ``nerf`` follows the paper
(lr 5e-4, feature weight 1e-3, 1k frozen steps).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from n3f.errors import N3FInputError
from n3f.settings import parse, setting

FIELD_DEFAULTS: dict[str, dict[str, Any]] = {
    # many small steps beat few large ones on a CPU (bench: 256 rays/step reaches 29.6 dB in the
    # time 1024 rays/step reaches 27.6 dB)
    # Step counts trade quality for the 15-minute CPU budget of the default pipeline
    # (bench/NOTES.md): toy_static held-out PSNR 23.4 / 25.8 / 28.2 dB after 1000 / 2000 / 4000 steps.
    "grid": {"lr": 1e-2, "feature_lambda": 1.0, "batch_rays": 256, "steps": 4000, "distill_steps": 2000},
    # lr 2e-2: +0.6 dB held out on toy_kitchen at 2000 steps. Sparsity of the moving streams
    # (their rendered opacity, fields/neuraldiff.py): 0.003 while fitting colour lets the actor's
    # arm in (+0.7 dB held out over 0.01); 0.03 while distilling keeps static objects' features
    # in the static stream, where they are consistent across frames (retrieval mAP 55.2 -> 59.2 at
    # 1000 steps, PSNR 25.85 -> 25.33 dB); 1500 distillation steps win back PSNR (25.71 dB).
    # bench/NOTES.md has the runs.
    "neuraldiff": {
        "lr": 2e-2, "feature_lambda": 1.0, "batch_rays": 256, "steps": 2000, "distill_steps": 1500,
        "sparsity_lambda": 0.003, "distill_sparsity_lambda": 0.03,
    },
    "nerf": {"lr": 5e-4, "feature_lambda": 1e-3, "batch_rays": 1024, "steps": 200_000, "distill_steps": 50_000},
}


@dataclass
class TrainConfig:
    """Settings of one training stage (``training: {rgb: ..., distill: ...}`` in the config).

    ``None`` means "the field's default for this stage" (:data:`FIELD_DEFAULTS`).
    Every value is type- and range-checked by :func:`n3f.settings.parse`.
    """

    field: str = setting("grid", choices=tuple(FIELD_DEFAULTS))
    """Architecture: grid (tri-plane, default), nerf (the paper's), neuraldiff (egocentric video)."""
    field_config: dict[str, Any] = setting(default_factory=dict)
    """Keyword settings of the field's constructor (n3f/fields/<field>.py)."""
    feature_dim: int = setting(64, min=1)
    """Feature channels of an RGB-stage field; distillation takes the feature store's channels."""
    steps: int | None = setting(None, min=1)
    """Optimiser steps (None: per field and stage, FIELD_DEFAULTS)."""
    batch_rays: int | None = setting(None, min=1)
    """Rays per step (None: per field)."""
    lr: float | None = setting(None, min=0, min_exclusive=True)
    """Peak learning rate (None: per field)."""
    lr_final_factor: float = setting(0.05, min=0, max=1)
    """Cosine annealing ends at lr * factor."""
    warmup_steps: int = setting(20, min=0)
    """Linear learning-rate warm-up steps."""
    adam_eps: float = setting(1e-15, min=0, min_exclusive=True)
    """Adam's epsilon."""
    feature_lambda: float | None = setting(None, min=0)
    """Weight of the feature loss (None: per field; paper 1e-3 NeRF, 1.0 NeuralDiff)."""
    freeze_steps: int | None = setting(None, min=0)
    """Distillation: first steps with only the feature heads trained (None: min(1000, steps // 4))."""
    feature_sampling: str = setting("nearest", choices=("nearest", "bilinear"))
    """How teacher patch features are sampled at ray pixels."""
    sparsity_lambda: float | None = setting(None, min=0)
    """NeuralDiff: weight of the moving streams' rendered opacity (None: per field and stage)."""
    uncertainty_loss: bool = False
    """NeuralDiff: NeRF-W colour loss weighted by the rendered beta (off: it cost 3-4 dB, bench/NOTES.md)."""
    distortion_lambda: float = setting(0.0, min=0)
    """mip-NeRF 360 distortion loss on the fine weights (0: off)."""
    frames_per_step: int = setting(16, min=1)
    """Rays of one step come from this many random training frames."""
    frame_cache: int = setting(256, min=1)
    """Frames (RGB and feature grid) kept in memory (LRU)."""
    sampler: dict[str, Any] = setting(default_factory=dict)
    """Overrides of n3f.render.renderer.SamplerConfig (n_proposal, n_importance, n_uniform, ...)."""
    space: dict[str, Any] = setting(default_factory=dict)
    """Overrides of n3f.render.space.SceneSpace (kind, ndc_near, centre, radius, inner, ...)."""
    background: str = setting("learned", choices=("learned", "black", "white"))
    """Background model behind the field."""
    seed: int = setting(0, min=0)
    """Random seed of initialisation, batches and jitter."""
    checkpoint_every: int = setting(500, min=0)
    """Steps between checkpoints (0: only on a stop signal and at the end)."""
    log_every: int = setting(10, min=1)
    """Steps between rows of metrics/loss.csv."""
    eval_frames: int = setting(4, min=0)
    """Held-out frames rendered for metrics.json (0: all val frames)."""
    eval_chunk: int = setting(0, min=0)
    """Rays per forward pass when evaluating (0: the device's default)."""
    amp: bool = True
    """bf16 autocast (CUDA only)."""
    device: str = "auto"
    """cpu, cuda, cuda:1 ... (auto: CUDA when present)."""
    threads: int = setting(0, min=0)
    """torch CPU threads (0: leave as is)."""
    progress: bool = True
    """Progress bar on stderr."""

    def resolved(self, stage: str = "rgb") -> "TrainConfig":
        """Fill per-field (and per-stage: distillation is shorter) defaults for the fields left at None."""
        if self.field not in FIELD_DEFAULTS:
            raise N3FInputError(f"field '{self.field}' unknown; use one of {sorted(FIELD_DEFAULTS)}.")
        d = asdict(self)
        defaults = dict(FIELD_DEFAULTS[self.field])
        staged = {k[len("distill_"):]: defaults.pop(k) for k in list(defaults) if k.startswith("distill_")}
        if stage == "distill":
            defaults.update(staged)
        for k, v in defaults.items():
            if d.get(k) is None:
                d[k] = v
        if d["sparsity_lambda"] is None:  # only fields with moving streams use it
            d["sparsity_lambda"] = 0.01
        if d["freeze_steps"] is None:
            d["freeze_steps"] = min(1000, d["steps"] // 4)
        return TrainConfig(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "training settings") -> "TrainConfig":
        """Parse settings, refusing unknown keys, wrong types and out-of-range values (named by ``where``)."""
        return parse(cls, d, where)


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a JSON or YAML file of settings (may be empty), then apply ``overrides`` (None values skipped)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise N3FInputError(f"{p}: training settings file not found.")
        text = p.read_text()
        try:
            data = json.loads(text) if p.suffix == ".json" else (yaml.safe_load(text) or {})
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise N3FInputError(f"{p}: cannot parse training settings ({err}).") from err
        if not isinstance(data, dict):
            raise N3FInputError(f"{p}: training settings must be a mapping of name -> value.")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return TrainConfig.from_dict(data)
