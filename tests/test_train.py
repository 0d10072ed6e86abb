"""Training end to end on small synthetic scenes: quality, freezing, checkpoints, SIGTERM resume.

Scenes come from :mod:`n3f.synthetic` at 64 x 48 pixels; the teacher is the
mask-derived stand-in of :mod:`n3f.teachers.mask` (real store format).
The thresholds are set for these small, short runs (the full-size targets are
measured by bench/bench_training.py): a trainer that does not learn geometry
(mean colour: ~12 dB) or features (cosine ~0.3) fails them by a wide margin.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from n3f.errors import N3FInputError
from n3f.render import load_renderer
from n3f.scene import SceneStore, write_scene
from n3f.train import TrainConfig, distill, pretrain_rgb
from n3f.teachers.mask import write_mask_features

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "batch_rays": 256,
    "lr": 0.02,
    "lr_final_factor": 0.3,
    "sampler": {"n_proposal": 32, "n_importance": 24, "n_uniform": 8},
    "eval_frames": 2,
    "progress": False,
    "threads": 1,
}


@pytest.fixture(scope="session")
def scenes(tmp_path_factory) -> dict[str, Path]:
    from n3f.synthetic import make_scene

    root = tmp_path_factory.mktemp("scenes")
    out = {}
    for kind, n in (("static", 24), ("dynamic", 32)):
        scene = write_scene(make_scene(f"tiny_{kind}", kind=kind, n_frames=n, width=64, height=48, seed=0), root / f"{kind}.zarr", progress=False)
        out[kind] = scene
        out[f"{kind}_features"] = write_mask_features(scene, root / f"{kind}_features.zarr")
    return out


def _mean_colour_psnr(scene_path: Path) -> float:
    st = SceneStore(scene_path)
    train = np.stack([st.frame(int(i)) for i in st.split("train")]).astype(np.float32) / 255
    val = np.stack([st.frame(int(i)) for i in st.split("val")]).astype(np.float32) / 255
    return float(-10 * np.log10(((val - train.mean(axis=(0, 1, 2))) ** 2).mean()))


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind,field,steps,distill_steps,min_psnr",
    [("static", "grid", 600, 300, 20.5), ("dynamic", "neuraldiff", 400, 200, 18.0)],
)
def test_pretrain_then_distill_reaches_quality(scenes, tmp_path, kind, field, steps, distill_steps, min_psnr):
    cfg = TrainConfig(field=field, steps=steps, **SMALL)
    m1 = pretrain_rgb(scenes[kind], tmp_path / "rgb", cfg)
    assert m1["psnr"] >= min_psnr, m1
    assert m1["psnr"] > _mean_colour_psnr(scenes[kind]) + 5
    assert (tmp_path / "rgb" / "model.pt").exists() and (tmp_path / "rgb" / "metrics" / "loss.csv").exists()
    on_disk = json.loads((tmp_path / "rgb" / "metrics.json").read_text())
    assert on_disk["psnr"] == pytest.approx(m1["psnr"]) and on_disk["steps"] == steps

    cfg2 = TrainConfig(field=field, steps=distill_steps, freeze_steps=distill_steps // 4, **SMALL)
    m2 = distill(scenes[kind], scenes[f"{kind}_features"], tmp_path / "rgb", tmp_path / "distill", cfg2)
    assert m2["feature_cosine"] >= 0.8, m2
    assert m2["psnr"] >= min_psnr - 0.5, m2  # the feature loss must not wreck colour
    # the saved model renders the same features again, from the file alone
    r = load_renderer(tmp_path / "distill" / "model.pt")
    out = r.render_frame(SceneStore(scenes[kind]), int(m2["frames"][0]), outputs=("rgb", "features"))
    assert out["features"].shape == (48, 64, 64) and out["rgb"].shape == (48, 64, 3)


def test_freeze_trains_only_feature_heads(scenes, tmp_path):
    cfg = TrainConfig(steps=3, **{**SMALL, "batch_rays": 64, "eval_frames": 1})
    pretrain_rgb(scenes["static"], tmp_path / "rgb", cfg)
    distill(scenes["static"], scenes["static_features"], tmp_path / "rgb", tmp_path / "d",
            TrainConfig(steps=4, freeze_steps=4, **{**SMALL, "batch_rays": 64, "eval_frames": 1}))
    before = torch.load(tmp_path / "rgb" / "model.pt", weights_only=False)["state_dict"]
    after = torch.load(tmp_path / "d" / "model.pt", weights_only=False)["state_dict"]
    r = load_renderer(tmp_path / "d")
    feature_keys = {k for k, p in r.state_dict(keep_vars=True).items() if any(p is q for q in r.feature_parameters())}
    assert feature_keys
    for k, v in after.items():
        if k in feature_keys:
            assert not torch.equal(v, before[k]), k
        else:
            assert torch.equal(v, before[k]), f"{k} changed while frozen"


def test_distillation_moves_the_fitted_field_at_the_pretrained_rate(scenes, tmp_path):
    """pretrained_lr_factor scales the steps of what the RGB stage fitted, not the feature branch's."""
    small = {**SMALL, "batch_rays": 64, "eval_frames": 1}
    pretrain_rgb(scenes["static"], tmp_path / "rgb", TrainConfig(steps=3, **small))
    before = torch.load(tmp_path / "rgb" / "model.pt", weights_only=False)["state_dict"]
    moved = {}
    for factor in (0.0, 0.1, 1.0):
        out = tmp_path / f"d{factor}"
        distill(scenes["static"], scenes["static_features"], tmp_path / "rgb", out,
                TrainConfig(steps=4, freeze_steps=0, pretrained_lr_factor=factor, **small))
        after = torch.load(out / "model.pt", weights_only=False)["state_dict"]
        r = load_renderer(out)
        feature_keys = {k for k, p in r.state_dict(keep_vars=True).items() if any(p is q for q in r.feature_parameters())}
        fitted = [k for k in after if k not in feature_keys and after[k].is_floating_point()]
        assert all(not torch.equal(after[k], before[k]) for k in feature_keys if k in before)  # full rate
        moved[factor] = max(float((after[k] - before[k]).abs().max()) for k in fitted)
    assert moved[0.0] == 0.0  # factor 0: the fitted field is kept exactly
    assert 0.0 < moved[0.1] < 0.3 * moved[1.0], moved  # Adam's steps scale with the rate


