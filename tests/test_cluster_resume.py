"""A training job killed mid-run leaves nothing that looks finished, and the rerun resumes it.

This is what a preempted or timed-out cluster job goes through, without the
cluster: the workflow runs locally, the ``n3f pretrain-rgb`` process of the
``pretrain_rgb`` job gets SIGTERM (what SLURM sends at the time limit, and
what Snakemake's own cancel sends) while it trains, Snakemake records the job
as failed, and a second ``snakemake`` continues from ``checkpoint.pt``.
(tests/test_cluster_slurm.py does the same through a real SLURM with SIGUSR1.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster_support import (
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

RGB_STEPS = 800


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the training process through Linux /proc")
def test_killed_training_job_leaves_no_outputs_and_rerun_resumes(tmp_path):
    config = tiny_config(tmp_path, rgb_steps=RGB_STEPS)
    config["training"]["rgb"].update(log_every=1, checkpoint_every=100_000)  # only the signal writes a checkpoint
    configfile = write_config(tmp_path / "config.yaml", config)
    out = tmp_path / "results" / "tiny" / "grid" / "rgb"
    target = str(out / "model.pt")

    run = subprocess.Popen(
        snakemake_cmd(tmp_path, configfile, "--cores", "2", target), cwd=tmp_path, env=snakemake_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while len(logged_steps(out)) < 20 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        trainer = training_process(run.pid, "pretrain-rgb")
        if trainer is None or run.poll() is not None:
            log = run.communicate(timeout=60)[0] if run.poll() is not None else "(still running)"
            pytest.fail(f"no training process to kill after {len(logged_steps(out))} steps; snakemake:\n{log[-3000:]}")
        os.kill(trainer, signal.SIGTERM)
        log, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode != 0, log[-3000:]
    assert "Error in rule pretrain_rgb" in log, log[-3000:]

    # nothing that looks finished: the job's outputs are absent, so every planner reruns it
    assert (out / "checkpoint.pt").exists()
    assert not (out / "model.pt").exists() and not (out / "metrics.json").exists()
    stopped = logged_steps(out)[-1]
    assert 20 <= stopped < RGB_STEPS
    plan = run_snakemake(tmp_path, configfile, "-n", target)
    assert rule_set(planned_jobs(plan.stdout + plan.stderr)) == {"pretrain_rgb"}, plan.stdout[-2000:]

    rerun = run_snakemake(tmp_path, configfile, "--cores", "2", target)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-3000:]
    job_log = (tmp_path / "logs" / "results" / "pretrain_rgb" / "tiny" / "grid.log").read_text()
    assert f"resuming from {out / 'checkpoint.pt'} at step {stopped}" in job_log, job_log[-2000:]
    assert logged_steps(out) == list(range(1, RGB_STEPS + 1))  # no gap, no step twice
    assert (out / "metrics.json").exists() and (out / "model.pt").exists()
