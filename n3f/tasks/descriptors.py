"""An object's feature descriptor and the distance of features to it (retrieval, selection, figures)."""

from __future__ import annotations

import numpy as np


def normalise(features: np.ndarray) -> np.ndarray:
    """Features scaled to unit L2 norm along the last axis (near-zero vectors stay near zero)."""
    norm = np.linalg.norm(features, axis=-1, keepdims=True)
    return features / np.maximum(norm, 1e-8)


def query_descriptor(features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the L2-normalised features inside ``mask``, itself L2-normalised."""
    return normalise(normalise(features)[mask].mean(axis=0))


def cosine_distance_map(features: np.ndarray, descriptor: np.ndarray) -> np.ndarray:
    """(H, W) cosine distance of every pixel's feature to the descriptor."""
    return 1.0 - normalise(features) @ descriptor
