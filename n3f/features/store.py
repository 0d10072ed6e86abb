"""Reader of a teacher feature store, and the pixel-to-patch mapping contract.

Layout of ``results/<scene>/features/<teacher>.zarr``::

    features             float16 (N, h, w, C) patch-grid features after L2
                         normalisation and PCA, one chunk per frame
    pca/mean             float32 (D,)   mean of the L2-normalised teacher features
    pca/components       float32 (C, D) principal axes (rows)
    pca/explained_variance float32 (C,)
    attrs                format, teacher, weights_source, weights_sha256, layer,
                         patch_size, input_size [H_in, W_in], grid_size [h, w],
                         image_size [H, W] of the scene frames, channels, ...

Features are kept at patch resolution (a 2,000-frame video stays in hundreds of
MB instead of tens of GB) and upsampled only where a training batch or an
evaluation samples them. The patch grid spans the whole frame: each frame is
resized (not cropped) to ``input_size``, a multiple of the patch size, so grid
cell (i, j) covers the pixel rectangle ``[j*W/w, (j+1)*W/w) x [i*H/h, (i+1)*H/h)``.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import zarr

from n3f.errors import N3FInputError

FORMAT = "n3f.features/1"
SAMPLING_MODES = ("nearest", "bilinear")


def pixel_to_grid(uv: np.ndarray, image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> np.ndarray:
    """Continuous grid coordinates (x, y), cell centres at integer + 0.5, of pixel positions.

    ``uv`` are continuous pixel coordinates (pixel centres at integer + 0.5).
    """
    (h_img, w_img), (h, w) = image_hw, grid_hw
    uv = np.asarray(uv, dtype=np.float64)
    return np.stack([uv[..., 0] * (w / w_img), uv[..., 1] * (h / h_img)], axis=-1)


def sample_grid(grid: torch.Tensor, xy: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """Sample a (h, w, C) grid at continuous grid coordinates ``xy`` (R, 2) -> (R, C)."""
    if mode not in SAMPLING_MODES:
        raise N3FInputError(f"feature sampling mode '{mode}' unknown; use one of {SAMPLING_MODES}.")
    h, w, _ = grid.shape
    norm = torch.stack([xy[:, 0] / w * 2 - 1, xy[:, 1] / h * 2 - 1], dim=-1).to(grid.dtype)
    out = F.grid_sample(
        grid.permute(2, 0, 1)[None],
        norm[None, None],
        mode=mode,
        padding_mode="border",
        align_corners=False,
    )
    return out[0, :, 0].T


def upsample_grid(grid: torch.Tensor, size_hw: tuple[int, int], mode: str = "nearest") -> torch.Tensor:
    """Upsample a (h, w, C) grid to (H, W, C) the same way training samples it."""
    if mode not in SAMPLING_MODES:
        raise N3FInputError(f"feature sampling mode '{mode}' unknown; use one of {SAMPLING_MODES}.")
    x = grid.permute(2, 0, 1)[None].float()
    kw = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(x, size=tuple(size_hw), mode=mode, **kw)[0].permute(1, 2, 0)


class FeatureStore:
    """Lazy reader: one frame's grid is read from disk only when asked for."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "zarr.json").exists():
            raise N3FInputError(
                f"{self.path} is not a feature store; run the 'teacher_features' stage for this scene/teacher."
            )
        self._root = zarr.open_group(str(self.path), mode="r")
        if self._root.attrs.get("format") != FORMAT:
            raise N3FInputError(f"{self.path}: unknown feature store format {self._root.attrs.get('format')!r}.")

    @cached_property
    def attrs(self) -> dict[str, Any]:
        return dict(self._root.attrs)

    @property
    def features(self) -> zarr.Array:
        return self._root["features"]

    @property
    def n_frames(self) -> int:
        return int(self.features.shape[0])

    @property
    def grid_size(self) -> tuple[int, int]:
        return int(self.features.shape[1]), int(self.features.shape[2])

    @property
    def channels(self) -> int:
        return int(self.features.shape[3])

    @property
    def image_size(self) -> tuple[int, int]:
        h, w = self.attrs["image_size"]
        return int(h), int(w)

    def grid(self, frame: int) -> np.ndarray:
        """(h, w, C) float32 features of one frame."""
        return np.asarray(self.features[frame], dtype=np.float32)

    def upsampled(self, frame: int, size_hw: tuple[int, int] | None = None, mode: str = "nearest") -> np.ndarray:
        """(H, W, C) float32 features at frame (or given) resolution."""
        grid = torch.from_numpy(self.grid(frame))
        return upsample_grid(grid, size_hw or self.image_size, mode).numpy()

    @cached_property
    def pca_mean(self) -> np.ndarray:
        return np.asarray(self._root["pca"]["mean"][:])

    @cached_property
    def pca_components(self) -> np.ndarray:
        return np.asarray(self._root["pca"]["components"][:])
