"""Training settings: one dataclass, defaults per field, overridable from JSON/YAML or flags.

Defaults for ``grid``/``neuraldiff`` are tuned for the built-in synthetic scenes
on a CPU (bench/NOTES.md has the measurements); ``nerf`` follows the paper
(lr 5e-4, feature weight 1e-3, 1k frozen steps).

This module imports no torch: the Snakefile checks every stage's settings
through it while it is parsed (``n3f.config_check``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from n3f.errors import N3FInputError
from n3f.fields.settings import (
    FIELD_SETTINGS,
    FieldSettings,
    GridFieldConfig,
    NeRFFieldConfig,
    NeuralDiffFieldConfig,
    check_overrides,
    settings_for,
)
from n3f.fields.sizing import QUALITIES, distortion_default
from n3f.render.settings import BACKGROUNDS, SamplerConfig, SpaceOverrides
from n3f.settings import parse, setting

FIELD_DEFAULTS: dict[str, dict[str, Any]] = {
    # small batches, many steps: more quality per CPU second; steps fit the default
    # pipeline's CPU budget (bench/NOTES.md, "Training defaults")
    # steps: per quality and scene size (GRID_SCHEDULES, grid_rgb_steps)
    # distillation moves what the RGB stage fitted at a fifth of the peak rate: tuned on fox (held out 28.19 dB
    # after RGB; after distillation 27.97 at the full rate, 28.18 at 0.2) and toy_static (29.78; 30.32 / 30.13),
    # feature cosine within 0.004 of the full rate on both (bench/NOTES.md "Session 12")
    "grid": {"lr": 1e-2, "feature_lambda": 1.0, "batch_rays": 256, "distill_pretrained_lr_factor": 0.2},
    # lr and the moving streams' sparsity (low while fitting colour, so the actor is rendered;
    # higher while distilling, so static objects keep their features in the static stream)
    # were measured on toy_kitchen (bench/NOTES.md, "NeuralDiff on toy_kitchen" and "Training defaults")
    "neuraldiff": {
        "lr": 2e-2, "feature_lambda": 1.0, "batch_rays": 256, "steps": 2000, "distill_steps": 1500,
        "sparsity_lambda": 0.003, "distill_sparsity_lambda": 0.03,
    },
    # the paper's recipe
    "nerf": {"lr": 5e-4, "feature_lambda": 1e-3, "batch_rays": 1024, "steps": 200_000, "distill_steps": 50_000},
}
"""Per-field defaults of the settings left at None; ``distill_<key>`` is the distillation stage's."""


GRID_SCHEDULES: dict[str, tuple[int, int, int]] = {
    "fast": (2000, 4000, 1000),
    "default": (4000, 12000, 2000),
    "best": (8000, 30000, 4000),
}
"""``grid`` schedules per quality: (fewest, most) RGB steps and distillation steps. Between the two
bounds the RGB steps follow the scene: the quality's :data:`GRID_PIXEL_SHARE` of its training
pixels, one ray each. The lower bounds are the old fixed 4000 (built-in scenes keep their
schedule); the upper ones keep goldcape (21.6M training pixels) within the 15-minute budget of a
2-core CPU at ``default``: its 12000 was sized on the 2026-12-02 VM, where a goldcape step took
19 ms (46 ms on session 5's slower one, where it was 10000; bench/NOTES.md "Session 11"). ``best``
may take longer (fox and goldcape: about 30 minutes, bench/NOTES.md "Session 17")."""

GRID_PIXEL_SHARE: dict[str, float] = {"fast": 0.5, "default": 0.5, "best": 1.5}
"""Rays of RGB training per training pixel, per quality, before the bounds of :data:`GRID_SCHEDULES`.
0.5 tuned on fox (5.7M training pixels; 0.1 gave it the fewest, 4000 steps): 4000 -> 12000 steps of
256 rays lifted its held-out PSNR 25.45 -> 27.16 dB, while goldcape, capped by the upper bound either
way, gains little from more rays (bench/NOTES.md "Session 11"). ``best`` buys its gain with rays, not
planes: on fox 30000 steps (its 1.5 share, capped) at ``default``'s planes held out 29.51 dB after RGB
against 28.50 at 11138 steps, where bigger planes at the same steps lost 1.0-1.7 dB; toy_static at
``best``'s lower bound (8000 steps) 31.2 against 29.1 dB; goldcape, capped, gained nothing (17.3 dB at
every quality; bench/NOTES.md "Session 17"). Built-in scenes (under 1M pixels) stay at the lower bounds."""


def grid_rgb_steps(quality: str, train_pixels: int | None, batch_rays: int) -> int:
    """RGB steps of the ``grid`` field for a scene of ``train_pixels`` (None: the quality's fewest)."""
    lo, hi, _ = GRID_SCHEDULES[quality]
    if train_pixels is None:
        return lo
    return int(min(hi, max(lo, round(GRID_PIXEL_SHARE[quality] * train_pixels / max(batch_rays, 1)))))


