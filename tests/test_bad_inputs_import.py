"""Bad-input corpus of the importers: every corruption a user can make by mistake
is refused with one N3FInputError naming the file (or config key) and the fix,
and leaves no output that looks finished.

Tiny fixtures (a handful of 32x24 PNGs) are written per test; a few cases per
importer run the real command line (``python -m n3f scene``) in a subprocess.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pytest

from n3f.errors import N3FInputError
from n3f.io.checks import ASPECT_TOLERANCE_PX, ROTATION_TOLERANCE
from n3f.io.epic import load_epic
from n3f.io.llff import load_llff
from n3f.io.transforms import load_transforms
from n3f.scene import SceneStore, write_scene
from n3f.scene.sources import (
    FRAME_OPTIONS, SFM_OPTIONS, SOURCES, SYNTHETIC_LAYOUTS, build_scene, check_scene_entry, source_names,
)
from tests.conftest import REPO
from tests.test_colmap import build_model, pinhole
from tests.test_epic import _write_sequence

W, H = 32, 24
OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


def _rot_y(a: float) -> np.ndarray:
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def _poses(n: int) -> list[np.ndarray]:
    """OpenCV camera-to-world matrices on an arc at distance 4, looking at the origin."""
    out = []
    for i in range(n):
        c2w = np.eye(4)
        c2w[:3, :3] = _rot_y(0.3 * i)
        c2w[:3, 3] = -4.0 * c2w[:3, 2]
        out.append(c2w)
    return out


def _image(path: Path, w: int = W, h: int = H, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 4), max(2, w // 4), 3), dtype=np.uint8)
    cv2.imwrite(str(path), cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST))
    return path


def _mask(path: Path, w: int = W, h: int = H) -> Path:
    m = np.zeros((h, w), np.uint8)
    m[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 255
    cv2.imwrite(str(path), m)
    return path


def write_llff(root: Path, n: int = 5) -> Path:
    """images/img_XX.png, masks/img_XX.png and poses_bounds.npy (rows [down, right, back | t | hwf], near, far)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = []
    for i, c2w in enumerate(_poses(n)):
        _image(root / "images" / f"img_{i:02d}.png", seed=i)
        _mask(root / "masks" / f"img_{i:02d}.png")
        m = np.stack([c2w[:3, 1], c2w[:3, 0], -c2w[:3, 2], c2w[:3, 3], [H, W, 30.0]], axis=1)
        rows.append(np.concatenate([m.ravel(), [1.0, 8.0]]))
    np.save(root / "poses_bounds.npy", np.array(rows))
    return root


def write_transforms(root: Path, n: int = 5) -> Path:
    """images/img_XX.png and transforms.json (OpenGL camera-to-world matrices, shared camera)."""
    (root / "images").mkdir(parents=True)
    frames = []
    for i, c2w in enumerate(_poses(n)):
        _image(root / "images" / f"img_{i:02d}.png", seed=i)
        frames.append({"file_path": f"images/img_{i:02d}.png", "transform_matrix": (c2w @ OPENGL).tolist()})
    meta = {"fl_x": 30.0, "fl_y": 30.0, "w": W, "h": H, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))
    return root / "transforms.json"


def _edit_npy(path: Path, fn: Callable[[np.ndarray], Any]) -> None:
    arr = np.load(path)
    fn(arr)
    np.save(path, arr)


def _edit_json(path: Path, fn: Callable[[dict], Any]) -> None:
    meta = json.loads(path.read_text())
    fn(meta)
    path.write_text(json.dumps(meta))


def _corrupt(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n truncated")


def _llff_scale_rotation(arr: np.ndarray, i: int = 2) -> None:
    arr[i, :15] = (arr[i, :15].reshape(3, 5) * [1.5, 1.5, 1.5, 1, 1]).ravel()


def _llff_swap_axes(arr: np.ndarray, i: int = 0) -> None:
    """[right, down, back] instead of LLFF's [down, right, back]: a mirror image."""
    m = arr[i, :15].reshape(3, 5)
    arr[i, :15] = m[:, [1, 0, 2, 3, 4]].ravel()


def n3f_scene(spec: dict, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "n3f", "scene", "--spec", json.dumps(spec), "--out", str(out)],
        capture_output=True, text=True, timeout=180, cwd=REPO,
    )


