"""3D segmentation, object removal and amodal segmentation: selection, task scores and the three commands.

Selection, the threshold calibration and the task scores are checked on cases
with a known answer (ground truth from the analytic renderer where it applies;
the metrics themselves are in test_metrics.py); the
commands run end to end on a tiny synthetic scene with a briefly trained field
(quality is not asserted there - only that every output is written, well
formed and consistent with the per-frame rows).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from n3f.metrics import PSNR_CAP, psnr
from n3f.scene import SceneStore, write_scene
from n3f.tasks.amodal import amodal_scores
from n3f.tasks.common import gt_surface_points, gt_view, object_primitive, to_world, write_ply, write_png
from n3f.tasks.defaults import LOCALITY
from n3f.tasks.editing import edit_scores
from n3f.tasks.selection import Region, calibrate_threshold, feature_modifier

torch.set_num_threads(1)


def make_tiny(root: Path) -> dict[str, Path]:
    """A 10-frame 32 x 24 synthetic scene and its mask-derived teacher features (shared with test_report)."""
    from n3f.synthetic import make_scene
    from n3f.teachers.mask import write_mask_features

    scene = write_scene(make_scene("tiny_tasks", kind="static", n_frames=10, width=32, height=24, seed=1),
                        root / "scene.zarr", progress=False)
    return {"root": root, "scene": scene, "features": write_mask_features(scene, root / "features.zarr", patch=4)}


def train_tiny(scene: Path, features: Path, out: Path, steps: int = 40) -> Path:
    """RGB pretraining then distillation of a grid field for a few steps; returns the distilled model.pt."""
    from n3f.train import TrainConfig, distill, pretrain_rgb

    # the shipped defaults, the bounded-space distortion loss included: it compacts so short a run's weights
    # before its features fit, and the selection keeps and removes the object only with its enclosed volume
    # (n3f.tasks.volume; without it test_locality's query object keeps 0.16 of its opacity, bench/NOTES.md session 16)
    small = {"batch_rays": 128, "lr": 0.02, "eval_frames": 1, "progress": False, "threads": 1,
             "sampler": {"n_proposal": 16, "n_importance": 8, "n_uniform": 4}}
    pretrain_rgb(scene, out / "rgb", TrainConfig(field="grid", steps=steps, **small))
    distill(scene, features, out / "rgb", out / "d", TrainConfig(field="grid", steps=steps, freeze_steps=steps // 4, **small))
    return out / "d" / "model.pt"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return make_tiny(tmp_path_factory.mktemp("tasks"))


# -- selection and task scores ---------------------------------------------
def test_feature_modifier_keeps_or_removes_matches():
    desc = np.array([1.0, 0.0, 0.0], np.float32)
    feats = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    out = {"features": feats, "density": torch.ones(3)}
    keep = feature_modifier(desc, 0.2, keep=True)(torch.zeros(3, 3), out)
    drop = feature_modifier(desc, 0.2, keep=False)(torch.zeros(3, 3), out)
    assert keep.tolist() == [1.0, 0.0, 0.0] and drop.tolist() == [0.0, 1.0, 1.0]
    # a matching feature in (nearly) empty space does not match: its feature was never supervised
    sparse = {"features": feats, "density": torch.tensor([0.5, 5.0, 5.0])}
    assert feature_modifier(desc, 0.2, keep=True, density_threshold=1.0)(torch.zeros(3, 3), sparse).tolist() == [0, 0, 0]
    assert feature_modifier(desc, 0.4, keep=False, density_threshold=1.0)(torch.zeros(3, 3), sparse).tolist() == [1, 1, 0]


def test_region_known_answers():
    """A region is every point within the margin of the query's surface points, minus strays."""
    rng = np.random.default_rng(0)
    surface = rng.uniform(-0.05, 0.05, (200, 3))
    stray = np.array([[2.0, 0.0, 0.0]])  # a mis-rendered depth far behind the object
    region = Region.around(np.concatenate([surface, stray]), 0.1)
    assert region.margin == 0.1 and 0 < len(region.points) <= 200
    probe = np.array([[0.0, 0.0, 0.0], [0.11, 0.0, 0.0], [0.0, -0.11, 0.0], [0.25, 0.0, 0.0], [2.0, 0.0, 0.0]])
    assert region.contains_np(probe).tolist() == [True, True, True, False, False]  # the stray adds nothing
    # the torch test keeps the shape of its input and agrees with the numpy one
    grid = torch.as_tensor(rng.uniform(-0.3, 0.3, (4, 50, 3)), dtype=torch.float32)
    got = region.contains(grid)
    exact = np.linalg.norm(grid.numpy()[..., None, :] - surface[None, None], axis=-1).min(-1) <= 0.1
    assert got.shape == (4, 50)
    # thinning moves the boundary by at most 0.17 x margin: only points that close to it may disagree
    d = np.linalg.norm(grid.numpy()[..., None, :] - surface[None, None], axis=-1).min(-1)
    assert (got.numpy() == exact)[np.abs(d - 0.1) > 0.02].all()
    assert not Region.around(np.zeros((0, 3)), 0.1).contains_np(probe).any()
    # a ray passes through the region iff some point of its forward half-line is inside (dense brute force)
    origins = torch.as_tensor(rng.uniform(-1.0, 1.0, (400, 3)), dtype=torch.float32)
    dirs = torch.nn.functional.normalize(torch.as_tensor(rng.standard_normal((400, 3)), dtype=torch.float32), dim=-1)
    t = torch.linspace(0.0, 4.0, 4001)
    brute = region.contains(origins[:, None] + t[None, :, None] * dirs[:, None]).any(1)
    hits = region.ray_hits(origins, dirs)
    assert brute.any() and not brute.all() and (hits == brute).float().mean() > 0.99
    assert hits[brute].all()  # conservative: a ray with a sample inside is never skipped
    assert not region.ray_hits(torch.tensor([[0.5, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0]])).any()  # points away
    with pytest.raises(ValueError, match="positive"):
        Region.around(surface, 0.0)
    # a feature match outside the region is not a match
    desc = np.array([1.0, 0.0, 0.0], np.float32)
    out = {"features": torch.tensor([[1.0, 0.0, 0.0]] * 2), "density": torch.ones(2)}
    world = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    assert feature_modifier(desc, 0.2, keep=False, region=region)(world, out).tolist() == [0.0, 1.0]
    assert feature_modifier(desc, 0.2, keep=False)(world, out).tolist() == [0.0, 0.0]


