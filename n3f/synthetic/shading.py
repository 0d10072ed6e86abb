"""Lighting: Lambert + Blinn-Phong under one sun, a hemispheric ambient and a sky.

The specular term is what makes appearance depend on the viewpoint, so a
radiance field has to model view dependence and 2D features of one object
differ a little between views, as on real captures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Lighting:
    """A directional sun (``sun_dir`` points towards the light) and a sky gradient."""

    sun_dir: tuple[float, float, float] = (0.45, -0.35, 0.82)
    sun_color: tuple[float, float, float] = (1.0, 0.97, 0.9)
    ambient: float = 0.32
    sky_horizon: tuple[float, float, float] = (0.86, 0.88, 0.92)
    sky_zenith: tuple[float, float, float] = (0.35, 0.55, 0.85)

    @property
    def sun(self) -> np.ndarray:
        d = np.asarray(self.sun_dir, float)
        return d / np.linalg.norm(d)

    def sky(self, dirs: np.ndarray) -> np.ndarray:
        """Background colour of rays that hit nothing: a vertical gradient."""
        w = np.clip(dirs[:, 2] * 1.5 + 0.3, 0.0, 1.0)[:, None]
        return np.asarray(self.sky_horizon) * (1 - w) + np.asarray(self.sky_zenith) * w

    def shade(
        self,
        albedo: np.ndarray,
        normals: np.ndarray,
        view_dirs: np.ndarray,
        lit: np.ndarray,
        specular: np.ndarray,
        shininess: np.ndarray,
    ) -> np.ndarray:
        """Linear RGB of surface points.

        ``view_dirs`` are the incoming ray directions; ``lit`` is 1 where the
        sun is visible (0 in shadow); ``specular``/``shininess`` are per point.
        """
        n = np.where((np.einsum("ij,ij->i", normals, view_dirs) > 0)[:, None], -normals, normals)
        sun = self.sun
        ndl = np.clip(np.einsum("ij,j->i", n, sun), 0.0, None)
        half = sun[None] - view_dirs
        half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-12)
        ndh = np.clip(np.einsum("ij,ij->i", n, half), 0.0, None)
        spec = specular * ndh**shininess * (ndl > 0)
        hemi = self.ambient * (0.65 + 0.35 * n[:, 2])
        sun_c = np.asarray(self.sun_color)
        direct = (lit * ndl)[:, None] * sun_c
        return albedo * (hemi[:, None] + 0.85 * direct) + (lit * spec)[:, None] * sun_c