def assert_refused(result: subprocess.CompletedProcess, out: Path, *needles: str) -> None:
    """Exit 2, one error line naming what is wrong, no traceback, nothing that looks finished."""
    err = result.stderr
    assert result.returncode == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("n3f scene: error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not out.exists()
    assert not list(out.parent.glob(f"{out.name}.partial-*"))


# ------------------------------------------------------------------ LLFF


LLFF_CASES = {
    "image of another size": (
        lambda r: _image(r / "images" / "img_03.png", 40, 30), r"img_03\.png is 40x30 but img_00\.png is 32x24"),
    "image of another aspect": (
        lambda r: _image(r / "images" / "img_02.png", 32, 32), r"img_02\.png is 32x32 .*aspect ratio"),
    "mask of another size": (
        lambda r: _mask(r / "masks" / "img_01.png", 16, 12), r"mask .*img_01\.png is 16x12 but its frame"),
    "NaN pose": (lambda r: _edit_npy(r / "poses_bounds.npy", lambda a: a.__setitem__((2, 3), np.nan)), r"rows \[2\]"),
    "Inf bound": (lambda r: _edit_npy(r / "poses_bounds.npy", lambda a: a.__setitem__((1, 16), np.inf)), r"rows \[1\]"),
    "negative near": (
        lambda r: _edit_npy(r / "poses_bounds.npy", lambda a: a.__setitem__((1, 15), -0.5)),
        r"near bound of frame 'img_01\.png' is -0\.5; it must be > 0"),
    "zero near": (
        lambda r: _edit_npy(r / "poses_bounds.npy", lambda a: a.__setitem__((0, 15), 0.0)), r"near bound .* > 0"),
    "far before near": (
        lambda r: _edit_npy(r / "poses_bounds.npy", lambda a: a.__setitem__((4, 16), 0.5)),
        r"far bound of frame 'img_04\.png' is 0\.5, not beyond its near bound 1"),
    "wrong row length": (
        lambda r: np.save(r / "poses_bounds.npy", np.load(r / "poses_bounds.npy")[:, :15]), r"\(N, 17\)"),
    "scaled rotation": (
        lambda r: _edit_npy(r / "poses_bounds.npy", _llff_scale_rotation), r"frame 'img_02\.png' is not orthonormal"),
    "mirrored axes": (lambda r: _edit_npy(r / "poses_bounds.npy", _llff_swap_axes), r"frame 'img_00\.png' is a mirror image"),
    "hwf of another aspect": (
        lambda r: _edit_npy(r / "poses_bounds.npy", lambda a: a.__setitem__((3, 9), 48.0)),  # w of row 3
        r"img_03\.png is 32x24 but poses_bounds\.npy's image size for it \(hwf\) is 48x24"),
    "non-numeric file": (lambda r: np.save(r / "poses_bounds.npy", np.full((5, 17), "x")), r"not numbers"),
}


@pytest.mark.parametrize("case", sorted(LLFF_CASES))
def test_llff_bad_input(tmp_path: Path, case: str) -> None:
    root = write_llff(tmp_path / "cap")
    corrupt, message = LLFF_CASES[case]
    corrupt(root)
    with pytest.raises(N3FInputError, match=message):
        load_llff(root, masks="masks")


def test_llff_fixture_is_valid_and_masks_follow_max_size(tmp_path: Path) -> None:
    root = write_llff(tmp_path / "cap")
    scene = load_llff(root, masks="masks", max_size=16)
    assert scene.frames[0].shape == (12, 16, 3)
    assert scene.annotations.modal.shape == (5, 1, 12, 16)
    assert scene.annotations.modal[0, 0, 3:9, 4:12].all() and scene.annotations.modal.sum() == 5 * 6 * 8
    np.testing.assert_allclose(scene.intrinsics[:, 0, 0], 15.0)
    store = SceneStore(write_scene(scene, tmp_path / "s.zarr", progress=False))
    assert store.image_size == (12, 16)


def test_llff_cli_mixed_size_and_corrupt_image(tmp_path: Path) -> None:
    root = write_llff(tmp_path / "cap")
    _image(root / "images" / "img_03.png", 64, 48)
    out = tmp_path / "out" / "scene.zarr"
    spec = {"name": "cap", "source": "llff", "path": str(root), "options": {"masks": "masks"}}
    assert_refused(n3f_scene(spec, out), out, "img_03.png", "64x48")

    _image(root / "images" / "img_03.png")
    _corrupt(root / "images" / "img_02.png")  # header unreadable: refused when its pixels are read
    assert_refused(n3f_scene(spec, out), out, "img_02.png", "cannot decode")


def test_stale_partial_folder_is_removed_and_import_succeeds(tmp_path: Path) -> None:
    root = write_llff(tmp_path / "cap")
    out = tmp_path / "out" / "scene.zarr"
    stale = out.with_name("scene.zarr.partial-99999")
    (stale / "frames").mkdir(parents=True)
    (stale / "zarr.json").write_text("{}")
    result = n3f_scene({"name": "cap", "source": "llff", "path": str(root)}, out)
    assert result.returncode == 0, result.stderr
    # the CLI configures logging: the store's progress and atomic's cleanup reach stderr
    assert "scene 'cap': wrote 5/5 frames" in result.stderr and "left by an interrupted" in result.stderr
    assert not stale.exists()
    assert SceneStore(out).n_frames == 5
    assert not list(out.parent.glob("scene.zarr.partial-*"))


# ------------------------------------------------------------------ transforms.json


def _frame(meta: dict, i: int) -> dict:
    return meta["frames"][i]


def _set_matrix(i: int, fn: Callable[[np.ndarray], Any]) -> Callable[[dict, Path], None]:
    def edit(meta: dict, root: Path | None = None) -> None:
        out = fn(np.asarray(_frame(meta, i)["transform_matrix"]))
        _frame(meta, i)["transform_matrix"] = out.tolist() if isinstance(out, np.ndarray) else out

    return edit


def _shear(m: np.ndarray) -> np.ndarray:
    m = m.copy()
    m[0, 1] += 0.2
    return m


def _mirror(m: np.ndarray) -> np.ndarray:
    m = m.copy()
    m[:3, 0] *= -1
    return m


TRANSFORMS_CASES = {
    "3x3 matrix": (_set_matrix(2, lambda m: m[:3, :3]), r"frame 'img_02\.png'.*shape 3x3; expected a 3x4 or 4x4"),
    "ragged matrix": (_set_matrix(1, lambda m: [[1, 0], [0]]), r"img_01\.png'.*not a matrix of numbers"),
    "strings in matrix": (_set_matrix(1, lambda m: [["a"] * 4] * 4), r"img_01\.png'.*not a matrix of numbers"),
    "NaN matrix": (_set_matrix(3, lambda m: m * np.nan), r"img_03\.png'.*NaN/Inf"),
    "Inf matrix": (_set_matrix(0, lambda m: m + np.array([[0, 0, 0, np.inf]] + [[0] * 4] * 3)), r"img_00\.png'.*NaN/Inf"),
    "sheared rotation": (_set_matrix(4, _shear), r"frame 'img_04\.png' is not orthonormal"),
    "mirrored axes": (_set_matrix(1, _mirror), r"frame 'img_01\.png' is a mirror image"),
    "projection row": (_set_matrix(2, lambda m: np.vstack([m[:3], [0, 0, 1, 0]])), r"img_02\.png'.*last row"),
    "image of another aspect": (
        lambda meta, root: _image(root / "images" / "img_02.png", 24, 24),
        r"img_02\.png is 24x24 but its camera in the transforms file is 32x24 \(different aspect ratio\)"),
    "per-frame camera of another aspect": (
        lambda meta, root: (_frame(meta, 3).update(w=24, h=24), _image(root / "images" / "img_03.png", 24, 24)),
        r"frame 'img_03\.png' declares a 24x24 camera but the first frame 'img_00\.png' a 32x24 one"),
    "size as a string": (lambda meta, root: meta.update(w="32"), r"'w' is '32'; it must be a finite number"),
    "fractional size": (lambda meta, root: meta.update(h=24.5), r"'h' is 24\.5"),
    "negative focal": (lambda meta, root: meta.update(fl_x=-30.0), r"focal length .* must be > 0"),
    "frames not a list": (lambda meta, root: meta.update(frames={"a": 1}), r"'frames' must be a list"),
    "file_path not a string": (lambda meta, root: _frame(meta, 0).update(file_path=3), r"'file_path' is 3"),
}


@pytest.mark.parametrize("case", sorted(TRANSFORMS_CASES))
def test_transforms_bad_input(tmp_path: Path, case: str) -> None:
    path = write_transforms(tmp_path / "tf")
    corrupt, message = TRANSFORMS_CASES[case]
    _edit_json(path, lambda meta: corrupt(meta, path.parent))
    with pytest.raises(N3FInputError, match=message):
        load_transforms(path)


@pytest.mark.parametrize(
    "near, far, message",
    [(50.0, None, r"far bound of frame 'img_00\.png' is .*, not beyond its near bound 50"),
     (None, 1e-6, r"far bound .* not beyond its near bound")],
)
def test_transforms_near_far_options_against_estimated_bounds(tmp_path: Path, near, far, message) -> None:
    path = write_transforms(tmp_path / "tf")
    with pytest.raises(N3FInputError, match=message):
        load_transforms(path, near=near, far=far)


def test_transforms_accepts_3x4_scaled_and_per_frame_cameras(tmp_path: Path, caplog) -> None:
    """What real exporters write and the importer handles: 3x4 matrices, a uniform
    scale in the rotation block, per-frame cameras of one aspect ratio."""
    path = write_transforms(tmp_path / "tf")
    reference = load_transforms(path)

    def edit(meta: dict) -> None:
        _frame(meta, 0)["transform_matrix"] = _frame(meta, 0)["transform_matrix"][:3]
        m = np.asarray(_frame(meta, 1)["transform_matrix"])
        m[:3, :3] *= 2.5
        _frame(meta, 1)["transform_matrix"] = m.tolist()
        _frame(meta, 2).update(w=64, h=48, fl_x=60.0, fl_y=60.0)

    _edit_json(path, edit)
    _image(path.parent / "images" / "img_02.png", 64, 48)
    with caplog.at_level("WARNING"):
        scene = load_transforms(path)
    assert "uniform scale" in caplog.text
    np.testing.assert_allclose(scene.c2w, reference.c2w, atol=1e-12)
    np.testing.assert_allclose(scene.intrinsics, reference.intrinsics, atol=1e-9)
    assert {scene.frames[i].shape for i in range(5)} == {(H, W, 3)}


def test_transforms_missing_listed_file_is_skipped_but_corrupt_one_refused(tmp_path: Path, caplog) -> None:
    path = write_transforms(tmp_path / "tf")
    (path.parent / "images" / "img_01.png").unlink()
    with caplog.at_level("WARNING"):
        scene = load_transforms(path)
    assert len(scene.frame_names) == 4 and "1 of 5 frames" in caplog.text
    _corrupt(path.parent / "images" / "img_03.png")
    scene = load_transforms(path)
    with pytest.raises(N3FInputError, match=r"cannot decode image .*img_03\.png"):
        write_scene(scene, tmp_path / "s.zarr", progress=False)
    assert not (tmp_path / "s.zarr").exists()


def test_transforms_cli_3x3_matrix_and_bad_option(tmp_path: Path) -> None:
    path = write_transforms(tmp_path / "tf")
    _edit_json(path, _set_matrix(2, lambda m: m[:3, :3]))
    out = tmp_path / "out" / "scene.zarr"
    spec = {"name": "tf", "source": "transforms", "path": str(path)}
    assert_refused(n3f_scene(spec, out), out, str(path), "img_02.png", "3x3")
    spec["options"] = {"near": 2.0, "far": 1.0}
    assert_refused(n3f_scene(spec, out), out, "scenes[tf].options.far")


# ------------------------------------------------------------------ COLMAP


def test_colmap_cameras_of_another_aspect_are_refused_on_the_cli(tmp_path: Path) -> None:
    build_model(tmp_path / "proj", [pinhole(1, 96, 64), pinhole(2, 64, 64)], n_images=4)
    out = tmp_path / "out" / "scene.zarr"
    spec = {"name": "proj", "source": "colmap", "path": str(tmp_path / "proj")}
    assert_refused(n3f_scene(spec, out), out, "frame_0", "different aspect ratio")


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda m: _corrupt(m["images"] / "frame_02.png"), r"cannot decode image .*frame_02\.png"),
        (lambda m: (m["images"] / "frame_04.png").unlink(), r"not found in .*frame_04\.png"),
        (lambda m: _image(m["images"] / "frame_01.png", 96, 96), r"frame_01\.png is 96x96 .*different aspect ratio"),
    ],
    ids=["corrupt image", "missing image", "image of another aspect"],
)
def test_colmap_bad_images(tmp_path: Path, corrupt, message) -> None:
    m = build_model(tmp_path, [pinhole()])
    corrupt(m)
    with pytest.raises(N3FInputError, match=message):
        build_scene({"name": "p", "source": "colmap", "path": str(tmp_path)})