def test_calibrated_threshold_known_answers():
    obj = np.r_[np.ones(30, bool), np.zeros(70, bool)]
    separable = np.where(obj, 0.1, 0.5)
    c = calibrate_threshold(separable, obj)
    # the smallest grid threshold above every object distance: all of the object, none of the background
    assert c["threshold"] == pytest.approx(0.12) and c["iou"] == 1.0
    assert c["object_selected"] == 1.0 and c["background_selected"] == 0.0
    # 10 background samples as close as the object: they cannot be told apart, IoU 30 / 40
    mixed = separable.copy()
    mixed[30:40] = 0.1
    c = calibrate_threshold(mixed, obj)
    assert c["iou"] == pytest.approx(0.75) and c["background_selected"] == pytest.approx(10 / 70)
    # half the object far away: taking it too would select all the background (IoU 0.3), so it is left
    spread = separable.copy()
    spread[15:30] = 0.9
    c = calibrate_threshold(spread, obj)
    assert c["iou"] == pytest.approx(0.5) and c["threshold"] <= 0.5
    with pytest.raises(ValueError, match="object sample"):
        calibrate_threshold(separable, np.zeros(100, bool))


def test_edit_scores_perfect_removal_equals_ground_truth(tiny):
    """Known answer from the analytic renderer: a perfect removal *is* the scene rendered without the object."""
    st = SceneStore(tiny["scene"])
    f = 0
    k = next(i for i in range(len(st.object_names)) if st.masks(f, "amodal")[i].sum() > 4)
    obj, amodal = st.object_names[k], st.masks(f, "amodal")[k]
    removed = gt_view(st, f, exclude=(obj,))["rgb"]
    original = st.frame(f)
    perfect = edit_scores(original, removed, removed, original, amodal)
    assert perfect["psnr_edited"] == PSNR_CAP and perfect["masked_psnr_edited"] == PSNR_CAP
    assert perfect["masked_psnr_reconstruction"] == PSNR_CAP  # the 'unedited render' is the original itself
    # the unedited image still shows the object: finite, the same number the metric gives directly
    assert perfect["masked_psnr_unedited"] == pytest.approx(psnr(original, removed, amodal))
    assert perfect["masked_psnr_unedited"] < 40
    # a removal that changes nothing scores exactly the unedited baseline
    nothing = edit_scores(original, original, removed, original, amodal)
    assert nothing["masked_psnr_edited"] == nothing["masked_psnr_unedited"]
    assert nothing["mask_pixels"] == int(amodal.sum())


