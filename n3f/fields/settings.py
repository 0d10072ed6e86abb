"""Settings of each field architecture: typed, documented and range-checked, without torch.

``training: {<stage>: {field_config: {...}}}`` in the config overrides these
(:class:`n3f.train.config.TrainConfig` parses them), and ``model.pt`` stores them
as a plain mapping (``field_config``). This module imports nothing heavy, so the
Snakefile can check a config while it is parsed; the torch modules
(``fields/grid.py`` ...) import it, never the other way round.

:data:`FIELD_SETTINGS` is the one list of field names: the trainer's per-field
defaults (``n3f.train.config.FIELD_DEFAULTS``) and the torch registry
(``n3f.fields.FIELDS``) are checked against it by the tests.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, TypeVar

from n3f.errors import N3FInputError
from n3f.settings import check_value, parse, setting

S = TypeVar("S", bound="FieldSettings")


class FieldSettings:
    """Base of the per-field settings dataclasses.

    ``has_coarse`` is a fact about the architecture that is needed before a
    field exists (the default sampler depends on it): a separately trained
    coarse model whose render is supervised too (vanilla NeRF).
    """

    has_coarse: ClassVar[bool] = False
    # density is a function of the world point alone (no camera-frame stream): an occupancy
    # grid of it can stand in for the field in the first sampling pass
    world_density: ClassVar[bool] = False
    # (importance, uniform) fine samples per ray of the field's default sampler; None: the
    # sampler's own defaults (n3f.render.settings.SamplerConfig.for_field)
    fine_samples: ClassVar[tuple[int, int] | None] = None
    # list-valued settings whose every entry must be an integer >= 1 (grid resolutions)
    _resolution_lists: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_dict(cls: type[S], data: Mapping[str, Any] | None, where: str) -> S:
        """Parse a mapping of settings (keys not given take their defaults), naming ``where`` in errors."""
        obj = parse(cls, data, where)
        for name in cls._resolution_lists:
            _check_resolutions(f"{where}.{name}", getattr(obj, name))
        return obj

    @classmethod
    def coerce(cls: type[S], value: "S | Mapping[str, Any] | None", where: str = "field_config") -> S:
        """``value`` if it already is these settings, else parsed from a mapping (None: defaults)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, FieldSettings):
            raise TypeError(f"{where}: settings of another field ({type(value).__name__}), expected {cls.__name__}")
        return cls.from_dict(value, where)

    @classmethod
    def from_saved(cls: type[S], data: Mapping[str, Any]) -> S:
        """Settings as a ``model.pt`` stored them (keys of today's settings: see
        ``Field.upgrade_config``). Values are taken as they are, unchecked: they are
        what the model was trained with, even where today's bounds are stricter."""
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping, as ``model.pt`` stores it (``field_config``)."""
        return asdict(self)  # type: ignore[call-overload]


def _check_resolutions(where: str, value: list[int]) -> None:
    if len(value) == 0:
        raise N3FInputError(f"{where}: {value!r} is empty; give at least one resolution.")
    for i, r in enumerate(value):
        check_value(f"{where}[{i}]", r, int, {"min": 1})


@dataclass
class GridFieldConfig(FieldSettings):
    """``grid``: tri-plane geometry and feature planes with small MLPs (n3f/fields/grid.py)."""

    geo_resolutions: list[int] = setting(default_factory=lambda: [32, 64, 128, 256])
    """Plane resolutions of the geometry (density and colour) encoding, one level each. Not given
    in a config: sized from the scene at the training ``quality`` (n3f/fields/sizing.py)."""
    geo_channels: int = setting(4, min=1)
    """Channels per geometry plane level."""
    feat_resolutions: list[int] = setting(default_factory=lambda: [16, 32, 64])
    """Plane resolutions of the separate feature encoding."""
    feat_channels: int = setting(4, min=1)
    """Channels per feature plane level."""
    hidden: int = setting(64, min=1)
    """Width of the density and colour MLPs."""
    geo_latent: int = setting(15, min=0)
    """Geometry latent passed from the density MLP to the colour and feature MLPs."""
    sh_degree: int = setting(3, min=1, max=4)
    """Spherical-harmonics degree of the view direction (degree**2 values)."""
    feat_hidden: int = setting(64, min=1)
    """Width of the feature MLP (input of the feature head)."""
    appearance_dim: int = setting(0, min=0)
    """Per-frame appearance code of the colour MLP (NeRF-W; 0: none). Not given in a config: 16 for
    photo collections (llff, colmap, transforms, images, idr sources), 0 otherwise; a held-out
    frame reads the code interpolated between its neighbours in capture order."""
    density_bias: float = -1.0
    """Added to the raw density before the exponential: a field starts almost empty."""
    bg_resolutions: list[int] = setting(default_factory=list)
    """Plane resolutions of separate geometry planes (and density MLP) for points outside the
    cube's central box ``|u| <= bg_split``: the contracted background of an unbounded scene.
    Empty: one set of planes for all space. Why: a tri-plane projects every point along an axis
    onto the same cell, so without it the room above and below an object shares the object's cells.
    Not given in a config: none at any quality (measured not to pay on goldcape and fox:
    n3f/fields/sizing.py BACKGROUND_RESOLUTIONS). Given, on an unbounded scene: ``bg_split`` defaults
    to the space's ``inner`` and the geometry planes are sized for the central box."""
    bg_split: float = setting(1.0, min=0, max=1, min_exclusive=True)
    """With ``bg_resolutions``: half-width of the central box the geometry planes are stretched
    over; points outside it use the background planes (without: the planes span the whole cube)."""

    _resolution_lists: ClassVar[tuple[str, ...]] = ("geo_resolutions", "feat_resolutions")
    world_density: ClassVar[bool] = True
    # half the sampler's 32 + 8: the same held-out PSNR on toy_static for 0.7x the training time
    # (bench/results/samples.md, bench/NOTES.md session 8)
    fine_samples: ClassVar[tuple[int, int] | None] = (16, 4)


