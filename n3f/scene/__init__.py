"""The canonical scene store, and the registry of sources that fill it.

``SceneStore``/``write_scene`` (zarr) and the data types are imported on first
use, so ``n3f.scene.sources`` (checked while the Snakefile is parsed) loads
neither zarr nor any importer.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Annotations": "n3f.scene_data",
    "SceneData": "n3f.scene_data",
    "SceneStore": "n3f.scene.store",
    "write_scene": "n3f.scene.store",
}

__all__ = ["Annotations", "SceneData", "SceneStore", "write_scene"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
