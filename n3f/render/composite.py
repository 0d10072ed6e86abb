"""Volume rendering: one alpha-compositing routine for every channel.

Colour, teacher features, NeuralDiff's uncertainty, depth and opacity all go
through :func:`composite`, so the features a model renders are by construction
integrated along the ray exactly like its colour (the premise of N3F).
"""

from __future__ import annotations

import torch
from torch import Tensor


def render_weights(density: Tensor, deltas: Tensor) -> Tensor:
    """Per-sample weights ``T_i (1 - exp(-sigma_i delta_i))`` for (R, S) densities.

    ``T_i = exp(-sum_{j<i} sigma_j delta_j)``, computed from one cumulative sum
    in log space (stable, no cumprod of many values near 1).
    """
    tau = density * deltas
    alpha = 1.0 - torch.exp(-tau)
    acc = torch.cumsum(tau, dim=-1)
    trans = torch.exp(-torch.cat([torch.zeros_like(acc[..., :1]), acc[..., :-1]], dim=-1))
    return alpha * trans


def composite(
    density: Tensor,
    deltas: Tensor,
    channels: dict[str, Tensor],
    t: Tensor | None = None,
    background: dict[str, Tensor | float] | None = None,
) -> dict[str, Tensor]:
    """Alpha-composite per-sample channels along each ray.

    Args:
        density: (R, S) non-negative volume density.
        deltas: (R, S) length of the interval each sample represents.
        channels: name -> (R, S, C) per-sample values (colour, features, ...).
        t: (R, S) sample distances; when given, ``depth`` (expected distance of
            the visible surface, normalised by opacity) is returned.
        background: name -> value blended in with weight ``1 - opacity``.

    Returns:
        ``weights`` (R, S), ``opacity`` (R, 1), each channel (R, C), ``depth`` (R, 1).
    """
    weights = render_weights(density, deltas)
    opacity = weights.sum(dim=-1, keepdim=True)
    out = {"weights": weights, "opacity": opacity}
    background = background or {}
    for name, value in channels.items():
        rendered = torch.einsum("rs,rsc->rc", weights, value)
        if name in background:
            rendered = rendered + (1.0 - opacity) * background[name]
        out[name] = rendered
    if t is not None:
        out["depth"] = (weights * t).sum(dim=-1, keepdim=True) / opacity.clamp_min(1e-6)
    return out


def distortion_loss(weights: Tensor, s_edges: Tensor) -> Tensor:
    """mip-NeRF 360's distortion loss, per ray, averaged over rays.

    Penalises weight spread along a ray (fog, floaters): the double integral
    ``sum_ij w_i w_j |m_i - m_j|`` plus each interval's self term
    ``w_i^2 (s_{i+1} - s_i) / 3``, on normalised distances ``s`` in [0, 1] so
    near and far content are treated alike. Computed in O(S) with prefix sums
    (midpoints are sorted). Matters most with a short camera baseline
    (egocentric video), where views alone barely constrain depth.
    """
    mids = 0.5 * (s_edges[:, 1:] + s_edges[:, :-1])
    widths = s_edges[:, 1:] - s_edges[:, :-1]
    w_before = torch.cumsum(weights, dim=-1) - weights
    wm_before = torch.cumsum(weights * mids, dim=-1) - weights * mids
    cross = 2.0 * (weights * (mids * w_before - wm_before)).sum(-1)
    own = (weights**2 * widths).sum(-1) / 3.0
    return (cross + own).mean()
