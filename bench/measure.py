"""Shared by the bench scripts: run a command and read its wall time and peak memory.

Peak resident memory comes from the kernel's accounting of the finished child
(``wait4``'s ``ru_maxrss``), so it covers the whole process, torch and zarr
included, without polling.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def n3f_command(*args: str) -> list[str]:
    """The ``n3f`` CLI of the interpreter running the bench (no activated venv needed)."""
    return [sys.executable, "-m", "n3f", *args]


def run_measured(cmd: Sequence[str], log: Path | None = None, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``cmd`` to completion; wall seconds, CPU seconds and peak RSS (MB). Raises on failure."""
    out = open(log, "w") if log is not None else subprocess.DEVNULL
    started = time.perf_counter()
    proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if log is not None:
        out.close()
    if proc.returncode != 0:
        tail = log.read_text()[-2000:] if log is not None else ""
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on; CPU figures from a loaded machine are not comparable."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "platform": platform.platform(),
        "cpu_cores": os.cpu_count(),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def describe(m: dict[str, Any]) -> str:
    """The machine line every result file starts with."""
    return f"{m['cpu_cores']} CPU cores, device {m['device']}, torch {m['torch']}, load before {m['load_avg_1min']}, {m['date']}"


def write_results(name: str, data: dict[str, Any], markdown: str, out: Path = RESULTS) -> None:
    """``bench/results/<name>.json`` and ``.md``, and the Markdown on stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown)
    print(markdown)