def test_colmap_bad_option_on_the_cli(tmp_path: Path) -> None:
    build_model(tmp_path / "proj", [pinhole()], n_images=3)
    out = tmp_path / "out" / "scene.zarr"
    spec = {"name": "proj", "source": "colmap", "path": str(tmp_path / "proj"), "options": {"max_size": "48"}}
    assert_refused(n3f_scene(spec, out), out, "scenes[proj].options.max_size: '48' is not a valid value; expected int")


# ------------------------------------------------------------------ EPIC-Diff


def _epic_edit(key: str, fn: Callable[[dict, list], Any]) -> Callable[[Path, list], None]:
    def edit(seq: Path, ids: list) -> None:
        _edit_json(seq / "meta.json", lambda meta: fn(meta, ids))

    return edit


def _epic_pose(i: int, fn: Callable[[np.ndarray], Any]) -> Callable[[Path, list], None]:
    def edit(meta: dict, ids: list) -> None:
        key = str(ids[i])
        meta["poses"][key] = np.asarray(fn(np.asarray(meta["poses"][key]))).tolist()

    return _epic_edit("poses", edit)


EPIC_CASES = {
    "negative near": (_epic_edit("nears", lambda m, ids: m["nears"].__setitem__(str(ids[2]), -0.1)),
                      r"near bound of frame '200 \(IMG_0000000200\.jpg\)' is -0\.1"),
    "far before near": (_epic_edit("fars", lambda m, ids: m["fars"].__setitem__(str(ids[1]), 0.05)), r"far bound"),
    "near not a number": (_epic_edit("nears", lambda m, ids: m["nears"].__setitem__(str(ids[1]), "x")),
                          r"'nears'/'fars' must hold one number"),
    "3x3 pose": (_epic_pose(3, lambda p: p[:, :3]), r"frame id 250 .*shape 3x3"),
    "NaN pose": (_epic_pose(0, lambda p: p * np.nan), r"frame id 100 .*NaN/Inf"),
    "scaled pose": (_epic_pose(4, lambda p: p * 3), r"frame '300 \(IMG_0000000300\.jpg\)' is not orthonormal"),
    "intrinsics garbage": (_epic_edit("intrinsics", lambda m, ids: m.update(intrinsics=[1, 2])), r"'intrinsics' must be one 3x3"),
    "zero focal": (_epic_edit("intrinsics", lambda m, ids: m["intrinsics"][0].__setitem__(0, 0.0)), r"focal length"),
    "ids not integers": (_epic_edit("ids_all", lambda m, ids: m.update(ids_all=["a"])), r"'ids_all' must be a list"),
    "frame of another size": (
        lambda seq, ids: _image(seq / "frames" / f"IMG_{ids[5]:010d}.jpg", 64, 32),
        r"IMG_0000000350\.jpg is 64x32 but IMG_0000000100\.jpg is 48x32"),
    "mask of another size": (
        lambda seq, ids: _mask(seq / "annotations" / f"IMG_{ids[2]:010d}.png", 24, 16),
        r"mask .*IMG_0000000200\.png is 24x16 but its frame .*IMG_0000000200\.jpg is 48x32"),
}


