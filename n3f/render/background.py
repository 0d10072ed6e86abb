"""A learned background seen where rays leave the sampled range (sky, far walls).

Scene bounds end at the farthest surface, so pixels that see no surface
(the synthetic scenes' sky, windows) would otherwise force the field to grow
an opaque shell. A tiny direction-only model, blended with weight
``1 - opacity``, costs one evaluation per ray instead of per sample. It also
predicts a background feature so distilled features stay consistent there.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from n3f.fields.base import FeatureHead
from n3f.fields.encoding import sh_encoding


class BackgroundModel(nn.Module):
    def __init__(self, feature_dim: int, hidden: int = 32, sh_degree: int = 4):
        super().__init__()
        self.sh_degree = sh_degree
        self.net = nn.Sequential(nn.Linear(sh_degree**2, hidden), nn.ReLU())
        self.rgb = nn.Linear(hidden, 3)
        self.feature_head = FeatureHead(hidden, feature_dim)

    def forward(self, directions: Tensor, outputs: tuple[str, ...]) -> dict[str, Tensor]:
        h = self.net(sh_encoding(directions, self.sh_degree))
        out = {}
        if "rgb" in outputs:
            out["rgb"] = torch.sigmoid(self.rgb(h))
        if "features" in outputs:
            out["features"] = self.feature_head(h)
        return out

    def feature_parameters(self) -> list[nn.Parameter]:
        return list(self.feature_head.parameters())
