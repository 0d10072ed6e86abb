"""Settings of the renderer, without torch: samples per ray and scene-space overrides.

``training: {<stage>: {sampler: {...}, space: {...}}}`` in the config sets these
(:class:`n3f.train.config.TrainConfig` parses them while the Snakefile is
parsed, so this module imports nothing heavy); ``model.pt`` stores the sampler
as a plain mapping (``sampler``) and the resulting scene space (``space``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from n3f.settings import parse, setting

SPACE_KINDS = ("contract", "ndc")
BACKGROUNDS = ("learned", "black", "white")


@dataclass
class SamplerConfig:
    """Samples per ray (``training: {<stage>: {sampler: ...}}`` overrides these)."""

    n_proposal: int = setting(64, min=1)
    """Stratified proposal intervals per ray (first pass)."""
    n_importance: int = setting(32, min=1)
    """Fine samples drawn from the proposal weights."""
    n_uniform: int = setting(8, min=0)
    """Extra stratified fine samples that keep exploring empty-looking space."""
    include_proposal: bool = False
    """Fine pass also evaluates the proposal points (NeRF's union)."""
    dilate: bool = True
    """Dilate the proposal weights before resampling."""
    pdf_floor: float = setting(0.01, min=0, max=1)
    """Share of the resampling pdf spread uniformly."""

    @classmethod
    def for_field(cls, field: Any, overrides: Mapping[str, Any] | None = None,
                  where: str = "sampler") -> "SamplerConfig":
        """The default sampler of ``field`` (a field, or its settings class: anything with
        ``has_coarse``), with ``overrides`` applied and checked (errors name ``where``).

        A field with a trained coarse model (vanilla NeRF) evaluates it at every proposal
        point anyway, so its fine pass takes NeRF's union of proposal and importance samples.
        """
        base = cls(n_proposal=64, n_importance=64, n_uniform=0, include_proposal=True) if field.has_coarse else cls()
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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str) -> "SpaceOverrides":
        return parse(cls, data, where)

    def given(self) -> dict[str, Any]:
        """The overrides that were set, as keyword arguments of ``space_for_scene``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
