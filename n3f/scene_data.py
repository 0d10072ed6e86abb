"""In-memory description of a scene: what every importer produces and the store writes.

Importers (:mod:`n3f.io`) and the synthetic renderer (:mod:`n3f.synthetic`)
return a :class:`SceneData`; :func:`n3f.scene.store.write_scene` validates it
and writes the canonical zarr store. This module sits below all three and
imports only numpy, so a producer never imports the store (or another producer).

Conventions (also documented in ``docs/scene_store.md``):

* ``c2w`` are camera-to-world 4x4 matrices in the **OpenCV camera convention**:
  camera x points right, y down, z forward (the viewing direction). This is
  COLMAP's convention and the one in which pixel (u, v) = K @ (x/z, y/z, 1).
* ``intrinsics`` are 3x3 pinhole matrices for the stored (undistorted,
  possibly resized) frames, pixel centres at integer + 0.5.
* ``bounds`` are per-frame near/far depths along the optical axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np


class FrameSequence(Protocol):
    """Indexable frames that may be loaded lazily (``uint8`` H x W x 3)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> np.ndarray: ...


@dataclass
class Annotations:
    """Per-object masks for a subset of frames.

    ``modal`` holds what is visible; ``amodal`` the full extent of each object
    including occluded parts, where known (synthetic scenes). A mask that is
    all False means the object is not visible / not present in that frame.
    """

    frame_indices: np.ndarray  # (M,) indices into the scene's frames
    object_names: list[str]
    modal: np.ndarray  # (M, K, H, W) bool
    amodal: np.ndarray | None = None  # (M, K, H, W) bool


@dataclass
class SceneData:
    """Everything an importer knows about a scene, before normalisation."""

    name: str
    source: str
    frames: FrameSequence | Sequence[np.ndarray] | np.ndarray
    frame_names: list[str]
    c2w: np.ndarray  # (N, 4, 4) OpenCV convention, world units
    intrinsics: np.ndarray  # (N, 3, 3)
    bounds: np.ndarray  # (N, 2) near, far in world units
    layout: str = "object"  # "forward" (LLFF-like), "object" (360 around), "egocentric"
    timestamps: np.ndarray | None = None  # (N,) seconds or frame index
    split: dict[str, np.ndarray] | None = None  # train/val/query/gallery indices
    annotations: Annotations | None = None
    dynamic: bool = False  # True: objects move, a time code is meaningful
    attrs: dict[str, Any] = field(default_factory=dict)  # extra metadata (geometry...)


LAYOUTS = ("forward", "object", "egocentric")
SPLIT_NAMES = ("train", "val", "query", "gallery")
