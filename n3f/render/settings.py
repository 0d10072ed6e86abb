"""Settings of the renderer, without torch: samples per ray and scene-space overrides.

``training: {<stage>: {sampler: {...}, space: {...}}}`` in the config sets these
(:class:`n3f.train.config.TrainConfig` parses them while the Snakefile is
parsed, so this module imports nothing heavy); ``model.pt`` stores the sampler
as a plain mapping (``sampler``) and the resulting scene space (``space``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from n3f.settings import parse, setting

SPACE_KINDS = ("contract", "ndc")
PROPOSALS = ("field", "grid")
BACKGROUNDS = ("learned", "black", "white")


GRID_PROPOSAL_SAMPLES = 128
"""Proposal intervals per ray with the occupancy grid: a ray crosses up to ~2 x 128 cells of
the default grid, and a lookup costs a gather, not a field evaluation (bench/NOTES.md)."""


@dataclass
class SamplerConfig:
    """Samples per ray (``training: {<stage>: {sampler: ...}}`` overrides these)."""

    n_proposal: int = setting(64, min=1)
    """Stratified proposal intervals per ray (first pass)."""
    n_importance: int = setting(32, min=1)
    """Fine samples drawn from the proposal weights (grid's default: 16, neuraldiff's 24)."""
    n_uniform: int = setting(8, min=0)
    """Extra stratified fine samples that keep exploring empty-looking space (grid and neuraldiff: 4)."""
    include_proposal: bool = False
    """Fine pass also evaluates the proposal points (NeRF's union)."""
    dilate: bool = True
    """Dilate the proposal weights before resampling."""
    pdf_floor: float = setting(0.01, min=0, max=1)
    """Share of the resampling pdf spread uniformly."""
    proposal: str = setting("field", choices=PROPOSALS)
    """First pass from the field's own density (field, the default) or from an occupancy grid of
    it kept current during training (grid: n3f/render/occupancy.py; fields whose density lives in
    world space only: grid). Saved models without this key used the field."""
    grid_resolution: int = setting(128, min=8, max=512)
    """proposal grid: cells per axis of the occupancy grid over the field's cube."""
    grid_warmup: int = setting(256, min=0)
    """proposal grid: training steps that sample with the field's own density before the grid's
    first (full) fill: an untrained field is nearly uniform anyway, and short runs skip the fill."""
    grid_update_every: int = setting(64, min=1)
    """proposal grid: training steps between refreshes of the grid."""
    grid_fraction: float = setting(0.0625, min=0, max=1, min_exclusive=True)
    """proposal grid: share of cells refreshed at each update (all at the first)."""
    grid_cell_tau: float = setting(0.5, min=0, min_exclusive=True)
    """proposal grid: most optical depth one grid cell adds in the first pass, so the importance
    samples spread over the first few occupied cells of a ray (the grid keeps each cell's max
    density, which would otherwise put them all in the first, up to two cells before the surface)."""
    grid_decay: float = setting(0.9, min=0, max=1)
    """proposal grid: factor applied to every cell at each update (instant-ngp's), so emptied cells fade."""

    @classmethod
    def for_field(cls, field: Any, overrides: Mapping[str, Any] | None = None,
                  where: str = "sampler") -> "SamplerConfig":
        """The default sampler of ``field`` (a field, or its settings class: anything with
        ``has_coarse``), with ``overrides`` applied and checked (errors name ``where``).

        A field with a trained coarse model (vanilla NeRF) evaluates it at every proposal
        point anyway, so its fine pass takes NeRF's union of proposal and importance samples.
        Other fields may set their own fine sample counts (``fine_samples`` of their settings class).
        The occupancy-grid first pass (``proposal: grid``, for fields whose density depends on
        the world point only) takes ``GRID_PROPOSAL_SAMPLES`` intervals unless told otherwise.
        It is not the default: on toy_static it cost 1.8 dB held out for 5% more rays/s
        (bench/NOTES.md "Real captures").
        """
        if field.has_coarse:
            base = cls(n_proposal=64, n_importance=64, n_uniform=0, include_proposal=True)
        else:
            base = cls()
            fine = getattr(getattr(field, "settings_class", field), "fine_samples", None)
            if fine is not None:
                base = replace(base, n_importance=fine[0], n_uniform=fine[1])
        if (overrides or {}).get("proposal") == "grid" and "n_proposal" not in (overrides or {}):
            base = replace(base, n_proposal=GRID_PROPOSAL_SAMPLES)
        if not overrides:
            return base
        return parse(cls, {**asdict(base), **overrides}, where)


@dataclass
class SpaceOverrides:
    """Overrides of the scene space that :func:`n3f.render.space.space_for_scene` picks for a
    scene's layout (``training: {<stage>: {space: ...}}``); None keeps the scene's default."""

    kind: str | None = setting(None, choices=SPACE_KINDS)
    """contract (360-degree scenes, egocentric video) or ndc (forward-facing); default by layout."""
    centre: list[float] | None = None
    """contract: centre of the linear region (default: the origin, or the egocentric frustum fit)."""
    radius: float | list[float] | None = setting(None, min=0, min_exclusive=True)
    """contract: radius of the linear region, one or per axis (default 1, or the frustum fit)."""
    inner: float | None = setting(None, min=0, max=1, min_exclusive=True)
    """contract: half-width of the cube the linear region maps to (default 0.5; egocentric 0.8)."""
    ref_c2w: list[list[float]] | None = None
    """ndc: reference camera, OpenCV camera-to-world (default: the mean pose)."""
    ndc_scale: list[float] | None = None
    """ndc: focal lengths in half-image units (default: the median camera's)."""
    ndc_near: float | None = setting(None, min=0, min_exclusive=True)
    """ndc: near plane (default: 0.9 x the 5th percentile of the near bounds)."""
    unbounded: bool | None = None
    """contract: sample rays out to 100 radii whatever the frames' far bounds (default: on for
    the object layout, whose SfM far bounds rarely reach the background; off for egocentric)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str) -> "SpaceOverrides":
        return parse(cls, data, where)

    def given(self) -> dict[str, Any]:
        """The overrides that were set, as keyword arguments of ``space_for_scene``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
