"""``make_scene``: render a seeded synthetic scene into a :class:`SceneData`.

What a synthetic scene records besides frames, cameras and masks:

``attrs["geometry"]`` - one dict per annotated object, in mask order, world
units (z up, table top = the square ``|x|, |y| <= half_size`` at z = 0):

* ``role: "object"`` - ``type`` ``sphere`` (``center``, ``radius``), ``box``
  (``center``, ``half_extents``, ``rotation``: 3x3 world-from-box) or
  ``cylinder`` (vertical; ``base_center``, ``radius``, ``height``), at rest
  (frame 0); ``color_name``, ``texture``, ``specular``, ``shininess``,
  ``twin_of`` (the object a distractor imitates, else None) and ``moving``.
  Moving objects add ``motion`` (piecewise-linear translation keyframes,
  fractional frame times) and ``offsets_per_frame`` (N x 3): the pose at frame
  i is the rest pose translated by ``offsets_per_frame[i]``.
* ``role: "actor"`` (dynamic scenes, named ``"actor"``, last) - a ``capsule``
  fixed in camera coordinates: ``radius``, the generating ``actor`` parameters
  and ``per_frame`` (None where absent, else ``p0``/``p1`` in world and
  ``p0_camera``/``p1_camera`` in OpenCV camera coordinates).

``n3f.synthetic.geometry.primitive_from_json`` turns an object dict into a
primitive with ``intersect``/``contains``. The scene store normalises cameras;
map geometry with ``SceneStore.to_normalised`` (points) and multiply lengths
by ``attrs["normalisation"]["scale"]``.

``attrs["synthetic"]`` - ``params`` (everything ``build_spec`` needs:
``spec_from_attrs`` rebuilds the scene), ``ground``, ``actor_names`` (objects
that retrieval should skip), ``distractors`` ({twin: original}) and
``moving_objects``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from n3f.scene_data import Annotations, SceneData
from n3f.synthetic.render import frame_bounds, render_view
from n3f.synthetic.scene_spec import ACTOR_NAME, GENERATOR_VERSION, SceneSpec, build_spec


def make_scene(
    name: str,
    kind: str = "static",
    n_frames: int | None = None,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
    layout: str | None = None,
    annotate_every: int = 1,
    **kw: Any,
) -> SceneData:
    """Render a synthetic scene with exact cameras, masks and geometry.

    ``kind="static"``: cameras orbit the table (``layout="object"``, default)
    or spiral in a small patch facing it (``layout="forward"``).
    ``kind="dynamic"``: an egocentric hand-held path (``layout="egocentric"``)
    while one object is picked up and placed elsewhere, another slides, and an
    arm fixed to the camera (annotated as ``"actor"``, last in the mask order)
    enters and leaves the view.

    ``n_frames`` defaults to 60 (static) or 80 (dynamic). ``annotate_every``
    keeps masks of every k-th frame. Extra keywords go to
    :func:`n3f.synthetic.scene_spec.build_spec`: ``n_objects`` (6, the last a
    distractor twin of the first), ``fov_deg`` (60), ``supersample`` (2:
    anti-aliasing of colour only), ``shadows`` (True), ``n_moving`` (2),
    ``actor`` (True), ``table_half`` (2.0).

    The same arguments always give byte-identical frames (same numpy build). Geometry is in
    world units in ``attrs["geometry"]``; ``attrs["synthetic"]["params"]``
    rebuilds the scene with :func:`n3f.synthetic.spec_from_attrs`.
    """
    spec = build_spec(kind, n_frames, width, height, seed, layout, **kw)
    return scene_from_spec(name, spec, annotate_every=annotate_every)


def import_synthetic(path: None = None, *, name: str, **options: Any) -> SceneData:
    """The ``synthetic`` source: nothing is read, so ``path`` is unused; ``options`` go to :func:`make_scene`."""
    return make_scene(name, **options)


def scene_from_spec(name: str, spec: SceneSpec, annotate_every: int = 1) -> SceneData:
    """Render every frame of ``spec`` and pack frames, cameras and masks."""
    n, h, w = spec.n_frames, spec.height, spec.width
    k = len(spec.object_names)
    annotated = np.arange(0, n, max(1, int(annotate_every)))
    frames = np.empty((n, h, w, 3), np.uint8)
    modal = np.zeros((len(annotated), k, h, w), bool)
    amodal = np.zeros_like(modal)
    bounds = np.zeros((n, 2))
    row = {int(f): r for r, f in enumerate(annotated)}
    for i in range(n):
        t = float(i) if spec.dynamic else None
        out = render_view(spec, spec.c2w[i], spec.K, h, w, frame_time=t)
        frames[i] = out["rgb"]
        bounds[i] = frame_bounds(spec, spec.c2w[i], out["depth"], t or 0.0)
        if i in row:
            modal[row[i]] = out["modal"]
            amodal[row[i]] = out["amodal"]
    attrs = {
        "geometry": spec.geometry_json(),
        "synthetic": {
            "generator": "n3f.synthetic",
            "version": GENERATOR_VERSION,
            "params": dict(spec.params),
            "annotate_every": int(annotate_every),
            "units": "world; store coordinates are (p - normalisation.centre) * normalisation.scale, lengths * scale",
            "world_up": [0.0, 0.0, 1.0],
            "ground": spec.ground.to_json(),
            "actor_names": [ACTOR_NAME] if spec.actor is not None else [],
            "distractors": {o.name: o.twin_of for o in spec.objects if o.twin_of},
            "moving_objects": [o.name for o in spec.objects if o.motion is not None],
        },
    }
    return SceneData(
        name=name,
        source=f"synthetic:{spec.kind}/{spec.layout}/seed={spec.seed}",
        frames=frames,
        frame_names=[f"frame_{i:05d}" for i in range(n)],
        c2w=spec.c2w.copy(),
        intrinsics=np.repeat(spec.K[None], n, axis=0),
        bounds=bounds,
        layout=spec.layout,
        timestamps=np.arange(n, dtype=np.float64) if spec.dynamic else None,
        annotations=Annotations(annotated, list(spec.object_names), modal, amodal),
        dynamic=spec.dynamic,
        attrs=attrs,
    )
