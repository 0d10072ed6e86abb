"""Camera refinement: learned corrections of the training cameras' poses.

SfM poses of amateur captures are often slightly off, and a field fitted to
slightly wrong rays blurs every surface to the average of the views that
disagree. Like nerfstudio's camera optimiser (and BARF / NeRF--), each training
frame gets a small rigid correction, optimised with the field from the RGB loss:
an axis-angle rotation ``w`` and a translation ``t``, in the camera's own frame,
composed on the right of the stored camera-to-world::

    c2w' = c2w @ [exp([w]x) | t]

so that a correction means the same thing (turn the camera, move it along its
own axes) whatever the camera's place in the scene. Frames that are not refined
(held-out ones, whose pixels never reach the loss) keep their stored pose: a
held-out view of a capture whose training poses moved as a whole is then
scored against slightly shifted renders, as in nerfstudio.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import Tensor, nn

from n3f.render.rays import RayBundle


def so3_exp(w: Tensor) -> Tensor:
    """Rotation matrices (N, 3, 3) of axis-angle vectors ``w`` (N, 3) (the matrix exponential of
    their skew matrices: exact, differentiable at 0)."""
    zero = torch.zeros_like(w[:, 0])
    skew = torch.stack(
        [zero, -w[:, 2], w[:, 1], w[:, 2], zero, -w[:, 0], -w[:, 1], w[:, 0], zero], dim=-1
    ).view(-1, 3, 3)
    return torch.linalg.matrix_exp(skew)


class PoseOffsets(nn.Module):
    """A rotation and translation correction per stored frame; only ``refined`` frames move."""

    def __init__(self, c2w: np.ndarray | Tensor, refined: np.ndarray | Tensor):
        super().__init__()
        c2w = torch.as_tensor(np.asarray(c2w), dtype=torch.float32)
        n = int(c2w.shape[0])
        mask = torch.zeros(n)
        mask[torch.as_tensor(np.asarray(refined), dtype=torch.long)] = 1.0
        self.offsets = nn.Parameter(torch.zeros(n, 6))
        # the stored rotations (camera to world), to turn camera-frame corrections into world rays
        self.register_buffer("rotations", c2w[:, :3, :3].clone())
        self.register_buffer("refined", mask)

    @property
    def n_frames(self) -> int:
        return int(self.offsets.shape[0])

    def _delta(self, frame: Tensor) -> tuple[Tensor, Tensor]:
        d = self.offsets[frame] * self.refined[frame, None]
        return so3_exp(d[:, :3]), d[:, 3:]

    def apply(self, rays: RayBundle) -> RayBundle:
        """The rays of the corrected cameras: a pixel's camera-frame direction ``dirs_cam`` is what
        it always was (the actor stream reads it); origins and world directions move."""
        rot_delta, t = self._delta(rays.frame)
        rot = self.rotations[rays.frame].to(rays.directions.dtype)
        directions = torch.einsum("rij,rjk,rk->ri", rot, rot_delta.to(rot.dtype), rays.dirs_cam)
        origins = rays.origins + torch.einsum("rij,rj->ri", rot, t.to(rot.dtype))
        return replace(rays, origins=origins, directions=directions / directions.norm(dim=-1, keepdim=True))

    @torch.no_grad()
    def corrected(self, c2w: np.ndarray, frame: int) -> np.ndarray:
        """Stored pose ``c2w`` (4, 4) of ``frame`` with its correction."""
        rot_delta, t = self._delta(torch.tensor([int(frame)], device=self.offsets.device))
        delta = np.eye(4)
        delta[:3, :3] = rot_delta[0].double().cpu().numpy()
        delta[:3, 3] = t[0].double().cpu().numpy()
        return np.asarray(c2w, np.float64) @ delta

    @torch.no_grad()
    def summary(self) -> dict[str, float]:
        """Mean and largest correction over the refined frames: rotation in degrees, translation in
        the scene's normalised units (for ``metrics.json``)."""
        keep = self.refined > 0
        if not bool(keep.any()):
            return {"frames": 0}
        d = self.offsets[keep]
        angle = torch.rad2deg(d[:, :3].norm(dim=-1))
        shift = d[:, 3:].norm(dim=-1)
        return {
            "frames": int(keep.sum()),
            "rotation_deg_mean": round(float(angle.mean()), 4), "rotation_deg_max": round(float(angle.max()), 4),
            "translation_mean": round(float(shift.mean()), 5), "translation_max": round(float(shift.max()), 5),
        }
