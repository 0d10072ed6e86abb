"""Scene parameterisations: where the field's grids live and how rays are sampled.

Every field works on points in the *unit cube* ``[-1, 1]^3``; a
:class:`SceneSpace` maps normalised-world points into it and chooses how
samples are spread along a ray:

* ``contract`` (360-degree objects and egocentric video): mip-NeRF 360 scene
  contraction. Points within ``radius`` of ``centre`` map linearly, the rest of
  space is squashed into a shell, so a bounded grid covers an unbounded scene.
  ``radius`` may be three per-axis radii (an ellipsoid) and ``inner`` is the
  share of the cube the linear part fills: for egocentric video the
  ellipsoid is fitted to the cameras' view frusta (:func:`frustum_box`), so
  the grid's cells are spent where the camera looks, not on the empty half
  of a sphere centred on the camera path.
  Samples are linear in distance inside the ball and linear in disparity
  beyond it, matching the contraction's resolution. ``unbounded`` (the default
  for 360-degree ``object`` captures whose bounds come from structure from motion,
  set by the trainer: ``n3f.fields.sizing.unbounded_default``) samples every ray out to
  :data:`UNBOUNDED_FAR` radii instead of the frame's far bound: the bounds of a
  real capture come from its structure-from-motion points, which rarely reach
  the room behind the object, and a ray that stops short of the room leaves
  it to the direction-only background model, a fog (bench/NOTES.md: goldcape
  +1.0 dB held out, +2.6 dB on training frames).
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

from n3f.render.settings import SPACE_KINDS as KINDS

UNBOUNDED_FAR = 100.0
"""Far end of an unbounded contract space's rays, in radii of the linear region: the
contraction maps it to 99% of the way to the cube's edge (1 - 1/100), so the shell's
cells are all reachable while disparity-linear samples still favour near content."""


@dataclass
class SceneSpace:
    """A map from normalised world to the field's unit cube, plus a sampling spacing."""

    kind: str = "contract"
    centre: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    radius: float | list[float] = 1.0  # contract: linear region (one radius, or per axis); ndc: unused
    inner: float = 0.5  # contract: half-width of the cube the linear region maps to (the shell gets the rest)
    # ndc: reference camera (OpenCV c2w), focal lengths in half-image units and near plane
    ref_c2w: list[list[float]] | None = None
    ndc_scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    ndc_near: float = 1.0
    # contract: sample every ray out to UNBOUNDED_FAR radii, whatever its frame's far bound
    unbounded: bool = False

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
            y = (x - torch.as_tensor(self.centre, dtype=x.dtype, device=x.device)) / self._radii(x)
            n = y.norm(dim=-1, keepdim=True).clamp_min(1e-9)
            a = self.inner
            return torch.where(n <= 1.0, a * y, (a + (1.0 - a) * (1.0 - 1.0 / n)) * (y / n))
        ref = torch.as_tensor(self.ref_c2w, dtype=x.dtype, device=x.device)
        pc = (x - ref[:3, 3]) @ ref[:3, :3]  # world -> reference camera frame
        z = pc[..., 2:3].clamp_min(self.ndc_near * 0.5)
        sx, sy = self.ndc_scale
        return torch.cat(
            [sx * pc[..., 0:1] / z, sy * pc[..., 1:2] / z, 1.0 - 2.0 * self.ndc_near / z], dim=-1
        )

    def _radii(self, like: Tensor) -> Tensor:
        return torch.as_tensor(self.radius, dtype=like.dtype, device=like.device)

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
        radii = self._radii(origins)
        if self.unbounded:
            far = far.clamp_min(UNBOUNDED_FAR * float(radii.max()))
        d = directions / radii  # in the frame where the linear region is the unit ball
        t_exit = _ray_sphere_exit((origins - c) / radii, d, 1.0)
        mid = torch.minimum(torch.maximum(t_exit, 2.0 * near), far)
        # lengths in contracted units: inner ~ (mid - near)/radius, outer <= 1
        inner = (mid - near) * d.norm(dim=-1, keepdim=True)
        outer = torch.where(far > mid * 1.001, (1.0 - mid / far).clamp(0.0, 1.0), torch.zeros_like(far))
        frac = inner / (inner + outer).clamp_min(1e-6)
        lin = near + (s / frac.clamp_min(1e-6)) * (mid - near)
        s2 = ((s - frac) / (1.0 - frac).clamp_min(1e-6)).clamp(0.0, 1.0)
        disp = 1.0 / (1.0 / mid + s2 * (1.0 / far - 1.0 / mid))
        return torch.where(s <= frac, lin, disp)


def _ray_sphere_exit(o: Tensor, d: Tensor, radius: float) -> Tensor:
    """Distance at which rays (origin relative to the centre, any direction length) leave the
    sphere; 0 if they miss."""
    a = (d * d).sum(-1, keepdim=True)
    b = (o * d).sum(-1, keepdim=True)
    c = (o * o).sum(-1, keepdim=True) - radius**2
    disc = b * b - a * c
    return torch.where(disc > 0, (-b + disc.clamp_min(0).sqrt()) / a, torch.zeros_like(b)).clamp_min(0.0)


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
            ref_c2w=overrides.pop("ref_c2w", None) or ref.tolist(),
            ndc_scale=overrides.pop("ndc_scale", None) or [float(2 * k[0, 0] / w), float(2 * k[1, 1] / h)],
            ndc_near=near,
            **overrides,
        )
    if layout == "egocentric" and "centre" not in overrides and "radius" not in overrides:
        centre, radii = frustum_box(c2w, intrinsics, bounds, image_size)
        overrides = {"centre": centre.tolist(), "radius": radii.tolist(), "inner": 0.8, **overrides}
    return SceneSpace(kind="contract", **overrides)


def frustum_box(
    c2w: np.ndarray, intrinsics: np.ndarray, bounds: np.ndarray, image_size: tuple[int, int], margin: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and radii of an axis-aligned ellipsoid holding what every camera sees from its near
    bound out to its far bound, as a *distance* (plus ``margin``): where an egocentric video's
    content is. The ellipsoid has the proportions of that region's bounding box, scaled to
    contain it all.

    Distance rather than depth: the corners of a far *plane* lie 1/cos(half diagonal field of
    view) beyond the far depth, mostly empty space, better left to the contracted shell
    (bench/NOTES.md).
    """
    h, w = image_size
    gx, gy = np.meshgrid(np.linspace(0, w, 5), np.linspace(0, h, 5))  # the far cap bulges between corners
    pix = np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)], axis=1)
    pts = []
    for m, k, (near, far) in zip(c2w, intrinsics, bounds):
        d = np.linalg.solve(k, pix.T).T
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        for t in (near, far):
            pts.append(d * t @ m[:3, :3].T + m[:3, 3])
        pts.append(m[None, :3, 3])
    pts = np.concatenate(pts)
    lo, hi = pts.min(0), pts.max(0)
    centre = 0.5 * (lo + hi)
    radii = np.maximum(0.5 * (hi - lo), 1e-3 * float((hi - lo).max()))
    reach = float(np.linalg.norm((pts - centre) / radii, axis=1).max())
    return centre, radii * reach * (1.0 + margin)


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
