"""Camera rays in the store's convention (OpenCV axes, pixel centres at +0.5).

A ray carries, besides origin and direction, its direction in *camera*
coordinates: a point at distance ``t`` along the ray is ``t * dirs_cam`` in the
camera frame, which is all the NeuralDiff actor stream needs (it lives in camera
coordinates) without passing poses around. ``near``/``far`` are distances along
the unit direction, converted from the store's per-frame depth bounds (depths
along the optical axis) by dividing by the cosine to the axis.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import Tensor


@dataclass
class RayBundle:
    """A batch of R rays (every tensor has R rows)."""

    origins: Tensor  # (R, 3) normalised world
    directions: Tensor  # (R, 3) unit, world
    dirs_cam: Tensor  # (R, 3) unit, camera frame (x right, y down, z forward)
    near: Tensor  # (R, 1) distance along the unit direction
    far: Tensor  # (R, 1)
    frame: Tensor  # (R,) long: frame index for time/appearance codes

    def __len__(self) -> int:
        return int(self.origins.shape[0])

    def __getitem__(self, index) -> "RayBundle":
        return RayBundle(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def to(self, device: torch.device | str) -> "RayBundle":
        return RayBundle(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def with_bounds(self, near: Tensor, far: Tensor) -> "RayBundle":
        return replace(self, near=near, far=far)


def pixel_directions(intrinsics: Tensor, uv: Tensor) -> Tensor:
    """Unit camera-frame directions through continuous pixel positions ``uv`` (R, 2).

    ``intrinsics`` is (3, 3) or (R, 3, 3). The pixel centre of column x is at
    ``u = x + 0.5``, matching ``u = fx * X/Z + cx`` for the store's K.
    """
    k = intrinsics.to(uv.dtype)
    if k.dim() == 2:
        k = k.expand(uv.shape[0], 3, 3)
    # u = fx * x + skew * y + cx,  v = fy * y + cy
    y = (uv[:, 1] - k[:, 1, 2]) / k[:, 1, 1]
    x = (uv[:, 0] - k[:, 0, 2] - k[:, 0, 1] * y) / k[:, 0, 0]
    d = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    return d / d.norm(dim=-1, keepdim=True)


def rays_from_pixels(
    c2w: Tensor,
    intrinsics: Tensor,
    uv: Tensor,
    depth_bounds: Tensor,
    frame: Tensor | int = 0,
) -> RayBundle:
    """Rays through pixel positions ``uv`` (R, 2) of cameras ``c2w`` ((4,4) or (R,4,4)).

    ``depth_bounds`` is (2,) or (R, 2): near/far *depths* along the optical axis.
    """
    r = uv.shape[0]
    dtype = uv.dtype
    c2w = c2w.to(dtype)
    if c2w.dim() == 2:
        c2w = c2w.expand(r, 4, 4)
    dirs_cam = pixel_directions(intrinsics, uv)
    rot = c2w[:, :3, :3]
    directions = torch.einsum("rij,rj->ri", rot, dirs_cam)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    origins = c2w[:, :3, 3].contiguous()
    b = depth_bounds.to(dtype)
    if b.dim() == 1:
        b = b.expand(r, 2)
    cos = dirs_cam[:, 2:3].clamp_min(1e-6)
    if not isinstance(frame, Tensor):
        frame = torch.full((r,), int(frame), dtype=torch.long)
    return RayBundle(
        origins=origins,
        directions=directions,
        dirs_cam=dirs_cam,
        near=b[:, 0:1] / cos,
        far=b[:, 1:2] / cos,
        frame=frame.to(torch.long).expand(r).clone() if frame.dim() == 0 else frame.to(torch.long),
    )


def pixel_grid(height: int, width: int, downscale: int = 1) -> Tensor:
    """(H*W, 2) pixel-centre coordinates, row-major (v then u), in full-res pixels.

    With ``downscale`` s, the centres of s x s pixel blocks are returned, so a
    preview render covers the same field of view as the full frame.
    """
    h, w = height // downscale, width // downscale
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    uv = torch.stack([(u + 0.5) * downscale, (v + 0.5) * downscale], dim=-1).reshape(-1, 2)
    return uv.float()


def camera_rays(
    c2w: Tensor | np.ndarray,
    intrinsics: Tensor | np.ndarray,
    height: int,
    width: int,
    depth_bounds: Tensor | np.ndarray | tuple[float, float],
    frame: int = 0,
    downscale: int = 1,
) -> RayBundle:
    """All rays of one camera, row-major, for an image of ``height`` x ``width`` pixels."""
    uv = pixel_grid(height, width, downscale)
    return rays_from_pixels(
        torch.as_tensor(np.asarray(c2w), dtype=torch.float32),
        torch.as_tensor(np.asarray(intrinsics), dtype=torch.float32),
        uv,
        torch.as_tensor(np.asarray(depth_bounds, dtype=np.float32)),
        frame,
    )


def project(points: np.ndarray, c2w: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project world points (P, 3) into a camera: returns (uv (P, 2), depth (P,)).

    The inverse of :func:`rays_from_pixels`; tests check the two agree.
    """
    w2c = np.linalg.inv(c2w)
    pc = points @ w2c[:3, :3].T + w2c[:3, 3]
    p = pc @ np.asarray(intrinsics).T
    return p[:, :2] / p[:, 2:3], pc[:, 2]
