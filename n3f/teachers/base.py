"""The interface every teacher offers to the extraction stage.

A teacher maps a batch of frames, already resized to a multiple of its patch
size, to one feature vector per patch. Keeping normalisation and device
handling inside the teacher lets :mod:`n3f.features.extract` treat learned and
handcrafted teachers alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

# ImageNet statistics: every ViT in the registry was trained with them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class TeacherInfo:
    """Provenance written into the feature store's attributes."""

    name: str
    patch_size: int
    dim: int
    weights_source: str
    weights_sha256: str
    layer: int | None
    extra: dict[str, Any] = field(default_factory=dict)


class Teacher:
    """Base class: ``teacher(frames)`` -> (B, H/p, W/p, D) float32 tensor on ``device``.

    Outputs stay on the teacher's device so normalisation and PCA run there
    too and only the reduced channels travel to the host.
    """

    info: TeacherInfo
    device: torch.device = torch.device("cpu")

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def patch_size(self) -> int:
        return self.info.patch_size

    @property
    def dim(self) -> int:
        return self.info.dim

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        """``frames``: uint8 (B, H, W, 3) RGB with H, W multiples of ``patch_size``."""
        raise NotImplementedError