@pytest.mark.parametrize("case", sorted(EPIC_CASES))
def test_epic_bad_input(tmp_path: Path, case: str) -> None:
    seq, ids, _ = _write_sequence(tmp_path)
    corrupt, message = EPIC_CASES[case]
    corrupt(seq, ids)
    with pytest.raises(N3FInputError, match=message):
        load_epic(seq)


def test_epic_masks_follow_max_size(tmp_path: Path) -> None:
    seq, _, _ = _write_sequence(tmp_path)
    scene = load_epic(seq, max_size=24)
    assert scene.frames[0].shape == (16, 24, 3)
    assert scene.annotations.modal.shape[2:] == (16, 24)
    assert scene.annotations.modal[0, 0, 3:10, 5:15].all()


def test_epic_cli_bad_bound(tmp_path: Path) -> None:
    seq, ids, _ = _write_sequence(tmp_path)
    _edit_json(seq / "meta.json", lambda m: m["nears"].__setitem__(str(ids[2]), 0.0))
    out = tmp_path / "out" / "scene.zarr"
    assert_refused(n3f_scene({"name": "P01_01", "source": "epic", "path": str(seq)}, out), out,
                   "meta.json", "IMG_0000000200.jpg", "near bound")


# ------------------------------------------------------------------ options of a scene entry


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"source": "llff", "path": "p", "options": {"max_size": "48"}},
         r"^scenes\[s\]\.options\.max_size: '48' is not a valid value; expected int\.$"),
        ({"source": "llff", "path": "p", "options": {"max_size": -5}}, r"options\.max_size: -5 is out of range"),
        ({"source": "llff", "path": "p", "options": {"max_size": 0}}, r"options\.max_size: 0 is out of range"),
        ({"source": "llff", "path": "p", "options": {"n_frames": True}}, r"options\.n_frames: True .*expected int"),
        ({"source": "llff", "path": "p", "options": {"images": ""}}, r"options\.images: an empty string"),
        ({"source": "llff", "path": "p", "options": {"layout": "sideways"}}, r"options\.layout: 'sideways' is not one of"),
        ({"source": "llff", "path": "p", "options": {"imagez": "x"}}, r"option\(s\) \['imagez'\] not understood.*'images'"),
        ({"source": "llff", "path": "p", "options": ["max_size"]}, r"scenes\[s\]\.options: expected a mapping"),
        ({"source": "transforms", "path": "p", "options": {"near": 0}}, r"options\.near: 0 is out of range; it must be > 0"),
        ({"source": "transforms", "path": "p", "options": {"near": 2, "far": 2}}, r"options\.far: 2 must be greater"),
        ({"source": "transforms", "path": "p", "options": {"far": float("nan")}}, r"options\.far: nan is not a finite"),
        ({"source": "colmap", "path": "p", "options": {"model": 3}}, r"options\.model: 3 .*expected str"),
        ({"source": "epic", "path": "p", "options": {"annotations_dir": None}}, r"options\.annotations_dir: None"),
        ({"source": "video", "path": "v.mp4", "options": {"every": 5}}, r"\['every'\] not understood.*'frames:'"),
        ({"source": "video", "path": "v.mp4", "frames": {"every": 0}}, r"scenes\[s\]\.frames\.every: 0 is out of range"),
        ({"source": "video", "path": "v.mp4", "frames": {"every": 2, "target_count": 5}}, r"not both"),
        ({"source": "images", "path": "d", "sfm": {"matcher": "vocab"}}, r"scenes\[s\]\.sfm\.matcher: 'vocab'"),
        ({"source": "images", "path": "d", "sfm": {"camera_params": [1.0, "x"]}}, r"sfm\.camera_params\[1\]: 'x'"),
        ({"source": "synthetic", "options": {"n_frames": "12"}}, r"options\.n_frames: '12'"),
        ({"source": "synthetic", "options": {"kind": "dynamic", "layout": "object"}}, r"not available for kind"),
        ({"source": "synthetic", "options": {"colour": "red"}}, r"\['colour'\] not understood"),
        ({"source": "lidar"}, r"unknown scene source 'lidar'"),
        ({"source": "llff"}, r"source 'llff' needs a 'path'"),
        ({"source": "llff", "path": 3}, r"scenes\[s\]\.path: 3"),
    ],
)
def test_scene_entry_is_checked_without_data(entry: dict, message: str) -> None:
    with pytest.raises(N3FInputError, match=message):
        check_scene_entry({"name": "s", **entry})


