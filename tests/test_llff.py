"""LLFF importer on the real goldcape capture, and on broken copies of it."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from n3f.errors import N3FInputError
from n3f.io.llff import load_llff
from n3f.scene import SceneStore, write_scene


def test_goldcape_imports_with_scaled_focal_and_aligned_masks(goldcape, tmp_path):
    scene = load_llff(goldcape, images="images_8", masks="masks_8", layout="object")
    assert len(scene.frame_names) == 119
    assert np.allclose(scene.intrinsics[:, 0, 0], 7689.23 / 8, atol=1e-3)  # hwf refers to full resolution
    store = SceneStore(write_scene(scene, tmp_path / "goldcape.zarr", progress=False))
    assert store.n_frames == 119 and store.image_size == (456, 456)
    assert store.object_names == ["foreground"] and len(store.annotated_frames) == 119
    # Masks are aligned to their frames: image edges concentrate on the mask
    # boundary, and less so on the same boundary shifted by a few pixels.
    on, off = [], []
    for i in (0, 30, 60, 90):
        grey = cv2.cvtColor(store.frame(i), cv2.COLOR_RGB2GRAY).astype(np.float32)
        grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
        mask = store.masks(i)[0].astype(np.uint8)
        edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(bool)
        on.append(grad[edge].mean())
        off.append(grad[np.roll(edge, 12, axis=1)].mean())
    assert np.mean(on) > 1.3 * np.mean(off)
    # 360-degree capture: the normalised cameras surround the origin at radius <= 1
    radii = np.linalg.norm(store.c2w[:, :3, 3], axis=1)
    assert radii.max() == pytest.approx(1.0) and radii.min() > 0.5


def _copy(goldcape, tmp_path, n_images=None):
    root = tmp_path / "cape"
    (root / "images_8").mkdir(parents=True)
    files = sorted((goldcape / "images_8").iterdir())[: n_images or 5]
    for f in files:
        shutil.copy(f, root / "images_8" / f.name)
    pb = np.load(goldcape / "poses_bounds.npy")[: len(files)]
    np.save(root / "poses_bounds.npy", pb)
    return root, pb


def test_missing_poses_file(tmp_path):
    with pytest.raises(N3FInputError, match="poses_bounds.npy"):
        load_llff(tmp_path)


def test_frame_count_mismatch(goldcape, tmp_path):
    root, pb = _copy(goldcape, tmp_path)
    np.save(root / "poses_bounds.npy", pb[:4])
    with pytest.raises(N3FInputError, match="5 images but .* 4 poses"):
        load_llff(root, images="images_8")


def test_nan_pose(goldcape, tmp_path):
    root, pb = _copy(goldcape, tmp_path)
    pb[2, 3] = np.nan
    np.save(root / "poses_bounds.npy", pb)
    with pytest.raises(N3FInputError, match=r"rows \[2\] contain NaN"):
        load_llff(root, images="images_8")


def test_unreadable_image_names_the_file(goldcape, tmp_path):
    root, _ = _copy(goldcape, tmp_path)
    broken = sorted((root / "images_8").iterdir())[3]
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    scene = load_llff(root, images="images_8")
    with pytest.raises(N3FInputError, match=broken.name):
        write_scene(scene, tmp_path / "out.zarr", progress=False)
    assert not (tmp_path / "out.zarr").exists()


def test_missing_mask_folder(goldcape, tmp_path):
    root, _ = _copy(goldcape, tmp_path)
    with pytest.raises(N3FInputError, match="masks folder not found"):
        load_llff(root, images="images_8", masks="masks_8")
