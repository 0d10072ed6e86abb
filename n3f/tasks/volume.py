"""An object's enclosed volume: the dense cells that its matching samples surround.

A sample's feature is trained only through its rendering weight, so the inside
of a solid object, just behind the surface that takes the weight, keeps
features nothing trained. Often they do not match the object's descriptor.
Removing only the matching samples then leaves a skin of the object standing
once its surface is gone. On toy_static, 0.1-0.4 of a ray's opacity stayed
inside the removed objects, mostly within 0.02 units of their surface
(``bench/NOTES.md``, session 16). Compact geometry (the distortion loss) makes
it worse.

So the selection also takes every dense sample in an *enclosed* cell: a grid of
cells over the object's region (:class:`~n3f.tasks.selection.Region`), where a
cell is enclosed when matching cells lie beyond it in at least
:data:`MIN_SIDES` of the six axis directions. The rule is five sides, not six,
because the face an object rests on is never seen, so its features are not the
object's. The floor around the object is reached from one or two sides only,
so it stays.

One known cost is the layer of cells where the object meets what it stands on.
The object's side faces enclose that layer from four sides and the object from
above, so removal also takes the floor in that layer, one cell thick
(:data:`VOLUME_CELL`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

log = logging.getLogger(__name__)

MIN_SIDES = 5  # of the 6 axis directions in which matching cells must lie beyond a cell: all but the unseen resting face
VOLUME_CELL = 1 / 16  # cell size, x the region's margin: 0.0094 normalised units at the default locality 0.15
MAX_CELLS = 2**21  # cells of the grid's box at most; a bigger region gets coarser cells (its field query stays ~2M points)
QUERY_CHUNK = 65536  # field points per query pass


def enclosing_sides(matched: np.ndarray) -> np.ndarray:
    """(X, Y, Z) bool -> (X, Y, Z) int8: in how many of the six axis directions a matched cell lies
    strictly beyond each cell, within the grid."""
    matched = np.asarray(matched, bool)
    sides = np.zeros(matched.shape, np.int8)
    for axis in range(3):
        m = np.moveaxis(matched, axis, 0)
        s = np.moveaxis(sides, axis, 0)  # a view: adding to it adds to ``sides``
        below = np.logical_or.accumulate(m, axis=0)  # a match at this index or a lower one
        above = np.logical_or.accumulate(m[::-1], axis=0)[::-1]  # at this index or a higher one
        s[1:] += below[:-1]
        s[:-1] += above[1:]
    return sides


@dataclass
class EnclosedVolume:
    """Cells of a box in normalised coordinates, each enclosed by an object's matching cells or not."""

    lo: np.ndarray  # (3,) corner of the first cell
    cell: float  # cell size (normalised units)
    enclosed: np.ndarray  # (X, Y, Z) bool
    _on_device: dict = field(default_factory=dict, repr=False, compare=False)

    def contains(self, world: torch.Tensor) -> torch.Tensor:
        """(..., 3) normalised points -> (...) bool: the point lies in an enclosed cell."""
        flat = world.reshape(-1, 3)
        key = (flat.device, flat.dtype)
        if key not in self._on_device:  # called for every chunk of samples a render takes: move the grid once
            self._on_device[key] = (torch.as_tensor(self.enclosed, device=flat.device),
                                    torch.tensor(self.enclosed.shape, device=flat.device),
                                    torch.as_tensor(self.lo, dtype=flat.dtype, device=flat.device))
        enclosed, dims, lo = self._on_device[key]
        ijk = torch.floor((flat - lo) / self.cell).long()
        inside = ((ijk >= 0) & (ijk < dims)).all(-1)
        out = torch.zeros(len(flat), dtype=torch.bool, device=flat.device)
        idx = ijk[inside]
        out[inside] = enclosed[idx[:, 0], idx[:, 1], idx[:, 2]]
        return out.reshape(world.shape[:-1])

    def summary(self) -> dict[str, Any]:
        """What the task JSONs record about the volume."""
        return {"cell": round(self.cell, 5), "grid": list(self.enclosed.shape), "min_sides": MIN_SIDES,
                "enclosed_cells": int(self.enclosed.sum())}


def enclosed_volume(renderer: Any, region: Any, frame: int,
                    matches: Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor],
                    density_threshold: float) -> EnclosedVolume:
    """The enclosed cells of ``region`` (a :class:`~n3f.tasks.selection.Region`) in the field of ``renderer``.

    The field is queried at the centre of every cell in the region (at ``frame``'s
    codes); ``matches(points, outputs)`` says which match the object (it is given region points only, so it
    need not test the region again). A cell is enclosed when it is dense
    (above ``density_threshold``) and matching cells lie beyond it on :data:`MIN_SIDES` sides.
    """
    pts = region.points
    lo = pts.min(0) - region.margin
    hi = pts.max(0) + region.margin
    cell = VOLUME_CELL * region.margin
    while np.prod(np.ceil((hi - lo) / cell)) > MAX_CELLS:
        cell *= 1.25
    dims = np.maximum(np.ceil((hi - lo) / cell).astype(int), 1)
    axes = [lo[a] + (np.arange(dims[a]) + 0.5) * cell for a in range(3)]
    centres = torch.as_tensor(np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3), dtype=torch.float32)
    matched = torch.zeros(len(centres), dtype=torch.bool)
    dense = torch.zeros(len(centres), dtype=torch.bool)
    for i in range(0, len(centres), QUERY_CHUNK):
        c = centres[i : i + QUERY_CHUNK]
        near = region.contains(c)
        if not near.any():
            continue
        idx = near.nonzero().squeeze(1) + i
        out = {k: v.cpu() for k, v in renderer.query(centres[idx], frame=frame, outputs=("features",)).items()}
        matched[idx] = matches(centres[idx], out).cpu()
        dense[idx] = out["density"].reshape(-1) > density_threshold
    matched_grid = matched.numpy().reshape(*dims)
    enclosed = dense.numpy().reshape(*dims) & (enclosing_sides(matched_grid) >= MIN_SIDES)
    log.info("enclosed volume: %d of %d cells (cell %.4f, %d matching)", int(enclosed.sum()), int(np.prod(dims)),
             cell, int(matched_grid.sum()))
    return EnclosedVolume(lo.astype(np.float32), float(cell), enclosed)
