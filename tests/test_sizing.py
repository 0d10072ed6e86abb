"""The grid field's capacity and schedule follow the scene (n3f/fields/sizing.py, GRID_SCHEDULES)."""

from __future__ import annotations

import numpy as np
import pytest

from n3f.fields.sizing import FINEST_CAP, grid_defaults, levels_up_to, pixel_footprint
from n3f.train.config import GRID_PIXEL_SHARE, GRID_SCHEDULES, TrainConfig, grid_rgb_steps


def _cameras(distance: float, focal: float, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    c2w = np.repeat(np.eye(4)[None], n, axis=0)
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c2w[:, 0, 3], c2w[:, 1, 3] = distance * np.cos(angles), distance * np.sin(angles)
    k = np.array([[focal, 0, 50.0], [0, focal, 50.0], [0, 0, 1]])
    return c2w, np.repeat(k[None], n, axis=0)


def test_pixel_footprint_is_distance_over_focal():
    c2w, k = _cameras(2.0, 100.0)
    assert pixel_footprint(c2w, k, np.zeros(3)) == pytest.approx(0.02)


@pytest.mark.parametrize("focal, quality, finest", [
    (1000.0, "default", FINEST_CAP["default"]),  # wants 1000 cells: capped
    (1000.0, "best", FINEST_CAP["best"]),
    (1000.0, "fast", 256),
    (60.0, "best", 256),  # wants 60: never below the old fixed 256
])
def test_finest_level_follows_the_pixel_footprint_within_the_quality_cap(focal, quality, finest):
    c2w, k = _cameras(1.0, focal)
    space = {"kind": "contract", "radius": 0.5, "centre": [0, 0, 0], "inner": 0.5, "unbounded": True}
    d = grid_defaults(space, c2w, k, (100, 100), quality)
    assert d["geo_resolutions"] == levels_up_to(finest) and d["geo_resolutions"][0] == 32
    assert "bg_resolutions" not in d  # background planes only when asked for
    asked = grid_defaults(space, c2w, k, (100, 100), quality, background=True)
    assert asked["bg_resolutions"] and asked["bg_split"] == 0.5  # unbounded: the shell gets its own planes
    bounded = grid_defaults({**space, "unbounded": False}, c2w, k, (100, 100), quality, background=True)
    assert "bg_resolutions" not in bounded


def test_forward_facing_scenes_size_by_image_width():
    c2w, k = _cameras(1.0, 100.0)
    assert grid_defaults({"kind": "ndc"}, c2w, k, (300, 1100), "best")["geo_resolutions"][-1] == FINEST_CAP["best"]
    assert grid_defaults({"kind": "ndc"}, c2w, k, (200, 300), "best")["geo_resolutions"][-1] == 256  # nearest power of two


def test_grid_steps_follow_the_scene_between_the_quality_bounds():
    lo, hi, distill = GRID_SCHEDULES["default"]
    assert grid_rgb_steps("default", None, 256) == lo
    assert grid_rgb_steps("default", 1000, 256) == lo  # a tiny scene: the fewest
    assert grid_rgb_steps("default", 10**9, 256) == hi  # a huge one: the most
    mid = int((lo + hi) / 2 * 256 / GRID_PIXEL_SHARE["default"])
    assert grid_rgb_steps("default", mid, 256) == (lo + hi) // 2
    # best buys rays: a scene between the bounds gets more steps than at default, never fewer
    assert grid_rgb_steps("best", mid, 256) > grid_rgb_steps("default", mid, 256)
    for pixels in (None, 1000, mid, 10**9):
        assert grid_rgb_steps("best", pixels, 256) >= grid_rgb_steps("default", pixels, 256) >= grid_rgb_steps("fast", pixels, 256)
    assert TrainConfig(quality="fast").resolved("rgb", train_pixels=10**9).steps == GRID_SCHEDULES["fast"][1]
    assert TrainConfig(quality="best").resolved("distill").steps == GRID_SCHEDULES["best"][2]
    assert TrainConfig(steps=123).resolved("rgb", train_pixels=10**9).steps == 123  # given: kept
    assert TrainConfig(field="neuraldiff").resolved("rgb", train_pixels=10**9).steps == 2000  # grid only
