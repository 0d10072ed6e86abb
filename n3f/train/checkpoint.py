"""Resumable training state, written atomically, and stop-on-signal.

``<out>/checkpoint.pt`` holds the model, optimiser, scheduler, step counter and
every RNG state, so a restarted job continues the *same* run (same batches,
same jitter) rather than a new one. SIGTERM (what SLURM and Snakemake send on
cancel/timeout) and SIGUSR1 (SLURM's ``--signal`` warning) only raise a flag;
the loop finishes the current step, writes the checkpoint and exits with
status 128 + signal, so a kill never lands in the middle of a write.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import numpy as np
import torch

from n3f.render.model_io import atomic_save

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


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    atomic_save(payload, path)


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)
