"""The retrieval protocol: per-query rows and their mAP on stores with known answers (AP itself: test_metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest

from n3f.metrics import mean_ap
from n3f.scene import Annotations, SceneData, SceneStore, write_scene
from n3f.tasks.retrieval import retrieval_rows


def _store(tmp_path) -> SceneStore:
    n, h, w = 6, 10, 12
    modal = np.zeros((n, 2, h, w), bool)
    for f in range(n):
        modal[f, 0, 2:5, f : f + 4] = True  # object "a" moves across frames
        modal[f, 1, 6:9, 2:6] = f != 3  # object "b" hidden in frame 3
    scene = SceneData(
        name="grid",
        source="test",
        frames=np.zeros((n, h, w, 3), np.uint8),
        frame_names=[str(i) for i in range(n)],
        c2w=np.tile(np.eye(4), (n, 1, 1)),
        intrinsics=np.tile(np.eye(3), (n, 1, 1)),
        bounds=np.tile([0.1, 1.0], (n, 1)),
        layout="forward",
        split={"train": np.arange(n), "val": np.arange(0), "query": np.array([0]), "gallery": np.arange(1, n)},
        annotations=Annotations(np.arange(n), ["a", "b"], modal),
    )
    scene.c2w[:, 0, 3] = np.arange(n)  # distinct cameras
    return SceneStore(write_scene(scene, tmp_path / "grid.zarr", normalise=False, progress=False))


def test_perfect_features_give_map_one_and_hidden_object_is_skipped(tmp_path):
    store = _store(tmp_path)

    def one_hot(frame):
        m = store.masks(frame)
        bg = ~(m[0] | m[1])
        return np.stack([m[0], m[1], bg], -1).astype(np.float32)

    rows = retrieval_rows(store, one_hot, teacher="t", method="teacher")
    assert len(rows) == 2 * 5
    skipped = rows[rows["ap"].isna()]
    assert list(zip(skipped["object"], skipped["gallery"])) == [("b", 3)]
    assert "not visible" in skipped["note"].iloc[0]
    assert mean_ap(rows["ap"]) == pytest.approx(1.0)


def test_constant_features_give_positive_fraction(tmp_path):
    store = _store(tmp_path)
    rows = retrieval_rows(store, lambda f: np.ones((10, 12, 4), np.float32), teacher="t", method="teacher")
    a = rows[rows["object"] == "a"]
    assert np.allclose(a["ap"], 12 / 120)


def test_tables_regenerate_from_rows(tmp_path):
    import pandas as pd

    from n3f.reporting.tables import write_retrieval_tables

    rows = pd.DataFrame(
        {
            "scene": ["s1"] * 4 + ["s2"] * 4,
            "teacher": ["dino"] * 8,
            "method": ["teacher", "teacher", "n3f", "n3f"] * 2,
            "object": ["a"] * 8,
            "query": [0] * 8,
            "gallery": [1, 2, 1, 2] * 2,
            "ap": [0.2, 0.4, 0.6, np.nan, 0.5, 0.5, 0.9, 0.7],
            "note": [""] * 8,
        }
    )
    files = []
    for scene, part in rows.groupby("scene"):
        files.append(tmp_path / f"{scene}.csv")
        part.to_csv(files[-1], index=False)
    long = write_retrieval_tables(files, tmp_path / "map.csv", tmp_path / "map.md")
    got = {(r.scene, r.method): r.map for r in long.itertuples()}
    assert got == pytest.approx({("s1", "teacher"): 30.0, ("s1", "n3f"): 60.0, ("s2", "teacher"): 50.0, ("s2", "n3f"): 80.0})
    md = (tmp_path / "map.md").read_text()
    assert "| dino | 30.0 | 50.0 | 40.0 |  |" in md
    assert "| N3F(dino) | 60.0 | 80.0 | 70.0 | +30.0 |" in md
