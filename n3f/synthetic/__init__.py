"""Synthetic tabletop scenes with exact ground truth, ray cast by n3f itself.

Textured spheres, boxes and cylinders (one a near-twin distractor) on a
textured table, lit with Lambert + Blinn-Phong and hard shadows, seen by an
orbit, a forward-facing spiral or an egocentric hand-held path with moving
objects and a camera-anchored arm. Every frame comes with its camera, near/far
bounds, modal and amodal masks; the analytic geometry is kept in
``attrs["geometry"]`` so 3D segmentation and object removal can be scored.

Modules: ``geometry`` (primitives, ray intersection), ``textures``,
``shading``, ``cameras``, ``motion`` (moved objects, actor), ``scene_spec``
(seeded scene description), ``render`` (ray casting), ``make``
(``make_scene``), ``video`` (mp4 writer).
"""

from n3f.synthetic.geometry import primitive_from_json
from n3f.synthetic.make import make_scene, scene_from_spec
from n3f.synthetic.render import render_view
from n3f.synthetic.scene_spec import ACTOR_NAME, SceneSpec, build_spec, spec_from_attrs
from n3f.synthetic.video import write_scene_video

__all__ = [
    "ACTOR_NAME",
    "SceneSpec",
    "build_spec",
    "make_scene",
    "primitive_from_json",
    "render_view",
    "scene_from_spec",
    "spec_from_attrs",
    "write_scene_video",
]
