"""Rays, sampling, scene parameterisations, compositing and the renderer.

Public API::

    camera_rays, rays_from_pixels, project, RayBundle      # rays.py
    SceneSpace, space_for_scene                              # space.py
    composite, render_weights                                # composite.py
    Renderer, DensityModifier                                # renderer.py
    SamplerConfig, SpaceOverrides                            # settings.py (no torch)
    load_renderer, save_model                                # model_io.py

Names are imported on first use, so that ``n3f.render.settings`` (read while
the Snakefile is parsed) can be imported without torch.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import Any

_LAZY = {
    "DensityModifier": "n3f.render.renderer",
    "RayBundle": "n3f.render.rays",
    "Renderer": "n3f.render.renderer",
    "SamplerConfig": "n3f.render.settings",
    "SceneSpace": "n3f.render.space",
    "SpaceOverrides": "n3f.render.settings",
    "camera_rays": "n3f.render.rays",
    "composite": "n3f.render.composite",
    "load_renderer": "n3f.render.model_io",
    "project": "n3f.render.rays",
    "rays_from_pixels": "n3f.render.rays",
    "render_weights": "n3f.render.composite",
    "save_model": "n3f.render.model_io",
    "space_for_scene": "n3f.render.space",
}


class _Package(types.ModuleType):
    """``n3f.render.composite`` is the compositing function, as when this package imported
    everything eagerly, not the submodule of the same name that importing it would bind."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "composite" and isinstance(value, types.ModuleType):
            value = value.composite
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'n3f.render' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)
