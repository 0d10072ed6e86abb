"""Fused-then-distilled: fit a field's feature branch to a fused volume before distillation.

Why at 3D points and not through rendering: the fused volume already says what every observed
point's feature is, so regressing the field's features there needs no rays (a step evaluates
one batch of points instead of rays x 84 samples), and distillation then starts from features
that point the right way instead of from an untrained head.
"""

from __future__ import annotations

import logging

import torch

from n3f.fields.base import Samples
from n3f.render.renderer import Renderer

log = logging.getLogger(__name__)


def observed_points(volume, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``n`` cube points of the world streams, drawn in proportion to the voxels' fused weight and
    jittered within them."""
    world = [k for k, s in enumerate(volume.streams) if s != "actor"]
    r = volume.resolution
    stream = volume.index // r**3
    keep = torch.isin(stream, torch.tensor(world))
    index, weight = volume.index[keep], volume.weight[keep]
    pick = index[torch.multinomial(weight, n, replacement=True, generator=generator)] % r**3
    z, y, x = pick // (r * r), (pick // r) % r, pick % r
    voxel = torch.stack([x, y, z], -1).float() + torch.rand(n, 3, generator=generator) - 0.5
    return (voxel / (r - 1) * 2 - 1).clamp(-1, 1).to(device)


def fit_features_to_fused(renderer: Renderer, fused: Renderer, steps: int, points: int = 4096, lr: float = 1e-2,
                          frames: torch.Tensor | None = None, seed: int = 0) -> float:
    """Train ``renderer``'s feature parameters so its features at observed points match ``fused``'s
    (same point, same field streams); returns the final mean squared error."""
    device = next(renderer.parameters()).device
    volume = fused.fused
    assert volume is not None, "fit_features_to_fused needs a fused model"
    params = renderer.field.feature_parameters()
    optim = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    frames = torch.zeros(1, dtype=torch.long) if frames is None or len(frames) == 0 else torch.as_tensor(frames)
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        pos = observed_points(volume, points, gen, device)
        frame = frames[torch.randint(len(frames), (points,), generator=gen)].to(device)
        samples = Samples(pos, torch.zeros_like(pos), frame, None)
        with torch.no_grad():
            out = fused.field.at_points(samples, outputs=())
            target = volume.features(fused.field.feature_streams(samples, out))
        pred = renderer.field.at_points(samples, outputs=("features",))["features"]
        loss = torch.nn.functional.mse_loss(pred.float(), target)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        if step % 100 == 0 or step == steps - 1:
            log.info("feature init from fused: step %d/%d, mse %.5f", step + 1, steps, float(loss.detach()))
    return float(loss.detach())
