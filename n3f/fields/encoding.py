"""Input encodings: multi-resolution plane grids, spherical harmonics, Fourier features, frame codes.

Why planes: on a CPU, the cost of a grid encoding is dominated by the backward
scatter into the grid. A 3D lookup touches 8 cells, a plane lookup 4, and
PyTorch's 2D ``grid_sample`` has a vectorised CPU kernel, so a tri-plane
factorisation (K-Planes / TensoRF style: the Hadamard product of the xy, xz and
yz plane features is a rank-limited 3D grid) at four resolutions is several
times faster per point than dense 3D or hashed grids written in pure PyTorch,
with memory quadratic instead of cubic in resolution.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PlaneEncoding(nn.Module):
    """Multi-resolution tri-plane features of points in [-1, 1]^3.

    Output: (P, channels * len(resolutions)); per level the three plane
    features are multiplied elementwise (product keeps the encoding local in 3D).
    """

    def __init__(self, resolutions: Sequence[int] = (32, 64, 128, 256), channels: int = 4, init: tuple[float, float] = (0.1, 0.5)):
        super().__init__()
        self.resolutions = [int(r) for r in resolutions]
        self.channels = int(channels)
        self.planes = nn.ParameterList(
            [nn.Parameter(torch.empty(3, self.channels, r, r).uniform_(*init)) for r in self.resolutions]
        )

    @property
    def out_dim(self) -> int:
        return self.channels * len(self.resolutions)

    def forward(self, x: Tensor) -> Tensor:
        p = x.shape[0]
        # the (x, y), (x, z), (y, z) columns as slices (an index list made a gather per plane)
        coords = torch.stack([x[:, 0:2], x[:, 0::2], x[:, 1:3]], dim=0).view(3, 1, p, 2)
        coords = coords.to(self.planes[0].dtype)
        feats = []
        for plane in self.planes:
            f = F.grid_sample(plane, coords, mode="bilinear", padding_mode="border", align_corners=True)
            f = f.view(3, self.channels, p)
            feats.append(f[0] * f[1] * f[2])
        return torch.cat(feats, dim=0).t()


def contract(x: Tensor, centre: Tensor, radius: float) -> Tensor:
    """mip-NeRF 360 contraction of ``(x - centre) / radius``: R^3 -> ball of radius 2."""
    y = (x - centre) / radius
    n = y.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    return torch.where(n <= 1.0, y, (2.0 - 1.0 / n) * (y / n))


def sh_encoding(d: Tensor, degree: int = 4) -> Tensor:
    """Real spherical harmonics of unit directions, ``degree**2`` values (degree 1..4)."""
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    out = [torch.full_like(x, 0.28209479177387814)]
    if degree > 1:
        out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
    if degree > 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [
            1.0925484305920792 * xy,
            -1.0925484305920792 * yz,
            0.94617469575755997 * zz - 0.31539156525251999,
            -1.0925484305920792 * xz,
            0.54627421529603959 * (xx - yy),
        ]
    if degree > 3:
        out += [
            0.59004358992664352 * y * (-3.0 * xx + yy),
            2.8906114426405538 * xy * z,
            0.45704579946446572 * y * (1.0 - 5.0 * zz),
            0.3731763325901154 * z * (5.0 * zz - 3.0),
            0.45704579946446572 * x * (1.0 - 5.0 * zz),
            1.4453057213202769 * z * (xx - yy),
            0.59004358992664352 * x * (-xx + 3.0 * yy),
        ]
    return torch.stack(out, dim=-1)


def positional_encoding(x: Tensor, n_freqs: int, include_input: bool = True) -> Tensor:
    """NeRF's Fourier features: sin/cos of ``2^k * pi * x`` for k < n_freqs."""
    freqs = (2.0 ** torch.arange(n_freqs, dtype=x.dtype, device=x.device)) * math.pi
    xb = x[..., None] * freqs  # (P, D, F)
    enc = torch.cat([torch.sin(xb), torch.cos(xb)], dim=-1).flatten(1)
    return torch.cat([x, enc], dim=-1) if include_input else enc


class FrameCodes(nn.Module):
    """Learned codes indexed by frame: NeRF-W appearance codes, NeuralDiff time codes.

    Two layouts:

    * ``knot_spacing=None``: one free code per *training* frame. A held-out or
      novel frame gets the linear interpolation (by timestamp) of the codes of
      the two nearest training frames. Right for appearance (exposure jumps
      from frame to frame), wrong for time: neighbouring free codes are
      unrelated, so their midpoint decodes to nothing in particular (a held-out
      frame lost the actor's arm).
    * ``knot_spacing=d``: codes on knots every ``d`` timestamp units, every
      frame (training or not) reading the linear interpolation of the two
      knots around its timestamp. Training then sees interpolated codes too,
      so the code is a piecewise-linear function of time and a held-out frame
      between two training frames decodes to the content between them.
    """

    def __init__(
        self,
        timestamps: np.ndarray,
        train_frames: np.ndarray,
        dim: int,
        init_std: float = 0.01,
        knot_spacing: float | None = None,
    ):
        super().__init__()
        ts = np.asarray(timestamps, dtype=np.float64)
        train = np.sort(np.asarray(train_frames, dtype=np.int64))
        if len(train) == 0:
            train = np.arange(len(ts))
        self.dim = int(dim)
        if knot_spacing is not None and knot_spacing > 0 and len(ts) > 0:
            t0 = float(ts.min())
            n_knots = int(np.ceil((float(ts.max()) - t0) / knot_spacing)) + 1
            knots = t0 + knot_spacing * np.arange(n_knots)
            i0, i1, w = _interpolation(ts, knots, np.arange(n_knots))
        else:
            n_knots = len(train)
            i0, i1, w = _interpolation(ts, ts[train], np.arange(len(train)))
            i0[train] = i1[train] = np.arange(len(train))  # exact for training frames, whatever the timestamps
            w[train] = 0.0
        self.codes = nn.Parameter(torch.randn(n_knots, self.dim) * init_std)
        self.register_buffer("i0", torch.from_numpy(i0), persistent=False)
        self.register_buffer("i1", torch.from_numpy(i1), persistent=False)
        self.register_buffer("w", torch.from_numpy(w), persistent=False)

    def forward(self, frame: Tensor) -> Tensor:
        # interpolate once per stored frame, then gather per sample: one gather instead of five
        w = self.w[:, None]
        table = self.codes[self.i0] * (1 - w) + self.codes[self.i1] * w
        return table[frame.clamp(0, len(self.i0) - 1)]


def _interpolation(ts: np.ndarray, key_t: np.ndarray, key_row: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each timestamp: the rows of the keys before and after it and the weight of the second."""
    order = np.argsort(key_t, kind="stable")
    kt, rows = key_t[order], key_row[order]
    j = np.searchsorted(kt, ts, side="right")
    a = np.clip(j - 1, 0, len(kt) - 1)
    b = np.clip(j, 0, len(kt) - 1)
    span = kt[b] - kt[a]
    w = np.where(span > 0, np.clip((ts - kt[a]) / np.where(span > 0, span, 1.0), 0.0, 1.0), 0.0)
    return rows[a].astype(np.int64), rows[b].astype(np.int64), w.astype(np.float32)
