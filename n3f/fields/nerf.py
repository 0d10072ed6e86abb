"""``nerf``: vanilla NeRF MLP with positional encoding and a coarse/fine pair.

Kept for fidelity to the paper's static-scene setup and as the speed baseline
for ``grid`` (bench/bench_training.py). Points come in the unit cube of the
scene space (contracted or NDC), so the encoding frequencies mean the same on
every scene. Each of the coarse and fine MLPs has its own feature head (linear
+ tanh on the trunk's last layer, as N3F adds it), and both are supervised.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import Tensor, nn

from n3f.fields.base import OUTPUTS, FeatureHead, Field, Samples
from n3f.fields.encoding import positional_encoding
from n3f.fields.settings import NeRFFieldConfig


class NeRFMLP(nn.Module):
    def __init__(self, cfg: NeRFFieldConfig, feature_dim: int):
        super().__init__()
        self.pos_freqs, self.dir_freqs, self.skip = cfg.pos_freqs, cfg.dir_freqs, cfg.skip
        pin = 3 + 6 * self.pos_freqs
        din = 3 + 6 * self.dir_freqs
        w = cfg.width
        layers = []
        for i in range(cfg.depth):
            d = pin if i == 0 else w + (pin if i == self.skip else 0)
            layers.append(nn.Linear(d, w))
        self.trunk = nn.ModuleList(layers)
        self.sigma = nn.Linear(w, 1)
        self.bottleneck = nn.Linear(w, w)
        self.dir_layer = nn.Linear(w + din, cfg.dir_width)
        self.rgb = nn.Linear(cfg.dir_width, 3)
        self.feature_head = FeatureHead(w, feature_dim)

    def forward(self, x: Tensor, d: Tensor, outputs: set[str]) -> dict[str, Tensor]:
        px = positional_encoding(x, self.pos_freqs)
        h = px
        for i, layer in enumerate(self.trunk):
            if i == self.skip:
                h = torch.cat([h, px], dim=-1)
            h = torch.relu(layer(h))
        out = {"density": torch.relu(self.sigma(h)[:, 0])}
        if "rgb" in outputs:
            g = torch.relu(self.dir_layer(torch.cat([self.bottleneck(h), positional_encoding(d, self.dir_freqs)], -1)))
            out["rgb"] = torch.sigmoid(self.rgb(g))
        if "features" in outputs:
            out["features"] = self.feature_head(h)
        return out


class NeRFField(Field):
    name = "nerf"
    settings_class = NeRFFieldConfig  # has_coarse: the coarse model is trained and supervised too

    def __init__(self, feature_dim: int, settings: NeRFFieldConfig, timestamps: np.ndarray, train_frames: np.ndarray):
        super().__init__(feature_dim, settings)
        self.coarse = NeRFMLP(settings, self.feature_dim)
        self.fine = NeRFMLP(settings, self.feature_dim)

    def forward(self, samples: Samples, outputs: Iterable[str] = OUTPUTS, coarse: bool = False) -> dict[str, Tensor]:
        net = self.coarse if coarse else self.fine
        return net(samples.positions, samples.directions, set(outputs))

    def feature_parameters(self) -> list[nn.Parameter]:
        return [*self.coarse.feature_head.parameters(), *self.fine.feature_head.parameters()]

    def feature_state_prefixes(self) -> tuple[str, ...]:
        return ("coarse.feature_head.", "fine.feature_head.")
