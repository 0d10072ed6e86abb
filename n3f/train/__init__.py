"""Training: RGB pretraining and feature distillation, with resumable checkpoints.

The loop (and torch) are imported on first use, so that reading and checking
settings (``n3f.train.config``, used while the Snakefile is parsed) stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from n3f.train.config import TrainConfig, load_config

_LAZY = {"Trainer": "n3f.train.loop", "distill": "n3f.train.loop", "pretrain_rgb": "n3f.train.loop",
         "run_training": "n3f.train.loop"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'n3f.train' has no attribute {name!r}")


__all__ = ["TrainConfig", "Trainer", "distill", "load_config", "pretrain_rgb", "run_training"]
