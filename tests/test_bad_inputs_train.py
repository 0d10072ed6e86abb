"""Bad input to the training stages: one clear error, exit 2, nothing that looks finished.

Every case runs the real ``n3f`` command line in a subprocess on a tiny
synthetic scene, then checks the exit status, that the message names the
setting or file and the fix, that no traceback was printed and that neither
``model.pt`` nor ``metrics.json`` exists. Checkpoints that belong to another
run (other settings) or cannot be read must not block a rerun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from n3f.scene import write_scene
from n3f.train.checkpoint import CHECKPOINT
from n3f.teachers.mask import write_mask_features

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "batch_rays": 64, "eval_frames": 1, "eval_chunk": 2048, "progress": False, "threads": 1,
    "sampler": {"n_proposal": 16, "n_importance": 8, "n_uniform": 4},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    from n3f.synthetic import make_scene

    root = tmp_path_factory.mktemp("tiny")
    scene = write_scene(make_scene("tiny", kind="static", n_frames=12, width=48, height=36, seed=0), root / "s.zarr", progress=False)
    features = write_mask_features(scene, root / "f.zarr")
    return {"scene": scene, "features": features}


def n3f(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "n3f", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)


def pretrain(tiny: dict[str, Path], out: Path, **settings) -> subprocess.CompletedProcess:
    return n3f("pretrain-rgb", "--scene", str(tiny["scene"]), "--out", str(out),
               "--config-json", json.dumps({**TINY, **settings}))


def assert_refused(result: subprocess.CompletedProcess, out: Path, *named: str) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for text in named:
        assert text in result.stderr, (text, result.stderr[-2000:])
    assert not (out / "model.pt").exists() and not (out / "metrics.json").exists()
    return result.stderr


@pytest.mark.parametrize(
    "settings, named",
    [
        ({"steps": -3}, ["training settings.steps", "-3", ">= 1"]),
        ({"steps": 0}, ["training settings.steps", ">= 1"]),
        ({"steps": "20"}, ["training settings.steps", "'20'", "int"]),
        ({"batch_rays": 2.5}, ["training settings.batch_rays", "int"]),
        ({"lr": 0}, ["training settings.lr", "> 0"]),
        ({"lr_final_factor": 1.5}, ["training settings.lr_final_factor", "<= 1"]),
        ({"feature_sampling": "cubic"}, ["training settings.feature_sampling", "nearest"]),
        ({"progress": "yes"}, ["training settings.progress", "bool"]),
        ({"stepz": 10}, ["unknown setting(s) ['stepz']", "steps"]),
        ({"steps": 5, "sampler": {"n_proposals": 8}}, ["sampler", "n_proposals", "n_proposal"]),
        ({"steps": 5, "sampler": {"n_importance": -1}}, ["sampler.n_importance", ">= 1"]),
        ({"steps": 5, "space": {"radiuss": 2}}, ["space", "radiuss"]),
        ({"steps": 5, "space": {"inner": 2}}, ["training settings.space.inner", "<= 1"]),
        ({"steps": 5, "field_config": {"time_knot_spacing": 0}}, ["training settings.field_config", "time_knot_spacing", "geo_channels"]),
        ({"steps": 5, "field_config": {"geo_resolutions": [16, 0]}}, ["training settings.field_config.geo_resolutions[1]", ">= 1"]),
        ({"steps": 5, "field": "neuraldiff", "field_config": {"time_knot_spacing": -1}},
         ["training settings.field_config.time_knot_spacing", ">= 0"]),
    ],
)
def test_bad_training_settings_are_refused_with_their_key(tiny, tmp_path, settings, named):
    out = tmp_path / "out"
    assert_refused(pretrain(tiny, out, **settings), out, *named)


@pytest.mark.parametrize("content", [b"", b"not a torch file at all\x00\x01", b"PK\x03\x04truncated"])
def test_damaged_init_model_is_refused_naming_the_file(tiny, tmp_path, content):
    init = tmp_path / "rgb" / "model.pt"
    init.parent.mkdir()
    init.write_bytes(content)
    out = tmp_path / "distilled"
    result = n3f("distill", "--scene", str(tiny["scene"]), "--features", str(tiny["features"]), "--init", str(init),
                 "--out", str(out), "--config-json", json.dumps({**TINY, "steps": 5}))
    err = assert_refused(result, out, str(init), "rerun the stage that writes it")
    assert "cannot read this model file" in err


def test_unreadable_checkpoint_is_set_aside_and_the_stage_starts_afresh(tiny, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / CHECKPOINT).write_bytes(b"\x80\x02truncated by a full disk")
    result = pretrain(tiny, out, steps=20, log_every=1)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cannot be read" in result.stderr and "starting this stage afresh" in result.stderr
    aside = list(out.glob(f"{CHECKPOINT}.unreadable-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"\x80\x02truncated")
    assert json.loads((out / "metrics.json").read_text())["steps"] == 20
    assert not (out / CHECKPOINT).exists()  # a finished stage keeps no resume state


def test_non_finite_loss_stops_with_the_step_and_a_rerun_with_other_settings_discards_its_checkpoint(tiny, tmp_path):
    out = tmp_path / "out"
    # a learning rate ramping far past what the field can take (1e25 at the first step): the parameters stay
    # finite for one step and the activations overflow at the next, whatever the CPU's kernels (at lr 1e8 the
    # loss overflowed within a few dozen steps on one VM and never within 300 on another)
    diverging = pretrain(tiny, out, steps=300, lr=1e30, warmup_steps=100_000, checkpoint_every=1, log_every=1)
    err = assert_refused(diverging, out, "loss became non-finite at step", "lower training.rgb.lr")
    step = int(err.split("non-finite at step ")[1].split()[0])
    assert step >= 2, err
    kept = torch.load(out / CHECKPOINT, weights_only=False)
    assert kept["step"] == step - 1 and f"step {step - 1}) is kept" in err
    assert all(torch.isfinite(v).all() for v in kept["renderer"].values() if v.is_floating_point())

    fixed = pretrain(tiny, out, steps=30, log_every=1)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert "discarding" in fixed.stderr and "other settings" in fixed.stderr and "lr" in fixed.stderr
    assert "resuming" not in fixed.stderr
    steps = [int(line.split(",")[0]) for line in (out / "metrics" / "loss.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 31))
    assert json.loads((out / "metrics.json").read_text())["steps"] == 30


def test_checkpoint_of_other_inputs_is_discarded(tiny, tmp_path):
    """A checkpoint written for another scene store (a re-import) is not resumed."""
    from n3f.synthetic import make_scene

    other = write_scene(make_scene("tiny", kind="static", n_frames=12, width=48, height=36, seed=5), tmp_path / "o.zarr", progress=False)
    out = tmp_path / "out"
    diverging = n3f("pretrain-rgb", "--scene", str(other), "--out", str(out), "--config-json",
                    json.dumps({**TINY, "steps": 300, "lr": 1e30, "warmup_steps": 100_000, "checkpoint_every": 1}))
    assert diverging.returncode == 2 and (out / CHECKPOINT).exists(), diverging.stderr[-2000:]
    # same settings as the diverged run except the data: only the inputs differ
    rerun = n3f("pretrain-rgb", "--scene", str(tiny["scene"]), "--out", str(out), "--config-json",
                json.dumps({**TINY, "steps": 300, "lr": 1e30, "warmup_steps": 100_000, "checkpoint_every": 1}))
    assert "discarding" in rerun.stderr and "inputs: scene" in rerun.stderr, rerun.stderr[-2000:]