def test_amodal_scores_known_answers():
    amodal = np.zeros((10, 10), bool)
    amodal[2:8, 2:8] = True  # 36 pixels
    modal = amodal.copy()
    modal[2:8, 5:8] = False  # right half hidden behind an occluder: 18 visible
    teacher = np.where(modal, 0.1, 0.9)  # a perfect 2D (modal) segmenter
    full = amodal_scores(amodal.astype(float), teacher, amodal, modal)
    assert full["iou_n3f"] == 1.0 and full["iou_n3f_best"] == 1.0 and full["occluded"]
    # the perfect modal segmenter reaches exactly the modal oracle, 18 / 36, and no more
    assert full["iou_teacher_best"] == pytest.approx(0.5) == full["iou_modal_oracle"]
    assert full["iou_n3f_vs_modal"] == pytest.approx(0.5)
    visible_only = amodal_scores(modal * 0.9, teacher, amodal, modal)
    assert visible_only["iou_n3f"] == pytest.approx(0.5)
    faint = amodal_scores(amodal * 0.3, teacher, amodal, modal)  # below the 0.5 opacity threshold
    assert faint["iou_n3f"] == 0.0 and faint["iou_n3f_best"] == 1.0


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.ply"]  # written in place, no temporary left


def test_write_png_roundtrip(tmp_path):
    from PIL import Image

    img = np.linspace(0.0, 1.0, 4 * 5 * 3).reshape(4, 5, 3)
    write_png(tmp_path / "sub" / "a.png", img)
    back = np.asarray(Image.open(tmp_path / "sub" / "a.png"))
    assert back.dtype == np.uint8 and np.array_equal(back, np.round(img * 255).astype(np.uint8))
    write_png(tmp_path / "sub" / "a.png", back)  # uint8 as it is, over the old file
    assert np.array_equal(np.asarray(Image.open(tmp_path / "sub" / "a.png")), back)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["a.png"]


