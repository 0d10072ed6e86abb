"""An occupancy (density) grid over the field's unit cube: the cheap first sampling pass.

Why: the first pass used to evaluate the whole field (plane lookups and the
density MLP) at 64 stratified points per ray, only to learn where along the
ray the surface is: about half of a training step's forward time and of a
rendered frame. instant-ngp keeps instead a coarse grid of the field's
density, refreshed every few steps during training, and looks it up. Here the
grid replaces the field in the proposal pass: proposal weights come from
compositing the grid's densities, fine samples are drawn from them as before,
so the renderer keeps its dense (rays x samples) layout.

What the grid holds (instant-ngp's update): for each cell, the running max of
the field's density at random points in the cell, decayed by ``decay`` at
every update, so cells the field empties fade out while a surface, whose
density is hundreds, stays far above empty space. Cells are refreshed at
random (``fraction`` of them per update, all at the first); the lookup reads
the grid max-pooled over each cell's 3x3x3 neighbourhood, so a thin surface
that one update's random point missed in its own cell is still seen from the
next one. Nothing is ever culled outright: the sampler's uniform floor and
stratified samples keep exploring cells the grid calls empty.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DensityFn = Callable[[Tensor], Tensor]
"""Unit-cube points (P, 3) -> (P,) field density."""


class OccupancyGrid(nn.Module):
    """Max field density per cell of ``[-1, 1]^3`` (``resolution`` cells per axis)."""

    def __init__(self, resolution: int = 128, decay: float = 0.9, fraction: float = 0.0625, chunk: int = 65536):
        super().__init__()
        self.resolution = int(resolution)
        self.decay = float(decay)
        self.fraction = float(fraction)
        self.chunk = int(chunk)
        r = self.resolution
        # -1: never updated (the lookup then reads a uniform density: no prior on where things are)
        self.register_buffer("density", torch.full((r, r, r), -1.0))
        self.register_buffer("pooled", torch.full((r, r, r), -1.0), persistent=False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @property
    def ready(self) -> bool:
        """Updated at least once (before that the renderer samples with the field itself)."""
        return bool(self.updates > 0)

    def _load_from_state_dict(self, *args, **kwargs):  # type: ignore[override]
        super()._load_from_state_dict(*args, **kwargs)
        self._pool()

    def _pool(self) -> None:
        """Max over each cell's 3x3x3 neighbourhood, as three 1D passes (a 3D max-pool kernel was
        most of an update's time on a CPU: 27 reads per cell instead of 9)."""
        g = self.density
        for axis in range(3):
            p = F.pad(g.movedim(axis, -1), (1, 1), value=-1.0)
            g = torch.maximum(torch.maximum(p[..., :-2], p[..., 1:-1]), p[..., 2:]).movedim(-1, axis)
        self.pooled = g.contiguous()

    def cell_index(self, points: Tensor) -> Tensor:
        """Flat cell index (P,) of unit-cube points (P, 3); points outside are clamped to the border cells."""
        r = self.resolution
        ijk = ((points.detach() + 1.0) * (0.5 * r)).long().clamp(0, r - 1)
        return (ijk[:, 0] * r + ijk[:, 1]) * r + ijk[:, 2]

    def lookup(self, points: Tensor) -> Tensor:
        """(P,) pooled grid density at unit-cube points (P, 3)."""
        return self.pooled.view(-1)[self.cell_index(points)].clamp_min(0.0)

    @torch.no_grad()
    def update(self, density_fn: DensityFn, generator: torch.Generator | None = None, full: bool = False) -> None:
        """Refresh ``fraction`` of the cells (all of them when ``full`` or at the first update)
        with the field density at one random point inside each."""
        r = self.resolution
        n_cells = r**3
        dev = self.density.device
        flat = self.density.view(-1)
        if full or not self.ready:
            cells = torch.arange(n_cells, device=dev)
        else:
            k = max(1, int(self.fraction * n_cells))
            cells = torch.randint(0, n_cells, (k,), generator=generator).to(dev)
        new = torch.empty(len(cells), device=dev)
        for i in range(0, len(cells), self.chunk):
            c = cells[i : i + self.chunk]
            ijk = torch.stack([c // (r * r), (c // r) % r, c % r], dim=-1).float()
            jitter = torch.rand(len(c), 3, generator=generator).to(dev)
            pts = (ijk + jitter) * (2.0 / r) - 1.0
            new[i : i + self.chunk] = density_fn(pts).float()
        if self.ready:
            flat.mul_(self.decay)
        else:
            flat.zero_()
        flat[cells] = torch.maximum(flat[cells], new)
        self.updates += 1
        self._pool()

    def occupied_share(self, threshold: float = 0.01) -> float:
        """Share of cells whose density is above ``threshold`` (for logs and benchmarks)."""
        return float((self.density > threshold).float().mean())
