"""The carrier of fused features: a voxel grid per field stream, filled by weighted splatting.

Why a dense voxel grid over the field's cube ``[-1, 1]^3`` (the coordinates every field reads):
its trilinear splat and lookup are two vectorised ``index_add_`` / ``grid_sample`` calls on a
CPU, any field's samples map onto it without knowing how the field is built, and a known
surface gets back exactly the weighted mean of the features that saw it. The field's own
feature planes solved by least squares would share cells along each plane axis (a tri-plane
is rank-limited), and surface points need a surface, which volumetric fields do not have.
Measured alternatives and resolutions: ``bench/NOTES.md`` ("Training-free fusion").

A voxel holds the sum of ``weight x feature`` and the sum of weights of the samples splatted
into it (trilinearly, with ``align_corners=True`` corners). A lookup interpolates both and
divides (normalised convolution): voxels nobody observed contribute nothing instead of
pulling the mean towards zero. On disk only observed voxels are kept (their index, mean
feature in float16 and weight), so ``model.pt`` stays small for object scenes.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from n3f.fields.base import SHARE_FLOOR

EPS = 1e-8
"""Interpolated weight below which a lookup returns zero features (nothing observed there)."""


class FeatureVolume(nn.Module):
    """Fused features of ``streams`` on ``resolution``^3 voxels each, plus a background feature."""

    def __init__(self, streams: Sequence[str], resolution: int, channels: int, voxels: int = 0):
        super().__init__()
        self.streams = tuple(streams)
        self.resolution = int(resolution)
        self.channels = int(channels)
        # the saved (sparse) form: observed voxels only; flat index over (stream, z, y, x)
        self.register_buffer("index", torch.zeros(voxels, dtype=torch.int64))
        self.register_buffer("mean", torch.zeros(voxels, self.channels, dtype=torch.float16))
        self.register_buffer("weight", torch.zeros(voxels, dtype=torch.float32))
        self.register_buffer("background", torch.zeros(self.channels, dtype=torch.float32))
        self._acc: tuple[Tensor, Tensor] | None = None  # while fusing: flat (S*R^3, C) sums, (S*R^3,) weights
        self._grid: tuple[Tensor, Tensor] | None = None  # for lookups: see _table
        self._bg_sum = torch.zeros(self.channels, dtype=torch.float64)
        self._bg_weight = 0.0

    def _load_from_state_dict(self, *args, **kwargs):  # new buffers: the lookup tables are rebuilt from them
        self._grid = None
        return super()._load_from_state_dict(*args, **kwargs)

    # -- description ---------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What ``model.pt`` stores to rebuild the volume before loading its buffers."""
        return {"streams": list(self.streams), "resolution": self.resolution, "channels": self.channels,
                "voxels": int(self.index.numel())}

    @classmethod
    def from_description(cls, d: dict[str, Any]) -> "FeatureVolume":
        return cls(d["streams"], int(d["resolution"]), int(d["channels"]), int(d.get("voxels", 0)))

    # -- accumulation --------------------------------------------------------
    def _accumulators(self, device: torch.device) -> tuple[Tensor, Tensor]:
        if self._acc is None:
            n = len(self.streams) * self.resolution**3
            self._acc = (torch.zeros(n, self.channels, dtype=torch.float32, device=device),
                         torch.zeros(n, dtype=torch.float32, device=device))
        return self._acc

    def splat(self, stream: str, coords: Tensor, weights: Tensor, features: Tensor) -> None:
        """Add ``weights`` (P,) x ``features`` (P, C) at ``coords`` (P, 3) in [-1, 1]^3, trilinearly."""
        sums, wsum = self._accumulators(coords.device)
        r = self.resolution
        g = (coords.float().clamp(-1, 1) + 1) * 0.5 * (r - 1)  # voxel units; x indexes W, y H, z D
        g0 = g.floor().clamp(0, r - 2)
        frac = g - g0
        i0 = g0.long()
        base = self.streams.index(stream) * r**3 + (i0[:, 2] * r + i0[:, 1]) * r + i0[:, 0]
        w = weights.float()
        wf = w[:, None] * features.float()
        for dz in (0, 1):
            for dy in (0, 1):
                for dx in (0, 1):
                    cw = ((frac[:, 0] if dx else 1 - frac[:, 0]) * (frac[:, 1] if dy else 1 - frac[:, 1])
                          * (frac[:, 2] if dz else 1 - frac[:, 2]))
                    idx = base + (dz * r + dy) * r + dx
                    sums.index_add_(0, idx, wf * cw[:, None])
                    wsum.index_add_(0, idx, w * cw)

    def splat_background(self, weights: Tensor, features: Tensor) -> None:
        """Add rays' leftover transmittance ``weights`` (R,) x their ``features`` (R, C) to the background."""
        self._bg_sum += (weights.double()[:, None] * features.double()).sum(0).cpu()
        self._bg_weight += float(weights.double().sum())

    def finish(self, min_weight: float = 0.0) -> None:
        """Move the accumulated sums into the saved (sparse) buffers: voxels with weight > ``min_weight``."""
        sums, wsum = self._accumulators(self.index.device)
        keep = (wsum > min_weight).nonzero().squeeze(1)
        w = wsum[keep]
        self.index = keep.cpu()
        self.weight = w.cpu()
        self.mean = (sums[keep] / w[:, None]).to(torch.float16).cpu()
        if self._bg_weight > 0:
            self.background = (self._bg_sum / self._bg_weight).float()
        self._acc = self._grid = None  # lookups rebuild from the saved form (float16 means)

    # -- lookup ----------------------------------------------------------------
    def _table(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The lookup tables: ``slots`` (S*R^3,) int32, each voxel's row in ``rows`` (0: not observed), and
        ``rows`` (observed + 1, C + 1) of [weight x mean feature | weight], row 0 all zeros. Compact, so a
        lookup's gathers stay in cache: a dense (S*R^3, C + 1) table is 200 MB for NeuralDiff's three
        streams at 64^3, and its random reads slowed the training jobs beside it (bench/NOTES.md)."""
        if self._grid is None or self._grid[0].device != device:
            n = len(self.streams) * self.resolution**3
            slots = torch.zeros(n, dtype=torch.int32, device=device)
            rows = torch.zeros(self.index.numel() + 1, self.channels + 1, dtype=torch.float32, device=device)
            if self.index.numel():
                idx, w = self.index.to(device), self.weight.to(device)
                slots[idx] = torch.arange(1, idx.numel() + 1, dtype=torch.int32, device=device)
                rows[1:, : self.channels] = self.mean.to(device).float() * w[:, None]
                rows[1:, self.channels] = w
            self._grid = (slots, rows)
        return self._grid

    def lookup(self, stream: str, coords: Tensor) -> tuple[Tensor, Tensor]:
        """Fused features (P, C) and interpolated weight (P,) of ``stream`` at ``coords`` in [-1, 1]^3."""
        slots, rows_of = self._table(coords.device)
        r = self.resolution
        g = (coords.float().clamp(-1, 1) + 1) * 0.5 * (r - 1)
        g0 = g.floor().clamp(0, r - 2)
        frac = g - g0
        i0 = g0.long()
        base = self.streams.index(stream) * r**3 + (i0[:, 2] * r + i0[:, 1]) * r + i0[:, 0]
        acc = None
        for dz in (0, 1):
            for dy in (0, 1):
                for dx in (0, 1):
                    cw = ((frac[:, 0] if dx else 1 - frac[:, 0]) * (frac[:, 1] if dy else 1 - frac[:, 1])
                          * (frac[:, 2] if dz else 1 - frac[:, 2]))
                    slot = slots.index_select(0, base + (dz * r + dy) * r + dx)
                    rows = rows_of.index_select(0, slot) * cw[:, None]
                    acc = rows if acc is None else acc.add_(rows)
        w = acc[:, self.channels]
        return acc[:, : self.channels] / w.clamp_min(EPS)[:, None] * (w > EPS)[:, None], w

    def features(self, streams: dict[str, tuple[Tensor, Tensor | None]]) -> Tensor:
        """Per-sample features: the sum over ``streams`` (name -> (coords, share or None)) of each
        stream's lookup times its share of the sample's density."""
        out = None
        for name, (coords, share) in streams.items():
            if share is None:
                f = self.lookup(name, coords)[0]
                out = f if out is None else out + f
                continue
            # a stream is looked up only where it holds more than SHARE_FLOOR of the density (NeuralDiff's
            # moving streams: under 2% of a toy_kitchen render's samples)
            if out is None:
                out = coords.new_zeros((len(coords), self.channels), dtype=torch.float32)
            rows = (share > SHARE_FLOOR).nonzero().squeeze(1)
            if len(rows):
                out = out.index_add(0, rows, self.lookup(name, coords[rows])[0] * share[rows].view(-1, 1).float())
        assert out is not None, "no stream to look features up in"
        return out