def test_valid_entries_pass_and_checking_imports_no_importer() -> None:
    code = (
        "import sys\n"
        "from n3f.scene.sources import check_scene_entry\n"
        "check_scene_entry({'name': 'g', 'source': 'llff', 'path': 'x', 'options': {'images': 'images_8', "
        "'masks': 'masks_8', 'layout': 'object', 'max_size': None}})\n"
        "check_scene_entry({'name': 'f', 'source': 'transforms', 'path': 'x', 'options': {'max_size': 480, 'near': 1}})\n"
        "check_scene_entry({'name': 't', 'source': 'synthetic', 'options': {'kind': 'static', 'n_frames': 60}})\n"
        "check_scene_entry({'name': 'v', 'source': 'video', 'path': 'v.mp4', 'frames': {'every': 5}, "
        "'sfm': {'matcher': 'exhaustive'}, 'evaluate': False})\n"
        "heavy = [m for m in ('torch', 'cv2', 'pycolmap', 'zarr', 'n3f.io.llff', 'n3f.scene.store', 'n3f.synthetic') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_synthetic_bad_option_on_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "out" / "scene.zarr"
    spec = {"name": "toy", "source": "synthetic", "options": {"n_frames": "12"}}
    assert_refused(n3f_scene(spec, out), out, "scenes[toy].options.n_frames: '12' is not a valid value; expected int")


def _hints(fn: Callable) -> dict[str, Any]:
    return typing.get_type_hints(fn)


def _expected(option) -> Any:
    return option.type | None if option.nullable else option.type


@pytest.mark.parametrize("source", source_names())
def test_registered_importers_share_one_signature(source: str) -> None:
    """Every registered importer is called as ``importer(path, *, name, **options)``."""
    params = list(inspect.signature(SOURCES[source].load()).parameters.values())
    assert params[0].name == "path" and params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD) for p in params[1:])
    assert "name" in {p.name for p in params}


