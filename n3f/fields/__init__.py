"""Neural fields, one module per architecture, all behind :class:`n3f.fields.base.Field`.

``build_field(name, feature_dim, config, timestamps, train_frames)`` is the only
constructor the trainer and renderer use (``fields/registry.py``); each
field's settings are a dataclass in ``fields/settings.py``, which imports no
torch. Names are imported on first use, so that reading the settings stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "FIELDS": "n3f.fields.registry",
    "build_field": "n3f.fields.registry",
    "field_class": "n3f.fields.registry",
    "Field": "n3f.fields.base",
    "FeatureHead": "n3f.fields.base",
    "Samples": "n3f.fields.base",
    "FIELD_SETTINGS": "n3f.fields.settings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'n3f.fields' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)
