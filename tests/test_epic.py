"""EPIC-Diff importer on a small sequence written in NeuralDiff's format."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from n3f.errors import N3FInputError
from n3f.io.epic import load_epic
from n3f.scene import SceneStore, write_scene


def _write_sequence(root, n=12, h=32, w=48):
    """A sequence as NeuralDiff's colmap_converter writes it (ids are frame numbers)."""
    seq = root / "P01_01"
    (seq / "frames").mkdir(parents=True)
    (seq / "annotations").mkdir()
    rng = np.random.default_rng(0)
    ids = list(range(100, 100 + 50 * n, 50))
    c2w_cv, meta = [], {"ids_all": ids, "images": {}, "poses": {}, "nears": {}, "fars": {}}
    for j, frame_id in enumerate(ids):
        a = 0.1 * j
        rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
        cv_pose = np.eye(4)
        cv_pose[:3, :3], cv_pose[:3, 3] = rot, [0.1 * j, 0.0, -1.0]
        c2w_cv.append(cv_pose)
        gl_pose = cv_pose @ np.diag([1.0, -1.0, -1.0, 1.0])  # NeuralDiff's right/up/back axes
        name = f"IMG_{frame_id:010d}.jpg"
        cv2.imwrite(str(seq / "frames" / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        meta["images"][str(frame_id)] = name
        meta["poses"][str(frame_id)] = gl_pose[:3].tolist()
        meta["nears"][str(frame_id)] = 0.1
        meta["fars"][str(frame_id)] = 4.0 + j
    for frame_id in ids[2::3]:
        mask = np.zeros((h, w), np.uint8)
        mask[5:20, 10:30] = 255
        cv2.imwrite(str(seq / "annotations" / f"IMG_{frame_id:010d}.png"), mask)
    meta["ids_train"] = ids[1:-1]
    meta["ids_val"] = ids[:1]
    meta["ids_test"] = ids[-1:]
    meta["intrinsics"] = [[40.0, 0, 24.0], [0, 40.0, 16.0], [0, 0, 1]]
    (seq / "meta.json").write_text(json.dumps(meta))
    return seq, ids, np.stack(c2w_cv)


def test_sequence_imports_in_time_order_with_opencv_axes(tmp_path):
    seq, ids, c2w_cv = _write_sequence(tmp_path)
    scene = load_epic(tmp_path, video="P01_01")
    assert scene.name == "P01_01" and scene.dynamic and scene.layout == "egocentric"
    np.testing.assert_allclose(scene.c2w, c2w_cv, atol=1e-12)
    np.testing.assert_array_equal(scene.timestamps, ids)
    np.testing.assert_allclose(scene.bounds[:, 1], 4.0 + np.arange(len(ids)))
    assert list(scene.annotations.frame_indices) == [2, 5, 8, 11]
    assert scene.annotations.modal[0, 0, 5:20, 10:30].all() and scene.annotations.modal.sum() == 4 * 15 * 20
    store = SceneStore(write_scene(scene, tmp_path / "epic.zarr", progress=False))
    assert list(store.split("train")) == list(range(1, len(ids) - 1))
    assert list(store.split("val")) == [0]
    q, g = store.split("query"), store.split("gallery")
    assert len(q) and len(g) and not set(q) & set(g) and set(q) | set(g) == {2, 5, 8, 11}


def test_missing_frame_is_named(tmp_path):
    seq, ids, _ = _write_sequence(tmp_path)
    (seq / "frames" / f"IMG_{ids[3]:010d}.jpg").unlink()
    with pytest.raises(N3FInputError, match=f"IMG_{ids[3]:010d}.jpg"):
        load_epic(seq)


def test_incomplete_meta(tmp_path):
    seq, ids, _ = _write_sequence(tmp_path)
    meta = json.loads((seq / "meta.json").read_text())
    del meta["poses"][str(ids[4])]
    (seq / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(N3FInputError, match=rf"'poses' has no entry for frame ids \[{ids[4]}\]"):
        load_epic(seq)


def test_not_an_epic_folder(tmp_path):
    with pytest.raises(N3FInputError, match="meta.json"):
        load_epic(tmp_path, video="P99_99")