@dataclass
class NeRFFieldConfig(FieldSettings):
    """``nerf``: the paper's vanilla NeRF, a coarse and a fine MLP (n3f/fields/nerf.py)."""

    depth: int = setting(8, min=1)
    """Layers of the position trunk."""
    width: int = setting(256, min=1)
    """Width of the trunk."""
    skip: int = setting(4, min=0)
    """Trunk layer that gets the encoded position again (NeRF's skip connection)."""
    pos_freqs: int = setting(10, min=0)
    """Fourier frequencies of the position encoding."""
    dir_freqs: int = setting(4, min=0)
    """Fourier frequencies of the view-direction encoding."""
    dir_width: int = setting(128, min=1)
    """Width of the view-dependent colour layer."""

    has_coarse: ClassVar[bool] = True


def _neuraldiff_static() -> GridFieldConfig:
    # egocentric content is close to the camera: one finer level than the grid default (bench/NOTES.md)
    return GridFieldConfig(geo_resolutions=[32, 64, 128, 256, 512])


@dataclass
class NeuralDiffFieldConfig(FieldSettings):
    """``neuraldiff``: static, dynamic and actor streams for egocentric video (n3f/fields/neuraldiff.py)."""

    static: GridFieldConfig = setting(default_factory=_neuraldiff_static)
    """The static stream, a grid field. Given, it replaces the default: keys left out take
    the grid field's defaults (the default adds a 512 level to the geometry planes)."""
    dyn_resolutions: list[int] = setting(default_factory=lambda: [32, 64, 128])
    """Plane resolutions of the dynamic (transient) stream, in world space."""
    dyn_channels: int = setting(4, min=1)
    """Channels per dynamic plane level."""
    actor_resolutions: list[int] = setting(default_factory=lambda: [32, 64, 128, 256])
    """Plane resolutions of the actor stream, in camera space: fine, the actor is thin and close (bench/NOTES.md)."""
    actor_channels: int = setting(4, min=1)
    """Channels per actor plane level."""
    actor_radius: float = setting(0.12, min=0, min_exclusive=True)
    """Radius of the actor's linear region around the camera (camera-frame contraction)."""
    time_dim: int = setting(16, min=1)
    """Width of the time code of the dynamic and actor streams."""
    time_knot_spacing: float | None = setting(None, min=0)
    """Time codes on knots this far apart in timestamp units (None: twice the typical gap
    between training frames, resolved when the field is built; 0: one free code per
    training frame, NeuralDiff's original)."""
    hidden: int = setting(64, min=1)
    """Width of the dynamic and actor streams' hidden layer."""
    dyn_density_bias: float = -4.0
    """Raw density bias of the moving streams: they start emptier than the static one."""
    beta_min: float = setting(0.03, min=0)
    """Floor added to the rendered uncertainty beta (NeRF-W)."""

    _resolution_lists: ClassVar[tuple[str, ...]] = ("dyn_resolutions", "actor_resolutions")
    # 24 + 4: toy_kitchen as good as with 32 + 8 over two seeds (after distillation 25.52 against 25.46 dB
    # held out, mAP 56.7 both) for 0.85x the training time; 16 + 4 lost 1.2 dB (bench/NOTES.md session 8)
    fine_samples: ClassVar[tuple[int, int] | None] = (24, 4)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str) -> "NeuralDiffFieldConfig":
        data = _mapping(data, where)
        static = data.pop("static", None)
        obj = super().from_dict(data, where)
        if static is not None:
            obj.static = GridFieldConfig.coerce(static, f"{where}.static")
        return obj

    @classmethod
    def from_saved(cls, data: Mapping[str, Any]) -> "NeuralDiffFieldConfig":
        data = dict(data)
        if "static" in data:
            data["static"] = GridFieldConfig.from_saved(data["static"])
        return cls(**data)


