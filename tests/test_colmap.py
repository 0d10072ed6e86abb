"""COLMAP import: models are built in the test with pycolmap, so every expected
pose, intrinsic and depth is known exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pycolmap
import pytest

from n3f.errors import N3FInputError
from n3f.io.colmap import load_colmap

W, H = 96, 64


def _rot_y(angle: float) -> np.ndarray:
    return cv2.Rodrigues(np.array([0.0, angle, 0.0]))[0]


def _texture(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    small = rng.integers(0, 256, (max(2, h // 6), max(2, w // 6), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def build_model(
    root: Path,
    cameras: list[pycolmap.Camera],
    *,
    n_images: int = 5,
    fmt: str = "bin",
    seed: int = 0,
) -> dict:
    """A small object-centric model: cameras on an arc at distance 4 looking at a
    cloud of points in [-1, 1]^3, images named in reverse id order so that
    sorting by name is observable. Returns what the importer should recover."""
    rng = np.random.default_rng(seed)
    rec = pycolmap.Reconstruction()
    for cam in cameras:
        rec.add_camera_with_trivial_rig(cam)
    pts = rng.uniform(-1, 1, (60, 3))
    w2c, names, depths = {}, {}, {}
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        image_id = i + 1
        cam = cameras[i % len(cameras)]
        rot = _rot_y(0.25 * i) @ cv2.Rodrigues(np.array([0.05 * i, 0.0, 0.02]))[0]
        t = np.array([0.1 * i, -0.05, 4.0])
        cam_pts = pts @ rot.T + t
        uv = cam.img_from_cam(cam_pts)
        name = f"frame_{n_images - i:02d}.png"
        image = pycolmap.Image(
            name=name,
            points2D=pycolmap.Point2DList([pycolmap.Point2D(p) for p in uv]),
            camera_id=cam.camera_id,
            image_id=image_id,
        )
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(np.concatenate([rot, t[:, None]], axis=1)))
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = rot, t
        w2c[name], names[image_id], depths[name] = m, name, cam_pts[:, 2]
        cv2.imwrite(str(images_dir / name), _texture(rng, cam.width, cam.height))
    for j, p in enumerate(pts):
        track = pycolmap.Track()
        for image_id in names:
            track.add_element(image_id, j)
        rec.add_point3D(p, track)
    model_dir = root / "sparse" / "0"
    model_dir.mkdir(parents=True, exist_ok=True)
    (rec.write_binary if fmt == "bin" else rec.write_text)(str(model_dir))
    return {"model": model_dir, "images": images_dir, "w2c": w2c, "depths": depths, "rec": rec}


def pinhole(camera_id: int = 1, w: int = W, h: int = H) -> pycolmap.Camera:
    cam = pycolmap.Camera.create_from_model_name(camera_id, "PINHOLE", 80.0, w, h)
    cam.params = [80.0, 82.0, w / 2 + 1.5, h / 2 - 0.75]
    return cam


def opencv_camera(camera_id: int = 1, w: int = 160, h: int = 120) -> pycolmap.Camera:
    cam = pycolmap.Camera.create_from_model_name(camera_id, "OPENCV", 150.0, w, h)
    cam.params = [150.0, 152.0, w / 2 + 1.0, h / 2 - 1.0, -0.25, 0.06, 0.001, -0.001]
    return cam


@pytest.mark.parametrize("fmt", ["bin", "txt"])
def test_pinhole_poses_intrinsics_bounds_exact(tmp_path: Path, fmt: str) -> None:
    m = build_model(tmp_path, [pinhole()], fmt=fmt)
    scene = load_colmap(m["model"], m["images"], name="toy")

    assert scene.frame_names == sorted(m["w2c"])  # sorted by name, not by image id
    for i, name in enumerate(scene.frame_names):
        np.testing.assert_allclose(scene.c2w[i], np.linalg.inv(m["w2c"][name]), atol=1e-9)
        np.testing.assert_allclose(scene.intrinsics[i], [[80, 0, W / 2 + 1.5], [0, 82, H / 2 - 0.75], [0, 0, 1]])
        z = m["depths"][name]
        near, far = scene.bounds[i]
        assert 0 < near <= z.min() and z.max() <= far <= 1.5 * z.max()
        on_disk = cv2.cvtColor(cv2.imread(str(m["images"] / name)), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(scene.frames[i], on_disk)  # pinhole: pixels untouched
    assert scene.name == "toy" and scene.layout == "object"
    assert scene.attrs["colmap"]["undistorted"] is False


def test_text_and_binary_agree_and_sparse_parent_accepted(tmp_path: Path) -> None:
    a = build_model(tmp_path / "a", [pinhole()], fmt="bin")
    b = build_model(tmp_path / "b", [pinhole()], fmt="txt")
    sa = load_colmap(a["model"], a["images"])
    sb = load_colmap(b["model"].parent, b["images"])  # <project>/sparse holding sparse/0
    np.testing.assert_allclose(sa.c2w, sb.c2w, atol=1e-9)
    np.testing.assert_allclose(sa.bounds, sb.bounds, rtol=1e-6)


def test_legacy_model_without_rigs_and_frames(tmp_path: Path) -> None:
    """COLMAP 3.x exports have only cameras/images/points3D."""
    m = build_model(tmp_path, [pinhole()], fmt="txt")
    for extra in ("rigs.txt", "frames.txt"):
        (m["model"] / extra).unlink(missing_ok=True)
    scene = load_colmap(m["model"], m["images"])
    name = scene.frame_names[2]
    np.testing.assert_allclose(scene.c2w[2], np.linalg.inv(m["w2c"][name]), atol=1e-9)


def test_distorted_camera_is_undistorted_like_colmap(tmp_path: Path) -> None:
    cam = opencv_camera()
    m = build_model(tmp_path, [cam], n_images=3)
    scene = load_colmap(m["model"], m["images"])

    expected_cam = pycolmap.undistort_camera(pycolmap.UndistortCameraOptions(), cam)
    k = expected_cam.calibration_matrix()
    assert (expected_cam.width, expected_cam.height) != (cam.width, cam.height)
    for i in range(len(scene.frame_names)):
        np.testing.assert_allclose(scene.intrinsics[i], k, atol=1e-9)
    assert scene.frames[0].shape == (expected_cam.height, expected_cam.width, 3)
    assert scene.attrs["colmap"]["undistorted"] is True

    # Same pixels as COLMAP's own undistorter (bilinear either way).
    src = cv2.cvtColor(cv2.imread(str(m["images"] / scene.frame_names[0])), cv2.COLOR_BGR2RGB)
    ref, _ = pycolmap.undistort_image(pycolmap.UndistortCameraOptions(), pycolmap.Bitmap.from_array(src), cam)
    diff = np.abs(ref.to_array().astype(int) - scene.frames[0].astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.05


def test_undistortion_moves_points_to_pinhole_projection(tmp_path: Path) -> None:
    """Dots drawn where the distorted camera sees 3D points must land where
    the undistorted intrinsics project them."""
    cam = opencv_camera()
    m = build_model(tmp_path, [cam], n_images=2)
    rays = np.array([[x, y, 1.0] for x in np.linspace(-0.4, 0.4, 5) for y in np.linspace(-0.3, 0.3, 4)])
    uv = cam.img_from_cam(rays)
    up = 8  # draw at 8x then area-downsample: sub-pixel accurate dots
    big = np.zeros((cam.height * up, cam.width * up), np.float32)
    for u, v in uv:
        cv2.circle(big, (int(round(u * up - 0.5)), int(round(v * up - 0.5))), 12, 1.0, -1)
    dots = cv2.resize(big, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
    img = (np.repeat(dots[..., None], 3, axis=2) * 255).astype(np.uint8)
    name = sorted(m["w2c"])[0]
    cv2.imwrite(str(m["images"] / name), img)

    scene = load_colmap(m["model"], m["images"])
    out = scene.frames[0][..., 0].astype(float)
    expected = (rays @ scene.intrinsics[0].T)[:, :2]
    _, labels = cv2.connectedComponents((out > 60).astype(np.uint8))
    errors = []
    for e in expected:
        ys, xs = np.nonzero(labels == labels[int(e[1]), int(e[0])])
        wgt = out[ys, xs]
        centre = np.array([(xs * wgt).sum(), (ys * wgt).sum()]) / wgt.sum() + 0.5  # pixel centres at +0.5
        errors.append(np.linalg.norm(centre - e))
    assert max(errors) < 0.5, errors


def test_cameras_of_different_size_share_first_size(tmp_path: Path) -> None:
    cams = [pinhole(1, 96, 64), pinhole(2, 192, 128)]
    m = build_model(tmp_path, cams, n_images=4)  # image i uses cams[i % 2], named frame_{4 - i}
    scene = load_colmap(m["model"], m["images"])
    assert scene.frame_names[0] == "frame_01.png"  # image 3: the 192x128 camera comes first
    assert {scene.frames[i].shape for i in range(4)} == {(128, 192, 3)}
    for i, name in enumerate(scene.frame_names):
        cam = cams[(4 - int(name[6:8])) % 2]
        expected = np.asarray(cam.calibration_matrix()).copy()
        expected[:2] *= 192 / cam.width
        np.testing.assert_allclose(scene.intrinsics[i], expected, atol=1e-9)


def test_max_size_and_downsampled_images_on_disk(tmp_path: Path) -> None:
    m = build_model(tmp_path, [pinhole(1, 192, 128)], n_images=3)
    half = tmp_path / "images_2"
    half.mkdir()
    for p in m["images"].iterdir():
        cv2.imwrite(str(half / p.name), cv2.resize(cv2.imread(str(p)), (96, 64), interpolation=cv2.INTER_AREA))
    full_k = np.asarray(pinhole(1, 192, 128).calibration_matrix())

    scene = load_colmap(m["model"], half)  # LLFF-style downsampled copies
    assert scene.frames[0].shape == (64, 96, 3)
    np.testing.assert_allclose(scene.intrinsics[0][:2], full_k[:2] / 2, atol=1e-9)

    scene = load_colmap(m["model"], m["images"], max_size=48)
    assert scene.frames[1].shape == (32, 48, 3)
    np.testing.assert_allclose(scene.intrinsics[1][:2], full_k[:2] / 4, atol=1e-9)


# ---------------------------------------------------------------- bad input


def test_missing_model_dir(tmp_path: Path) -> None:
    with pytest.raises(N3FInputError, match="COLMAP model folder not found"):
        load_colmap(tmp_path / "nope", tmp_path)


def test_folder_without_model(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(N3FInputError, match="no COLMAP model"):
        load_colmap(tmp_path / "empty", tmp_path)


def test_incomplete_model_names_missing_file(tmp_path: Path) -> None:
    m = build_model(tmp_path, [pinhole()])
    (m["model"] / "points3D.bin").unlink()
    with pytest.raises(N3FInputError, match=r"missing points3D\.bin"):
        load_colmap(m["model"], m["images"])


def test_image_missing_on_disk(tmp_path: Path) -> None:
    m = build_model(tmp_path, [pinhole()])
    (m["images"] / "frame_03.png").unlink()
    with pytest.raises(N3FInputError, match=r"not found in .*frame_03\.png"):
        load_colmap(m["model"], m["images"])


def test_image_with_wrong_aspect(tmp_path: Path) -> None:
    m = build_model(tmp_path, [pinhole()])
    cv2.imwrite(str(m["images"] / "frame_02.png"), np.zeros((50, 50, 3), np.uint8))
    with pytest.raises(N3FInputError, match="different aspect ratio"):
        load_colmap(m["model"], m["images"])


def test_model_without_registered_images(tmp_path: Path) -> None:
    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(pinhole())
    rec.add_image_with_trivial_frame(pycolmap.Image(name="a.png", camera_id=1, image_id=1))  # no pose
    model = tmp_path / "model"
    model.mkdir()
    rec.write_binary(str(model))
    with pytest.raises(N3FInputError, match="no registered images"):
        load_colmap(model, tmp_path)


def test_missing_images_dir(tmp_path: Path) -> None:
    m = build_model(tmp_path, [pinhole()])
    shutil.rmtree(m["images"])
    with pytest.raises(N3FInputError, match="image folder not found"):
        load_colmap(m["model"], m["images"])


def test_video_frame_times_are_kept(tmp_path: Path) -> None:
    """Frames extracted from a video carry their timestamps through SfM."""
    m = build_model(tmp_path, [pinhole()], n_images=3)
    names = sorted(m["w2c"])
    index = {"frames": [{"file": n, "index": 5 * i, "time": 0.5 * i} for i, n in enumerate(names)]}
    (m["images"] / "frames.json").write_text(json.dumps(index))
    scene = load_colmap(m["model"], m["images"])
    np.testing.assert_allclose(scene.timestamps, [0.0, 0.5, 1.0])
    assert load_colmap(m["model"], m["images"]).frame_names == names
