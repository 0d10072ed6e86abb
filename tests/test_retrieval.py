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
            "scene": ["s1"] * 6 + ["s2"] * 6,
            "teacher": ["dino"] * 12,
            "method": ["teacher", "teacher", "n3f", "n3f", "fused", "fused"] * 2,
            "object": ["a"] * 12,
            "query": [0] * 12,
            "gallery": [1, 2, 1, 2, 1, 2] * 2,
            "ap": [0.2, 0.4, 0.6, np.nan, 0.5, 0.7, 0.5, 0.5, 0.9, 0.7, 0.6, 0.6],
            "note": [""] * 12,
        }
    )
    files = []
    for scene, part in rows.groupby("scene"):
        files.append(tmp_path / f"{scene}.csv")
        part.to_csv(files[-1], index=False)
    long = write_retrieval_tables(files, tmp_path / "map.csv", tmp_path / "map.md")
    every = long[long["split"] == "all"]
    got = {(r.scene, r.method): r.map for r in every.itertuples()}
    assert got == pytest.approx({("s1", "teacher"): 30.0, ("s1", "n3f"): 60.0, ("s2", "teacher"): 50.0, ("s2", "n3f"): 80.0,
                                 ("s1", "fused"): 60.0, ("s2", "fused"): 60.0})
    # one query unit per method and scene: its interval is the point itself
    assert (every["map_lo"] == every["map"]).all() and (every["map_hi"] == every["map"]).all()
    md = (tmp_path / "map.md").read_text()
    assert "| dino | 30.0 (30.0–30.0) | 50.0 (50.0–50.0) | 40.0 |  |" in md
    assert "| N3F(dino) | 60.0 (60.0–60.0) | 80.0 (80.0–80.0) | 70.0 | +30.0 |" in md
    # the training-free fused field: a row of its own after N3F's, its gain over the same teacher
    assert md.index("| N3F(dino) |") < md.index("| Fused(dino) | 60.0 (60.0–60.0) | 60.0 (60.0–60.0) | 60.0 | +20.0 |")
    # rows written before splits existed have no seen / novel split: those cells stay empty
    assert long.loc[long["split"] == "seen", "n"].eq(0).all()


# -- one-view segmentation, patch queries, seen / novel, intervals (issue 13) ---------------------------------
def _bigger_store(tmp_path, val=(2, 4)) -> SceneStore:
    """24 x 32 frames, two objects large enough for 3 x 3-pixel patches; ``val`` frames held out of training."""
    n, h, w = 6, 24, 32
    modal = np.zeros((n, 2, h, w), bool)
    for f in range(n):
        modal[f, 0, 3:13, f : f + 12] = True
        modal[f, 1, 15:22, 18:30] = True
    train = np.setdiff1d(np.arange(n), val)
    scene = SceneData(
        name="big", source="test", frames=np.zeros((n, h, w, 3), np.uint8), frame_names=[str(i) for i in range(n)],
        c2w=np.tile(np.eye(4), (n, 1, 1)), intrinsics=np.tile(np.eye(3), (n, 1, 1)), bounds=np.tile([0.1, 1.0], (n, 1)),
        layout="forward",
        split={"train": train, "val": np.asarray(val), "query": np.array([0]), "gallery": np.arange(1, n)},
        annotations=Annotations(np.arange(n), ["a", "b"], modal),
    )
    return SceneStore(write_scene(scene, tmp_path / "big.zarr", normalise=False, progress=False))


