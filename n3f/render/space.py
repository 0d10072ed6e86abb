"""Scene parameterisations: where the field's grids live and how rays are sampled.

Every field works on points in the *unit cube* ``[-1, 1]^3``; a
:class:`SceneSpace` maps normalised-world points into it and chooses how
samples are spread along a ray:

* ``contract`` (360-degree objects and egocentric video): mip-NeRF 360 scene
  contraction. Points within ``radius`` of ``centre`` map linearly, the rest of
  space is squashed into a shell, so a bounded grid covers an unbounded scene.
  Samples are linear in distance inside the ball and linear in disparity
  beyond it, matching the contraction's resolution.
* ``ndc`` (forward-facing, LLFF-like): normalised device coordinates of a
  reference camera (the mean pose): x, y by perspective division, depth as
  ``1 - 2 near / z``, so the frustum out to infinity is a cube and samples
  linear in disparity are evenly spread in it.

The scene store is normalised so that content sits roughly in a unit sphere,
which is why the defaults below work without per-scene tuning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from n3f.fields.encoding import contract

KINDS = ("contract", "ndc")


@dataclass
class SceneSpace:
    """A map from normalised world to the field's unit cube, plus a sampling spacing."""

    kind: str = "contract"
    centre: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    radius: float = 1.0  # contract: linear region; ndc: unused
    # ndc: reference camera (OpenCV c2w), focal lengths in half-image units and near plane
    ref_c2w: list[list[float]] | None = None
    ndc_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    ndc_near: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"scene space '{self.kind}' unknown; one of {KINDS}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SceneSpace":
        return cls(**d)

    # -- the map ---------------------------------------------------------
    def to_unit(self, x: Tensor) -> Tensor:
        """Map normalised-world points (..., 3) into the field cube [-1, 1]^3."""
        if self.kind == "contract":
            return contract(x, torch.as_tensor(self.centre, dtype=x.dtype, device=x.device), self.radius) * 0.5
        ref = torch.as_tensor(self.ref_c2w, dtype=x.dtype, device=x.device)
        pc = (x - ref[:3, 3]) @ ref[:3, :3]  # world -> reference camera frame
        z = pc[..., 2:3].clamp_min(self.ndc_near * 0.5)
        sx, sy = self.ndc_scale
        return torch.cat(
            [sx * pc[..., 0:1] / z, sy * pc[..., 1:2] / z, 1.0 - 2.0 * self.ndc_near / z], dim=-1
        )

    # -- sample spacing --------------------------------------------------
    def t_from_s(self, s: Tensor, near: Tensor, far: Tensor, origins: Tensor, directions: Tensor) -> Tensor:
        """Distances along each ray for normalised sample positions ``s`` (R, S) in [0, 1].

        ``ndc``: linear in disparity from near to far. ``contract``: linear in
        distance up to where the ray leaves the linear ball (at least until
        ``2 * near``), linear in disparity from there to ``far``; the share of
        samples in each part is proportional to the part's length in
        contracted units, so neither part is starved.
        """
        if self.kind == "ndc":
            return 1.0 / (1.0 / near + s * (1.0 / far - 1.0 / near))
        c = torch.as_tensor(self.centre, dtype=origins.dtype, device=origins.device)
        t_exit = _ray_sphere_exit(origins - c, directions, self.radius)
        mid = torch.minimum(torch.maximum(t_exit, 2.0 * near), far)
        # lengths in contracted units: inner ~ (mid - near)/radius, outer <= 1
        inner = (mid - near) / self.radius
        outer = torch.where(far > mid * 1.001, (1.0 - mid / far).clamp(0.0, 1.0), torch.zeros_like(far))
        frac = inner / (inner + outer).clamp_min(1e-6)
        lin = near + (s / frac.clamp_min(1e-6)) * (mid - near)
        s2 = ((s - frac) / (1.0 - frac).clamp_min(1e-6)).clamp(0.0, 1.0)
        disp = 1.0 / (1.0 / mid + s2 * (1.0 / far - 1.0 / mid))
        return torch.where(s <= frac, lin, disp)


def _ray_sphere_exit(o: Tensor, d: Tensor, radius: float) -> Tensor:
    """Distance at which rays (origin relative to the centre) leave the sphere; 0 if they miss."""
    b = (o * d).sum(-1, keepdim=True)
    c = (o * o).sum(-1, keepdim=True) - radius**2
    disc = b * b - c
    return torch.where(disc > 0, -b + disc.clamp_min(0).sqrt(), torch.zeros_like(b)).clamp_min(0.0)


def space_for_scene(
    layout: str, c2w: np.ndarray, intrinsics: np.ndarray, bounds: np.ndarray, image_size: tuple[int, int], **overrides: Any
) -> SceneSpace:
    """The default parameterisation for a scene layout ("forward" -> ndc, else contract)."""
    kind = overrides.pop("kind", "ndc" if layout == "forward" else "contract")
    if kind == "ndc":
        ref = _mean_pose(c2w)
        h, w = image_size
        k = np.median(intrinsics, axis=0)
        near = float(overrides.pop("ndc_near", max(float(np.percentile(bounds[:, 0], 5)) * 0.9, 1e-3)))
        return SceneSpace(
            kind="ndc",
            ref_c2w=ref.tolist(),
            ndc_scale=[float(2 * k[0, 0] / w), float(2 * k[1, 1] / h)],
            ndc_near=near,
            **overrides,
        )
    return SceneSpace(kind="contract", **overrides)


def _mean_pose(c2w: np.ndarray) -> np.ndarray:
    """Average camera: mean centre, orthonormalised mean axes (LLFF's poses_avg)."""
    centre = c2w[:, :3, 3].mean(0)
    z = c2w[:, :3, 2].mean(0)
    z /= np.linalg.norm(z)
    y_down = c2w[:, :3, 1].mean(0)
    x = np.cross(y_down, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2], out[:3, 3] = x, y, z, centre
    return out