STEP_COST: dict[str, float] = {"grid": 1.0, "neuraldiff": 2.4}
"""CPU time of one 256-ray training step relative to ``grid``'s: neuraldiff 70.4 ms against grid's
29.5 ms (``bench/results/step.md``, toy scenes, 1 thread, fused Adam). Fields not listed count as
grid (nerf's 250k steps of 1024 rays outweigh any other chain anyway). Used only to order jobs
(:func:`training_cost`), never to size a schedule."""


def training_cost(field: str, rgb: Mapping[str, Any] | None, distill: Mapping[str, Any] | None) -> float:
    """Estimated CPU cost of a field's RGB and distillation stages, in ``grid`` steps of 256 rays
    (steps x batch / 256 x :data:`STEP_COST`): which scene's training is the long pole of a run."""
    total = 0.0
    for stage, given in (("rgb", rgb), ("distill", distill)):
        cfg = TrainConfig.from_dict({**(given or {}), "field": field}).resolved(stage)
        total += cfg.steps * (cfg.batch_rays / 256)
    return total * STEP_COST.get(field, 1.0)


def stage_defaults(stage: str) -> dict[str, dict[str, Any]]:
    """field -> its defaults for ``stage`` (``distill_<key>`` replaces ``<key>`` in distillation)."""
    out = {}
    for field, defaults in FIELD_DEFAULTS.items():
        plain = {k: v for k, v in defaults.items() if not k.startswith("distill_")}
        if stage == "distill":
            plain.update({k[len("distill_"):]: v for k, v in defaults.items() if k.startswith("distill_")})
        out[field] = plain
    return out


