"""Every field architecture by name, and the one constructor the trainer and renderer use.

Adding an architecture means a settings dataclass in ``fields/settings.py``
(:data:`~n3f.fields.settings.FIELD_SETTINGS`, the list of names), a module
with the :class:`~n3f.fields.base.Field` subclass, and a line in :data:`FIELDS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from n3f.errors import N3FInputError
from n3f.fields.base import Field
from n3f.fields.grid import GridField
from n3f.fields.nerf import NeRFField
from n3f.fields.neuraldiff import NeuralDiffField
from n3f.fields.settings import FieldSettings

FIELDS: dict[str, type[Field]] = {"grid": GridField, "nerf": NeRFField, "neuraldiff": NeuralDiffField}


def field_class(name: str) -> type[Field]:
    if name not in FIELDS:
        raise N3FInputError(f"field '{name}' unknown; use one of {sorted(FIELDS)}.")
    return FIELDS[name]


def build_field(
    name: str,
    feature_dim: int,
    config: FieldSettings | Mapping[str, Any] | None,
    timestamps: np.ndarray,
    train_frames: np.ndarray,
) -> Field:
    """Instantiate a field by name (``grid``, ``nerf``, ``neuraldiff``).

    ``config`` is the field's settings dataclass, or a mapping of overrides of
    its defaults (None: the defaults).
    """
    cls = field_class(name)
    return cls(feature_dim, cls.settings_class.coerce(config), timestamps, train_frames)
