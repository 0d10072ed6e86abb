"""Which torch device a stage runs on: one rule for every stage."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"``: CUDA when present, else the CPU; anything else as given (``cpu``, ``cuda:1``)."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
