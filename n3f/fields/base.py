"""The interface every field implements, so renderer and trainer never branch on architecture.

A field maps sample points to per-point quantities::

    field(samples, outputs={"rgb", "features"}) -> {
        "density":  (P,)    total volume density (>= 0)
        "rgb":      (P, 3)  colour in [0, 1]
        "features": (P, C)  distilled feature (tanh head, C = feature store channels)
        "beta":     (P, 1)  NeuralDiff only: uncertainty, already mixed over streams
        "density_<stream>": (P,) NeuralDiff only: per-stream densities
    }

Multi-stream fields return colour/features already mixed by density share
(``sum_k sigma_k c_k / sum_k sigma_k``), the limit of NeuralDiff's compositing
for small intervals, so the compositor stays generic.

``feature_parameters()`` names the parameters that only the distillation stage
trains at first (the paper's "feature head"), and ``has_coarse`` marks fields
with a separately trained coarse model (vanilla NeRF), whose outputs are
supervised too.

What differs between architectures stays behind this interface, in hooks with
a neutral default: ``extra_losses`` and ``loss_weights`` (a field's own
regularisers and the training settings that weigh them), ``adjust_render``
(per-ray outputs after compositing), ``at_points`` (values at bare world
points, with no camera) and ``upgrade_config`` (settings saved in a
``model.pt`` by an older n3f). Each field's settings are a dataclass
(``settings_class``, in the torch-free ``fields/settings.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Iterable

import torch
from torch import Tensor, nn

from n3f.fields.settings import FieldSettings

if TYPE_CHECKING:
    from n3f.train.config import TrainConfig

OUTPUTS = ("rgb", "features")

SHARE_FLOOR = 1e-4
"""A stream's share of a sample's density below which rendering skips the stream's features there
(multi-stream fields, fused volumes): features are bounded by 1 (tanh heads, unit teacher
features), so the stream would move each channel by less than this."""


@dataclass
class Samples:
    """P sample points (flattened rays x samples)."""

    positions: Tensor  # (P, 3) in the field cube [-1, 1]^3 (SceneSpace.to_unit of the world point)
    directions: Tensor  # (P, 3) unit view directions (world)
    frame: Tensor  # (P,) long frame index (time / appearance code)
    cam_positions: Tensor | None = None  # (P, 3) the point in its camera's frame (actor stream)

    def subset(self, index: Tensor) -> "Samples":
        """The samples at ``index`` (a long index or a bool mask over P)."""
        return Samples(self.positions[index], self.directions[index], self.frame[index],
                       None if self.cam_positions is None else self.cam_positions[index])


class Field(nn.Module):
    """Base class: subclasses set ``name`` and ``settings_class`` and implement ``forward``."""

    name: ClassVar[str] = "field"
    settings_class: ClassVar[type[FieldSettings]] = FieldSettings
    streams: ClassVar[tuple[str, ...]] = ()

    def __init__(self, feature_dim: int, settings: FieldSettings):
        super().__init__()
        self.feature_dim = int(feature_dim)
        self.settings = settings  # a settings_class instance; model.pt stores it as field_config

    @property
    def has_coarse(self) -> bool:
        """A separately trained coarse model whose render is supervised too (vanilla NeRF).
        Declared by the settings class: the default sampler depends on it before a field exists."""
        return self.settings_class.has_coarse

    @property
    def world_density(self) -> bool:
        """Density depends on the world point alone (no camera-frame stream), so an
        occupancy grid of it can replace the field in the first sampling pass."""
        return self.settings_class.world_density

    # -- saved models ------------------------------------------------------
    @classmethod
    def upgrade_config(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """A ``field_config`` saved in a ``model.pt`` by this or an older n3f, in today's keys.

        Keys the settings do not know are dropped: the field never read them (a config's
        shared ``training:`` block could pass one architecture's keys to another).
        Fields override this to fill in what older files lack.
        """
        known = {f.name for f in fields(cls.settings_class)}  # type: ignore[arg-type]
        return {k: v for k, v in saved.items() if k in known}

    @classmethod
    def settings_from_saved(cls, saved: Mapping[str, Any]) -> FieldSettings:
        """The settings of a saved model (``model.pt``'s ``field_config``), upgraded to today's keys."""
        return cls.settings_class.from_saved(cls.upgrade_config(dict(saved)))

    def forward(self, samples: Samples, outputs: Iterable[str] = OUTPUTS, coarse: bool = False) -> dict[str, Tensor]:
        raise NotImplementedError

    def density(self, samples: Samples, coarse: bool = False) -> Tensor:
        """(P,) density only; fields override it when that is cheaper than ``forward``."""
        return self.forward(samples, outputs=(), coarse=coarse)["density"]

    def feature_parameters(self) -> list[nn.Parameter]:
        """Parameters trained from the start of distillation (the feature branch)."""
        raise NotImplementedError

    def feature_state_prefixes(self) -> tuple[str, ...]:
        """State-dict key prefixes of the feature branch (re-initialised on a width change)."""
        raise NotImplementedError

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups; fields may give their grids a different rate."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def at_points(self, samples: Samples, outputs: Iterable[str] = OUTPUTS) -> dict[str, Tensor]:
        """Values at bare world points (``samples.cam_positions`` is None): what
        ``Renderer.query`` reads. Fields with camera-frame parts leave them out."""
        return self(samples, outputs=outputs)

    def feature_streams(self, samples: Samples, out: dict[str, Tensor]) -> dict[str, tuple[Tensor, Tensor | None]]:
        """Where each of the field's streams reads a sample, for training-free fusion
        (:mod:`n3f.fusion`): stream name -> (coordinates in [-1, 1]^3, the stream's share of the
        sample's density, or None for all of it). ``out`` is the field's output at ``samples``.
        One stream here: the field's cube."""
        return {"field": (samples.positions, None)}

    @property
    def fusion_streams(self) -> tuple[str, ...]:
        """The names :meth:`feature_streams` can return, in a fixed order."""
        return ("field",)

    # -- training and rendering hooks --------------------------------------
    def extra_losses(self, out: dict[str, Tensor], weights: Tensor) -> dict[str, Tensor]:
        """Field-specific regularisers (unweighted, by name) on per-sample outputs ``out`` and
        the (R, S) rendering weights of those samples (e.g. NeuralDiff sparsity)."""
        return {}

    def loss_weights(self, cfg: "TrainConfig") -> dict[str, float]:
        """The weight of each loss :meth:`extra_losses` returns, from the training settings."""
        return {}

    def adjust_render(self, rendered: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-ray outputs after compositing (``rgb``, ``features``, ``beta``...), for the
        field to adjust before they are returned (e.g. NeuralDiff's floor on beta)."""
        return rendered


def mlp(inp: int, hidden: int, out: int, layers: int = 1, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A small MLP with ``layers`` hidden layers."""
    mods: list[nn.Module] = []
    d = inp
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), act()]
        d = hidden
    mods.append(nn.Linear(d, out))
    return nn.Sequential(*mods)


class FeatureHead(nn.Module):
    """N3F's feature head: one linear layer and tanh (teacher features are PCA'd and bounded)."""

    def __init__(self, inp: int, feature_dim: int):
        super().__init__()
        self.linear = nn.Linear(inp, feature_dim)

    def forward(self, h: Tensor) -> Tensor:
        return torch.tanh(self.linear(h))


def trunc_exp(x: Tensor) -> Tensor:
    """exp with a clamped argument: density activation that neither overflows nor dies."""
    return torch.exp(x.clamp(-15.0, 15.0))
