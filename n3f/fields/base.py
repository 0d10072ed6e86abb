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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import Tensor, nn

OUTPUTS = ("rgb", "features")


@dataclass
class Samples:
    """P sample points (flattened rays x samples)."""

    positions: Tensor  # (P, 3) in the field cube [-1, 1]^3 (SceneSpace.to_unit of the world point)
    directions: Tensor  # (P, 3) unit view directions (world)
    frame: Tensor  # (P,) long frame index (time / appearance code)
    cam_positions: Tensor | None = None  # (P, 3) the point in its camera's frame (actor stream)


class Field(nn.Module):
    """Base class: subclasses set ``name`` and implement ``forward``."""

    name: str = "field"
    has_coarse: bool = False
    streams: tuple[str, ...] = ()

    def __init__(self, feature_dim: int, config: dict[str, Any]):
        super().__init__()
        self.feature_dim = int(feature_dim)
        self.config = dict(config)

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

    def extra_losses(self, out: dict[str, Tensor], weights: Tensor) -> dict[str, Tensor]:
        """Field-specific regularisers on per-sample outputs ``out`` and the (R, S) rendering
        weights of those samples (e.g. NeuralDiff sparsity)."""
        return {}


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