def test_help_does_not_import_torch():
    """The task commands' defaults come from n3f.tasks.defaults, so building the parsers stays light."""
    import subprocess
    import sys

    code = ("import sys\nfrom n3f.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr


# -- end to end ----------------------------------------------------------------
def test_locality_leaves_a_far_look_alike_alone(tiny, tmp_path):
    """Known answer: two objects with identical teacher features, far apart; querying one must not touch the other.

    The teacher gives ``pink_cylinder`` exactly the features of
    ``orange_cylinder_2`` (0.68 normalised units away, several margins), so no
    feature threshold can tell them apart: only locality can. The same query
    with the region dropped (the paper's features-only selection) is the
    control: it must select the look-alike too, else this case tests nothing.
    """
    import dataclasses

    from n3f.tasks.common import load_inputs
    from n3f.tasks.selection import object_queries
    from n3f.tasks.settings import SelectionSettings
    from n3f.teachers.mask import write_mask_features

    st = SceneStore(tiny["scene"])
    names = st.object_names
    query, twin, frame = "orange_cylinder_2", "pink_cylinder", 3  # frame 3 shows both (22 and 26 pixels)
    codes = np.random.default_rng(0).standard_normal((len(names) + 1, 64))
    codes[names.index(twin)] = codes[names.index(query)]
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    # written by the store writer, so its statistics match what training verifies
    features = write_mask_features(tiny["scene"], tmp_path / "twins.zarr", patch=4, codes=codes)
    inputs = load_inputs(tiny["scene"], features, train_tiny(tiny["scene"], features, tmp_path, steps=200), "cpu")

    (local,), _ = object_queries(inputs, SelectionSettings(objects=[query], locality=LOCALITY))
    assert local.region is not None and local.threshold > 0 and local.row()["region"]["margin"] == LOCALITY
    mq, mt = (st.masks(frame, "modal")[names.index(o)] for o in (query, twin))
    assert mq.sum() > 10 and mt.sum() > 10
    before = inputs.render(frame)["rgb"]

    def selected(oq):
        """Opacity kept (amodal) and colour changed by the removal (edit), inside the query's and the twin's masks."""
        kept = inputs.renderer.render_frame(st, frame, outputs=("features",), density_modifier=oq.modifier(keep=True))
        removed = inputs.renderer.render_frame(st, frame, outputs=("rgb", "features"),
                                               density_modifier=oq.modifier(keep=False))["rgb"]
        changed = np.abs(removed - before).mean(-1)
        return [(kept["opacity"][..., 0][m].mean(), changed[m].mean()) for m in (mq, mt)]

    # rendering only the rays that meet the region (and, keeping, only the samples inside it) gives the
    # whole-frame edit that evaluates the field everywhere (a plain function: no support to skip by)
    assert hasattr(local.modifier(True), "support") and not hasattr(local.modifier(False), "support")
    for keep in (True, False):
        plain = lambda w, o, m=local.modifier(keep): m(w, o)  # noqa: E731
        full = inputs.renderer.render_frame(st, frame, outputs=("rgb", "features"), density_modifier=plain)
        part = local.render_edit(inputs, frame, keep)
        for k, v in part.items():
            np.testing.assert_allclose(v, full[k], atol=1e-5)
    (q_kept, q_changed), (t_kept, t_changed) = selected(local)
    assert q_kept > 0.3 and q_changed > 0.1  # the query object is selected and removed
    assert t_kept < 0.02 and t_changed < 0.01  # its look-alike is not
    (_, _), (t_kept, t_changed) = selected(dataclasses.replace(local, region=None))
    assert t_kept > 0.3 and t_changed > 0.1  # control: by features alone the look-alike goes too


def test_commands_write_scores_and_figures(tiny, tmp_path):
    from n3f.commands import tasks

    train_tiny(tiny["scene"], tiny["features"], tmp_path)

    parser = argparse.ArgumentParser()
    tasks.add_parser(parser.add_subparsers(required=True))
    assert parser.parse_args(["eval-edit", "--scene", "s", "--features", "f", "--model", "m", "--out", "o",
                              "--no-locality"]).locality is None
    with pytest.raises(SystemExit):
        parser.parse_args(["eval-edit", "--scene", "s", "--features", "f", "--model", "m", "--out", "o",
                           "--locality", "0"])
    common = ["--scene", str(tiny["scene"]), "--features", str(tiny["features"]), "--model", str(tmp_path / "d" / "model.pt"),
              "--objects", *SceneStore(tiny["scene"]).object_names[:2], "--max-frames", "1", "--threads", "1"]
    for command, name in (("eval-segment3d", "segment3d"), ("eval-edit", "edit"), ("eval-amodal", "amodal")):
        out = tmp_path / name
        args = parser.parse_args([command, *common, "--out", str(out)])
        args.func(args)
        summary = json.loads((out / f"{name}.json").read_text())
        assert summary["task"] == name and len(summary["objects"]) == 2
        assert summary["selection"] == {**summary["selection"], "mode": "features+locality", "locality": LOCALITY,
                                        "enclose": True}
        assert not list(out.glob(".*partial*")) and not list(out.glob(".*.tmp-*"))  # no temporary left
        scored = [r for r in summary["objects"] if "note" not in r]
        assert scored, summary
        assert all(r["region"]["margin"] == LOCALITY for r in scored)
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