@dataclass
class TrainConfig:
    """Settings of one training stage (``training: {rgb: ..., distill: ...}`` in the config).

    ``None`` means "the field's default for this stage" (:data:`FIELD_DEFAULTS`).
    Every value is type- and range-checked by :func:`n3f.settings.parse`.

    ``field_config`` and ``sampler`` override defaults that depend on the field,
    which a config's shared ``training:`` block and the distillation stage (it
    continues with the stage-1 model's field) do not name: they are held as
    given, checked key by key, until :meth:`resolved` turns them into the
    field's settings dataclass and a :class:`~n3f.render.settings.SamplerConfig`.
    ``field_config``, ``sampler`` and ``space`` shape a new model only; the
    distillation stage keeps those of the model it continues.
    """

    field: str = setting("grid", choices=tuple(FIELD_SETTINGS))
    """Architecture: grid (tri-plane, default), nerf (the paper's), neuraldiff (egocentric video)."""
    field_config: GridFieldConfig | NeRFFieldConfig | NeuralDiffFieldConfig | dict[str, Any] = setting(default_factory=dict)
    """The field's settings (n3f/fields/settings.py): overrides of its defaults as given,
    the field's settings dataclass once resolved() knows the field."""
    feature_dim: int = setting(64, min=1)
    """Feature channels of an RGB-stage field; distillation takes the feature store's channels."""
    quality: str = setting("default", choices=QUALITIES)
    """fast / default / best for the grid field: its RGB steps (GRID_SCHEDULES; between bounds they
    follow the scene's pixel count, GRID_PIXEL_SHARE rays per pixel: best 3x default's) and the cap
    on its finest plane level, which is otherwise sized from the scene (n3f/fields/sizing.py
    FINEST_CAP: 256 / 512 / 512). Measured figures: bench/NOTES.md."""
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
    pretrained_lr_factor: float | None = setting(None, min=0, max=1)
    """Distillation: learning rate of the parameters the RGB stage trained (geometry, colour,
    background), as a factor of ``lr``; the feature branch trains at ``lr`` (None: per field, grid
    0.2, so that re-warming to the peak rate does not shake a converged fit; 1 elsewhere, the
    paper's joint fine-tuning at one rate). Ignored by the RGB stage."""
    feature_sampling: str = setting("nearest", choices=("nearest", "bilinear"))
    """How teacher patch features are sampled at ray pixels."""
    sparsity_lambda: float | None = setting(None, min=0)
    """NeuralDiff: weight of the moving streams' rendered opacity (None: per field and stage)."""
    uncertainty_loss: bool = False
    """NeuralDiff: NeRF-W colour loss weighted by the rendered beta (off: it cost 3-4 dB, bench/NOTES.md)."""
    distortion_lambda: float | None = setting(None, min=0)
    """mip-NeRF 360 distortion loss on the fine weights (0: off; None: per field and scene space,
    ``n3f.fields.sizing.distortion_default``: 0.001 for ``grid`` in a bounded space, else 0)."""
    frames_per_step: int = setting(16, min=1)
    """Rays of one step come from this many random training frames."""
    frame_cache: int = setting(256, min=1)
    """Frames (RGB and feature grid) kept in memory (LRU)."""
    sampler: SamplerConfig | dict[str, Any] = setting(default_factory=dict)
    """Samples per ray (n3f.render.settings.SamplerConfig: n_proposal, n_importance, ...): overrides
    of the field's default sampler as given, the complete SamplerConfig once resolved."""
    space: SpaceOverrides = setting(default_factory=SpaceOverrides)
    """Overrides of the scene's space (n3f.render.settings.SpaceOverrides: kind, ndc_near, centre, radius, inner, ...)."""
    background: str = setting("learned", choices=BACKGROUNDS)
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
    eval_renders: int = setting(3, min=0)
    """Held-out frames saved as [photo | render | error] PNGs in the stage's renders/ folder (0: none)."""
    feature_init: str | None = None
    """Distillation: a fused model.pt (``n3f fuse``) the feature branch is first fitted to at 3D points
    (fused-then-distilled, n3f/fusion/init.py), so that distillation starts from fused features."""
    feature_init_steps: int = setting(300, min=0)
    """Steps of that fit (each one batch of 4096 points: far cheaper than a distillation step)."""
    camera_refinement: bool = False
    """RGB stage: learn a rotation and translation correction of each training camera with the field
    (n3f/render/pose_offsets.py), for captures whose SfM poses are slightly off. Distillation keeps
    the corrections the RGB stage learned; held-out frames keep their stored poses."""
    camera_lr: float = setting(6e-4, min=0, min_exclusive=True)
    """Learning rate of the camera corrections (nerfstudio's camera optimiser default), on the
    stage's schedule."""
    amp: bool = True
    """bf16 autocast (CUDA only)."""
    device: str = "auto"
    """cpu, cuda, cuda:1 ... (auto: CUDA when present)."""
    threads: int = setting(0, min=0)
    """torch CPU threads (0: leave as is)."""
    progress: bool = True
    """Progress bar on stderr."""

    def __post_init__(self) -> None:
        self._check_nested("training settings")

    def _check_nested(self, where: str) -> None:
        """Check the nested settings (mappings as given) and type ``space``; errors name ``where``."""
        if not isinstance(self.field_config, FieldSettings):
            check_overrides(self.field_config, f"{where}.field_config")
            self.field_config = dict(self.field_config)
        if not isinstance(self.sampler, SamplerConfig):
            parse(SamplerConfig, self.sampler, f"{where}.sampler")  # keys and values; defaults are the field's
            self.sampler = dict(self.sampler)
        if not isinstance(self.space, SpaceOverrides):
            self.space = SpaceOverrides.from_dict(self.space, f"{where}.space")

    def field_settings(self, where: str = "training settings") -> FieldSettings:
        """``field``'s settings: its defaults with ``field_config`` applied."""
        return settings_for(self.field, self.field_config, f"{where}.field_config")

    def sampler_settings(self, where: str = "training settings") -> SamplerConfig:
        """``field``'s default sampler with ``sampler`` applied."""
        if isinstance(self.sampler, SamplerConfig):
            return self.sampler
        return SamplerConfig.for_field(FIELD_SETTINGS[self.field], self.sampler, f"{where}.sampler")

    def resolved(self, stage: str = "rgb", where: str = "training settings", train_pixels: int | None = None,
                 space: Mapping[str, Any] | None = None) -> "TrainConfig":
        """Fill per-field (and per-stage: distillation is shorter) defaults for the settings left
        at None, and the field's complete settings and sampler for the overrides given.

        ``grid``'s steps follow ``quality`` and the scene's ``train_pixels`` (:func:`grid_rgb_steps`);
        ``distortion_lambda`` follows the scene's ``space`` (``SceneSpace.to_dict()``; without one, 0)."""
        if self.field not in FIELD_DEFAULTS:
            raise N3FInputError(f"field '{self.field}' unknown; use one of {sorted(FIELD_DEFAULTS)}.")
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in stage_defaults(stage)[self.field].items():
            if d.get(k) is None:
                d[k] = v
        if self.field == "grid" and self.steps is None:
            d["steps"] = (grid_rgb_steps(self.quality, train_pixels, d["batch_rays"]) if stage == "rgb"
                          else GRID_SCHEDULES[self.quality][2])
        if d["sparsity_lambda"] is None:  # only fields with moving streams use it
            d["sparsity_lambda"] = 0.01
        if d["freeze_steps"] is None:
            d["freeze_steps"] = min(1000, d["steps"] // 4)
        if d["pretrained_lr_factor"] is None:
            d["pretrained_lr_factor"] = 1.0
        if d["distortion_lambda"] is None:
            d["distortion_lambda"] = distortion_default(self.field, space) if space is not None else 0.0
        d["field_config"] = self.field_settings(where)
        d["sampler"] = self.sampler_settings(where)
        return TrainConfig(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (JSON-able): what ``from_dict`` reads back; ``space`` lists only the overrides set."""
        d = asdict(self)
        d["space"] = self.space.given()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, where: str = "training settings") -> "TrainConfig":
        """Parse settings, refusing unknown keys, wrong types and out-of-range values (named by ``where``)."""
        if d is not None and not isinstance(d, Mapping):
            raise N3FInputError(f"{where}: expected a mapping of setting -> value, got {type(d).__name__}.")
        data = dict(d or {})
        nested = {k: data.pop(k) for k in ("field_config", "sampler", "space") if k in data}
        cfg = parse(cls, data, where)
        for k, v in nested.items():
            setattr(cfg, k, v)
        cfg._check_nested(where)
        return cfg


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
