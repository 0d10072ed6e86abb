"""The whole pipeline through a real SLURM with ``--profile slurm``.

Needs a running cluster with partitions ``cpu`` and ``gpu`` and a GRES ``gpu``
on the same shared filesystem: ``.ci/slurm_up.sh`` brings one up on one
machine (CI runs it before the tests). Without a cluster the test is skipped,
unless ``N3F_SLURM=1`` says one is expected (CI), where it fails instead.

The run uses the repository's ``slurm/`` profile exactly (a link to it sits in
the test's working directory, where Snakemake looks a bare profile name up)
plus ``.ci/slurm-profile``: status by ``squeue`` (no accounting daemon), no
account, fast polling. It checks that

* every job of the tiny DAG is submitted with sbatch (none runs on the
  submitting host but the target rule ``all``) and lands in the partition its
  resources call for, and all outputs appear;
* a training job that gets SLURM's pre-timeout signal (SIGUSR1, as the profile's
  ``--signal=USR1@300`` sends) writes its checkpoint, fails, is retried by the
  profile's ``retries`` and resumes where it stopped;
* after an evaluation-only change, a second run submits only the evaluation
  and report jobs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster_support import job_ids_by_rule, logged_steps, snakemake_cmd, snakemake_env, tiny_config, write_config
from tests.conftest import REPO

CI_PROFILE = REPO / ".ci" / "slurm-profile"
RGB_STEPS = 600
GPU_RULES = {"teacher_features", "pretrain_rgb", "distill", "fuse", "eval_retrieval", "eval_retrieval_fused", "eval_task",
             "eval_task_fused"}
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")


def _slurm_problem() -> str | None:
    """Why no usable SLURM is here (None when sinfo answers with an idle node)."""
    for tool in ("sinfo", "sbatch", "squeue", "scancel"):
        if shutil.which(tool) is None:
            return f"{tool} not found (run .ci/slurm_up.sh as root to start a test cluster)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P %t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s"
    if out.returncode != 0:
        return f"sinfo failed: {out.stderr.strip()}"
    states = dict(line.split() for line in out.stdout.splitlines() if line.strip())
    for partition in ("cpu*", "gpu"):
        if not states.get(partition, "").startswith(("idle", "mix", "alloc")):
            return f"partition {partition.rstrip('*')} missing or not up (sinfo: {out.stdout.strip()!r})"
    return None


@pytest.fixture(scope="module")
def slurm() -> None:
    problem = _slurm_problem()
    if problem is None:
        return
    if os.environ.get("N3F_SLURM") == "1":
        pytest.fail(f"N3F_SLURM=1 but no usable SLURM: {problem}")
    pytest.skip(f"no SLURM cluster: {problem}")


def _snakemake_slurm(workdir: Path, configfile: Path) -> subprocess.Popen:
    (workdir / "slurm").unlink(missing_ok=True)
    (workdir / "slurm").symlink_to(REPO / "slurm", target_is_directory=True)
    cmd = snakemake_cmd(workdir, configfile, "--profile", "slurm", "--profile", str(CI_PROFILE), "all")
    return subprocess.Popen(cmd, cwd=workdir, env=snakemake_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _slurm_job_of(rule: str) -> str | None:
    """SLURM id of the running job of ``rule`` (the plugin puts ``rule_<name>`` in the job comment)."""
    out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"], capture_output=True, text=True, timeout=20)
    for line in out.stdout.splitlines():
        job, _, comment = line.partition(" ")
        if comment.startswith(f"rule_{rule}"):
            return job
    return None


def _submitted_rules(log: str) -> list[str]:
    rules = job_ids_by_rule(log)
    return [rules[int(m.group(1))] for m in SUBMITTED.finditer(log)]


def _partition(slurm_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", slurm_id, "-o", "%P"], capture_output=True, text=True, timeout=20)
    return out.stdout.strip()


@pytest.mark.slow
def test_profile_runs_the_dag_on_slurm_resumes_a_signalled_job_and_reruns_only_evaluation(slurm, tmp_path):
    t0 = time.monotonic()
    config = tiny_config(tmp_path, rgb_steps=RGB_STEPS)
    config["training"]["rgb"].update(log_every=1, checkpoint_every=100_000)  # only the signal writes a checkpoint
    configfile = write_config(tmp_path / "config.yaml", config)
    rgb = tmp_path / "results" / "tiny" / "grid" / "rgb"

    run = _snakemake_slurm(tmp_path, configfile)
    try:
        deadline = time.monotonic() + 600
        while len(logged_steps(rgb)) < 20 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        job = _slurm_job_of("pretrain_rgb")
        if job is None or run.poll() is not None:
            log = run.communicate(timeout=60)[0] if run.poll() is not None else "(still running)"
            pytest.fail(f"pretrain_rgb not running on SLURM after {len(logged_steps(rgb))} steps:\n{log[-4000:]}")
        # what SLURM does before the time limit with the profile's --signal=USR1@300
        subprocess.run(["scancel", "--signal=USR1", job], check=True, timeout=20)
        log, _ = run.communicate(timeout=900)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    first_run_s = time.monotonic() - t0
    assert run.returncode == 0, log[-6000:]

    # every job went through sbatch, to the partition its resources ask for
    submitted = _submitted_rules(log)
    expected = {"scene", "teacher_features", "pretrain_rgb", "distill", "fuse", "eval_retrieval", "eval_retrieval_fused",
                "eval_task", "eval_task_fused", "report_scene", "tables", "task_tables"}
    assert set(submitted) == expected, submitted
    assert submitted.count("pretrain_rgb") == 2, "the signalled training job is retried once"
    assert len(submitted) == 17  # 16 jobs (with fuse, its retrieval and the 3 tasks on the fused field) + 1 retry
    assert re.findall(r"^localrule (\w+):$", log, re.M) == ["all"]
    for match in SUBMITTED.finditer(log):
        rule = job_ids_by_rule(log)[int(match.group(1))]
        assert _partition(match.group(2)) == ("gpu" if rule in GPU_RULES else "cpu"), (rule, match.group(2))
    for path in ("tiny/report.md", "tables/retrieval_map.md", "tables/tasks.md", "tiny/grid/dsift/model.pt"):
        assert (tmp_path / "results" / path).exists(), path

    # the signalled job stopped with a checkpoint; its retry resumed there and finished the run
    job_log = (tmp_path / "logs" / "results" / "pretrain_rgb" / "tiny" / "grid.log").read_text()
    resumed = re.search(r"resuming from \S+checkpoint\.pt at step (\d+)", job_log)
    assert resumed and 20 <= int(resumed.group(1)) < RGB_STEPS, job_log[-2000:]
    assert logged_steps(rgb) == list(range(1, RGB_STEPS + 1))

    # evaluation-only change: only evaluation and report jobs are submitted
    config["evaluation"] = {"sampling": "bilinear"}
    changed = write_config(tmp_path / "changed.yaml", config)
    t1 = time.monotonic()
    second = _snakemake_slurm(tmp_path, changed)
    log2, _ = second.communicate(timeout=600)
    second_run_s = time.monotonic() - t1
    assert second.returncode == 0, log2[-6000:]
    assert sorted(_submitted_rules(log2)) == ["eval_retrieval", "eval_retrieval_fused", "report_scene", "tables"], log2[-4000:]
    print(f"SLURM test: first run {first_run_s:.0f} s (17 submissions), second run {second_run_s:.0f} s")
