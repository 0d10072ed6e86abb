"""The mask teacher: a cheap, deterministic stand-in teacher for tests and benchmarks, features from object masks.

Each pixel gets a fixed random unit vector for the object it sees (one more
for "no object"), averaged over 8 x 8 patches and L2-normalised, written in the
real feature-store format (``n3f.features/1``). Like a real teacher it is
patch-resolution, blurry at object borders, and consistent across views, so a
field can only reproduce it by fusing views in 3D; unlike one it needs no
network weights, so training tests run offline in seconds. It is written by
the same :class:`~n3f.features.writer.FeatureStoreWriter` as real teacher
stores (atomic, with the statistics the reader verifies), with an identity
"PCA".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from n3f.errors import N3FInputError
from n3f.features.pca import PCA
from n3f.features.writer import FeatureStoreWriter
from n3f.scene.store import SceneStore


def mask_feature_grid(masks: np.ndarray, codes: np.ndarray, patch: int) -> np.ndarray:
    """(K, H, W) bool masks -> (H/patch, W/patch, C) patch-averaged, L2-normalised code features."""
    k, h, w = masks.shape
    label = np.full((h, w), k, np.int64)  # k = no object
    for j in range(k):  # later objects win, matching front-to-back order is not needed for a stand-in
        label[masks[j]] = j
    per_pixel = codes[label]  # (H, W, C)
    gh, gw = h // patch, w // patch
    grid = per_pixel[: gh * patch, : gw * patch].reshape(gh, patch, gw, patch, -1).mean(axis=(1, 3))
    return grid / np.maximum(np.linalg.norm(grid, axis=-1, keepdims=True), 1e-6)


def write_mask_features(scene_path: str | Path, out: str | Path, channels: int = 64, patch: int = 8, seed: int = 0,
                        codes: np.ndarray | None = None) -> Path:
    """Write a mask-derived feature store for every frame of an annotated scene.

    ``codes``: (objects + 1, channels) features per object in mask order, the
    last for "no object" (``channels`` is then theirs); default: ``seed``'s
    random unit vectors.
    """
    scene = SceneStore(scene_path)
    annotated = set(int(i) for i in scene.annotated_frames)
    if len(annotated) != scene.n_frames:
        raise N3FInputError(f"{scene_path}: mask features need masks on every frame (make the scene with annotate_every=1).")
    h, w = scene.image_size
    k = len(scene.object_names)
    if codes is None:
        codes = np.random.default_rng(seed).standard_normal((k + 1, channels))
        codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    else:
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[0] != k + 1:
            raise ValueError(f"codes must be ({k + 1}, channels) for {k} objects, got {codes.shape}")
        channels = int(codes.shape[1])
    gh, gw = h // patch, w // patch
    identity = PCA(
        mean=np.zeros(channels, np.float32),
        components=np.eye(channels, dtype=np.float32),
        explained_variance=np.ones(channels, np.float32),
        total_variance=float(channels),
        n_samples=0,
    )
    with FeatureStoreWriter(out, scene.n_frames, (gh, gw), channels, source="object-mask features") as writer:
        for i in range(scene.n_frames):
            writer.write(i, mask_feature_grid(scene.masks(i), codes, patch))
        return writer.finish(
            identity,
            {
                "teacher": "masks",
                "weights_source": "none (object masks of a synthetic scene)",
                "weights_sha256": "",
                "layer": "masks",
                "patch_size": patch,
                "input_size": [gh * patch, gw * patch],
                "grid_size": [gh, gw],
                "image_size": [h, w],
                "channels": channels,
            },
        )
