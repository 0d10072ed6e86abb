"""Reader of a teacher feature store, and the pixel-to-patch mapping contract.

Layout of ``results/<scene>/features/<teacher>.zarr``::

    features             float16 (N, h, w, C) patch-grid features after L2
                         normalisation and PCA, one chunk per frame
    pca/mean             float32 (D,)   mean of the L2-normalised teacher features
    pca/components       float32 (C, D) principal axes (rows)
    pca/explained_variance float32 (C,)
    attrs                format, teacher, weights_source, weights_sha256, layer,
                         patch_size, input_size [H_in, W_in], grid_size [h, w],
                         image_size [H, W] of the scene frames, channels, ...,
                         stats {finite, min, max, sum, count} of ``features``
                         as stored (see :func:`feature_stats`)

Features are kept at patch resolution (a 2,000-frame video stays in hundreds of
MB instead of tens of GB) and upsampled only where a training batch or an
evaluation samples them. The patch grid spans the whole frame: each frame is
resized (not cropped) to ``input_size``, a multiple of the patch size, so grid
cell (i, j) covers the pixel rectangle ``[j*W/w, (j+1)*W/w) x [i*H/h, (i+1)*H/h)``.

Why the statistics: a NaN or Inf in a store crashes distillation far from its
cause (a segfault, no message), and a store edited or damaged after it was
written (a lost chunk reads back as zeros) trains a field that looks right.
The writer records cheap statistics of the values as stored; opening a store
re-reads the features once (they are at patch resolution, so this is small)
and refuses non-finite values or values that no longer match them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import zarr

from n3f.errors import N3FInputError

log = logging.getLogger(__name__)

FORMAT = "n3f.features/1"
SAMPLING_MODES = ("nearest", "bilinear")
# Every float16 value is an integer multiple of 2**-24 below 2**16 in magnitude, so
# sums of the values scaled by 2**24 are exact int64 sums for up to 2**22 values.
_SUM_SCALE = float(2**24)
_SUM_BLOCK = 1 << 22
# Frames read per block when verifying (bounded memory for long videos).
_VERIFY_BYTES = 64 << 20


@dataclass
class FeatureStats:
    """Running statistics of float16 features: exact, and independent of the order frames come in.

    ``sum`` is kept as an exact integer in units of 2**-24 (the float16
    resolution), so the writer (frames in any order) and the reader (frames in
    order) get bit-identical results and any changed value changes it.
    """

    finite: bool = True
    min: float = float("inf")
    max: float = float("-inf")
    sum_units: int = 0
    count: int = 0

    def add(self, values: np.ndarray) -> None:
        """Add a float16 array; non-finite values only clear ``finite``."""
        values = np.asarray(values)
        if values.dtype != np.float16:
            raise TypeError(f"feature statistics are defined on float16 values, got {values.dtype}")
        self.count += int(values.size)
        flat = values.reshape(-1)
        for k in range(0, flat.size, _SUM_BLOCK):
            # float16 arithmetic is slow in numpy: work in float32, where the values and
            # their multiples by 2**24 are exact; the int64 sum of one block cannot overflow.
            part = flat[k : k + _SUM_BLOCK].astype(np.float32)
            if not np.isfinite(part).all():
                self.finite = False
                return
            self.min = min(self.min, float(part.min()))
            self.max = max(self.max, float(part.max()))
            part *= np.float32(_SUM_SCALE)
            self.sum_units += int(part.astype(np.int64).sum())

    def merge(self, other: "FeatureStats") -> None:
        self.finite &= other.finite
        self.min, self.max = min(self.min, other.min), max(self.max, other.max)
        self.sum_units += other.sum_units
        self.count += other.count

    def as_attrs(self) -> dict[str, Any]:
        """The ``stats`` attribute: ``sum`` is the float64 nearest the exact sum of the stored values."""
        if not self.finite:
            raise ValueError("non-finite features have no statistics to record")
        empty = self.count == 0
        return {
            "finite": True,
            "min": 0.0 if empty else self.min,
            "max": 0.0 if empty else self.max,
            "sum": self.sum_units / _SUM_SCALE,
            "count": int(self.count),
        }


def feature_stats(values: np.ndarray) -> FeatureStats:
    """Statistics of one float16 array (e.g. one frame's grid as stored)."""
    stats = FeatureStats()
    stats.add(values)
    return stats


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


def sample_grids(grids: torch.Tensor, index: torch.Tensor, xy: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """Sample many (h, w, C) grids at once: row r reads grid ``index[r]`` at ``xy[r]`` -> (R, C).

    ``grids`` is (N, h, w, C), ``index`` (R,) integers in [0, N), ``xy``
    continuous grid coordinates (R, 2) as :func:`pixel_to_grid` returns them.
    The values are those of :func:`sample_grid` on each row's own grid
    (``F.grid_sample``, border padding, ``align_corners=False``), computed with
    one gather over all grids instead of one ``grid_sample`` call per grid.

    Bit for bit: the CPU kernel of ``grid_sample`` is compiled with fused
    multiply-adds (one rounding for ``a * b + c``). The product of two float32
    values is exact in float64, so ``(a.double() * b + c).float()`` rounds once
    like the fused instruction; a build without them differs in the last bit.
    """
    if mode not in SAMPLING_MODES:
        raise N3FInputError(f"feature sampling mode '{mode}' unknown; use one of {SAMPLING_MODES}.")
    n, h, w, c = grids.shape
    flat = grids.reshape(n * h * w, c)
    xy = xy.float()
    base = index.long() * (h * w)
    # (index_select: several times faster than advanced indexing for a gather of rows)
    # grid_sample's CPU kernel: normalise to [-1, 1] (as sample_grid does), unnormalise
    # with align_corners=False, clip to the border
    gx = ((xy[:, 0] / w * 2 - 1 + 1).double() * (w / 2) - 0.5).float().clamp(0, w - 1)
    gy = ((xy[:, 1] / h * 2 - 1 + 1).double() * (h / 2) - 0.5).float().clamp(0, h - 1)
    if mode == "nearest":
        return flat.index_select(0, base + gy.round().long() * w + gx.round().long()).to(grids.dtype)
    x0, y0 = gx.floor(), gy.floor()
    we, ws = gx - x0, gy - y0  # distances to the west / north cell
    ee, nn = 1 - we, 1 - ws
    ix0, iy0 = x0.long(), y0.long()
    ix1, iy1 = (ix0 + 1).clamp(max=w - 1), (iy0 + 1).clamp(max=h - 1)  # their weights are 0 there
    # corners nw, ne, sw, se: one gather; products in float64 are exact
    rows = torch.cat([iy0 * w + ix0, iy0 * w + ix1, iy1 * w + ix0, iy1 * w + ix1]) + base.repeat(4)
    weights = torch.stack([nn * ee, nn * we, ws * ee, ws * we]).double()[..., None]
    terms = flat.index_select(0, rows).view(4, -1, c).double() * weights
    # the kernel's sum: nw*v + ne*v + sw*v + se*v, each addition fused with its product
    out = terms[0].float()
    for k in (1, 2, 3):
        out = (terms[k] + out.double()).float()
    return out.to(grids.dtype)


def upsample_grid(grid: torch.Tensor, size_hw: tuple[int, int], mode: str = "nearest") -> torch.Tensor:
    """Upsample a (h, w, C) grid to (H, W, C) the same way training samples it."""
    if mode not in SAMPLING_MODES:
        raise N3FInputError(f"feature sampling mode '{mode}' unknown; use one of {SAMPLING_MODES}.")
    x = grid.permute(2, 0, 1)[None].float()
    kw = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(x, size=tuple(size_hw), mode=mode, **kw)[0].permute(1, 2, 0)


class FeatureStore:
    """Lazy reader: one frame's grid is read from disk only when asked for.

    ``verify=True`` (the default, used by training and evaluation) checks the
    whole store once on opening, see :meth:`verify`; ``verify=False`` is for
    callers that only read attributes of a store they just checked.
    """

    def __init__(self, path: str | Path, verify: bool = True):
        self.path = Path(path)
        if not (self.path / "zarr.json").exists():
            raise N3FInputError(
                f"{self.path} is not a feature store; run the 'teacher_features' stage for this scene/teacher."
            )
        self._root = zarr.open_group(str(self.path), mode="r")
        if self._root.attrs.get("format") != FORMAT:
            raise N3FInputError(f"{self.path}: unknown feature store format {self._root.attrs.get('format')!r}.")
        self.verified = False
        if verify:
            self.verify()

    def _fix(self) -> str:
        return f"Delete {self.path} and rerun the 'teacher_features' stage for this scene/teacher."

    def verify(self) -> None:
        """Re-read every stored value once; refuse NaN/Inf or values that differ from the written statistics.

        Why: training on a non-finite target crashes without a message, and a
        damaged store (edited, a chunk lost, a bad disk) gives a result that
        looks right. Stores written before statistics existed (no ``stats``
        attribute) are checked for finiteness only. Runs once per instance.
        """
        if self.verified:
            return
        try:
            feats = self.features
            n = int(feats.shape[0])
            per_frame = max(1, int(np.prod(feats.shape[1:])) * feats.dtype.itemsize)
            block = max(1, _VERIFY_BYTES // per_frame)
            seen = FeatureStats()
            for start in range(0, n, block):
                values = np.asarray(feats[start : start + block])
                part = feature_stats(values.astype(np.float16, copy=False))
                if not part.finite:
                    bad = [start + k for k in range(len(values)) if not np.isfinite(values[k]).all()]
                    raise N3FInputError(
                        f"{self.path}: the features of frame(s) {bad[:5]} contain NaN/Inf; the store is damaged or "
                        f"was written by a broken teacher. {self._fix()}"
                    )
                seen.merge(part)
            for name in ("mean", "components"):
                if not np.isfinite(np.asarray(self._root["pca"][name][:])).all():
                    raise N3FInputError(f"{self.path}: pca/{name} contains NaN/Inf. {self._fix()}")
        except N3FInputError:
            raise
        except Exception as err:  # unreadable chunk, missing array: the store is damaged
            raise N3FInputError(
                f"{self.path}: cannot read the stored features ({type(err).__name__}: "
                f"{(str(err).strip().splitlines() or [''])[0][:200]}); the store is damaged. {self._fix()}"
            ) from None
        expected = self.attrs.get("stats")
        if expected is None:
            log.debug("%s has no statistics (written by an older n3f): checked finiteness only", self.path)
        else:
            got = seen.as_attrs()
            keys = ("count", "min", "max", "sum")
            if not isinstance(expected, dict) or any(expected.get(k) != got[k] for k in keys):
                want = {k: expected.get(k) for k in keys} if isinstance(expected, dict) else expected
                raise N3FInputError(
                    f"{self.path}: the stored features no longer match the statistics recorded when they were "
                    f"written (recorded {want}, read {dict((k, got[k]) for k in keys)}); the store was modified "
                    f"or damaged. {self._fix()}"
                )
        self.verified = True

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
