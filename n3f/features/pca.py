"""Per-patch L2 normalisation and a scene-wide PCA fitted in bounded memory.

Why PCA: teacher features have 384-768 channels; the student only needs the
directions that vary within the scene, and 64 float16 channels per patch keep
a long video's store small. Why one PCA per scene (not per frame): every frame
must be projected onto the *same* axes, or the student would be asked to
reproduce features that change meaning from frame to frame.

The fit accumulates the mean and the second-moment matrix (D x D, float64)
over every patch it is shown, so memory is O(D^2) whatever the number of
frames, and the result is the exact PCA of those patches (eigendecomposition
of their covariance), not an approximation from a subsample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from n3f.errors import N3FInputError


def l2_normalise(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit-length feature vectors along the last axis (zero vectors stay zero)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def check_finite(x: torch.Tensor | np.ndarray, what: str) -> None:
    """Refuse NaN/Inf: one bad patch would poison the PCA and every projected frame."""
    ok = torch.isfinite(x).all() if isinstance(x, torch.Tensor) else np.isfinite(x).all()
    if not bool(ok):
        raise N3FInputError(
            f"{what} contains NaN/Inf; the teacher weights or the input frame are broken "
            "(re-download the checkpoint, check the frame, or try another teacher)."
        )


@dataclass
class PCA:
    mean: np.ndarray  # (D,) float32
    components: np.ndarray  # (C, D) float32, orthonormal rows
    explained_variance: np.ndarray  # (C,) float32
    total_variance: float
    n_samples: int

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., C)."""
        mean = torch.as_tensor(self.mean, device=x.device)
        comps = torch.as_tensor(self.components, device=x.device)
        return (x.float() - mean) @ comps.T

    def reconstruct(self, y: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., D), the inverse on the principal subspace."""
        mean = torch.as_tensor(self.mean, device=y.device)
        comps = torch.as_tensor(self.components, device=y.device)
        return y.float() @ comps + mean


class StreamingPCA:
    """Accumulate first and second moments batch by batch, then diagonalise."""

    def __init__(self, dim: int):
        self.dim = dim
        self.n = 0
        self._sum: torch.Tensor | None = None
        self._outer: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> None:
        """``x``: (..., D) features; moments accumulate in float64 on ``x``'s device
        (on a GPU the D x D update would otherwise dominate the fit pass)."""
        x = x.reshape(-1, self.dim).to(torch.float64)
        if self._sum is None:
            self._sum = torch.zeros(self.dim, dtype=torch.float64, device=x.device)
            self._outer = torch.zeros(self.dim, self.dim, dtype=torch.float64, device=x.device)
        x = x.to(self._sum.device)
        self.n += x.shape[0]
        self._sum += x.sum(0)
        self._outer += x.T @ x

    def fit(self, n_components: int) -> PCA:
        if not 0 < n_components <= self.dim:
            raise N3FInputError(
                f"cannot keep {n_components} PCA components of {self.dim}-dimensional teacher features; "
                f"choose 1..{self.dim}."
            )
        if self.n < 2:
            raise N3FInputError("PCA needs at least two feature vectors; the scene has too few patches.")
        mean = self._sum.cpu() / self.n
        cov = (self._outer.cpu() - self.n * torch.outer(mean, mean)) / (self.n - 1)
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        order = torch.argsort(evals, descending=True)[:n_components]
        comps = evecs[:, order].T.clone()
        # Deterministic signs (as sklearn's svd_flip): largest |entry| of each axis positive.
        big = comps.abs().argmax(dim=1)
        comps *= torch.sign(comps[torch.arange(len(comps)), big])[:, None]
        return PCA(
            mean=mean.float().numpy(),
            components=comps.float().numpy(),
            explained_variance=evals[order].clamp_min(0).float().numpy(),
            total_variance=float(evals.clamp_min(0).sum()),
            n_samples=self.n,
        )
