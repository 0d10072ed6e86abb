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
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from n3f.errors import N3FInputError
from n3f.features.store import FeatureStore, pixel_to_grid, sample_grids
from n3f.render.rays import RayBundle, rays_from_pixels
from n3f.scene.store import SceneStore


class FrameSlots:
    """A least-recently-used cache of per-frame arrays, kept as the rows of one tensor.

    ``slot(key)`` loads the frame on a miss and returns its row of ``buffer``, so a
    batch over many cached frames is one gather (``buffer[slots, ...]``) instead of
    one indexing call per frame. At most ``capacity`` frames are held: the buffer
    has ``min(capacity, n_keys)`` rows, allocated (not touched) on the first load,
    and the least recently used frame's row is reused when a new one comes in.
    """

    def __init__(self, capacity: int, n_keys: int, load: Callable[[int], np.ndarray]):
        self.capacity = max(1, int(capacity))
        self.rows = max(1, min(self.capacity, int(n_keys)))
        self.load = load
        self.buffer: Tensor | None = None
        self._slot: OrderedDict[int, int] = OrderedDict()

    def slot(self, key: int) -> int:
        if key in self._slot:
            self._slot.move_to_end(key)
            return self._slot[key]
        value = torch.from_numpy(np.asarray(self.load(key)))
        if self.buffer is None:
            self.buffer = torch.empty((self.rows, *value.shape), dtype=value.dtype)
        if len(self._slot) < self.rows:
            row = len(self._slot)
        else:
            _, row = self._slot.popitem(last=False)
        self.buffer[row] = value
        self._slot[key] = row
        return row

    def __getitem__(self, key: int) -> Tensor:
        """One frame's array (a view into the buffer: valid until it is evicted)."""
        return self.buffer[self.slot(key)]

    def __len__(self) -> int:
        return len(self._slot)


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
        self.rgb = FrameSlots(cache_frames, scene.n_frames, scene.frame)
        if features is not None:
            check_feature_store(scene, features)
            # read once: each access of these opens the zarr array again (~2 ms)
            self.channels, self.grid_hw = features.channels, features.grid_size
            self.grids = FrameSlots(cache_frames, scene.n_frames, features.grid)

    def sample(self, n_rays: int, rng: np.random.Generator, with_features: bool) -> tuple[RayBundle, Tensor, Tensor | None]:
        chosen = rng.choice(self.frames, size=self.frames_per_step, replace=False)
        frame = np.sort(rng.choice(chosen, size=n_rays))
        x = rng.integers(0, self.w, size=n_rays)
        y = rng.integers(0, self.h, size=n_rays)
        return self.rays_at(frame, x, y, with_features)

    def rays_at(self, frame: np.ndarray, x: np.ndarray, y: np.ndarray, with_features: bool) -> tuple[RayBundle, Tensor, Tensor | None]:
        """Rays through pixel centres (x, y) of the given frames, with their targets.

        Targets are gathered from the cached frames in one indexing call per
        target (per group of ``capacity`` distinct frames when a batch has more
        distinct frames than the cache holds).
        """
        frame, x, y = np.asarray(frame), np.asarray(x), np.asarray(y)
        if len(frame) and (x.min() < 0 or x.max() >= self.w or y.min() < 0 or y.max() >= self.h):
            raise IndexError(f"pixel outside the {self.w}x{self.h} frame")
        f = torch.from_numpy(frame)
        uv = torch.from_numpy(np.stack([x + 0.5, y + 0.5], axis=-1)).float()
        rays = rays_from_pixels(self.c2w[f], self.K[f], uv, self.bounds[f], f)
        use_features = with_features and self.features is not None
        pixel = torch.from_numpy(y.astype(np.int64) * self.w + x.astype(np.int64))
        if use_features:
            grid_xy = torch.from_numpy(pixel_to_grid(uv.numpy(), (self.h, self.w), self.grid_hw)).float()
        uniq, inv = np.unique(frame, return_inverse=True)
        inv = torch.from_numpy(inv.reshape(-1))
        step = self.rgb.capacity
        if len(uniq) <= step:
            groups = [(uniq, inv, slice(None))] if len(uniq) else []
        else:  # more distinct frames than the cache holds: gather in groups that fit
            groups = []
            for start in range(0, len(uniq), step):
                rows = torch.from_numpy(np.flatnonzero((inv.numpy() >= start) & (inv.numpy() < start + step)))
                groups.append((uniq[start : start + step], inv[rows] - start, rows))
        rgb = torch.empty(len(frame), 3)
        feats = torch.empty(len(frame), self.channels) if use_features else None
        for keys, local, rows in groups:
            slots = torch.tensor([self.rgb.slot(int(i)) for i in keys], dtype=torch.long)[local]
            pixels = self.rgb.buffer.view(self.rgb.rows * self.h * self.w, -1)
            rgb[rows] = pixels.index_select(0, slots * (self.h * self.w) + pixel[rows]).float() / 255.0
            if feats is not None:
                slots = torch.tensor([self.grids.slot(int(i)) for i in keys], dtype=torch.long)[local]
                feats[rows] = sample_grids(self.grids.buffer, slots, grid_xy[rows], self.feature_mode)
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
