"""Scene normalisation: one similarity transform that puts every scene at a
comparable scale, so field resolutions, sample counts and learning rates in
``config.yaml`` mean the same thing for a synthetic toy and a real capture.

The transform is recorded in the store's attrs (``normalisation``) so that
anything in world units (e.g. analytic geometry of synthetic objects) can be
mapped with ``p_norm = (p_world - centre) * scale``.
"""

from __future__ import annotations

import numpy as np

from n3f.io.checks import closest_point_to_axes


def normalisation_for(c2w: np.ndarray, bounds: np.ndarray, layout: str) -> tuple[np.ndarray, float]:
    """Return (centre, scale) so that the scene content fits roughly in a unit sphere."""
    origins = c2w[:, :3, 3]
    if layout == "object":
        centre = closest_point_to_axes(c2w)
        radius = np.linalg.norm(origins - centre, axis=1).max()
    else:
        centre = origins.mean(axis=0)
        radius = np.linalg.norm(origins - centre, axis=1).max() + np.percentile(bounds[:, 1], 90)
    scale = 1.0 / max(float(radius), 1e-8)
    return centre, scale


def apply_normalisation(
    c2w: np.ndarray, bounds: np.ndarray, centre: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    out = c2w.copy()
    out[:, :3, 3] = (c2w[:, :3, 3] - centre) * scale
    return out, bounds * scale
