"""Video frame extraction and CPU structure from motion.

Accuracy is measured against ground truth after a similarity alignment of the
camera centres (SfM recovers poses only up to scale and a rigid motion); the
rotation error is the angle between aligned and true camera rotations.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from n3f.errors import N3FInputError
from n3f.io.sfm import load_images_with_sfm, load_video_with_sfm, run_sfm
from n3f.io.video import extract_frames, frame_times


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising |s R src + t - dst|^2 (Umeyama 1991)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d0.T @ s0 / len(src))
    d = np.eye(3)
    d[2, 2] = np.sign(np.linalg.det(u @ vt))
    rot = u @ d @ vt
    scale = np.trace(np.diag(sig) @ d) / ((s0**2).sum() / len(src))
    return float(scale), rot, mu_d - scale * rot @ mu_s


def rotation_errors_deg(est_c2w: np.ndarray, gt_c2w: np.ndarray) -> np.ndarray:
    """Per-camera angle between similarity-aligned estimated and true rotations."""
    _, rot, _ = umeyama(est_c2w[:, :3, 3], gt_c2w[:, :3, 3])
    aligned = np.einsum("ij,njk->nik", rot, est_c2w[:, :3, :3])
    rel = np.einsum("nji,njk->nik", aligned, gt_c2w[:, :3, :3])
    cos = (np.trace(rel, axis1=1, axis2=2) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def write_test_video(path: Path, n: int = 30, size: tuple[int, int] = (64, 48), fps: int = 10) -> Path:
    """Frame i is a flat grey of value 8 i: decoded frames identify themselves."""
    writer = imageio_ffmpeg.write_frames(str(path), size, fps=fps, macro_block_size=16, quality=9)
    writer.send(None)
    for i in range(n):
        writer.send(np.full((size[1], size[0], 3), 8 * i, np.uint8))
    writer.close()
    return path


def noise_images(folder: Path, n: int, seed: int = 0, size: int = 96) -> list[Path]:
    """Unrelated random images: SIFT finds features, no pair verifies."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"noise_{seed}_{i:02d}.png"
        cv2.imwrite(str(p), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        paths.append(p)
    return paths


# ------------------------------------------------------------------ video


def test_extract_every_target_count_resize_and_times(tmp_path: Path) -> None:
    video = write_test_video(tmp_path / "v.mp4")
    files = extract_frames(video, tmp_path / "every", every=10)
    assert [f.name for f in files] == ["frame_000000.png", "frame_000010.png", "frame_000020.png"]
    grey = cv2.imread(str(files[1]))
    assert grey.shape == (48, 64, 3) and abs(int(grey.mean()) - 80) <= 2

    files = extract_frames(video, tmp_path / "count", target_count=7, max_size=32, image_format="jpg")
    indices = [int(f.stem.split("_")[1]) for f in files]
    assert len(files) == 7 and indices[0] == 0 and indices[-1] == 29
    assert np.all(np.diff(indices) >= 4)  # evenly spread
    assert cv2.imread(str(files[0])).shape == (24, 32, 3)
    times = frame_times(tmp_path / "count")
    assert times[files[2].name] == pytest.approx(indices[2] / 10)
    index = json.loads((tmp_path / "count" / "frames.json").read_text())
    assert index["fps"] == pytest.approx(10) and index["n_video_frames"] == 30


def test_extract_is_idempotent_and_atomic(tmp_path: Path) -> None:
    video = write_test_video(tmp_path / "v.mp4")
    out = tmp_path / "frames"
    first = extract_frames(video, out, every=5)
    mtime = first[0].stat().st_mtime_ns
    assert extract_frames(video, out, every=5) == first
    assert first[0].stat().st_mtime_ns == mtime  # reused, not rewritten
    again = extract_frames(video, out, every=15)  # new parameters replace the folder
    assert [f.name for f in again] == ["frame_000000.png", "frame_000015.png"]
    assert sorted(p.name for p in out.iterdir()) == ["frame_000000.png", "frame_000015.png", "frames.json"]
    assert not list(tmp_path.glob("*.partial-*"))


def test_video_missing(tmp_path: Path) -> None:
    with pytest.raises(N3FInputError, match="video not found"):
        extract_frames(tmp_path / "nope.mp4", tmp_path / "out")


def test_not_a_video(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(N3FInputError, match=r"cannot read video .*bad\.mp4"):
        extract_frames(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extract_bad_arguments(tmp_path: Path) -> None:
    video = write_test_video(tmp_path / "v.mp4", n=5)
    with pytest.raises(N3FInputError, match="not both"):
        extract_frames(video, tmp_path / "a", every=2, target_count=3)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(N3FInputError, match="not written by n3f"):
        extract_frames(video, foreign)


# ------------------------------------------------------------------ SfM errors


def test_sfm_too_few_registered(tmp_path: Path) -> None:
    noise_images(tmp_path / "images", 4)
    with pytest.raises(N3FInputError, match=r"registered only 0/4 frames"):
        run_sfm(tmp_path / "images", tmp_path / "work", matcher="exhaustive")
    assert not (tmp_path / "work" / "model").exists()


def test_sfm_scratch_of_a_killed_run_is_removed_and_its_own_never_kept(tmp_path: Path) -> None:
    noise_images(tmp_path / "images", 4)
    stale = tmp_path / "work" / "sfm.partial-99999"
    (stale / "sparse").mkdir(parents=True)
    (stale / "database.db").write_bytes(b"half a database")
    with pytest.raises(N3FInputError, match=r"registered only 0/4 frames"):
        run_sfm(tmp_path / "images", tmp_path / "work", matcher="exhaustive")
    assert not list((tmp_path / "work").glob("sfm*")) and not (tmp_path / "work" / "database.db").exists()


def test_sfm_bad_arguments(tmp_path: Path) -> None:
    noise_images(tmp_path / "one", 1)
    with pytest.raises(N3FInputError, match="at least 2 images"):
        run_sfm(tmp_path / "one", tmp_path / "work")
    noise_images(tmp_path / "two", 2)
    with pytest.raises(N3FInputError, match="unknown matcher"):
        run_sfm(tmp_path / "two", tmp_path / "work", matcher="vocab")  # type: ignore[arg-type]
    with pytest.raises(N3FInputError, match="unknown camera model"):
        run_sfm(tmp_path / "two", tmp_path / "work", camera_model="PINHOLEX")
    with pytest.raises(N3FInputError, match="image folder not found"):
        run_sfm(tmp_path / "missing", tmp_path / "work")


# ------------------------------------------------------------------ SfM accuracy


@pytest.mark.slow
def test_video_sfm_recovers_synthetic_orbit(tmp_path: Path) -> None:
    """Synthetic orbit video -> frames -> SfM -> scene: rotations within 2 degrees."""
    synthetic = pytest.importorskip("n3f.synthetic")
    truth = synthetic.make_scene("orbit", kind="static", n_frames=30, width=320, height=240, seed=0, supersample=1)
    video = synthetic.write_scene_video(truth, tmp_path / "orbit.mp4", fps=10)

    scene = load_video_with_sfm(video, tmp_path / "work", name="orbit", matcher="sequential")
    idx = [int(n.split("_")[1].split(".")[0]) for n in scene.frame_names]
    assert len(idx) == 30, f"only {len(idx)}/30 frames registered"
    np.testing.assert_allclose(scene.timestamps, np.array(idx) / 10)
    err = rotation_errors_deg(scene.c2w, np.asarray(truth.c2w)[idx])
    print(f"synthetic orbit: rotation error max {err.max():.3f} median {np.median(err):.3f} deg")
    assert err.max() < 2.0
    # Focal length is self-calibrated; it should be close to the true one.
    f_true = truth.intrinsics[0][0, 0]
    assert abs(scene.intrinsics[0][0, 0] / f_true - 1) < 0.05
    assert scene.source == str(video)

    # Second call reuses frames and model (no work, same poses).
    again = load_video_with_sfm(video, tmp_path / "work", name="orbit", matcher="sequential")
    np.testing.assert_allclose(again.c2w, scene.c2w)


def _llff_c2w(poses_bounds: np.ndarray) -> np.ndarray:
    """LLFF columns are [down, right, back]; OpenCV's are [right, down, forward]."""
    p = poses_bounds[:, :15].reshape(-1, 3, 5)
    c2w = np.tile(np.eye(4), (len(p), 1, 1))
    c2w[:, :3, :3] = np.stack([p[:, :, 1], p[:, :, 0], -p[:, :, 2]], axis=-1)
    c2w[:, :3, 3] = p[:, :, 3]
    return c2w


@pytest.mark.slow
def test_photo_sfm_matches_llff_poses_on_goldcape(goldcape: Path, tmp_path: Path, caplog) -> None:
    """25 consecutive real photos (+2 junk images that must be dropped).

    COLMAP's multi-threaded matching and RANSAC are not bit-reproducible across
    machines even with a fixed seed: on one CI machine a single real photo
    (IMG_5909) failed to register where it registers here.  So the test asserts
    what a user relies on -- junk is always dropped and named, at most one real
    photo in 25 is lost, and every registered pose is accurate -- not an exact count.
    """
    all_images = sorted((goldcape / "images_8").iterdir())
    gt = dict(zip((p.name for p in all_images), _llff_c2w(np.load(goldcape / "poses_bounds.npy"))))
    images = tmp_path / "images"
    images.mkdir()
    for p in all_images[5:30]:
        shutil.copy(p, images / p.name)
    noise_images(images, 2, seed=3, size=456)

    with caplog.at_level("WARNING"):
        scene = load_images_with_sfm(images, tmp_path / "work", name="goldcape", matcher="sequential")
    dropped = 27 - len(scene.frame_names)
    assert all(n.startswith("IMG_") for n in scene.frame_names), "a junk image was registered"
    assert len(scene.frame_names) >= 24, f"only {len(scene.frame_names)} of 25 real photos registered"
    assert f"{dropped} of 27 frames" in caplog.text and "noise_3_00.png" in caplog.text
    err = rotation_errors_deg(scene.c2w, np.stack([gt[n] for n in scene.frame_names]))
    print(f"goldcape 25 photos: rotation error max {err.max():.3f} median {np.median(err):.3f} deg")
    assert err.max() < 2.0
    assert np.all(scene.bounds[:, 0] > 0) and np.all(scene.bounds[:, 1] > scene.bounds[:, 0])
