"""The Snakemake workflow parses, lints clean and plans the expected jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _snakemake(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_lint_is_clean():
    result = _snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_dry_run_default_config_plans_every_scene(tmp_path):
    result = _snakemake("-n", "--config", f"results={tmp_path}/results")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule scene:" in result.stdout or "scene" in result.stdout
    for name in ("toy_static", "toy_kitchen"):
        assert f"{tmp_path}/results/{name}/scene.zarr" in result.stdout


def _job_priorities(stdout: str) -> dict[tuple[str, str], int]:
    """(rule, wildcards line) -> priority, from a dry run's job listing."""
    out, rule, wildcards = {}, None, ""
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("rule ") or line.startswith("checkpoint "):
            rule, wildcards = line.split()[1].rstrip(":"), ""
        elif line.startswith("wildcards:"):
            wildcards = line[len("wildcards:"):].strip()
        elif line.startswith("priority:") and rule is not None:
            out[(rule, wildcards)] = int(line.split()[1])
    return out


def test_costliest_training_chain_starts_first(tmp_path):
    """toy_kitchen's neuraldiff (2000 + 1500 steps at 2.4x a grid step) outweighs toy_static's grid
    (4000 + 2000): its two training stages outrank even the teacher features; the others do not."""
    result = _snakemake("-n", "--config", f"results={tmp_path}/results")
    assert result.returncode == 0, result.stdout + result.stderr
    prio = _job_priorities(result.stdout)
    kitchen = "scene=toy_kitchen, field=neuraldiff"
    assert prio[("pretrain_rgb", kitchen)] == 3
    assert prio[("distill", f"{kitchen}, teacher=dinov2_vits14_imgfocus")] == 3
    assert ("pretrain_rgb", "scene=toy_static, field=grid") not in prio  # priority 0 is not listed
    assert prio[("teacher_features", "scene=toy_static, teacher=dinov2_vits14_imgfocus")] == 2


@pytest.mark.parametrize("fusion,fused_queries", [({}, 2), ({"queries": False}, 0), ({"enabled": False}, 0)])
def test_queries_run_on_the_fused_field_too(tmp_path, fusion, fused_queries):
    """A scene's queries run on the distilled field and, with fusion on, on the fused one (fused/queries/)."""
    from tests.cluster_support import planned_jobs, tiny_config, write_config

    config = tiny_config(tmp_path)
    config["scenes"][0]["queries"] = [{"name": "cube", "frame": 0, "box": [12, 8, 36, 28]},
                                      {"name": "spot", "frame": 3, "point": [24, 18], "radius": 4}]
    if fusion:
        config["fusion"] = fusion
    result = _snakemake("-n", "--configfile", str(write_config(tmp_path / "config.yaml", config)))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = planned_jobs(result.stdout)
    assert [rule for rule, _ in jobs].count("query") == 2
    assert [rule for rule, _ in jobs].count("query_fused") == fused_queries
    if fused_queries:
        assert f"{tmp_path}/results/tiny/grid/dsift/fused/queries/cube/query.json" in result.stdout


def test_training_cost_follows_steps_batch_and_field():
    from n3f.train.config import STEP_COST, training_cost

    grid = training_cost("grid", {}, {})
    assert grid == 4000 + 2000  # the grid defaults before the import knows the scene's pixels
    assert training_cost("neuraldiff", {}, {}) == (2000 + 1500) * STEP_COST["neuraldiff"]
    assert training_cost("grid", {"steps": 8000, "batch_rays": 512}, {}) == 8000 * 2 + 2000
    assert training_cost("grid", {"steps": 8000}, {}) > training_cost("neuraldiff", {}, {})