def test_perfect_features_segment_every_view_exactly(tmp_path):
    from n3f.tasks.retrieval import score_rows

    store = _bigger_store(tmp_path)

    def one_hot(frame):
        m = store.masks(frame)
        return np.stack([m[0], m[1], ~(m[0] | m[1])], -1).astype(np.float32)

    ap, seg = score_rows(store, one_hot, teacher="t", method="teacher", patch_side=3, patches=2)
    assert set(seg["query_kind"]) == {"mask", "patch"} and len(seg) == 2 * (1 + 2) * 5
    assert np.allclose(seg["iou"], 1.0) and np.allclose(seg["acc"], 1.0) and np.allclose(seg["oracle_iou"], 1.0)
    assert np.allclose(ap["ap"], 1.0)
    # seen / novel: frames 2 and 4 were held out of training
    assert set(ap.loc[~ap["seen"].astype(bool), "gallery"]) == {2, 4}


def test_noise_features_segment_at_chance(tmp_path):
    """Features unrelated to the objects: every pixel is equally close, the IoU is what selecting at random gives."""
    from n3f.tasks.retrieval import score_rows

    store = _bigger_store(tmp_path)
    rng = np.random.default_rng(0)
    noise = {f: rng.normal(size=(24, 32, 16)).astype(np.float32) for f in range(6)}
    _, seg = score_rows(store, lambda f: noise[f], teacher="t", method="teacher")
    for obj, part in seg.groupby("object"):
        share = store.masks(1)[["a", "b"].index(obj)].mean()
        # a random selection of any size has IoU <= the object's share of the frame (all pixels selected)
        assert part["iou"].mean() <= share + 0.05, (obj, part["iou"].mean(), share)
        assert part["oracle_iou"].mean() <= share + 0.1


def test_patches_lie_inside_the_object_and_spread():
    from n3f.tasks.query_units import place_patches

    mask = np.zeros((40, 60), bool)
    mask[5:35, 15:45] = True
    squares = place_patches(mask, 6, 3)
    assert len(squares) == 3 and all(sq.sum() == 36 and not (sq & ~mask).any() for sq in squares)
    centres = [np.argwhere(sq).mean(0) for sq in squares]
    assert centres[0] == pytest.approx([19.5, 29.5], abs=1.0)  # the deepest pixel first
    assert min(np.linalg.norm(a - b) for i, a in enumerate(centres) for b in centres[i + 1:]) > 10
    sliver = np.zeros((40, 60), bool)
    sliver[10, 5:40] = True  # one pixel thin: one square, clipped to the object
    (only,) = place_patches(sliver, 6, 3)
    assert only.any() and not (only & ~sliver).any()
    assert place_patches(np.zeros((4, 4), bool), 2, 3) == []


def test_iou_curve_and_accuracy_known_answers():
    from n3f.metrics import iou, iou_curve, pixel_accuracy

    rng = np.random.default_rng(1)
    d = rng.random((20, 30))
    target = rng.random((20, 30)) < 0.3
    grid = np.linspace(0.0, 1.0, 21)
    assert np.allclose(iou_curve(d, target, grid), [iou(d < t, target) for t in grid])
    assert pixel_accuracy(target, target) == 1.0 and pixel_accuracy(~target, target) == 0.0


def test_bootstrap_interval_covers_the_mean_with_the_normal_width():
    from n3f.metrics import bootstrap_interval

    rng = np.random.default_rng(2)
    values = rng.normal(0.5, 0.1, size=400)
    lo, hi = bootstrap_interval(values)
    half = 1.96 * values.std() / np.sqrt(len(values))
    assert lo < values.mean() < hi and (hi - lo) / 2 == pytest.approx(half, rel=0.15)
    # grouped: 20 queries of 20 identical rows are 20 draws, not 400: the interval is ~sqrt(20) times wider
    groups = np.repeat(np.arange(20), 20)
    per_query = rng.normal(0.5, 0.1, size=20)
    glo, ghi = bootstrap_interval(per_query[groups], groups)
    assert (ghi - glo) / 2 == pytest.approx(1.96 * per_query.std() / np.sqrt(20), rel=0.25)
    assert bootstrap_interval(values) == (lo, hi)  # a fixed seed: the same rows give the same interval
    assert all(np.isnan(bootstrap_interval(np.array([np.nan]))))
