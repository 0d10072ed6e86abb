"""3D segmentation, object removal and amodal segmentation: scoring functions and the three commands.

Scoring functions are checked on cases with a known answer; the commands run
end to end on a tiny synthetic scene with a briefly trained field (quality is
not asserted there - only that every output is written and well formed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from n3f.scene import SceneStore, write_scene
from n3f.tasks.amodal import best_threshold_iou, iou
from n3f.tasks.editing import PSNR_CAP, psnr
from n3f.tasks.segment3d import (
    feature_modifier,
    gt_surface_points,
    gt_view,
    object_primitive,
    segmentation_precision_recall,
    to_world,
    write_ply,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    from n3f.synthetic import make_scene
    from n3f.train.mask_features import write_mask_features

    root = tmp_path_factory.mktemp("tasks")
    scene = write_scene(make_scene("tiny_tasks", kind="static", n_frames=10, width=32, height=24, seed=1),
                        root / "scene.zarr", progress=False)
    return {"root": root, "scene": scene, "features": write_mask_features(scene, root / "features.zarr", patch=4)}


# -- scoring functions -------------------------------------------------------
def test_precision_recall_known_answers():
    rng = np.random.default_rng(0)
    surface = rng.uniform(-1, 1, (200, 3))
    perfect = segmentation_precision_recall(surface, np.zeros(200, bool), surface, 0.01)
    assert perfect["precision"] == 1.0 and perfect["recall"] == 1.0 and perfect["f1"] == 1.0
    far = surface + 10.0
    wrong = segmentation_precision_recall(far, np.zeros(200, bool), surface, 0.01)
    assert wrong["precision"] == 0.0 and wrong["recall"] == 0.0
    # inside the volume counts as correct even far from the visible surface; half the surface covered
    half = segmentation_precision_recall(surface[:100], np.ones(100, bool), surface, 1e-6)
    assert half["precision"] == 1.0 and half["recall"] == pytest.approx(0.5)
    none = segmentation_precision_recall(np.zeros((0, 3)), np.zeros(0, bool), surface, 0.01)
    assert np.isnan(none["precision"]) and none["recall"] == 0.0


def test_psnr_and_iou_known_answers():
    a = np.zeros((4, 5, 3))
    assert psnr(a, a) == PSNR_CAP
    assert psnr(a, a + 0.1) == pytest.approx(20.0)
    assert psnr(np.zeros((4, 5, 3), np.uint8), np.full((4, 5, 3), 255, np.uint8)) == pytest.approx(0.0)
    mask = np.zeros((4, 5), bool)
    mask[:2] = True
    b = a.copy()
    b[2:] = 1.0  # differs only outside the mask
    assert psnr(a, b, mask) == PSNR_CAP and psnr(a, b) < 10
    assert np.isnan(psnr(a, b, np.zeros((4, 5), bool)))

    m = np.zeros((6, 6), bool)
    m[:3] = True
    assert iou(m, m) == 1.0 and iou(m, ~m) == 0.0
    assert iou(m, np.ones_like(m)) == pytest.approx(0.5)
    dist = np.where(m, 0.1, 0.9)
    best, thr = best_threshold_iou(dist, m)
    assert best == 1.0 and 0.1 < thr <= 0.9


def test_feature_modifier_keeps_or_removes_matches():
    desc = np.array([1.0, 0.0, 0.0], np.float32)
    feats = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    out = {"features": feats, "density": torch.ones(3)}
    keep = feature_modifier(desc, 0.2, keep=True)(torch.zeros(3, 3), out)
    drop = feature_modifier(desc, 0.2, keep=False)(torch.zeros(3, 3), out)
    assert keep.tolist() == [1.0, 0.0, 0.0] and drop.tolist() == [0.0, 1.0, 1.0]


def test_ground_truth_surface_points_lie_on_the_object(tiny):
    st = SceneStore(tiny["scene"])
    view = gt_view(st, 0)
    assert np.array_equal(view["rgb"], st.frame(0)) and np.array_equal(view["modal"], st.masks(0))
    scale = st.attrs["normalisation"]["scale"]
    assert view["modal"].any()
    for k, obj in enumerate(st.object_names):
        if not view["modal"][k].any():
            continue
        pts = gt_surface_points(st, 0, view["modal"][k], view)
        prim = object_primitive(st, obj, 0)
        world = to_world(st, pts)
        centre, radius = prim.bounding_sphere()
        assert (np.linalg.norm(world - centre, axis=1) <= radius * (1 + 1e-6) + 1e-6).all()
        # a little way inside along the view ray is inside the volume, a little way outside is not
        cam = to_world(st, st.c2w[0][:3, 3][None])[0]
        d = (world - cam) / np.linalg.norm(world - cam, axis=1, keepdims=True)
        assert prim.contains(world + 1e-3 * d).mean() > 0.95
        assert prim.contains(world - 1e-3 * d).mean() < 0.05
        assert np.allclose(st.to_normalised(world), pts) and scale > 0


def test_write_ply_roundtrip(tmp_path):
    from plyfile import PlyData

    pts = np.arange(12, dtype=np.float32).reshape(4, 3)
    write_ply(tmp_path / "p.ply", pts, np.full((4, 3), 0.5))
    v = PlyData.read(str(tmp_path / "p.ply"))["vertex"]
    assert np.allclose(np.stack([v["x"], v["y"], v["z"]], 1), pts) and (v["red"] == 128).all()


# -- end to end ----------------------------------------------------------------
def test_commands_write_scores_and_figures(tiny, tmp_path):
    from n3f.commands import tasks
    from n3f.train import TrainConfig, distill, pretrain_rgb

    small = {"batch_rays": 128, "lr": 0.02, "eval_frames": 1, "progress": False, "threads": 1,
             "sampler": {"n_proposal": 16, "n_importance": 8, "n_uniform": 4}}
    pretrain_rgb(tiny["scene"], tmp_path / "rgb", TrainConfig(field="grid", steps=40, **small))
    distill(tiny["scene"], tiny["features"], tmp_path / "rgb", tmp_path / "d",
            TrainConfig(field="grid", steps=40, freeze_steps=10, **small))

    parser = argparse.ArgumentParser()
    tasks.add_parser(parser.add_subparsers(required=True))
    common = ["--scene", str(tiny["scene"]), "--features", str(tiny["features"]), "--model", str(tmp_path / "d" / "model.pt"),
              "--objects", *SceneStore(tiny["scene"]).object_names[:2], "--max-frames", "1", "--threads", "1"]
    for command, name in (("eval-segment3d", "segment3d"), ("eval-edit", "edit"), ("eval-amodal", "amodal")):
        out = tmp_path / name
        args = parser.parse_args([command, *common, "--out", str(out)])
        args.func(args)
        summary = json.loads((out / f"{name}.json").read_text())
        assert summary["task"] == name and len(summary["objects"]) == 2
        assert not list(out.glob(".*partial*"))
        scored = [r for r in summary["objects"] if "note" not in r]
        assert scored, summary
        if name == "segment3d":
            assert (out / "points_all.ply").exists()
            assert all((out / f"segment3d_{r['object']}.ply").exists() for r in scored)
            assert all(0.0 <= r["recall"] <= 1.0 for r in scored)
        elif name == "edit":
            assert list(out.glob("edit_*_f*.png")) and list(out.glob("before_*.png")) and list(out.glob("after_*.png"))
            for r in scored:
                for f in r["frames"]:
                    assert f["psnr_edited"] > 0 and f["psnr_unedited"] > 0
        else:
            assert list(out.glob("amodal_*_f*.png"))
            for r in scored:
                for f in r["frames"]:
                    assert 0.0 <= f["iou_n3f"] <= 1.0 and 0.0 <= f["iou_teacher_best"] <= 1.0
