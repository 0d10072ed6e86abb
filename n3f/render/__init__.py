"""Rays, sampling, scene parameterisations, compositing and the renderer.

Public API::

    camera_rays, rays_from_pixels, project, RayBundle      # rays.py
    SceneSpace, space_for_scene                              # space.py
    composite, render_weights                                # composite.py
    Renderer, SamplerConfig, DensityModifier                 # renderer.py
    load_renderer, save_model                                # model_io.py
"""

from n3f.render.composite import composite, render_weights
from n3f.render.rays import RayBundle, camera_rays, project, rays_from_pixels
from n3f.render.renderer import DensityModifier, Renderer, SamplerConfig
from n3f.render.space import SceneSpace, space_for_scene
from n3f.render.model_io import load_renderer, save_model

__all__ = [
    "DensityModifier",
    "RayBundle",
    "Renderer",
    "SamplerConfig",
    "SceneSpace",
    "camera_rays",
    "composite",
    "load_renderer",
    "project",
    "rays_from_pixels",
    "render_weights",
    "save_model",
    "space_for_scene",
]
