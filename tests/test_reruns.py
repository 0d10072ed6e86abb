"""Incremental reruns: after a complete run, a change reruns exactly the stages it affects.

One tiny configuration (tests/cluster_support.py) is run to completion, then
each change is planned with ``snakemake -n`` (default rerun triggers: mtime,
params, input, software-env, code) and the planned job set is compared with
the set the stage graph implies. A rule whose ``params`` missed a setting would
plan too little; one that folded unrelated settings into its params, or wrote
into another stage's outputs, would plan too much.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.cluster_support import planned_jobs, rule_set, run_snakemake, tiny_config, write_config

EVALUATION = {"eval_retrieval", "eval_retrieval_fused", "report_scene", "tables", "all"}
AFTER_FEATURES = {"teacher_features", "distill", "fuse", "eval_retrieval", "eval_retrieval_fused", "eval_task",
                  "eval_task_fused", "report_scene",
                  "tables", "task_tables", "all"}
AFTER_DISTILL = AFTER_FEATURES - {"teacher_features", "fuse", "eval_retrieval_fused", "eval_task_fused"}  # fusion reads the RGB field only


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict]:
    """A workdir holding a complete run of the tiny configuration."""
    workdir = tmp_path_factory.mktemp("reruns")
    config = tiny_config(workdir)
    configfile = write_config(workdir / "base.yaml", config)
    result = run_snakemake(workdir, configfile, "--cores", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    nothing = run_snakemake(workdir, configfile, "-n")
    assert nothing.returncode == 0, nothing.stderr
    assert planned_jobs(nothing.stdout + nothing.stderr) == [], "a finished run must plan nothing"
    return workdir, config


def _plan(workdir: Path, config: dict, name: str, *args: str) -> list[tuple[str, dict[str, str]]]:
    configfile = write_config(workdir / f"{name}.yaml", config)
    result = run_snakemake(workdir, configfile, "-n", *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return planned_jobs(result.stdout + result.stderr)


@pytest.mark.slow
def test_training_settings_reach_the_trainer(finished):
    """The config's ``training:`` steps are what the trainers ran (they were once dropped for the field default)."""
    workdir, config = finished
    for stage, folder in (("rgb", "rgb"), ("distill", "dsift")):
        metrics = json.loads((workdir / "results" / "tiny" / "grid" / folder / "metrics.json").read_text())
        assert metrics["steps"] == config["training"][stage]["steps"], (stage, metrics)


@pytest.mark.slow
def test_evaluation_setting_reruns_evaluation_and_reports_only(finished):
    workdir, config = finished
    changed = copy.deepcopy(config)
    changed["evaluation"] = {"sampling": "bilinear"}
    assert rule_set(_plan(workdir, changed, "sampling")) == EVALUATION

    per_scene = copy.deepcopy(config)
    per_scene["scenes"][0]["evaluation"] = {"max_queries": 3}
    assert rule_set(_plan(workdir, per_scene, "limits")) == EVALUATION


@pytest.mark.slow
def test_teacher_setting_reruns_features_distillation_evaluation_not_pretraining(finished):
    workdir, config = finished
    changed = copy.deepcopy(config)
    changed["teachers"][0]["components"] = 32
    jobs = _plan(workdir, changed, "teacher")
    assert rule_set(jobs) == AFTER_FEATURES
    assert {w.get("teacher") for r, w in jobs if r not in ("tables", "task_tables", "all", "report_scene")} == {"dsift"}


@pytest.mark.slow
def test_training_setting_of_distillation_keeps_features_and_pretraining(finished):
    workdir, config = finished
    changed = copy.deepcopy(config)
    changed["training"]["distill"]["feature_lambda"] = 0.5
    assert rule_set(_plan(workdir, changed, "distill")) == AFTER_DISTILL


@pytest.mark.slow
def test_added_scene_runs_only_that_scenes_jobs(finished):
    workdir, config = finished
    added = tiny_config(workdir, scenes=2)
    added["training"] = copy.deepcopy(config["training"])
    jobs = _plan(workdir, added, "added")
    per_scene = [(rule, w) for rule, w in jobs if "scene" in w]
    assert {w["scene"] for _, w in per_scene} == {"tiny1"}
    assert {rule for rule, _ in per_scene} == {
        "scene", "teacher_features", "pretrain_rgb", "distill", "fuse", "eval_retrieval", "eval_retrieval_fused",
        "eval_task", "eval_task_fused", "report_scene",
    }
    # only the cross-scene tables (and the target rule) besides the new scene's own jobs
    assert rule_set(jobs) - {rule for rule, _ in per_scene} == {"tables", "task_tables", "all"}


@pytest.mark.slow
def test_one_scenes_evaluation_reruns_by_file_name(finished):
    workdir, config = finished
    target = workdir / "results" / "tiny" / "grid" / "dsift" / "retrieval.json"
    assert _plan(workdir, config, "same", str(target)) == []
    assert _plan(workdir, config, "same", "--force", str(target)) == [
        ("eval_retrieval", {"scene": "tiny", "field": "grid", "teacher": "dsift"})
    ]
    before = {p: p.stat().st_mtime_ns for p in (workdir / "results").rglob("*") if p.is_file()}
    result = run_snakemake(workdir, workdir / "same.yaml", "--cores", "2", "--force", str(target))
    assert result.returncode == 0, result.stderr[-3000:]
    changed = {p for p in (workdir / "results").rglob("*") if p.is_file() and before.get(p) != p.stat().st_mtime_ns}
    assert changed == {target, target.with_name("retrieval_rows.csv"), target.with_name("segmentation_rows.csv")}
    # at most what reads the new scores is out of date (Snakemake skips readers of a file whose
    # checksum did not change), never anything upstream
    assert rule_set(_plan(workdir, config, "same")) <= {"report_scene", "tables", "all"}
    restored = run_snakemake(workdir, workdir / "same.yaml", "--cores", "2")
    assert restored.returncode == 0, restored.stderr[-3000:]
