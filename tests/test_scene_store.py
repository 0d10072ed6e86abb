"""The scene store: round trip, validation of bad input, atomic writes."""

from __future__ import annotations

import ast

import numpy as np
import pytest

from n3f.errors import N3FInputError
from n3f.scene import Annotations, SceneData, SceneStore, write_scene
from tests.conftest import REPO


def _tiny_scene(n: int = 10, h: int = 8, w: int = 12) -> SceneData:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8)
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    for i, a in enumerate(angles):  # cameras on a circle looking at the origin
        pos = np.array([3 * np.cos(a), 0.0, 3 * np.sin(a)]) + [5.0, -2.0, 1.0]
        z = ([5.0, -2.0, 1.0] - pos) / 3
        x = np.cross([0, 1, 0], z)
        x /= np.linalg.norm(x)
        c2w[i, :3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
        c2w[i, :3, 3] = pos
    k = np.array([[10.0, 0, w / 2], [0, 10.0, h / 2], [0, 0, 1]])
    modal = rng.random((3, 2, h, w)) > 0.5
    return SceneData(
        name="tiny",
        source="test",
        frames=frames,
        frame_names=[f"{i:03d}.png" for i in range(n)],
        c2w=c2w,
        intrinsics=np.tile(k, (n, 1, 1)),
        bounds=np.tile([0.5, 6.0], (n, 1)),
        annotations=Annotations(np.array([0, 4, 8]), ["a", "b"], modal, modal | (rng.random(modal.shape) > 0.5)),
    )


def test_round_trip_normalises_and_keeps_everything(tmp_path):
    scene = _tiny_scene()
    store = SceneStore(write_scene(scene, tmp_path / "s.zarr", progress=False))
    assert store.n_frames == 10 and store.image_size == (8, 12)
    np.testing.assert_array_equal(store.frame(3), scene.frames[3])
    # cameras circle (5,-2,1) at radius 3: normalised to unit radius around the origin
    assert np.allclose(np.linalg.norm(store.c2w[:, :3, 3], axis=1), 1.0, atol=1e-6)
    assert np.allclose(store.attrs["normalisation"]["centre"], [5, -2, 1], atol=1e-6)
    assert store.attrs["normalisation"]["scale"] == pytest.approx(1 / 3)
    np.testing.assert_allclose(store.bounds, scene.bounds / 3)
    np.testing.assert_allclose(store.c2w[:, :3, :3], scene.c2w[:, :3, :3])
    assert store.object_names == ["a", "b"]
    np.testing.assert_array_equal(store.masks(4), scene.annotations.modal[1])
    np.testing.assert_array_equal(store.masks(8, "amodal"), scene.annotations.amodal[2])
    train, val = store.split("train"), store.split("val")
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 10
    np.testing.assert_allclose(store.to_normalised(np.array([[5.0, -2.0, 4.0]])), [[0, 0, 1]], atol=1e-9)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda s: s.c2w.__setitem__((2, 0, 3), np.nan), "NaN"),
        (lambda s: s.intrinsics.__setitem__((1, 0, 0), np.inf), "NaN/Inf"),
        (lambda s: s.c2w.__setitem__((0, 0, 0), 2.0), "not orthonormal"),
        (lambda s: setattr(s, "layout", "sideways"), "layout 'sideways' unknown"),
        (lambda s: setattr(s, "frame_names", s.frame_names[:-1]), "frame names"),
        # the backstop behind the importers' own checks (n3f.io.checks)
        (lambda s: s.c2w.__setitem__((3, slice(None), 0), -s.c2w[3, :, 0]), "'003.png' is a mirror image"),
        (lambda s: s.c2w.__setitem__((1, 3, 2), 0.5), "'001.png' has last row"),
        (lambda s: s.bounds.__setitem__((4, 0), -0.1), "near bound of frame '004.png' is -0.1"),
        (lambda s: s.bounds.__setitem__((6, 1), 0.2), "far bound of frame '006.png' is 0.2"),
        (lambda s: s.intrinsics.__setitem__((2, 1, 1), 0.0), "focal length of frame '002.png'"),
        (lambda s: setattr(s.annotations, "modal", s.annotations.modal[:, :, :4]), "modal masks have shape"),
        (lambda s: setattr(s.annotations, "frame_indices", np.array([0, 4, 10])), "annotated frame indices"),
    ],
)
def test_bad_input_is_refused_and_leaves_nothing(tmp_path, corrupt, message):
    scene = _tiny_scene()
    corrupt(scene)
    with pytest.raises(N3FInputError, match=message):
        write_scene(scene, tmp_path / "s.zarr", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_frame_of_other_size_names_the_file_and_leaves_no_store(tmp_path):
    scene = _tiny_scene()
    frames = list(scene.frames)
    frames[5] = np.zeros((9, 12, 3), np.uint8)
    scene.frames = frames
    with pytest.raises(N3FInputError, match="005.png"):
        write_scene(scene, tmp_path / "s.zarr", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_reader_refuses_non_store(tmp_path):
    with pytest.raises(N3FInputError, match="not a scene store"):
        SceneStore(tmp_path)


def test_stale_partial_folder_is_removed_by_the_next_write(tmp_path):
    stale = tmp_path / "s.zarr.partial-99999"
    (stale / "frames").mkdir(parents=True)
    store = SceneStore(write_scene(_tiny_scene(), tmp_path / "s.zarr", progress=False))
    assert store.n_frames == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


def _imported_modules(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("producer, others", [("io", ("scene", "synthetic")), ("synthetic", ("scene", "io"))])
def test_producers_import_neither_the_store_nor_each_other(producer: str, others: tuple[str, ...]) -> None:
    """Importers and the renderer produce SceneData (n3f.scene_data); only n3f.scene imports them, lazily."""
    for path in sorted((REPO / "n3f" / producer).rglob("*.py")):
        for module in _imported_modules(path):
            for other in others:
                assert module != f"n3f.{other}" and not module.startswith(f"n3f.{other}."), (path.name, module)
