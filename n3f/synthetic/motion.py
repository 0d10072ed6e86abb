"""Time-varying parts of dynamic scenes: moved objects and the camera-anchored actor.

Both are pure functions of a (possibly fractional) frame time, so any frame,
or any novel camera at any time, can be re-rendered and its ground truth
recomputed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from n3f.synthetic.geometry import Capsule


@dataclass(frozen=True)
class KeyframeMotion:
    """Piecewise-linear translation of an object: ``offsets[i]`` at ``times[i]``.

    Before the first and after the last keyframe the object rests at the
    end offsets. Translation only: an object keeps its orientation, so its
    texture and analytic shape stay trivially comparable between frames.
    """

    times: tuple[float, ...]
    offsets: tuple[tuple[float, float, float], ...]
    kind: str = "slide"  # "slide" or "pick_and_place", for humans reading the JSON

    def offset(self, t: float) -> np.ndarray:
        times = np.asarray(self.times, float)
        offs = np.asarray(self.offsets, float)
        return np.array([np.interp(t, times, offs[:, k]) for k in range(3)])

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "piecewise_linear_translation",
            "kind": self.kind,
            "times": [float(t) for t in self.times],
            "offsets": [[float(x) for x in o] for o in self.offsets],
        }


@dataclass(frozen=True)
class Actor:
    """An arm-like capsule fixed in camera coordinates (the egocentric "hand").

    Present during ``intervals`` (inclusive frame-time ranges); it slides in
    from below the frame over ``enter`` frames, slides out again at the end,
    and sways sinusoidally in between, so it occludes objects without moving
    with the world.
    """

    p0: tuple[float, float, float]  # shoulder end, below the image (camera coords)
    p1: tuple[float, float, float]  # hand end, inside the image
    radius: float
    intervals: tuple[tuple[float, float], ...]
    enter: float = 4.0
    sway: float = 0.02
    sway_period: float = 15.0
    phase: float = 0.0

    def camera_segment(self, t: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Capsule end points in camera coordinates at time ``t``; None when absent."""
        for start, end in self.intervals:
            if start <= t <= end:
                ramp = min(1.0, (t - start) / self.enter, (end - t) / self.enter)
                drop = (1.0 - max(ramp, 0.0)) * 0.35  # below the frame when ramp = 0
                w = 2 * np.pi * t / self.sway_period + self.phase
                shift = np.array([self.sway * np.sin(w), drop + 0.5 * self.sway * np.sin(1.7 * w), 0.0])
                return np.asarray(self.p0) + shift, np.asarray(self.p1) + shift
        return None

    def world_capsule(self, t: float, c2w: np.ndarray) -> Capsule | None:
        seg = self.camera_segment(t)
        if seg is None:
            return None
        r, o = c2w[:3, :3], c2w[:3, 3]
        return Capsule(r @ seg[0] + o, r @ seg[1] + o, self.radius)

    def to_json(self) -> dict[str, Any]:
        return {
            "p0_camera": [float(x) for x in self.p0],
            "p1_camera": [float(x) for x in self.p1],
            "radius": float(self.radius),
            "intervals": [[float(a), float(b)] for a, b in self.intervals],
            "enter": float(self.enter),
            "sway": float(self.sway),
            "sway_period": float(self.sway_period),
            "phase": float(self.phase),
        }