FIELD_SETTINGS: dict[str, type[FieldSettings]] = {
    "grid": GridFieldConfig,
    "nerf": NeRFFieldConfig,
    "neuraldiff": NeuralDiffFieldConfig,
}
"""Every field architecture by name, with its settings class."""

FieldConfig = GridFieldConfig | NeRFFieldConfig | NeuralDiffFieldConfig


def _mapping(data: Any, where: str) -> dict[str, Any]:
    if data is not None and not isinstance(data, Mapping):
        raise N3FInputError(f"{where}: expected a mapping of setting -> value, got {type(data).__name__}.")
    return dict(data or {})


def settings_for(field: str, data: Mapping[str, Any] | FieldSettings | None, where: str) -> FieldSettings:
    """The settings of field ``field`` from overrides ``data`` (defaults for keys not given)."""
    if field not in FIELD_SETTINGS:
        raise N3FInputError(f"field '{field}' unknown; use one of {sorted(FIELD_SETTINGS)}.")
    return FIELD_SETTINGS[field].coerce(data, where)


def check_overrides(data: Mapping[str, Any] | None, where: str) -> None:
    """Check ``field_config`` overrides before the field is known (a config's shared
    ``training:`` block applies to every field): each key must belong to some field
    and its value must suit every field that has it. The exact check, for one field,
    is :func:`settings_for`."""
    data = _mapping(data, where)
    known: dict[str, list[tuple[type[FieldSettings], dataclasses.Field]]] = {}
    for cls in FIELD_SETTINGS.values():
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            known.setdefault(f.name, []).append((cls, f))
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise N3FInputError(f"{where}: unknown setting(s) {unknown}; known (to some field): {sorted(known)}.")
    for key, value in data.items():
        for cls, f in known[key]:
            if key == "static":
                GridFieldConfig.coerce(value, f"{where}.static")
                continue
            check_value(f"{where}.{key}", value, typing.get_type_hints(cls)[key], f.metadata)
            if key in cls._resolution_lists:
                _check_resolutions(f"{where}.{key}", value)
