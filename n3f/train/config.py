"""Training settings: one dataclass, defaults per field, overridable from JSON/YAML or flags.

Defaults for ``grid``/``neuraldiff`` are tuned for the built-in synthetic scenes
on a CPU (see bench/results/training.md); ``nerf`` follows the paper
(lr 5e-4, feature weight 1e-3, 1k frozen steps).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any

import yaml

from n3f.errors import N3FInputError

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
    field: str = "grid"
    field_config: dict[str, Any] = dc_field(default_factory=dict)
    feature_dim: int = 64  # pretrain-rgb only; distill takes the feature store's channels
    steps: int | None = None  # None: per-field default
    batch_rays: int | None = None  # None: per-field default
    lr: float | None = None  # None: per-field default
    lr_final_factor: float = 0.05  # cosine annealing ends at lr * factor
    warmup_steps: int = 20
    adam_eps: float = 1e-15
    feature_lambda: float | None = None  # None: per-field default (paper: 1e-3 NeRF, 1.0 NeuralDiff)
    freeze_steps: int | None = None  # distill: steps with only feature heads trained (None: min(1000, steps // 4))
    feature_sampling: str = "nearest"  # teacher sampled at ray pixels: nearest | bilinear
    # NeuralDiff: weight of the moving streams' rendered opacity (None: per field and stage, above)
    sparsity_lambda: float | None = None
    # NeuralDiff: NeRF-W colour loss weighted by the rendered beta. Off by default: with it the
    # model gives up on hard pixels and toy_kitchen loses 3-4 dB held out (bench/NOTES.md)
    uncertainty_loss: bool = False
    # mip-NeRF 360 distortion loss on the fine weights (0: off; it did not help toy_kitchen)
    distortion_lambda: float = 0.0
    frames_per_step: int = 16  # rays of one step come from this many random training frames
    frame_cache: int = 256  # frames (RGB and feature grid) kept in memory (LRU)
    sampler: dict[str, Any] = dc_field(default_factory=dict)  # SamplerConfig overrides
    space: dict[str, Any] = dc_field(default_factory=dict)  # SceneSpace overrides
    background: str = "learned"
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 10
    eval_frames: int = 4  # held-out frames rendered for metrics.json (0: all val frames)
    eval_chunk: int = 0  # rays per forward pass when evaluating (0: the device's default)
    amp: bool = True  # bf16 autocast, CUDA only
    device: str = "auto"
    threads: int = 0  # torch CPU threads (0: leave as is)
    progress: bool = True

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
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise N3FInputError(f"unknown training setting(s) {unknown}; known: {sorted(known)}.")
        return cls(**d)


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
