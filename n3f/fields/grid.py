"""``grid``: the default field, fast enough to train on a CPU.

Layout (all inputs are points already mapped to the unit cube by the scene space)::

    geometry planes --> density MLP --> density, geo latent (15)
      (points outside the central box |u| <= bg_split, with bg_resolutions: background
       planes --> their own density MLP, same outputs)
    geo latent + SH(dir) [+ appearance code] --> colour MLP --> rgb
    feature planes + geo latent --> feature MLP --> FeatureHead (linear + tanh) --> features

The feature branch has its own planes and MLP: 64 feature channels would
otherwise compete with colour for the geometry grid's few channels
("separate capacity"), and the distillation stage can train the whole branch
while geometry and colour are frozen. The geo latent is shared so feature
boundaries can follow geometry.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch
from torch import Tensor, nn

from n3f.fields.base import OUTPUTS, FeatureHead, Field, Samples, mlp, trunc_exp
from n3f.fields.encoding import FrameCodes, PlaneEncoding, sh_encoding
from n3f.fields.settings import GridFieldConfig


class GridField(Field):
    name = "grid"
    settings_class = GridFieldConfig

    def __init__(self, feature_dim: int, settings: GridFieldConfig, timestamps: np.ndarray, train_frames: np.ndarray):
        super().__init__(feature_dim, settings)
        cfg = settings
        self.geo_enc = PlaneEncoding(cfg.geo_resolutions, cfg.geo_channels)
        self.density_net = mlp(self.geo_enc.out_dim, cfg.hidden, 1 + cfg.geo_latent)
        self.split = float(cfg.bg_split)
        self.bg_enc = PlaneEncoding(cfg.bg_resolutions, cfg.geo_channels) if cfg.bg_resolutions else None
        self.bg_density_net = mlp(self.bg_enc.out_dim, cfg.hidden, 1 + cfg.geo_latent) if self.bg_enc is not None else None
        self.sh_degree = int(cfg.sh_degree)
        self.appearance = (
            FrameCodes(timestamps, train_frames, cfg.appearance_dim) if cfg.appearance_dim > 0 else None
        )
        colour_in = cfg.geo_latent + self.sh_degree**2 + int(cfg.appearance_dim)
        self.colour_net = mlp(colour_in, cfg.hidden, 3, layers=2)
        self.feat_enc = PlaneEncoding(cfg.feat_resolutions, cfg.feat_channels)
        self.feat_net = nn.Sequential(
            nn.Linear(self.feat_enc.out_dim + cfg.geo_latent, cfg.feat_hidden), nn.ReLU()
        )
        self.feature_head = FeatureHead(cfg.feat_hidden, self.feature_dim)
        self.density_bias = float(cfg.density_bias)

    def _geometry(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.bg_enc is None:
            h = self.density_net(self.geo_enc(x))
        else:
            inside = x.abs().amax(dim=-1) <= self.split
            idx_in, idx_out = inside.nonzero()[:, 0], (~inside).nonzero()[:, 0]
            h_in = self.density_net(self.geo_enc(x[idx_in] / self.split))
            h_out = self.bg_density_net(self.bg_enc(x[idx_out]))
            h = h_in.new_empty(len(x), h_in.shape[1])
            h[idx_in] = h_in
            h[idx_out] = h_out.to(h.dtype)
        return trunc_exp(h[:, 0] + self.density_bias), h[:, 1:]

    def density(self, samples: Samples, coarse: bool = False) -> Tensor:
        return self._geometry(samples.positions)[0]

    def forward(self, samples: Samples, outputs: Iterable[str] = OUTPUTS, coarse: bool = False) -> dict[str, Tensor]:
        outputs = set(outputs)
        x = samples.positions
        sigma, latent = self._geometry(x)
        out = {"density": sigma}
        if "rgb" in outputs:
            parts = [latent, sh_encoding(samples.directions, self.sh_degree)]
            if self.appearance is not None:
                parts.append(self.appearance(samples.frame))
            out["rgb"] = torch.sigmoid(self.colour_net(torch.cat(parts, dim=-1)))
        if "features" in outputs:
            h = self.feat_net(torch.cat([self.feat_enc(x), latent], dim=-1))
            out["features"] = self.feature_head(h)
        return out

    def feature_parameters(self) -> list[nn.Parameter]:
        return [*self.feat_enc.parameters(), *self.feat_net.parameters(), *self.feature_head.parameters()]

    def feature_state_prefixes(self) -> tuple[str, ...]:
        return ("feature_head.",)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        planes = [p for m in (self.geo_enc, self.bg_enc, self.feat_enc) if m is not None for p in m.parameters()]
        ids = {id(p) for p in planes}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": planes, "lr": lr, "name": "grids"}, {"params": rest, "lr": lr, "name": "mlps"}]
