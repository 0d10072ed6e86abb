"""Atomic writer of the feature store format read by :mod:`n3f.features.store`.

Everything goes into ``<path>.partial-<pid>`` and is renamed into place only
after the last frame and the attributes are written, so a job killed halfway
(pre-emption, time limit) leaves nothing that Snakemake or the reader would
take for a finished store. A Python exception removes the partial folder; a
folder left by a SIGKILLed run is removed by the next run (as
:func:`n3f.atomic.atomic_dir` does).

Each frame is checked *after* the cast to float16 (a finite float32 above
65504 becomes Inf there) and its statistics are accumulated, so the reader can
later tell a damaged store from the one written here.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from n3f.atomic import remove_stale_partials
from n3f.errors import N3FInputError
from n3f.features.pca import PCA
from n3f.features.store import FORMAT, FeatureStats, feature_stats

log = logging.getLogger(__name__)


class FeatureStoreWriter:
    """``with FeatureStoreWriter(...) as w: w.write(i, grid); w.finish(pca, attrs)``.

    ``source`` names what produced the features (e.g. the teacher and its
    weights) in the error raised for a non-finite frame.
    """

    def __init__(self, path: str | Path, n_frames: int, grid_hw: tuple[int, int], channels: int, *, source: str = ""):
        self.path = Path(path)
        self.source = source
        self.tmp = self.path.with_name(self.path.name + f".partial-{os.getpid()}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.path)  # left by a killed earlier run of this stage
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.shape = (int(n_frames), int(grid_hw[0]), int(grid_hw[1]), int(channels))
        self._stats: dict[int, FeatureStats] = {}
        self._done = False
        try:
            self._root = zarr.open_group(str(self.tmp), mode="w")
            self._features = self._root.create_array(
                "features", shape=self.shape, dtype="float16", chunks=(1, *self.shape[1:])
            )
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def write(self, index: int, grid: np.ndarray, name: str | None = None) -> None:
        """One frame's (h, w, C) grid; values are stored as float16 and must stay finite.

        ``name`` (the frame's file name) is used in the error message.
        """
        grid = np.asarray(grid)
        if grid.shape != self.shape[1:]:
            raise ValueError(f"frame {index}: grid {grid.shape} != store {self.shape[1:]}")
        if not 0 <= index < self.shape[0]:
            raise IndexError(f"frame {index} out of range for a store of {self.shape[0]} frames")
        with np.errstate(over="ignore"):
            stored = grid.astype(np.float16)
        stats = feature_stats(stored)
        if not stats.finite:
            what = f"frame {name} (index {index})" if name else f"frame {index}"
            by = f" from {self.source}" if self.source else ""
            why = (
                "values beyond the float16 range (|x| > 65504)"
                if np.isfinite(grid).all()
                else "NaN/Inf values"
            )
            raise N3FInputError(
                f"the features of {what}{by} have {why}; not writing {self.path}. The teacher weights or the "
                "input frame are broken (re-download the checkpoint, check the frame, or try another teacher)."
            )
        self._features[index] = stored
        self._stats[index] = stats

    def finish(self, pca: PCA, attrs: dict[str, Any]) -> Path:
        """Write the PCA and the attributes (with the statistics), then move the store into place."""
        missing = [i for i in range(self.shape[0]) if i not in self._stats]
        if missing:
            raise ValueError(f"{self.path}: frames {missing[:5]} ({len(missing)} in all) were never written")
        total = FeatureStats()
        for stats in self._stats.values():
            total.merge(stats)
        group = self._root.create_group("pca")
        group.create_array("mean", data=np.asarray(pca.mean, np.float32))
        group.create_array("components", data=np.asarray(pca.components, np.float32))
        group.create_array("explained_variance", data=np.asarray(pca.explained_variance, np.float32))
        self._root.attrs.update({"format": FORMAT, **attrs, "stats": total.as_attrs()})
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)
        self._done = True
        log.debug("wrote %s: %s", self.path, total.as_attrs())
        return self.path

    def __enter__(self) -> "FeatureStoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._done and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
