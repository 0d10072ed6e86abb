"""Random but seeded scene descriptions: objects, materials, motion, actor, cameras.

A :class:`SceneSpec` is everything the renderer needs; it is a pure function
of the generation parameters (``build_spec``), which ``make_scene`` records in
``attrs["synthetic"]`` so any stored scene can be rebuilt exactly
(``spec_from_attrs``) to render novel views or object-removal ground truth.

Design choices that matter for evaluation:

* the first object gets a *distractor twin* (same shape, near-identical size,
  colour and texture kind), so retrieval must rely on more than colour/shape;
* objects are scattered in a disc so orbiting cameras see them occlude each
  other, which gives amodal masks strictly larger than modal ones;
* in dynamic scenes, one object is picked up and placed elsewhere and one
  slides, along straight paths checked to be free of other objects; the
  actor (an arm fixed to the camera) is annotated as object ``"actor"`` with
  ``role: "actor"`` in the geometry, listed in ``attrs["synthetic"]
  ["actor_names"]`` so retrieval can leave it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from n3f.synthetic.cameras import egocentric_path, forward_path, intrinsics, orbit_path
from n3f.synthetic.geometry import Box, Cylinder, GroundSquare, Primitive, Sphere, yaw_rotation
from n3f.synthetic.motion import Actor, KeyframeMotion
from n3f.synthetic.shading import Lighting
from n3f.synthetic.textures import TEXTURE_KINDS, TableTexture, Texture

GENERATOR_VERSION = 1
ACTOR_NAME = "actor"
KINDS = {"static": ("object", "forward"), "dynamic": ("egocentric",)}

PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.16, 0.14),
    "orange": (0.93, 0.50, 0.12),
    "yellow": (0.92, 0.80, 0.18),
    "green": (0.22, 0.62, 0.25),
    "teal": (0.10, 0.58, 0.60),
    "blue": (0.18, 0.32, 0.82),
    "purple": (0.50, 0.25, 0.70),
    "pink": (0.92, 0.45, 0.64),
    "white": (0.90, 0.90, 0.88),
    "grey": (0.42, 0.43, 0.46),
}


@dataclass(frozen=True)
class SceneObject:
    """One annotated object: its rest-pose primitive (world units) and material."""

    name: str
    primitive: Primitive
    texture: Texture
    specular: float
    shininess: float
    color_name: str
    motion: KeyframeMotion | None = None
    twin_of: str | None = None

    def primitive_at(self, t: float) -> Primitive:
        if self.motion is None:
            return self.primitive
        return self.primitive.translated(self.motion.offset(t))


@dataclass
class SceneSpec:
    """A complete synthetic scene: geometry, materials, lights, cameras."""

    kind: str
    layout: str
    seed: int
    width: int
    height: int
    c2w: np.ndarray  # (N, 4, 4) world units, OpenCV camera axes
    K: np.ndarray  # (3, 3)
    objects: list[SceneObject]
    ground: GroundSquare
    table: TableTexture
    lighting: Lighting = field(default_factory=Lighting)
    actor: Actor | None = None
    supersample: int = 2
    shadows: bool = True
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return len(self.c2w)

    @property
    def dynamic(self) -> bool:
        return self.kind == "dynamic"

    @property
    def object_names(self) -> list[str]:
        """Annotated objects, in mask order; the actor (if any) is last."""
        return [o.name for o in self.objects] + ([ACTOR_NAME] if self.actor is not None else [])

    def primitives_at(
        self, t: float, c2w: np.ndarray | None = None, exclude: Iterable[str] = ()
    ) -> list[tuple[int, Primitive, Any, float, float]]:
        """``(mask index, primitive, texture, specular, shininess)`` of what exists at time ``t``.

        The actor is attached to ``c2w`` and only present when ``c2w`` is given.
        """
        skip = set(exclude)
        out: list[tuple[int, Primitive, Any, float, float]] = []
        for k, obj in enumerate(self.objects):
            if obj.name not in skip:
                out.append((k, obj.primitive_at(t), obj.texture, obj.specular, obj.shininess))
        if self.actor is not None and c2w is not None and ACTOR_NAME not in skip:
            cap = self.actor.world_capsule(t, c2w)
            if cap is not None:
                out.append((len(self.objects), cap, ACTOR_TEXTURE, 0.25, 12.0))
        return out

    def geometry_json(self) -> list[dict[str, Any]]:
        """The analytic geometry recorded in ``SceneData.attrs["geometry"]`` (world units)."""
        out: list[dict[str, Any]] = []
        frames = np.arange(self.n_frames, dtype=float)
        for obj in self.objects:
            d: dict[str, Any] = {"name": obj.name, "role": "object", **obj.primitive.to_json()}
            d.update(
                {
                    "color_name": obj.color_name,
                    "texture": obj.texture.to_json(),
                    "specular": float(obj.specular),
                    "shininess": float(obj.shininess),
                    "twin_of": obj.twin_of,
                    "moving": obj.motion is not None,
                }
            )
            if obj.motion is not None:
                d["motion"] = obj.motion.to_json()
                d["offsets_per_frame"] = [[float(x) for x in obj.motion.offset(t)] for t in frames]
            out.append(d)
        if self.actor is not None:
            per_frame: list[dict[str, Any] | None] = []
            for i, t in enumerate(frames):
                seg = self.actor.camera_segment(t)
                cap = self.actor.world_capsule(t, self.c2w[i])
                if seg is None or cap is None:
                    per_frame.append(None)
                    continue
                per_frame.append(
                    {
                        "p0_camera": [float(x) for x in seg[0]],
                        "p1_camera": [float(x) for x in seg[1]],
                        "p0": [float(x) for x in cap.p0],
                        "p1": [float(x) for x in cap.p1],
                    }
                )
            out.append(
                {
                    "name": ACTOR_NAME,
                    "role": "actor",
                    "type": "capsule",
                    "frame": "camera",
                    "radius": float(self.actor.radius),
                    "moving": True,
                    "actor": self.actor.to_json(),
                    "per_frame": per_frame,
                }
            )
        return out


ACTOR_TEXTURE = Texture("noise", (0.86, 0.64, 0.52), (0.72, 0.50, 0.40), 0.05, seed=4242, grain=0.08)


def _footprint(prim: Primitive) -> float:
    if isinstance(prim, Sphere):
        return prim.radius
    if isinstance(prim, Box):
        return float(np.hypot(*prim.half_extents[:2]))
    if isinstance(prim, Cylinder):
        return prim.radius
    raise TypeError(prim)


def _make_object(shape: str, rng: np.random.Generator, yaw: float | None) -> Primitive:
    """A primitive of ``shape`` resting on the table at the origin (moved later)."""
    if shape == "sphere":
        r = rng.uniform(0.22, 0.38)
        return Sphere(np.array([0.0, 0.0, r]), r)
    if shape == "box":
        he = np.array([rng.uniform(0.16, 0.32), rng.uniform(0.16, 0.32), rng.uniform(0.14, 0.36)])
        rot = yaw_rotation(rng.uniform(0, np.pi / 2) if yaw is None else yaw)
        return Box(np.array([0.0, 0.0, he[2]]), he, rot)
    if shape == "cylinder":
        return Cylinder(np.zeros(3), rng.uniform(0.15, 0.26), rng.uniform(0.45, 0.9))
    raise ValueError(shape)


def _texture(rng: np.random.Generator, color: np.ndarray, kind: str | None = None, seed: int = 0) -> Texture:
    kind = kind or TEXTURE_KINDS[int(rng.integers(len(TEXTURE_KINDS)))]
    towards = np.ones(3) if color.mean() < 0.6 else np.full(3, 0.1)
    second = color + rng.uniform(0.45, 0.65) * (towards - color)
    scale = {"checker": (0.08, 0.14), "stripes": (0.08, 0.15), "dots": (0.08, 0.12), "noise": (0.12, 0.2)}[kind]
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return Texture(
        kind,
        tuple(float(c) for c in color),
        tuple(float(c) for c in second),
        float(rng.uniform(*scale)),
        seed=seed,
        axis=tuple(float(a) for a in axis),
    )


def _free(xy: np.ndarray, radius: float, placed: list[tuple[np.ndarray, float]], gap: float) -> bool:
    return all(np.linalg.norm(xy - p) >= radius + r + gap for p, r in placed)


def _sample_position(
    rng: np.random.Generator,
    radius: float,
    placed: list[tuple[np.ndarray, float]],
    centre: np.ndarray,
    disc: float,
    gap: float = 0.12,
) -> np.ndarray:
    """A free spot in the disc; the disc grows a little after every 200 failures, so crowded
    layouts spread out instead of failing."""
    for attempt in range(2000):
        a, r = rng.uniform(0, 2 * np.pi), disc * (1.05 ** (attempt // 200)) * np.sqrt(rng.uniform())
        xy = centre + r * np.array([np.cos(a), np.sin(a)])
        if _free(xy, radius, placed, gap):
            return xy
    raise RuntimeError("could not place objects without overlap; use fewer objects")


def _place_objects(
    rng: np.random.Generator, n_objects: int, centre: np.ndarray, disc: float, seed: int
) -> list[SceneObject]:
    """Objects with distinct colours; the last one is a distractor twin of the first."""
    n_objects = max(2, int(n_objects))
    cycle = ["sphere", "box", "cylinder"]
    shift = int(rng.integers(3))  # balanced shapes, every kind present from 3 objects on
    shapes = [cycle[(i + shift) % 3] for i in range(n_objects - 1)]
    shapes = [shapes[i] for i in rng.permutation(len(shapes))]
    colours = [list(PALETTE)[i] for i in rng.permutation(len(PALETTE))]
    objects: list[SceneObject] = []
    placed: list[tuple[np.ndarray, float]] = []
    first_box = True
    names: set[str] = set()
    for i, shape in enumerate(shapes + [None]):
        if shape is None:  # the twin of object 0: same shape and texture kind, close colour and size
            ref = objects[0]
            shape = ref.primitive.type
            cname = ref.color_name
            colour = np.clip(np.asarray(ref.texture.color_a) + rng.uniform(-0.05, 0.05, 3), 0, 1)
            prim = _scaled_like(ref.primitive, rng.uniform(0.9, 1.1))
            tex = _texture(rng, colour, ref.texture.kind, seed=seed * 1000 + i)
            twin_of = ref.name
        else:
            cname = colours[i % len(colours)]
            colour = np.asarray(PALETTE[cname])
            prim = _make_object(shape, rng, 0.0 if (shape == "box" and first_box) else None)
            first_box = first_box and shape != "box"
            tex = _texture(rng, colour, seed=seed * 1000 + i)
            twin_of = None
        xy = _sample_position(rng, _footprint(prim), placed, centre, disc)
        placed.append((xy, _footprint(prim)))
        prim = prim.translated(np.array([xy[0], xy[1], 0.0]))
        name = f"{cname}_{shape}"
        k = 2
        while name in names:
            name, k = f"{cname}_{shape}_{k}", k + 1
        names.add(name)
        objects.append(
            SceneObject(
                name, prim, tex, float(rng.uniform(0.25, 0.6)), float(rng.uniform(20, 80)), cname, twin_of=twin_of
            )
        )
    return objects


def _scaled_like(prim: Primitive, s: float) -> Primitive:
    """A copy of a resting primitive, scaled by ``s`` about its base, at the origin."""
    if isinstance(prim, Sphere):
        return Sphere(np.array([0.0, 0.0, prim.radius * s]), prim.radius * s)
    if isinstance(prim, Box):
        he = prim.half_extents * s
        return Box(np.array([0.0, 0.0, he[2]]), he, prim.rotation)
    if isinstance(prim, Cylinder):
        return Cylinder(np.zeros(3), prim.radius * s, prim.height * s)
    raise TypeError(prim)


def _path_free(a: np.ndarray, b: np.ndarray, radius: float, others: list[tuple[np.ndarray, float]]) -> bool:
    return all(_free(a + s * (b - a), radius, others, 0.06) for s in np.linspace(0, 1, 25))


def _add_motion(
    rng: np.random.Generator, objects: list[SceneObject], n_frames: int, n_moving: int, centre: np.ndarray, disc: float
) -> list[SceneObject]:
    """Give ``n_moving`` objects a pick-and-place, then a slide, on collision-free paths."""
    plans = [
        ("pick_and_place", (0.22, 0.27, 0.40, 0.45)),
        ("slide", (0.58, 0.75)),
    ][: max(0, min(2, int(n_moving)))]
    candidates = [i for i, o in enumerate(objects) if o.twin_of is None]
    candidates = [candidates[i] for i in rng.permutation(len(candidates))]
    footprints = {i: (_xy(o.primitive), _footprint(o.primitive)) for i, o in enumerate(objects)}
    out = list(objects)
    for kind, fracs in plans:
        found = None
        for idx in candidates:  # first object with a free destination and path wins
            start, rad = footprints[idx]
            others = [v for j, v in footprints.items() if j != idx]
            for _ in range(200):
                a, r = rng.uniform(0, 2 * np.pi), (disc + 0.15) * np.sqrt(rng.uniform())
                d = centre + r * np.array([np.cos(a), np.sin(a)])
                far_enough = 0.4 <= np.linalg.norm(d - start) <= 1.3
                if far_enough and _free(d, rad, others, 0.12) and _path_free(start, d, rad, others):
                    found = (idx, start, rad, d)
                    break
            if found:
                break
        if found is None:
            continue
        idx, start, rad, dest = found
        candidates.remove(idx)
        dx, dy = dest - start
        times = tuple(float(f * n_frames) for f in fracs)
        if kind == "pick_and_place":
            lift = 0.3
            offsets = ((0.0, 0.0, 0.0), (0.0, 0.0, lift), (dx, dy, lift), (dx, dy, 0.0))
        else:
            offsets = ((0.0, 0.0, 0.0), (dx, dy, 0.0))
        o = out[idx]
        out[idx] = SceneObject(
            o.name, o.primitive, o.texture, o.specular, o.shininess, o.color_name,
            motion=KeyframeMotion(times, tuple(tuple(float(x) for x in v) for v in offsets), kind), twin_of=o.twin_of,
        )
        footprints[idx] = (dest, rad)  # later moves avoid the new position too
        footprints[-1 - idx] = (start, rad)  # ... and the old one
    return out


def _xy(prim: Primitive) -> np.ndarray:
    c, _ = prim.bounding_sphere()
    return np.asarray(c[:2], float)


def build_spec(
    kind: str = "static",
    n_frames: int | None = None,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
    layout: str | None = None,
    *,
    n_objects: int = 6,
    fov_deg: float = 60.0,
    supersample: int = 2,
    shadows: bool = True,
    n_moving: int = 2,
    actor: bool = True,
    table_half: float = 2.0,
) -> SceneSpec:
    """Describe a synthetic scene; see :func:`n3f.synthetic.make_scene` for the parameters."""
    if kind not in KINDS:
        raise ValueError(f"unknown synthetic kind {kind!r}; use one of {sorted(KINDS)}")
    layout = layout or KINDS[kind][0]
    if layout not in KINDS[kind]:
        raise ValueError(f"layout {layout!r} is not available for kind {kind!r}; use one of {KINDS[kind]}")
    n_frames = int(n_frames or (60 if kind == "static" else 80))
    if n_frames < 1 or width < 8 or height < 8:
        raise ValueError("need at least one frame and an image of at least 8x8 pixels")
    params = {
        "kind": kind, "layout": layout, "n_frames": n_frames, "width": int(width), "height": int(height),
        "seed": int(seed), "n_objects": int(n_objects), "fov_deg": float(fov_deg), "supersample": int(supersample),
        "shadows": bool(shadows), "n_moving": int(n_moving), "actor": bool(actor), "table_half": float(table_half),
    }
    rng = np.random.default_rng(seed)
    dynamic = kind == "dynamic"
    centre = np.array([0.0, 0.2]) if dynamic else np.zeros(2)
    disc = 1.1 if dynamic else 1.25
    objects = _place_objects(rng, n_objects, centre, disc, seed)
    phase = float(rng.uniform(0, 2 * np.pi))
    target = np.array([0.0, 0.0, 0.25])
    if layout == "object":
        c2w = orbit_path(n_frames, 3.5, target, phase)
    elif layout == "forward":
        c2w = forward_path(n_frames, 3.2, target, phase)
    else:
        c2w = egocentric_path(n_frames, rng, table_half)
        objects = _add_motion(rng, objects, n_frames, n_moving, centre, disc)
    the_actor = None
    if dynamic and actor:
        the_actor = Actor(
            p0=(0.13, 0.45, 0.32),
            p1=(0.04, 0.09, 0.56),
            radius=0.05,
            intervals=((0.15 * n_frames, 0.5 * n_frames), (0.55 * n_frames, 0.8 * n_frames)),
            enter=max(2.0, 0.05 * n_frames),
            phase=float(rng.uniform(0, 2 * np.pi)),
        )
    return SceneSpec(
        kind=kind, layout=layout, seed=int(seed), width=int(width), height=int(height), c2w=c2w,
        K=intrinsics(width, height, fov_deg), objects=objects, ground=GroundSquare(table_half),
        table=TableTexture(seed=int(seed) * 7 + 3), actor=the_actor, supersample=int(supersample),
        shadows=bool(shadows), params=params,
    )


def spec_from_attrs(attrs: dict[str, Any]) -> SceneSpec:
    """Rebuild the spec of a stored synthetic scene from ``attrs["synthetic"]``."""
    syn = attrs.get("synthetic", attrs)
    if "params" not in syn:
        raise ValueError("attrs carry no synthetic generation parameters; not a synthetic scene")
    return build_spec(**syn["params"])
