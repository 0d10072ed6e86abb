"""Procedural solid textures evaluated in object-local coordinates.

Solid (3D) textures need no UV parameterisation of spheres, boxes or
cylinders, and, evaluated in the object's own frame, they move with the
object when it is picked up. The random parts come from an integer lattice
hash seeded per texture, so a scene is byte-identical for the same seed on
any machine, and rich enough (multi-octave noise, random coloured dots on the
table) for SIFT features to match between views of a rendered video.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

TEXTURE_KINDS = ("checker", "stripes", "dots", "noise")


@lru_cache(maxsize=64)
def _tables(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Permutation table (doubled, so sums need no wrap) and lattice values for ``seed``."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EED])
    perm = rng.permutation(256).astype(np.int64)
    return np.concatenate([perm, perm]), rng.random(256)


def lattice_hash(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """Uniform [0, 1) value per integer lattice point (Perlin-style permutation hash).

    Table look-ups are much cheaper in numpy than integer mixing; the lattice
    repeats every 256 cells, far beyond any texture's extent.
    """
    perm, values = _tables(int(seed))
    return values[perm[perm[perm[ix & 255] + (iy & 255)] + (iz & 255)]]


def value_noise(p: np.ndarray, seed: int) -> np.ndarray:
    """Smooth 3D value noise in [0, 1] at points ``p`` (R, 3)."""
    perm, values = _tables(int(seed))
    i = np.floor(p)
    f = p - i
    u = f * f * (3.0 - 2.0 * f)
    i = i.astype(np.int64) & 255
    wx = (1.0 - u[:, 0], u[:, 0])
    wy = (1.0 - u[:, 1], u[:, 1])
    wz = (1.0 - u[:, 2], u[:, 2])
    iz = (i[:, 2], (i[:, 2] + 1) & 255)
    out = np.zeros(len(p))
    for dx in (0, 1):
        px = perm[i[:, 0] + dx]
        for dy in (0, 1):
            pxy = perm[px + ((i[:, 1] + dy) & 255)]
            wxy = wx[dx] * wy[dy]
            for dz in (0, 1):
                out += wxy * wz[dz] * values[perm[pxy + iz[dz]]]
    return out


def fbm(p: np.ndarray, seed: int, octaves: int = 3) -> np.ndarray:
    """Fractal sum of value noise, normalised to [0, 1]."""
    total = np.zeros(len(p))
    amp, norm = 1.0, 0.0
    for k in range(octaves):
        total += amp * value_noise(p * (2.0**k), seed + 7919 * k)
        norm += amp
        amp *= 0.5
    return total / norm


@dataclass(frozen=True)
class Texture:
    """A two-colour procedural pattern plus a mild noise overlay.

    ``scale`` is the pattern period in world units; ``axis`` orients stripes;
    ``grain`` is the amplitude of the overlay noise that keeps flat faces from
    being featureless.
    """

    kind: str
    color_a: tuple[float, float, float]
    color_b: tuple[float, float, float]
    scale: float
    seed: int
    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)
    grain: float = 0.12

    def evaluate(self, p: np.ndarray) -> np.ndarray:
        """Albedo (R, 3) in [0, 1] at object-local points ``p`` (R, 3)."""
        a, b = np.asarray(self.color_a), np.asarray(self.color_b)
        q = p / self.scale
        if self.kind == "checker":
            w = (np.floor(q).astype(np.int64).sum(axis=1) % 2).astype(float)
        elif self.kind == "stripes":
            w = (np.sin(2 * np.pi * np.einsum("ij,j->i", q, np.asarray(self.axis))) > 0).astype(float)
        elif self.kind == "dots":
            cell = np.floor(q)
            w = (np.linalg.norm(q - cell - 0.5, axis=1) < 0.3).astype(float)
        elif self.kind == "noise":
            w = np.clip((fbm(q, self.seed, 3) - 0.3) * 2.5, 0.0, 1.0)
        elif self.kind == "plain":
            w = np.zeros(len(p))
        else:
            raise ValueError(f"unknown texture kind {self.kind!r}; one of {TEXTURE_KINDS}")
        albedo = a + w[:, None] * (b - a)
        if self.grain > 0:
            albedo = albedo * (1.0 + self.grain * (2.0 * value_noise(p * 9.0, self.seed + 17) - 1.0))[:, None]
        return np.clip(albedo, 0.0, 1.0)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


@dataclass(frozen=True)
class TableTexture:
    """The table top: wood-like noise with scattered coloured dots.

    The dots are irregular in size, position and colour (one per lattice cell,
    present in about half the cells), which gives feature matchers distinctive
    blobs everywhere instead of a repetitive pattern.
    """

    seed: int
    base_a: tuple[float, float, float] = (0.55, 0.42, 0.30)
    base_b: tuple[float, float, float] = (0.78, 0.66, 0.50)
    dot_spacing: float = 0.22
    speckle_scale: float = 0.045

    def evaluate(self, p: np.ndarray) -> np.ndarray:
        xy = p[:, :2]
        # Wood-ish: noise stretched along x, plus a fine grain.
        stretched = np.stack([xy[:, 0] * 1.5, xy[:, 1] * 6.0, np.zeros(len(p))], axis=1)
        w = fbm(stretched, self.seed, 3)
        a, b = np.asarray(self.base_a), np.asarray(self.base_b)
        albedo = a + np.clip((w - 0.25) * 2.0, 0, 1)[:, None] * (b - a)
        # Granite-like dark speckles: small, irregular, everywhere (corners for SIFT).
        flat = np.stack([xy[:, 0], xy[:, 1], np.full(len(p), 0.5)], axis=1) / self.speckle_scale
        speck = np.clip((value_noise(flat, self.seed + 5) - 0.68) * 6.0, 0.0, 1.0)
        albedo = albedo * (1.0 - 0.55 * speck)[:, None]
        q = xy / self.dot_spacing
        cell = np.floor(q).astype(np.int64)
        zero = np.zeros_like(cell[:, 0])
        h = [lattice_hash(cell[:, 0], cell[:, 1], zero + k, self.seed + 101) for k in range(6)]
        centre = cell + 0.25 + 0.5 * np.stack([h[0], h[1]], axis=1)
        radius = 0.07 + 0.18 * h[2]
        inside = (np.linalg.norm(q - centre, axis=1) < radius) & (h[3] < 0.6)
        dot_colour = np.stack([h[4], h[5], 1.0 - 0.5 * (h[4] + h[5])], axis=1)
        dot_colour = 0.1 + 0.85 * dot_colour
        return np.where(inside[:, None], dot_colour, albedo)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
