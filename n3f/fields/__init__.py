"""Neural fields, one module per architecture, all behind :class:`n3f.fields.base.Field`.

``build_field(name, feature_dim, config, timestamps, train_frames)`` is the only
constructor the trainer and renderer use, so adding an architecture means
adding a module and a line in ``FIELDS``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from n3f.fields.base import Field, FeatureHead, Samples
from n3f.fields.grid import GridField
from n3f.fields.nerf import NeRFField
from n3f.fields.neuraldiff import NeuralDiffField

FIELDS: dict[str, type[Field]] = {"grid": GridField, "nerf": NeRFField, "neuraldiff": NeuralDiffField}


def build_field(
    name: str,
    feature_dim: int,
    config: dict[str, Any] | None,
    timestamps: np.ndarray,
    train_frames: np.ndarray,
) -> Field:
    """Instantiate a field by name (``grid``, ``nerf``, ``neuraldiff``)."""
    from n3f.errors import N3FInputError

    if name not in FIELDS:
        raise N3FInputError(f"field '{name}' unknown; use one of {sorted(FIELDS)}.")
    return FIELDS[name](feature_dim, config or {}, timestamps, train_frames)


__all__ = ["FIELDS", "Field", "FeatureHead", "Samples", "build_field"]