def test_grid_distillation_defaults_to_a_lower_rate_for_the_fitted_field():
    assert 0 < TrainConfig().resolved("distill").pretrained_lr_factor < 1
    assert TrainConfig().resolved("rgb").pretrained_lr_factor == 1.0
    assert TrainConfig(field="neuraldiff").resolved("distill").pretrained_lr_factor == 1.0
    assert TrainConfig(pretrained_lr_factor=0.5).resolved("distill").pretrained_lr_factor == 0.5


def _png(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    return iio.imread(path)


def test_stages_write_ssim_and_held_out_renders(scenes, tmp_path):
    """metrics.json of both stages has SSIM and lists renders/ strips [photo | render | error] (3 panels wide);
    a rerun replaces the folder, eval_renders 0 leaves none."""
    cfg = TrainConfig(steps=3, **{**SMALL, "batch_rays": 64, "eval_frames": 2})  # eval_renders 3: both frames
    pretrain_rgb(scenes["static"], tmp_path / "rgb", cfg)
    distill(scenes["static"], scenes["static_features"], tmp_path / "rgb", tmp_path / "d", cfg)
    photos = SceneStore(scenes["static"])
    for stage in ("rgb", "d"):
        m = json.loads((tmp_path / stage / "metrics.json").read_text())
        assert 0 < m["ssim"] <= 1 and len(m["ssim_per_frame"]) == len(m["frames"]) == 2, m
        assert m["renders"] == [f"renders/frame_{i:04d}.png" for i in m["frames"]]
        assert sorted(p.name for p in (tmp_path / stage / "renders").iterdir()) == sorted(Path(r).name for r in m["renders"])
        for frame, rel in zip(m["frames"], m["renders"]):
            strip = _png(tmp_path / stage / rel)
            assert strip.shape == (48, 3 * 64, 3) and strip.dtype == np.uint8
            assert np.array_equal(strip[:, :64], photos.frame(frame))  # first panel: the photo itself

    pretrain_rgb(scenes["static"], tmp_path / "rgb", replace(cfg, eval_renders=1))
    m = json.loads((tmp_path / "rgb" / "metrics.json").read_text())
    assert len(m["renders"]) == 1 and [p.name for p in (tmp_path / "rgb" / "renders").iterdir()] == [Path(m["renders"][0]).name]
    pretrain_rgb(scenes["static"], tmp_path / "rgb", replace(cfg, eval_renders=0))
    assert json.loads((tmp_path / "rgb" / "metrics.json").read_text())["renders"] == []
    assert not (tmp_path / "rgb" / "renders").exists()


def test_distill_rejects_mismatched_features(scenes, tmp_path):
    pretrain_rgb(scenes["dynamic"], tmp_path / "rgb", TrainConfig(field="neuraldiff", steps=1, **{**SMALL, "batch_rays": 32, "eval_frames": 1}))
    with pytest.raises(N3FInputError, match="feature frames"):
        distill(scenes["dynamic"], scenes["static_features"], tmp_path / "rgb", tmp_path / "d", TrainConfig(steps=1))


def _cli(args: list[str], **kw) -> subprocess.Popen:
    code = "import sys\nfrom n3f.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _steps_logged(out: Path) -> list[int]:
    log = out / "metrics" / "loss.csv"
    if not log.exists():
        return []
    return [int(line.split(",")[0]) for line in log.read_text().splitlines()[1:] if line]


@pytest.mark.slow
def test_sigterm_checkpoints_and_resume_continues(scenes, tmp_path):
    settings = json.dumps({**SMALL, "batch_rays": 256, "log_every": 1, "checkpoint_every": 10_000, "eval_frames": 1,
                           "sampler": {"n_proposal": 16, "n_importance": 16, "n_uniform": 4}})
    args = ["pretrain-rgb", "--scene", str(scenes["static"]), "--steps", "120", "--config-json", settings]

    ref = _cli([*args, "--out", str(tmp_path / "ref")])
    run = _cli([*args, "--out", str(tmp_path / "run")])
    deadline = time.time() + 240
    while len(_steps_logged(tmp_path / "run")) < 25 and time.time() < deadline and run.poll() is None:
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 128 + signal.SIGTERM, err
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    stopped = int(ckpt["step"])
    assert 25 <= stopped < 120 and not (tmp_path / "run" / "model.pt").exists()

    resumed = _cli([*args, "--out", str(tmp_path / "run")])
    _, err2 = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err2
    assert "resuming from" in err2 and f"at step {stopped}" in err2
    assert _steps_logged(tmp_path / "run") == list(range(1, 121))  # no gap, no repeat
    _, ref_err = ref.communicate(timeout=300)
    assert ref.returncode == 0, ref_err
    a = json.loads((tmp_path / "run" / "metrics.json").read_text())
    b = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    assert a["steps"] == b["steps"] == 120
    assert abs(a["psnr"] - b["psnr"]) < 0.1, (a["psnr"], b["psnr"])
    # the resumed run replays the same batches: identical losses after the restart
    ra = (tmp_path / "run" / "metrics" / "loss.csv").read_text().splitlines()[stopped + 1].split(",")[1]
    rb = (tmp_path / "ref" / "metrics" / "loss.csv").read_text().splitlines()[stopped + 1].split(",")[1]
    assert float(ra) == pytest.approx(float(rb), rel=1e-3)


def test_ray_targets_match_stores_and_cache_is_bounded(scenes):
    from n3f.features import FeatureStore
    from n3f.train.data import RaySampler

    st, fs = SceneStore(scenes["static"]), FeatureStore(scenes["static_features"])
    sampler = RaySampler(st, st.split("train"), fs, frames_per_step=4, cache_frames=3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        rays, rgb, feats = sampler.sample(64, rng, True)
        assert len(sampler.rgb) <= 3 and len(sampler.grids) <= 3
        assert len(np.unique(rays.frame.numpy())) <= 4
    frame, x, y = np.array([3, 3, 10]), np.array([0, 63, 17]), np.array([0, 47, 30])
    rays, rgb, feats = sampler.rays_at(frame, x, y, True)
    for k in range(3):
        assert np.allclose(rgb[k].numpy(), st.frame(int(frame[k]))[y[k], x[k]] / 255.0)
        assert np.allclose(feats[k].numpy(), fs.upsampled(int(frame[k]))[y[k], x[k]], atol=1e-3)


def _per_ray_targets(st, fs, frame, x, y, mode):
    """The targets one ray at a time, straight from the store's contract (float64)."""
    h_img, w_img = st.image_size
    rgb, feats = [], []
    for f, px, py in zip(frame, x, y):
        rgb.append(st.frame(int(f))[py, px] / 255.0)
        grid = fs.grid(int(f)).astype(np.float64)
        h, w = grid.shape[:2]
        gx, gy = (px + 0.5) * w / w_img, (py + 0.5) * h / h_img  # cell centres at integer + 0.5
        if mode == "nearest":  # the cell the pixel centre lies in
            feats.append(grid[min(int(gy), h - 1), min(int(gx), w - 1)])
        else:  # bilinear between cell centres, clamped at the border
            cx, cy = min(max(gx - 0.5, 0), w - 1), min(max(gy - 0.5, 0), h - 1)
            x0, y0 = int(cx), int(cy)
            x1, y1, ax, ay = min(x0 + 1, w - 1), min(y0 + 1, h - 1), cx - x0, cy - y0
            feats.append((1 - ay) * ((1 - ax) * grid[y0, x0] + ax * grid[y0, x1])
                         + ay * ((1 - ax) * grid[y1, x0] + ax * grid[y1, x1]))
    return np.array(rgb), np.array(feats)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("cache", [3, 64])
def test_batch_targets_match_a_per_ray_reference(scenes, mode, cache):
    """Targets are gathered over all frames of a batch at once; every ray must still get its
    own frame's pixel and feature cell, also when a batch has more frames than the cache holds."""
    from n3f.features import FeatureStore
    from n3f.features.store import pixel_to_grid, sample_grid
    from n3f.render.rays import rays_from_pixels
    from n3f.train.data import RaySampler

    st, fs = SceneStore(scenes["dynamic"]), FeatureStore(scenes["dynamic_features"])
    h, w = st.image_size
    sampler = RaySampler(st, st.split("train"), fs, frames_per_step=8, cache_frames=cache, feature_mode=mode)
    rng = np.random.default_rng(3)
    n = 400
    frame = rng.integers(0, st.n_frames, size=n)  # unsorted, repeated, all frames
    x, y = rng.integers(0, w, size=n), rng.integers(0, h, size=n)
    x[:4], y[:4] = [0, w - 1, 0, w - 1], [0, 0, h - 1, h - 1]
    for _ in range(2):  # cold, then with (part of) the frames cached
        rays, rgb, feats = sampler.rays_at(frame, x, y, True)
        want_rgb, want_feats = _per_ray_targets(st, fs, frame, x, y, mode)
        assert np.array_equal(rgb.numpy(), want_rgb.astype(np.float32))
        assert len(np.unique(want_feats.round(4), axis=0)) > 20  # the check can tell cells and frames apart
        if mode == "nearest":
            assert np.array_equal(feats.numpy(), want_feats.astype(np.float32))
        else:
            assert np.allclose(feats.numpy(), want_feats, rtol=0, atol=1e-5)
        assert len(sampler.rgb) <= cache and len(sampler.grids) <= cache
    # the same values as one grid_sample call per frame (the sampler before the gather), within float rounding
    for f in np.unique(frame):
        sel = frame == f
        uv = np.stack([x[sel] + 0.5, y[sel] + 0.5], axis=-1)
        xy = torch.from_numpy(pixel_to_grid(uv, (h, w), fs.grid_size)).float()
        ref = sample_grid(torch.from_numpy(fs.grid(int(f))), xy, mode)
        torch.testing.assert_close(feats[torch.from_numpy(sel)], ref, rtol=1e-6, atol=1e-6)
    f = torch.from_numpy(frame)
    uv = torch.from_numpy(np.stack([x + 0.5, y + 0.5], axis=-1)).float()
    ref = rays_from_pixels(sampler.c2w[f], sampler.K[f], uv, sampler.bounds[f], f)
    for name in ("origins", "directions", "dirs_cam", "near", "far", "frame"):
        assert torch.equal(getattr(rays, name), getattr(ref, name)), name
    # sample(): the draws of the documented order (frames, then each ray's frame, x, y)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    rays_s, rgb_s, feats_s = sampler.sample(256, a, True)
    chosen = b.choice(sampler.frames, size=8, replace=False)
    fr = np.sort(b.choice(chosen, size=256))
    xs, ys = b.integers(0, w, size=256), b.integers(0, h, size=256)
    rays_r, rgb_r, feats_r = sampler.rays_at(fr, xs, ys, True)
    assert torch.equal(rays_s.frame, rays_r.frame) and torch.equal(rgb_s, rgb_r) and torch.equal(feats_s, feats_r)
    with pytest.raises(IndexError):
        sampler.rays_at(np.array([0]), np.array([w]), np.array([0]), True)


def test_stage_defaults_and_user_settings_win():
    """Distillation takes its own per-field defaults (shorter, stricter NeuralDiff sparsity),
    but a value the user set is used as given in either stage."""
    rgb, dist = TrainConfig(field="neuraldiff").resolved("rgb"), TrainConfig(field="neuraldiff").resolved("distill")
    assert (rgb.steps, dist.steps) == (2000, 1500)
    assert dist.sparsity_lambda > rgb.sparsity_lambda > 0
    mine = TrainConfig(field="neuraldiff", sparsity_lambda=0.5, steps=7).resolved("distill")
    assert (mine.sparsity_lambda, mine.steps) == (0.5, 7)
    with pytest.raises(N3FInputError):
        TrainConfig(field="hashgrid").resolved("rgb")


def test_nested_settings_are_typed_once_the_field_is_known():
    """field_config, sampler and space: YAML keys as before, typed dataclasses in the resolved
    settings; sampler overrides apply to the field's own default sampler."""
    from n3f.fields.settings import GridFieldConfig, NeuralDiffFieldConfig
    from n3f.render.settings import SamplerConfig, SpaceOverrides

    given = {"field": "neuraldiff", "field_config": {"time_knot_spacing": 0}, "sampler": {"n_proposal": 16},
             "space": {"inner": 0.6}}
    cfg = TrainConfig.from_dict(given)
    assert cfg.space == SpaceOverrides(inner=0.6) and cfg.to_dict()["space"] == {"inner": 0.6}
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # as given: round trip through a plain mapping
    r = cfg.resolved("rgb")
    assert r.field_config == NeuralDiffFieldConfig(time_knot_spacing=0)
    assert r.sampler == SamplerConfig(n_proposal=16, n_importance=24, n_uniform=4)  # neuraldiff's fine samples
    assert TrainConfig(sampler={"n_proposal": 16}).resolved().sampler == SamplerConfig(n_proposal=16, n_importance=16, n_uniform=4)
    assert TrainConfig().resolved().field_config == GridFieldConfig()
    nerf = TrainConfig(field="nerf", sampler={"n_proposal": 32}).resolved()
    assert nerf.sampler == SamplerConfig(n_proposal=32, n_importance=64, n_uniform=0, include_proposal=True)
    json.dumps(r.to_dict())  # plain data all the way down (checkpoint "config")


@pytest.mark.parametrize(
    "where, settings, stage_check, named",
    [
        # a config's shared block does not name the field: keys of some field pass, others do not
        ("training.rgb", {"field_config": {"time_knot_spacin": 0}}, False, ["training.rgb.field_config", "time_knot_spacin"]),
        ("training.rgb", {"field_config": {"static": {"hidden": 0}}}, False, ["training.rgb.field_config.static.hidden", ">= 1"]),
        ("training.rgb", {"sampler": {"pdf_floor": 2}}, False, ["training.rgb.sampler.pdf_floor", "<= 1"]),
        ("training.rgb", {"space": {"kind": "sphere"}}, False, ["training.rgb.space.kind", "contract"]),
        ("training.rgb", {"space": [1, 2]}, False, ["training.rgb.space", "mapping"]),
        # the stage knows the field: its own keys only
        ("training settings", {"field_config": {"time_knot_spacing": 0}}, True, ["training settings.field_config", "time_knot_spacing"]),
        ("training settings", {"field": "neuraldiff", "field_config": {"time_knot_spacing": -1}}, True,
         ["training settings.field_config.time_knot_spacing", ">= 0"]),
    ],
)
def test_nested_settings_errors_name_their_path(where, settings, stage_check, named):
    with pytest.raises(N3FInputError) as err:
        cfg = TrainConfig.from_dict(settings, where)
        assert stage_check, "refused only once the field is known"
        cfg.resolved("rgb", where)
    for text in named:
        assert text in str(err.value), (text, str(err.value))


def test_settings_modules_import_without_torch():
    """The Snakefile checks the config while it is parsed: no torch on that path."""
    code = ("import sys\nimport n3f.config_check, n3f.train, n3f.train.config, n3f.fields.settings, n3f.render.settings\n"
            "import n3f.commands.train\nassert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]\n")
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_cli_lists_fields_and_default_steps_from_the_settings():
    import argparse

    import yaml

    from n3f.commands import train as commands
    from n3f.fields.settings import FIELD_SETTINGS
    from n3f.train.config import FIELD_DEFAULTS

    parser = argparse.ArgumentParser()
    commands.add_parser(parser.add_subparsers())
    pre = parser._subparsers._group_actions[0].choices["pretrain-rgb"]
    dist = parser._subparsers._group_actions[0].choices["distill"]
    field = next(a for a in pre._actions if a.dest == "field")
    assert list(field.choices) == list(FIELD_SETTINGS)
    helps = {name: next(a for a in p._actions if a.dest == "steps").help for name, p in (("rgb", pre), ("distill", dist))}
    for name, d in FIELD_DEFAULTS.items():
        if "steps" in d:  # grid: steps by quality and scene size (GRID_SCHEDULES)
            assert f"{name} {d['steps']}" in helps["rgb"] and f"{name} {d['distill_steps']}" in helps["distill"]
    assert "grid by quality and scene size" in helps["rgb"] and "grid by quality" in helps["distill"]
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["$defs"]["field"]["enum"] == list(FIELD_SETTINGS)


def test_trainer_steps_compose_to_run_training(scenes, tmp_path):
    """The Trainer's pieces, driven by hand, train exactly what run_training trains."""
    from n3f.train.loop import Trainer, run_training

    cfg = TrainConfig(steps=4, **{**SMALL, "batch_rays": 64, "eval_frames": 1})
    run_training("rgb", scenes["static"], tmp_path / "a", cfg)
    t = Trainer("rgb", scenes["static"], tmp_path / "b", cfg)
    t.setup()
    t.resume()
    parts = [t.step() for _ in range(4)]
    assert t.steps_done == 4 and all(np.isfinite(p["loss"]) for p in parts)
    metrics = t.finish()
    assert metrics["steps"] == 4 and not (tmp_path / "b" / "checkpoint.pt").exists()
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_distortion_loss_defaults_on_for_grid_in_bounded_spaces_only(scenes, tmp_path):
    """distortion_lambda left unset: BOUNDED_DISTORTION for grid in the synthetic scene's bounded space, in both
    stages; off when the same scene's rays run to the far end of an unbounded space, or for another
    field; a value the user gives is kept (n3f.fields.sizing.distortion_default)."""
    from n3f.fields.sizing import BOUNDED_DISTORTION
    from n3f.train.loop import Trainer

    def resolved(stage, cfg, **kw):
        t = Trainer(stage, scenes["static"], tmp_path / f"{stage}{len(list(tmp_path.iterdir()))}", cfg, **kw)
        t.setup()
        return t.cfg.distortion_lambda

    cfg = TrainConfig(steps=2, **{**SMALL, "batch_rays": 64, "eval_frames": 1})
    assert resolved("rgb", cfg) == BOUNDED_DISTORTION > 0
    pretrain_rgb(scenes["static"], tmp_path / "rgb", cfg)
    assert resolved("distill", cfg, features_path=scenes["static_features"], init=tmp_path / "rgb") == BOUNDED_DISTORTION
    assert resolved("rgb", replace(cfg, space={"unbounded": True})) == 0.0
    assert resolved("rgb", replace(cfg, field="neuraldiff")) == 0.0
    assert resolved("rgb", replace(cfg, distortion_lambda=0.0)) == 0.0
    assert resolved("rgb", replace(cfg, distortion_lambda=0.003)) == 0.003


def test_config_check_reads_nested_settings_of_every_block():
    """The dry run's check: a field's own keys in a shared or per-field block pass (the field is
    only known when the stage runs), typos and bad values are refused with their place."""
    from n3f.config_check import check_config

    scene = {"name": "a", "source": "synthetic", "options": {"kind": "dynamic"}}
    ok = {"scenes": [scene], "training": {"rgb": {"sampler": {"n_proposal": 16}},
                                          "neuraldiff": {"rgb": {"field_config": {"time_knot_spacing": 0}}}}}
    check_config(ok)
    for training, named in [
        ({"neuraldiff": {"rgb": {"field_config": {"time_knot_spacng": 0}}}}, "training.neuraldiff.rgb.field_config"),
        ({"distill": {"sampler": {"n_importance": 0}}}, "training.distill.sampler.n_importance"),
        ({"rgb": {"space": {"radiuss": 2}}}, "training.rgb.space"),
    ]:
        with pytest.raises(N3FInputError, match=named.replace(".", r"\.")):
            check_config({"scenes": [scene], "training": training})
