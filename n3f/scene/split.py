"""Default frame splits when an importer does not provide its own.

``val`` frames (every 8th, as in the NeRF/LLFF convention) are held out of
training for PSNR and feature-cosine checks. Retrieval evaluation follows the
paper: annotated frames are divided into disjoint query and gallery sets;
they may be trained on, as in N3F, since retrieval measures how consistent the
fused features are, not novel-view synthesis.
"""

from __future__ import annotations

import numpy as np

from n3f.scene_data import Annotations


def default_split(n_frames: int, annotations: Annotations | None, val_every: int = 8) -> dict[str, np.ndarray]:
    idx = np.arange(n_frames)
    val = idx[val_every // 2 :: val_every] if n_frames >= 2 * val_every else idx[:0]
    train = np.setdiff1d(idx, val)
    query = gallery = idx[:0]
    if annotations is not None and len(annotations.frame_indices) >= 2:
        annotated = np.sort(np.asarray(annotations.frame_indices))
        query = annotated[::5]
        gallery = np.setdiff1d(annotated, query)
    return {"train": train, "val": val, "query": query, "gallery": gallery}
