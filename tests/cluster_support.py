"""Helpers shared by the rerun, resume and SLURM tests: a tiny workflow config and a plan parser.

The tiny configuration is the whole DAG (scene, teacher features, RGB
pretraining, distillation, retrieval and task evaluation, report, tables) on
one synthetic scene small enough that a complete run takes well under a
minute on two CPU cores: 12 frames of 48 x 36 pixels, the handcrafted
``dsift`` teacher (no network weights) and a few dozen training steps.
Everything a run writes (results, logs, benchmarks, ``.snakemake``) stays in
the directory the test gives it.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO

SNAKEFILE = REPO / "Snakefile"
_SMALL_TRAINING: dict[str, Any] = {
    "batch_rays": 128,
    "eval_frames": 1,
    "eval_chunk": 2048,
    "progress": False,
    "threads": 1,
    "sampler": {"n_proposal": 16, "n_importance": 8, "n_uniform": 4},
}


def tiny_config(workdir: Path, *, rgb_steps: int = 150, distill_steps: int = 60, scenes: int = 1) -> dict[str, Any]:
    """The tiny configuration, writing under ``workdir``; ``scenes=2`` adds a second scene."""
    entries = [
        {"name": f"tiny{i}" if i else "tiny", "source": "synthetic",
         "options": {"kind": "static", "n_frames": 12, "width": 48, "height": 36, "seed": i}}
        for i in range(scenes)
    ]
    return {
        "results": str(workdir / "results"),
        "intermediate": str(workdir / "intermediate"),
        "scenes": entries,
        "teachers": [{"name": "dsift"}],
        "fields": ["grid"],
        "training": {
            "rgb": {"steps": rgb_steps, **copy.deepcopy(_SMALL_TRAINING)},
            "distill": {"steps": distill_steps, **copy.deepcopy(_SMALL_TRAINING)},
        },
    }


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake_cmd(workdir: Path, configfile: Path, *args: str) -> list[str]:
    """``snakemake`` on the repository's Snakefile, run *in* ``workdir`` (so logs and metadata stay there)."""
    return [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--configfile", str(configfile), *args]


def snakemake_env() -> dict[str, str]:
    """The environment of a run: the interpreter's bin folder (the ``n3f`` command) first on PATH."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def run_snakemake(workdir: Path, configfile: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_cmd(workdir, configfile, *args), cwd=workdir, env=snakemake_env(),
        capture_output=True, text=True, timeout=timeout,
    )


_JOB_HEADER = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_WILDCARDS = re.compile(r"^\s+wildcards: (.*)$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")


def planned_jobs(output: str) -> list[tuple[str, dict[str, str]]]:
    """Jobs a (dry) run lists, as (rule, wildcards), from Snakemake's job blocks.

    A block starts with ``rule NAME:`` (``localrule`` for jobs run by Snakemake
    itself, such as ``all``) and lists ``wildcards: a=1, b=2`` when the rule has any.
    """
    jobs: list[tuple[str, dict[str, str]]] = []
    for line in output.splitlines():
        header = _JOB_HEADER.match(line.strip()) if not line.startswith(" ") else None
        if header:
            jobs.append((header.group(1), {}))
            continue
        wildcards = _WILDCARDS.match(line)
        if wildcards and jobs:
            jobs[-1][1].update(dict(item.split("=", 1) for item in wildcards.group(1).split(", ")))
    return jobs


def job_ids_by_rule(output: str) -> dict[int, str]:
    """Snakemake job id -> rule, from the job blocks of a run's log."""
    ids: dict[int, str] = {}
    rule = None
    for line in output.splitlines():
        header = _JOB_HEADER.match(line.strip()) if not line.startswith(" ") else None
        if header:
            rule = header.group(1)
            continue
        jobid = _JOBID.match(line)
        if jobid and rule is not None:
            ids[int(jobid.group(1))] = rule
    return ids


def rule_set(jobs: list[tuple[str, dict[str, str]]]) -> set[str]:
    return {rule for rule, _ in jobs}


def logged_steps(out: Path) -> list[int]:
    """Steps in ``<out>/metrics/loss.csv`` (training logs every step in these tests)."""
    log = out / "metrics" / "loss.csv"
    if not log.exists():
        return []
    return [int(line.split(",", 1)[0]) for line in log.read_text().splitlines()[1:] if line.strip()]


def _children(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (Snakemake starts jobs from worker threads)."""
    return [int(c) for task in Path(f"/proc/{pid}/task").glob("*") for c in (task / "children").read_text().split()]


SHELLS = ("bash", "sh", "dash", "zsh")


def training_process(root: int, command: str) -> int | None:
    """Pid of the deepest process under ``root`` whose command line contains ``command`` (Linux /proc).

    The deepest, because the rule's ``bash -c '... n3f pretrain-rgb ...'`` wrapper
    matches too: the trainer is the ``n3f`` process below it. A shell is never returned: polled
    between the wrapper's start and its child's, the wrapper would be the deepest match, and a
    signal to it leaves the ``n3f`` child running on (a quick stage then finishes its output after
    Snakemake has cleaned up the failed job).
    """
    found, stack = None, [(root, 0)]
    while stack:
        pid, depth = stack.pop()
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            stack += [(child, depth + 1) for child in _children(pid)]
        except (FileNotFoundError, ProcessLookupError):
            continue
        shell = Path(cmdline.split(" ", 1)[0]).name in SHELLS
        if pid != root and not shell and command in cmdline and (found is None or depth > found[1]):
            found = (pid, depth)
    return found[0] if found else None
