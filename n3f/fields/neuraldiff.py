"""``neuraldiff``: NeuralDiff's three streams for egocentric video, on plane grids.

* static: a :class:`GridField` in world space (background that never moves);
* dynamic (transient): its own world-space planes plus a per-frame time code
  (objects the actor moves);
* actor: planes over the point's *camera-frame* coordinates (contracted around
  the camera) plus a time code, so the actor's body moves with the camera.

Each stream has density, colour, a feature head (linear + tanh), and the two
non-static streams an uncertainty ``beta`` (NeRF-W style loss). Densities add;
colour, features and beta are mixed by density share (see ``fields/base.py``).
Per-stream densities are returned too (``density_static`` ...), and
``streams=(...)`` restricts rendering to some streams (e.g. the static
background only).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from n3f.fields.base import OUTPUTS, SHARE_FLOOR, FeatureHead, Field, Samples, trunc_exp
from n3f.fields.encoding import FrameCodes, PlaneEncoding, contract
from n3f.fields.grid import GridField
from n3f.fields.settings import NeuralDiffFieldConfig

if TYPE_CHECKING:
    from n3f.train.config import TrainConfig

STREAMS = ("static", "dynamic", "actor")


class _MovingStream(nn.Module):
    """Planes + time code -> density, colour, beta, features (no view dependence, as in NeuralDiff)."""

    def __init__(self, resolutions, channels, time_dim, hidden, feature_dim, density_bias, timestamps, train_frames, knot_spacing):
        super().__init__()
        self.enc = PlaneEncoding(resolutions, channels)
        self.time = FrameCodes(timestamps, train_frames, time_dim, knot_spacing=knot_spacing)
        self.net = nn.Linear(self.enc.out_dim + time_dim, hidden)  # one hidden layer: these streams are sparse
        self.out = nn.Linear(hidden, 5)  # density, rgb, beta
        self.feature_head = FeatureHead(hidden, feature_dim)
        self.density_bias = density_bias

    def _hidden(self, x_unit: Tensor, frame: Tensor) -> Tensor:
        return torch.relu(self.net(torch.cat([self.enc(x_unit), self.time(frame)], dim=-1)))

    def density(self, x_unit: Tensor, frame: Tensor) -> Tensor:
        """(P,) density alone: only the density row of the output layer."""
        o = F.linear(self._hidden(x_unit, frame), self.out.weight[:1], self.out.bias[:1])
        return trunc_exp(o[:, 0] + self.density_bias)

    def forward(self, x_unit: Tensor, frame: Tensor) -> dict[str, Tensor]:
        """Density, colour and beta, and the hidden layer ``hidden`` the feature head reads."""
        h = self._hidden(x_unit, frame)
        o = self.out(h)
        return {
            "density": trunc_exp(o[:, 0] + self.density_bias),
            "rgb": torch.sigmoid(o[:, 1:4]),
            "beta": F.softplus(o[:, 4:5]),
            "hidden": h,
        }


def time_knot_spacing(timestamps: np.ndarray, train_frames: np.ndarray) -> float:
    """Knot spacing for time codes: twice the typical gap between training timestamps, and at
    least the largest gap, so every knot lies next to a training frame and receives gradient."""
    ts = np.sort(np.asarray(timestamps, dtype=np.float64)[np.asarray(train_frames, dtype=np.int64)])
    gaps = np.diff(ts)
    gaps = gaps[gaps > 0]
    if len(gaps) == 0:
        return 0.0
    return float(max(2.0 * np.median(gaps), gaps.max()))


class NeuralDiffField(Field):
    name = "neuraldiff"
    settings_class = NeuralDiffFieldConfig
    streams = STREAMS

    def __init__(self, feature_dim: int, settings: NeuralDiffFieldConfig, timestamps: np.ndarray, train_frames: np.ndarray):
        if settings.time_knot_spacing is None:  # resolved here so that the spacing is saved with the model
            settings = replace(settings, time_knot_spacing=time_knot_spacing(timestamps, train_frames))
        super().__init__(feature_dim, settings)
        cfg = settings
        self.static = GridField(feature_dim, cfg.static, timestamps, train_frames)
        knots = float(cfg.time_knot_spacing) or None
        self.dynamic = _MovingStream(
            cfg.dyn_resolutions, cfg.dyn_channels, cfg.time_dim, cfg.hidden, feature_dim,
            cfg.dyn_density_bias, timestamps, train_frames, knots,
        )
        self.actor = _MovingStream(
            cfg.actor_resolutions, cfg.actor_channels, cfg.time_dim, cfg.hidden, feature_dim,
            cfg.dyn_density_bias, timestamps, train_frames, knots,
        )
        self.actor_radius = float(cfg.actor_radius)
        self.beta_min = float(cfg.beta_min)

    @classmethod
    def upgrade_config(cls, saved: dict[str, Any]) -> dict[str, Any]:
        config = super().upgrade_config(saved)
        # saved before time knots existed: one free code per training frame
        config.setdefault("time_knot_spacing", 0)
        if "static" in config:
            config["static"] = GridField.upgrade_config(dict(config["static"]))
        return config

    def _actor_unit(self, samples: Samples) -> Tensor:
        if samples.cam_positions is None:
            raise ValueError("the neuraldiff actor stream needs camera-frame sample positions")
        return contract(samples.cam_positions, torch.zeros(3, dtype=samples.cam_positions.dtype, device=samples.cam_positions.device), self.actor_radius) * 0.5

    def density(self, samples: Samples, coarse: bool = False) -> Tensor:
        """The streams' summed density, without the shares and mixed outputs ``forward`` adds (about
        a third of a proposal pass on toy_kitchen, bench/NOTES.md session 10)."""
        return (self.static.density(samples) + self.dynamic.density(samples.positions, samples.frame)
                + self.actor.density(self._actor_unit(samples), samples.frame))

    def forward(
        self,
        samples: Samples,
        outputs: Iterable[str] = OUTPUTS,
        coarse: bool = False,
        streams: Iterable[str] | None = None,
    ) -> dict[str, Tensor]:
        outputs = set(outputs)
        streams = tuple(streams or STREAMS)
        per: dict[str, dict[str, Tensor]] = {}
        if "static" in streams:
            per["static"] = self.static(samples, outputs)
        if "dynamic" in streams:
            per["dynamic"] = self.dynamic(samples.positions, samples.frame)
        if "actor" in streams:
            per["actor"] = self.actor(self._actor_unit(samples), samples.frame)
        sigma = sum(o["density"] for o in per.values())
        out: dict[str, Tensor] = {"density": sigma}
        for k, o in per.items():
            out[f"density_{k}"] = o["density"]
        share = {k: (o["density"] / sigma.clamp_min(1e-6))[:, None] for k, o in per.items()}
        if "rgb" in outputs:
            out["rgb"] = sum(share[k] * per[k]["rgb"] for k in per)
        if "features" in outputs:
            out["features"] = self._mixed_features(per, share)
        moving = [k for k in per if k != "static"]
        if moving:
            out["beta"] = sum(share[k] * per[k]["beta"] for k in moving)
        else:
            out["beta"] = torch.zeros_like(sigma)[:, None]
        return out

    def _mixed_features(self, per: dict[str, dict[str, Tensor]], share: dict[str, Tensor]) -> Tensor:
        """Features mixed by density share. Without gradients (rendering), a moving stream's head
        is evaluated only where its share exceeds ``SHARE_FLOOR``: those streams are sparse (on
        toy_kitchen under 2% of a render's samples are above it), and elsewhere they would change
        each (tanh-bounded) channel by less than the floor."""
        mixed: Tensor | None = None
        for k, o in per.items():
            if k == "static":
                part = share[k] * o["features"]
                mixed = part if mixed is None else mixed + part
                continue
            head = self.dynamic.feature_head if k == "dynamic" else self.actor.feature_head
            if torch.is_grad_enabled():
                part = share[k] * head(o["hidden"])
                mixed = part if mixed is None else mixed + part
                continue
            if mixed is None:
                mixed = o["hidden"].new_zeros((len(o["hidden"]), self.feature_dim))
            rows = (share[k][:, 0] > SHARE_FLOOR).nonzero().squeeze(1)
            if len(rows):
                mixed = mixed.index_add(0, rows, share[k][rows] * head(o["hidden"][rows]))
        assert mixed is not None, "no stream to mix features from"
        return mixed

    def at_points(self, samples: Samples, outputs: Iterable[str] = OUTPUTS) -> dict[str, Tensor]:
        """World-space streams only: the actor lives in the coordinates of a camera."""
        return self(samples, outputs=outputs, streams=("static", "dynamic"))

    def feature_streams(self, samples: Samples, out: dict[str, Tensor]) -> dict[str, tuple[Tensor, Tensor | None]]:
        """Static and dynamic streams in the world cube (the dynamic one averaged over time), the
        actor in its camera-frame cube; each by its share of the density (``density_<stream>``)."""
        sigma = out["density"].clamp_min(1e-6)
        where = {"static": lambda: samples.positions, "dynamic": lambda: samples.positions,
                 "actor": lambda: self._actor_unit(samples)}
        return {k: (where[k](), out[f"density_{k}"] / sigma) for k in STREAMS if f"density_{k}" in out}

    @property
    def fusion_streams(self) -> tuple[str, ...]:
        return STREAMS

    def extra_losses(self, out: dict[str, Tensor], weights: Tensor) -> dict[str, Tensor]:
        """Sparsity of the moving streams: the share of each rendered pixel they explain.

        NeRF-W and NeuralDiff penalise the mean transient *density*; in a
        normalised scene a surface needs densities in the hundreds, so that
        penalty outweighs the colour error of whole moving objects (the arm was
        never rendered, bench/NOTES.md). The rendered opacity of the moving
        streams is scale-free: in [0, 1] per ray, it costs ``sparsity_lambda``
        to explain a pixel by motion rather than by the static scene.
        """
        dens = [out[k] for k in ("density_dynamic", "density_actor") if k in out]
        if not dens:
            return {}
        share = (sum(dens) / out["density"].clamp_min(1e-6)).view(weights.shape)
        return {"sparsity": (weights * share).sum(-1).mean()}

    def loss_weights(self, cfg: "TrainConfig") -> dict[str, float]:
        return {"sparsity": cfg.sparsity_lambda}

    def adjust_render(self, rendered: dict[str, Tensor]) -> dict[str, Tensor]:
        """The rendered uncertainty gets its floor ``beta_min`` (NeRF-W)."""
        if "beta" in rendered:
            rendered["beta"] = rendered["beta"] + self.beta_min
        return rendered

    def feature_parameters(self) -> list[nn.Parameter]:
        return [
            *self.static.feature_parameters(),
            *self.dynamic.feature_head.parameters(),
            *self.actor.feature_head.parameters(),
        ]

    def feature_state_prefixes(self) -> tuple[str, ...]:
        return ("static.feature_head.", "dynamic.feature_head.", "actor.feature_head.")

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        planes = [p for m in (self.static.geo_enc, self.static.feat_enc, self.dynamic.enc, self.actor.enc) for p in m.parameters()]
        ids = {id(p) for p in planes}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": planes, "lr": lr, "name": "grids"}, {"params": rest, "lr": lr, "name": "mlps"}]