@pytest.mark.parametrize("source", source_names())
def test_option_table_matches_importer_signatures(source: str) -> None:
    """The declared options are exactly the registered importer's keyword arguments, with their types and defaults."""
    from n3f.synthetic import make_scene
    from n3f.synthetic.scene_spec import KINDS, build_spec

    entry = SOURCES[source]
    # the synthetic importer hands its options to make_scene, which hands the rest to build_spec
    fns = [make_scene, build_spec] if source == "synthetic" else [entry.load()]
    skip = {"name", "path", "kw"}
    if entry.posed_by_sfm:
        skip.add("images")  # the sfm stage's frames, given by the pipeline (n3f scene --images)
    params: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    for fn in fns:
        params.update({k: p for k, p in inspect.signature(fn).parameters.items() if k not in skip})
        hints.update(_hints(fn))
    declared = dict(entry.options)
    assert set(declared) == set(params)
    for key, option in declared.items():
        assert hints[key] == _expected(option), key
        assert params[key].default == option.default, key
    assert SYNTHETIC_LAYOUTS == KINDS


@pytest.mark.parametrize("table, fn_name", [(FRAME_OPTIONS, "extract_frames"), (SFM_OPTIONS, "run_sfm")])
def test_capture_option_tables_match_signatures(table: dict, fn_name: str) -> None:
    from n3f.io import sfm, video

    fn = getattr(video, fn_name, None) or getattr(sfm, fn_name)
    params = {k: p for k, p in inspect.signature(fn).parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    params.pop("num_threads", None)  # n3f sfm --threads
    assert set(table) == set(params)
    hints = _hints(fn)
    for key, option in table.items():
        assert params[key].default == option.default, key
        if key != "matcher":  # Literal[...] there, choices here
            expected = (list[float] | None) if key == "camera_params" else _expected(option)
            assert hints[key] == expected, key


def test_documented_tolerances() -> None:
    doc = (REPO / "docs" / "importers.md").read_text()
    assert f"{ROTATION_TOLERANCE:g}" in doc and f"{ASPECT_TOLERANCE_PX:g} px" in doc
    for source, entry in SOURCES.items():
        assert f"`{source}`" in doc
        for key in entry.options:
            assert f"`{key}`" in doc, (source, key)
