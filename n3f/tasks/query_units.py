"""The queries a scene is scored with: each object's mask in a query frame, and small patches inside it.

A *mask* query is the paper's (N3F Sec. 4.1): the mean feature of the
object's whole mask. A *patch* query is its Fig. 7 use: a small square of
``patch_cells`` x ``patch_cells`` teacher patches inside the object, where a
2D descriptor sees only part of the object. Patches are placed
deterministically: among the pixels where the square fits inside the mask,
the first is the one farthest from the mask's boundary, each next one the
farthest from those already placed (farthest-point sampling), so they spread
over the object. An object too thin for a whole square gets one square at its
deepest pixel, clipped to the frame and to the object.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

QUERY_KINDS = ("mask", "patch")


@dataclass(frozen=True)
class QueryUnit:
    """One query: an object's region in one frame."""

    object: str
    frame: int
    kind: str
    """``mask`` or ``patch``."""
    index: int
    """The patch's number within its object and frame (0 for a mask query)."""
    region: np.ndarray
    """(H, W) bool pixels the descriptor averages."""

    @property
    def key(self) -> str:
        """Identifies the unit across methods (the bootstrap resamples these)."""
        return f"{self.object}/{self.frame}/{self.kind}/{self.index}"


def place_patches(mask: np.ndarray, side: int, count: int) -> list[np.ndarray]:
    """Up to ``count`` (H, W) bool squares of ``side`` pixels inside ``mask`` (module docstring)."""
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    side = max(1, min(int(side), h, w))
    if not mask.any() or count < 1:
        return []
    # distance to the nearest non-object pixel (the frame's border counts as outside)
    padded = np.pad(mask.astype(np.uint8), 1)
    depth = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    # top-left corners whose whole square lies inside the mask
    fits = cv2.erode(mask.astype(np.uint8), np.ones((side, side), np.uint8), anchor=(0, 0),
                     borderType=cv2.BORDER_CONSTANT, borderValue=0)[: h - side + 1, : w - side + 1].astype(bool)
    corners = np.argwhere(fits)
    squares = []
    if len(corners) == 0:
        y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
        y0, x0 = int(np.clip(y - side // 2, 0, h - side)), int(np.clip(x - side // 2, 0, w - side))
        sq = np.zeros_like(mask)
        sq[y0:y0 + side, x0:x0 + side] = True
        return [sq & mask]
    centres = corners + (side - 1) / 2.0
    cy = np.clip(np.round(centres[:, 0]).astype(int), 0, h - 1)
    cx = np.clip(np.round(centres[:, 1]).astype(int), 0, w - 1)
    chosen = [int(np.argmax(depth[cy, cx]))]
    nearest = np.linalg.norm(centres - centres[chosen[0]], axis=1)
    while len(chosen) < min(count, len(corners)):
        nxt = int(np.argmax(nearest))
        if nearest[nxt] <= 0:
            break
        chosen.append(nxt)
        nearest = np.minimum(nearest, np.linalg.norm(centres - centres[nxt], axis=1))
    for i in chosen:
        y0, x0 = corners[i]
        sq = np.zeros_like(mask)
        sq[y0:y0 + side, x0:x0 + side] = True
        squares.append(sq)
    return squares


def query_units(obj: str, frame: int, mask: np.ndarray, *, patch_side: int, patches: int) -> list[QueryUnit]:
    """The mask query and the patch queries of one object in one query frame."""
    units = [QueryUnit(obj, frame, "mask", 0, np.asarray(mask, bool))]
    for i, sq in enumerate(place_patches(mask, patch_side, patches)):
        units.append(QueryUnit(obj, frame, "patch", i, sq))
    return units