def test_video_scene_plans_frames_sfm_scene(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    cfg = tmp_path / "video.yaml"
    cfg.write_text(
        f"scenes:\n  - name: clip\n    source: video\n    path: {video}\n"
        f"results: {tmp_path}/results\nintermediate: {tmp_path}/intermediate\n"
    )
    result = _snakemake("-n", "--configfile", str(cfg))
    assert result.returncode == 0, result.stdout + result.stderr
    for rule in ("frames", "sfm"):
        assert f"rule {rule}:" in result.stdout
    assert "checkpoint scene:" in result.stdout  # a checkpoint: default queries wait for the import


def test_config_typo_is_rejected_with_the_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("scenes:\n  - name: a\n    source: synthetic\n    optionz: {}\n")
    result = _snakemake("-n", "--configfile", str(cfg))
    assert result.returncode != 0
    assert "optionz" in result.stdout + result.stderr


_SCENE = "scenes:\n  - {name: a, source: synthetic, options: {kind: static, n_frames: 12, width: 48, height: 36}}\n"


@pytest.mark.parametrize(
    "body, named",
    [
        ("teachers: [{name: dino_vitb99}]\n", ["teachers", "dino_vitb99", "dinov2_vits14_imgfocus"]),
        ("teachers: [{name: dsift, checkpoint: w.pth}]\n", ["teachers[0].checkpoint", "dsift"]),
        ("teachers: [{name: dsift}]\ntraining: {rgb: {steps: -3}}\n", ["training.rgb.steps", ">= 1"]),
        ("teachers: [{name: dsift}]\ntraining: {grid: {distill: {steps: '20'}}}\n", ["training.grid.distill.steps", "int"]),
        ("teachers: [{name: dsift}]\ntraining: {rgb: {lrr: 0.1}}\n", ["training.rgb", "lrr"]),
    ],
)
def test_dry_run_refuses_bad_settings_with_their_key(tmp_path, body, named):
    """What the schema cannot express is refused before any job runs, named by its place in the config."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(_SCENE + body + f"results: {tmp_path}/results\n")
    result = _snakemake("-n", "--configfile", str(cfg))
    assert result.returncode != 0, result.stdout[-2000:]
    for text in named:
        assert text in result.stdout + result.stderr, (text, result.stderr[-2000:])
    assert not (tmp_path / "results").exists()


def test_dry_run_refuses_a_bad_importer_option(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "scenes:\n  - {name: cape, source: llff, path: " + str(tmp_path) + ", options: {max_size: '48'}}\n"
        f"teachers: [{{name: dsift}}]\nresults: {tmp_path}/results\n"
    )
    result = _snakemake("-n", "--configfile", str(cfg))
    assert result.returncode != 0
    assert "scenes[cape].options.max_size" in result.stdout + result.stderr, result.stderr[-2000:]


def test_dry_run_names_a_missing_teacher_checkpoint(tmp_path):
    cfg = tmp_path / "missing.yaml"
    weights = tmp_path / "downloads" / "dino_vits8.pth"
    cfg.write_text(_SCENE + f"teachers: [{{name: dino_vits8, checkpoint: {weights}}}]\nresults: {tmp_path}/results\n")
    result = _snakemake("-n", "--configfile", str(cfg))
    assert result.returncode != 0
    assert str(weights) in result.stdout + result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("fusion,fuse_jobs,fused_task_jobs", [
    ({}, 2, 6),                                  # the default: fused and scored everywhere
    ({"tasks": False}, 2, 0),                    # fused retrieval rows only
    ({"enabled": False}, 0, 0),                  # distillation alone, as before fusion existed
])
def test_fusion_switches_plan_the_fused_jobs(tmp_path, fusion, fuse_jobs, fused_task_jobs):
    from tests.cluster_support import planned_jobs

    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(results=f"{tmp_path}/results", **({"fusion": fusion} if fusion else {}))
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    result = _snakemake("-n", "--configfile", str(configfile))
    assert result.returncode == 0, result.stdout + result.stderr
    rules = [rule for rule, _ in planned_jobs(result.stdout)]
    assert rules.count("fuse") == fuse_jobs
    assert rules.count("eval_retrieval_fused") == fuse_jobs  # the fused field's retrieval: its own job per fuse
    assert rules.count("eval_task_fused") == fused_task_jobs
    assert rules.count("eval_task") == 6 and rules.count("distill") == 2
