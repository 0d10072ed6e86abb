"""Sample placement along rays: stratified, then importance-resampled.

Samples are handled as *intervals*: ``edges`` (R, S+1) bound S intervals whose
representative point is the midpoint. Importance sampling draws from the
piecewise-constant density of the proposal weights over these intervals
(inverse-CDF, as in NeRF / mip-NeRF 360), after dilating the weights to the
neighbouring intervals so that a surface lying between two proposal samples
is not missed by the fine samples.
"""

from __future__ import annotations

import torch
from torch import Tensor


def stratified_s(n_rays: int, n: int, jitter: bool, generator: torch.Generator | None, device) -> Tensor:
    """(R, n+1) interval edges in [0, 1]; with ``jitter`` the inner edges move randomly."""
    base = torch.linspace(0.0, 1.0, n + 1, device=device).expand(n_rays, n + 1)
    if not jitter:
        return base.contiguous()
    u = torch.rand(n_rays, n + 1, generator=generator, device="cpu").to(device)
    edges = base + (u - 0.5) / n
    edges = edges.clamp(0.0, 1.0)
    edges[:, 0], edges[:, -1] = 0.0, 1.0
    return edges.sort(dim=-1).values


def dilate_weights(weights: Tensor) -> Tensor:
    """Max over each interval and its two neighbours (a cheap proposal 'blur')."""
    p = torch.nn.functional.pad(weights[:, None], (1, 1), mode="replicate")[:, 0]
    return torch.maximum(torch.maximum(p[:, :-2], p[:, 1:-1]), p[:, 2:])


def sample_pdf(
    edges: Tensor,
    weights: Tensor,
    n: int,
    jitter: bool,
    generator: torch.Generator | None = None,
    floor: float = 0.01,
) -> Tensor:
    """Draw ``n`` sorted distances per ray from a piecewise-constant pdf.

    Args:
        edges: (R, S+1) interval boundaries (increasing).
        weights: (R, S) non-negative mass of each interval (need not sum to 1).
        jitter: random positions (training) or evenly spaced quantiles (render).
        floor: share of uniform mass mixed in, so every interval keeps a chance.
    """
    r, s = weights.shape
    w = weights + 1e-8
    pdf = w / w.sum(-1, keepdim=True)
    pdf = (1 - floor) * pdf + floor / s
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, dim=-1)], dim=-1)
    cdf[:, -1] = 1.0
    if jitter:
        u = (torch.arange(n, device=edges.device, dtype=edges.dtype) + torch.rand(r, n, generator=generator).to(edges)) / n
    else:
        u = ((torch.arange(n, device=edges.device, dtype=edges.dtype) + 0.5) / n).expand(r, n).contiguous()
    idx = torch.searchsorted(cdf, u, right=True).clamp(1, s)
    c0, c1 = cdf.gather(1, idx - 1), cdf.gather(1, idx)
    e0, e1 = edges.gather(1, idx - 1), edges.gather(1, idx)
    frac = ((u - c0) / (c1 - c0).clamp_min(1e-8)).clamp(0.0, 1.0)
    return e0 + frac * (e1 - e0)


def intervals_from_points(t: Tensor, near: Tensor, far: Tensor) -> tuple[Tensor, Tensor]:
    """Interval edges (R, S+1) around sorted sample points (R, S): midpoints, clipped to near/far."""
    mids = 0.5 * (t[:, 1:] + t[:, :-1])
    edges = torch.cat([torch.minimum(near, t[:, :1]), mids, torch.maximum(far, t[:, -1:])], dim=-1)
    return edges, edges[:, 1:] - edges[:, :-1]
