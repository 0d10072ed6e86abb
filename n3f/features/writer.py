"""Atomic writer of the feature store format read by :mod:`n3f.features.store`.

Everything goes into ``<path>.partial-<pid>`` and is renamed into place only
after the last frame and the attributes are written, so a job killed halfway
(pre-emption, time limit) leaves nothing that Snakemake or the reader would
take for a finished store. A Python exception removes the partial folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from n3f.features.pca import PCA
from n3f.features.store import FORMAT


class FeatureStoreWriter:
    """``with FeatureStoreWriter(...) as w: w.write(i, grid); w.finish(pca, attrs)``."""

    def __init__(self, path: str | Path, n_frames: int, grid_hw: tuple[int, int], channels: int):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + f".partial-{os.getpid()}")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.shape = (int(n_frames), int(grid_hw[0]), int(grid_hw[1]), int(channels))
        self._root = zarr.open_group(str(self.tmp), mode="w")
        self._features = self._root.create_array(
            "features", shape=self.shape, dtype="float16", chunks=(1, *self.shape[1:])
        )
        self._done = False

    def write(self, index: int, grid: np.ndarray) -> None:
        """One frame's (h, w, C) grid; values are stored as float16."""
        grid = np.asarray(grid)
        if grid.shape != self.shape[1:]:
            raise ValueError(f"frame {index}: grid {grid.shape} != store {self.shape[1:]}")
        self._features[index] = grid.astype(np.float16)

    def finish(self, pca: PCA, attrs: dict[str, Any]) -> Path:
        group = self._root.create_group("pca")
        group.create_array("mean", data=np.asarray(pca.mean, np.float32))
        group.create_array("components", data=np.asarray(pca.components, np.float32))
        group.create_array("explained_variance", data=np.asarray(pca.explained_variance, np.float32))
        self._root.attrs.update({"format": FORMAT, **attrs})
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)
        self._done = True
        return self.path

    def __enter__(self) -> "FeatureStoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._done and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
