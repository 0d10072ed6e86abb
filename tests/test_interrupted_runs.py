"""What README promises about interrupted and repeated runs, on the whole tiny DAG.

* A kill of any stage (SIGTERM or SIGKILL) leaves nothing that looks finished,
  and rerunning ``snakemake`` finishes with the same scores as a run that was
  never interrupted, with no partial folders or checkpoints left behind.
* After a complete run, changing one training or evaluation setting and
  rerunning finishes (exit 0) and runs exactly the stages that read it.
* Runs into different ``results:`` folders of one checkout keep their own
  logs; a results path with a space works.

Every run uses the tiny configuration of tests/cluster_support.py and one
core, so that one job runs at a time and each stage can be caught in turn.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster_support import (
    job_ids_by_rule,
    logged_steps,
    planned_jobs,
    rule_set,
    run_snakemake,
    snakemake_cmd,
    snakemake_env,
    tiny_config,
    training_process,
    write_config,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds stage processes through Linux /proc"),
]

# each stage of the DAG, in order: its command line and the file that makes Snakemake run it next
STAGES = [
    ("scene", "n3f scene", "tiny/scene.zarr"),
    ("teacher_features", "n3f features", "tiny/features/dsift.zarr"),
    ("pretrain_rgb", "n3f pretrain-rgb", "tiny/grid/rgb/model.pt"),
    ("distill", "n3f distill", "tiny/grid/dsift/model.pt"),
    ("eval_retrieval", "n3f eval-retrieval", "tiny/grid/dsift/retrieval.json"),
    ("eval_task", "n3f eval-segment3d", "tiny/grid/dsift/segment3d"),
    ("report_scene", "n3f report", "tiny/report.md"),
    ("tables", "n3f tables", "tables/retrieval_map.csv"),
]
TRAINING = {"pretrain_rgb": "grid/rgb", "distill": "grid/dsift"}


def _config(workdir: Path, results: str) -> dict:
    config = tiny_config(workdir)
    config["results"] = str(workdir / results)
    for stage in ("rgb", "distill"):  # checkpoints often enough that a SIGKILL loses little
        config["training"][stage].update(log_every=1, checkpoint_every=20)
    return config


def scores(results: Path) -> dict[str, float]:
    """Every figure a user reads: held-out PSNR and cosine, retrieval mAP, task scores."""
    out: dict[str, float] = {}
    for path in sorted(results.rglob("*.json")):
        if path.name in ("metrics.json", "retrieval.json") or path.parent.name in ("segment3d", "edit", "amodal"):
            for key, value in json.loads(path.read_text()).items():
                if isinstance(value, float) and ("psnr" in key or "cosine" in key or "map" in key or "iou" in key or "f1" in key):
                    out[f"{path.relative_to(results)}:{key}"] = value
    return out


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".partial" in p.name or p.name == "checkpoint.pt" or ".tmp-" in p.name]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("interrupted")


@pytest.fixture(scope="module")
def reference(workdir) -> tuple[dict, dict[str, float]]:
    """A complete, never interrupted run into a results folder whose path has a space."""
    config = _config(workdir, "reference results")
    configfile = write_config(workdir / "reference.yaml", config)
    result = run_snakemake(workdir, configfile, "--cores", "1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    figures = scores(Path(config["results"]))
    assert len(figures) >= 8, figures
    return config, figures


def _kill_stage(workdir: Path, configfile: Path, results: Path, stage: tuple[str, str, str], signum: int) -> str:
    """Run snakemake towards the stage's file until its process is at work, send ``signum``; the run's log."""
    rule, command, target = stage
    run = subprocess.Popen(
        snakemake_cmd(workdir, configfile, "--cores", "1", str(results / target)), cwd=workdir, env=snakemake_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline, pid = time.monotonic() + 300, None
        while run.poll() is None and time.monotonic() < deadline:
            pid = training_process(run.pid, command)
            busy = pid is not None and (rule not in TRAINING or len(logged_steps(results / "tiny" / TRAINING[rule])) >= 30)
            if busy:
                break
            time.sleep(0.02)
        if pid is None or run.poll() is not None:
            log = run.communicate(timeout=60)[0] if run.poll() is not None else "(still running)"
            pytest.fail(f"{rule}: no '{command}' process to stop; snakemake:\n{log[-3000:]}")
        os.kill(pid, signum)
        log, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode != 0, log[-3000:]
    assert f"Error in rule {rule}" in log, log[-3000:]
    return log


@pytest.mark.parametrize("first", [signal.SIGKILL, signal.SIGTERM], ids=["kill-first", "term-first"])
def test_killing_each_stage_then_rerunning_gives_the_uninterrupted_scores(workdir, reference, first):
    """Every stage is stopped once per chain, signals alternating; the two chains swap them."""
    ref_config, ref_scores = reference
    name = f"chain {first.name}"
    config = _config(workdir, name)
    results = Path(config["results"])
    configfile = write_config(workdir / f"{first.name}.yaml", config)
    other = signal.SIGTERM if first == signal.SIGKILL else signal.SIGKILL
    for k, stage in enumerate(STAGES):
        rule, signum = stage[0], first if k % 2 == 0 else other
        _kill_stage(workdir, configfile, results, stage, signum)
        plan = run_snakemake(workdir, configfile, "-n")
        assert plan.returncode == 0, plan.stderr[-3000:]
        assert rule in rule_set(planned_jobs(plan.stdout + plan.stderr)), (rule, signum, plan.stdout[-2000:])
        if rule in TRAINING:  # nothing that looks finished
            out = results / "tiny" / TRAINING[rule]
            assert not (out / "model.pt").exists() and not (out / "metrics.json").exists()
    final = run_snakemake(workdir, configfile, "--cores", "1")
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-5000:]
    assert leftovers(results) == []
    got = scores(results)
    assert got.keys() == ref_scores.keys()
    for key, value in ref_scores.items():
        tolerance = 0.05 if "psnr" in key else 0.005 if "cosine" in key or "iou" in key or "f1" in key else 0.5
        assert abs(got[key] - value) <= tolerance, (key, got[key], value)


def test_a_changed_setting_after_a_complete_run_reruns_only_what_reads_it(workdir, reference):
    config, _ = reference
    results = Path(config["results"])
    log_dir = workdir / "logs" / "reference results"
    assert (log_dir / "pretrain_rgb" / "tiny" / "grid.log").exists()  # its own logs, named by its results folder
    cases = [
        ("rgb", {"rgb": {"lr": 0.03}}, {"pretrain_rgb", "distill", "fuse", "eval_retrieval", "eval_retrieval_fused", "eval_task",
                                        "eval_task_fused", "report_scene", "tables", "task_tables"}),
        ("distill", {"distill": {"feature_lambda": 0.5}}, {"distill", "eval_retrieval", "eval_task", "report_scene", "tables", "task_tables"}),
        ("evaluation", None, {"eval_retrieval", "eval_retrieval_fused", "report_scene", "tables"}),
    ]
    changed = copy.deepcopy(config)
    for name, training, expected in cases:
        if training is None:
            changed["evaluation"] = {"sampling": "bilinear"}
        else:
            for stage, settings in training.items():
                changed["training"][stage].update(settings)
        configfile = write_config(workdir / f"changed-{name}.yaml", changed)
        run = run_snakemake(workdir, configfile, "--cores", "1")
        assert run.returncode == 0, (name, run.stdout[-3000:] + run.stderr[-5000:])
        ran = set(job_ids_by_rule(run.stdout + run.stderr).values()) - {"all"}
        assert ran == expected, (name, ran)
        assert leftovers(results) == []
        nothing = run_snakemake(workdir, configfile, "-n")
        assert planned_jobs(nothing.stdout + nothing.stderr) == [], name
    metrics = json.loads((results / "tiny" / "grid" / "rgb" / "metrics.json").read_text())
    assert metrics["steps"] == config["training"]["rgb"]["steps"]
