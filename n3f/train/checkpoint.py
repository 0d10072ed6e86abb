"""Resumable training state, written atomically, and stop-on-signal.

``<out>/checkpoint.pt`` holds the model, optimiser, scheduler, step counter and
every RNG state, so a restarted job continues the *same* run (same batches,
same jitter) rather than a new one. SIGTERM (what SLURM and Snakemake send on
cancel/timeout) and SIGUSR1 (SLURM's ``--signal`` warning) only raise a flag;
the loop finishes the current step, writes the checkpoint and exits with
status 128 + signal, so a kill never lands in the middle of a write.

A checkpoint belongs to one run: it records the stage, the settings that
shape the trajectory and a fingerprint of every input (scene store, feature
store, stage-1 model). :func:`load_checkpoint` resumes only a checkpoint of
the same run; one written with other settings or inputs is discarded (logged),
and one that cannot be read is moved aside with a warning, so a stale or
truncated checkpoint never blocks a rerun.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from n3f.atomic import atomic_torch_save

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class TrainingInterrupted(Exception):
    """Raised after the checkpoint is safely written because a stop signal arrived."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"stopped by signal {signal.Signals(signum).name} at step {step}; checkpoint written")
        self.signum = signum
        self.step = step


class StopFlag:
    """Context manager: stop signals set ``self.signum`` instead of killing the process."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:  # noqa: ARG002
        self.signum = signum

    def __enter__(self) -> "StopFlag":
        for s in STOP_SIGNALS:
            try:
                self._previous[s] = signal.signal(s, self._handler)
            except ValueError:  # not the main thread: signals stay default
                pass
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)


def rng_state(np_rng: np.random.Generator, torch_gen: torch.Generator) -> dict[str, Any]:
    return {"numpy": np_rng.bit_generator.state, "torch": torch_gen.get_state()}


def restore_rng(state: dict[str, Any], np_rng: np.random.Generator, torch_gen: torch.Generator) -> None:
    np_rng.bit_generator.state = state["numpy"]
    torch_gen.set_state(state["torch"])


def fingerprint(path: str | Path) -> str:
    """sha256 over a file, or over every file of a folder (relative path and bytes, sorted).

    Stores are small enough (a 119-frame capture's scene store is ~75 MB) that
    hashing them costs well under a second, and only content counts: a store
    rewritten with the same data keeps its fingerprint.
    """
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        digest.update(str(f.relative_to(path) if f != path else f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    atomic_torch_save(payload, path)


def _set_aside(path: Path, why: str) -> None:
    aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}")
    path.replace(aside)
    log.warning("%s cannot be read (%s); moved it to %s and starting this stage afresh", path, why, aside.name)


def load_checkpoint(path: str | Path, run: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it belongs to ``run``, else None (and the file is out of the way).

    ``run`` maps the keys a checkpoint must agree on (stage, settings, inputs)
    to their values; a checkpoint that differs in any of them is deleted with a
    log line naming what changed. An unreadable file is renamed
    ``checkpoint.pt.unreadable-<time>``.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # truncated, zero bytes, not a torch file
        _set_aside(path, f"{type(err).__name__}: {str(err)[:200]}")
        return None
    if not isinstance(ckpt, dict) or not {"step", "renderer", "optimizer", "scheduler", "rng"} <= set(ckpt):
        _set_aside(path, "not an n3f training checkpoint")
        return None
    changed = sorted(k for k, v in (run or {}).items() if ckpt.get(k) != v)
    if changed:
        detail = []
        for k in changed:
            old, new = ckpt.get(k), run[k]
            if isinstance(old, dict) and isinstance(new, dict):
                detail.append(f"{k}: " + ", ".join(sorted(x for x in set(old) | set(new) if old.get(x) != new.get(x))))
            else:
                detail.append(k)
        log.info("discarding %s: written by a run with other %s", path, "; ".join(detail))
        path.unlink()
        return None
    return ckpt
