"""Training rays and their targets, streamed from the scene and feature stores.

Each step draws ``batch_rays`` rays spread over ``frames_per_step`` random
training frames (uniform pixels within each). Frames and teacher feature
grids are read on demand into a bounded LRU cache, so memory is set by
``frame_cache``, not by the length of the video; for small scenes the cache
simply ends up holding everything. Teacher features are sampled at each ray's
pixel from the patch-resolution grid (nearest or bilinear), exactly as
:mod:`n3f.features.store` defines the pixel-to-patch mapping.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, TypeVar

import numpy as np
import torch
from torch import Tensor

from n3f.errors import N3FInputError
from n3f.features.store import FeatureStore, pixel_to_grid, sample_grid
from n3f.render.rays import RayBundle, rays_from_pixels
from n3f.scene.store import SceneStore

V = TypeVar("V")


class LRUCache(Generic[V]):
    """A tiny least-recently-used cache of per-frame arrays."""

    def __init__(self, capacity: int, load: Callable[[int], V]):
        self.capacity = max(1, int(capacity))
        self.load = load
        self._data: OrderedDict[int, V] = OrderedDict()

    def __getitem__(self, key: int) -> V:
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        value = self.load(key)
        self._data[key] = value
        if len(self._data) > self.capacity:
            self._data.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._data)


class RaySampler:
    """Random ray batches with RGB (and teacher feature) targets."""

    def __init__(
        self,
        scene: SceneStore,
        frames: np.ndarray,
        features: FeatureStore | None = None,
        frames_per_step: int = 16,
        cache_frames: int = 256,
        feature_mode: str = "nearest",
    ):
        self.scene = scene
        self.frames = np.asarray(frames, dtype=np.int64)
        if len(self.frames) == 0:
            raise N3FInputError(f"scene '{scene.name}' has no training frames in its split.")
        self.features = features
        self.frames_per_step = int(min(frames_per_step, len(self.frames)))
        self.feature_mode = feature_mode
        self.h, self.w = scene.image_size
        self.c2w = torch.as_tensor(scene.c2w, dtype=torch.float32)
        self.K = torch.as_tensor(scene.intrinsics, dtype=torch.float32)
        self.bounds = torch.as_tensor(scene.bounds, dtype=torch.float32)
        self.rgb = LRUCache(cache_frames, lambda i: torch.from_numpy(scene.frame(i)))
        if features is not None:
            check_feature_store(scene, features)
            self.grids = LRUCache(cache_frames, lambda i: torch.from_numpy(features.grid(i)))

    def sample(self, n_rays: int, rng: np.random.Generator, with_features: bool) -> tuple[RayBundle, Tensor, Tensor | None]:
        chosen = rng.choice(self.frames, size=self.frames_per_step, replace=False)
        frame = np.sort(rng.choice(chosen, size=n_rays))
        x = rng.integers(0, self.w, size=n_rays)
        y = rng.integers(0, self.h, size=n_rays)
        return self.rays_at(frame, x, y, with_features)

    def rays_at(self, frame: np.ndarray, x: np.ndarray, y: np.ndarray, with_features: bool) -> tuple[RayBundle, Tensor, Tensor | None]:
        """Rays through pixel centres (x, y) of the given frames, with their targets."""
        f = torch.from_numpy(frame)
        uv = torch.from_numpy(np.stack([x + 0.5, y + 0.5], axis=-1)).float()
        rays = rays_from_pixels(self.c2w[f], self.K[f], uv, self.bounds[f], f)
        rgb = torch.empty(len(frame), 3)
        feats = torch.empty(len(frame), self.features.channels) if with_features and self.features is not None else None
        xs, ys = torch.from_numpy(x), torch.from_numpy(y)
        for i in np.unique(frame):
            sel = torch.from_numpy(np.flatnonzero(frame == i))
            img = self.rgb[int(i)]
            rgb[sel] = img[ys[sel], xs[sel]].float() / 255.0
            if feats is not None:
                grid = self.grids[int(i)]
                xy = pixel_to_grid(uv[sel].numpy(), (self.h, self.w), tuple(grid.shape[:2]))
                feats[sel] = sample_grid(grid, torch.from_numpy(xy).float(), self.feature_mode)
        return rays, rgb, feats


def check_feature_store(scene: SceneStore, features: FeatureStore) -> None:
    """The feature store must describe the same frames as the scene."""
    if features.n_frames != scene.n_frames:
        raise N3FInputError(
            f"{features.path}: {features.n_frames} feature frames but scene '{scene.name}' has {scene.n_frames}; "
            "re-run the teacher_features stage for this scene."
        )
    if tuple(features.image_size) != tuple(scene.image_size):
        raise N3FInputError(
            f"{features.path}: features were extracted for {features.image_size[1]}x{features.image_size[0]} frames, "
            f"the scene's are {scene.image_size[1]}x{scene.image_size[0]}; re-run the teacher_features stage."
        )
