"""Camera paths for the three layouts, in OpenCV convention (x right, y down, z forward).

* ``object``: an orbit around the table with a gently varying elevation, the
  walk-around capture of object-centric datasets.
* ``forward``: an LLFF-like spiral of positions in a small patch, every camera
  looking at the scene centre, so viewing directions barely change.
* ``egocentric``: a head-mounted path above one side of the table: a slow
  sweep of the gaze plus sums of sinusoids for hand-held jitter and roll.

World z is up and the table is the plane z = 0.
"""

from __future__ import annotations

import numpy as np


def intrinsics(width: int, height: int, fov_x_deg: float) -> np.ndarray:
    """Pinhole matrix with square pixels and the principal point at the image centre."""
    f = 0.5 * width / np.tan(np.radians(fov_x_deg) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def look_at(
    eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0]), roll: float = 0.0
) -> np.ndarray:
    """Camera-to-world matrix of a camera at ``eye`` looking at ``target``."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)  # right = forward x up (y is down)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    if roll:
        c, s = np.cos(roll), np.sin(roll)
        x, y = c * x + s * y, -s * x + c * y
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def orbit_path(
    n: int, radius: float, target: np.ndarray, phase: float, elevation_deg: tuple[float, float] = (24.0, 40.0)
) -> np.ndarray:
    """``n`` cameras on one loop around ``target``, elevation oscillating in the given range."""
    lo, hi = elevation_deg
    out = []
    for i in range(n):
        s = i / n
        az = phase + 2 * np.pi * s
        el = np.radians(lo + (hi - lo) * 0.5 * (1 - np.cos(4 * np.pi * s)))
        eye = target + radius * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        out.append(look_at(eye, target))
    return np.stack(out)


def forward_path(
    n: int, radius: float, target: np.ndarray, phase: float, spread: tuple[float, float] = (0.6, 0.35)
) -> np.ndarray:
    """LLFF-like spiral of ``n`` cameras in a patch facing ``target`` from one side."""
    el = np.radians(32.0)
    base_eye = target + radius * np.array([np.cos(el) * np.cos(phase), np.cos(el) * np.sin(phase), np.sin(el)])
    base = look_at(base_eye, target)
    out = []
    for i in range(n):
        s = i / max(n - 1, 1)
        ang = 2 * np.pi * 2 * s
        r = 0.35 + 0.65 * s
        offset = base[:3, 0] * spread[0] * r * np.cos(ang) + base[:3, 1] * spread[1] * r * np.sin(ang)
        offset += base[:3, 2] * 0.15 * np.sin(2 * np.pi * s)
        out.append(look_at(base_eye + offset, target))
    return np.stack(out)


def egocentric_path(n: int, rng: np.random.Generator, table_half: float) -> np.ndarray:
    """Smooth hand-held head path above the near edge of the table, gaze sweeping it."""
    t = np.arange(n) / max(n, 1)
    ph = rng.uniform(0, 2 * np.pi, size=12)
    out = []
    for i in range(n):
        s = t[i]
        eye = np.array(
            [
                0.55 * np.sin(2 * np.pi * 0.5 * s + ph[0]) + 0.06 * np.sin(2 * np.pi * 3.1 * s + ph[1]),
                -0.9 * table_half
                + 0.12 * np.sin(2 * np.pi * 1.3 * s + ph[2])
                + 0.04 * np.sin(2 * np.pi * 4.3 * s + ph[3]),
                1.6 + 0.08 * np.sin(2 * np.pi * 1.7 * s + ph[4]) + 0.03 * np.sin(2 * np.pi * 5.2 * s + ph[5]),
            ]
        )
        target = np.array(
            [
                0.7 * np.sin(2 * np.pi * 0.7 * s + ph[6]),
                0.15 + 0.3 * np.sin(2 * np.pi * 0.9 * s + ph[7]),
                0.1,
            ]
        )
        roll = np.radians(3.0) * np.sin(2 * np.pi * 2.3 * s + ph[8])
        out.append(look_at(eye, target, roll=roll))
    return np.stack(out)
