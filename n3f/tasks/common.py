"""What the three synthetic-scene tasks (3D segmentation, removal, amodal) share besides selection.

Loading (scene, teacher features, trained renderer, with a render cache), the
choice of query and evaluation frames, analytic ground truth (geometry,
re-renders without an object, visible surface points) and atomic writers.
How the field's samples are *selected* for an object lives in
:mod:`n3f.tasks.selection`; the scores themselves in :mod:`n3f.metrics`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from n3f.atomic import atomic_write, atomic_write_text
from n3f.errors import N3FInputError
from n3f.scene.store import SceneStore
from n3f.tasks.retrieval import retrieval_objects

log = logging.getLogger(__name__)


def require_synthetic(store: SceneStore) -> None:
    """Refuse scenes without analytic ground truth or masks: every task score needs both."""
    if "geometry" not in store.attrs or "synthetic" not in store.attrs:
        raise N3FInputError(
            f"{store.path}: not a synthetic scene (no attrs 'geometry'/'synthetic'); these task scores need "
            "analytic ground truth."
        )
    if not store.has_masks:
        raise N3FInputError(f"{store.path}: no object masks; the tasks need annotated frames.")


def task_objects(store: SceneStore, objects: Iterable[str] | None = None) -> list[str]:
    """Objects scored: every annotated object except camera-anchored actors (as retrieval), optionally restricted."""
    names = retrieval_objects(store)
    if objects:
        unknown = [o for o in objects if o not in store.object_names]
        if unknown:
            raise N3FInputError(f"{store.path}: unknown object(s) {unknown}; the scene has {store.object_names}.")
        names = [o for o in names if o in set(objects)]
    return names


def query_frame(store: SceneStore, obj: str) -> int | None:
    """First ``query`` frame (else any annotated frame) in which ``obj`` is visible."""
    k = store.object_names.index(obj)
    annotated = [int(f) for f in store.annotated_frames]
    candidates = [int(f) for f in store.split("query") if int(f) in set(annotated)] + annotated
    for f in candidates:
        if store.masks(f, "modal")[k].any():
            return f
    return None


def eval_frames(store: SceneStore, max_frames: int) -> list[int]:
    """Annotated ``gallery`` frames (else all annotated frames), evenly thinned to ``max_frames``."""
    annotated = set(int(f) for f in store.annotated_frames)
    frames = [int(f) for f in store.split("gallery") if int(f) in annotated] or sorted(annotated)
    if len(frames) > max_frames:
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, max_frames).round().astype(int)]
    return frames


@dataclass(frozen=True)
class View:
    """A camera to render: a stored frame's own, or a novel one (time/appearance codes of ``frame``)."""

    name: str  # 'frame_0012', 'novel_03': names its figures and caches its render
    c2w: np.ndarray  # (4, 4) normalised world
    intrinsics: np.ndarray  # (3, 3) at the stored frame size
    bounds: np.ndarray  # (2,) near, far
    frame: int  # the stored frame it is, or whose codes a novel view takes
    stored: bool = True  # False: no photo and no teacher features exist for it


@dataclass
class Inputs:
    """A scene, its teacher features and a trained renderer; unedited renders are cached per view.

    ``downscale`` renders every view at 1/downscale of the stored frame size
    (pixel-block centres, :func:`n3f.render.rays.pixel_grid`): the products of
    a real capture's queries are rendered so on a CPU.
    """

    store: SceneStore
    features: Any  # FeatureStore or None
    renderer: Any
    chunk: int | None = None  # rays per render pass (None: the device default)
    downscale: int = 1

    _rendered: dict | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of a render."""
        h, w = self.store.image_size
        return h // self.downscale, w // self.downscale

    def view(self, frame: "int | View") -> View:
        """The stored frame's camera (a View passes through)."""
        if isinstance(frame, View):
            return frame
        st, f = self.store, int(frame)
        c2w = self.renderer.stored_pose(st.c2w[f], f)  # with its camera refinement, if the model learned one
        return View(f"frame_{f:04d}", np.asarray(c2w), np.asarray(st.intrinsics[f]), np.asarray(st.bounds[f]), f)

    def rays(self, frame: "int | View"):
        """Every ray of a view, row-major at the render size."""
        from n3f.render.rays import camera_rays

        v = self.view(frame)
        h, w = self.store.image_size
        return camera_rays(v.c2w, v.intrinsics, h, w, v.bounds, v.frame, self.downscale)

    def render(self, frame: "int | View") -> dict[str, np.ndarray]:
        """Unedited render of a view (rgb, features, depth, opacity), cached."""
        v = self.view(frame)
        if self._rendered is None:
            self._rendered = {}
        if v.name not in self._rendered:
            h, w = self.store.image_size
            self._rendered[v.name] = self.renderer.render_camera(
                v.c2w, v.intrinsics, h, w, v.bounds, frame=v.frame, chunk=self.chunk, downscale=self.downscale,
                outputs=("rgb", "features"))
            log.info("rendered %s", v.name)
        return self._rendered[v.name]

    def teacher(self, frame: int) -> np.ndarray:
        """The teacher's features of a stored frame, upsampled to the render size."""
        if self.features is None:
            raise N3FInputError("teacher features are needed (pass --features).")
        return np.asarray(self.features.upsampled(frame, self.size), np.float32)


def load_inputs(scene: str | Path, features: str | Path | None, model: str | Path, device: str | None = None,
                chunk: int | None = None, ground_truth: bool = True, downscale: int = 1) -> Inputs:
    """The scene, its teacher features (optional) and the renderer on ``device`` (None: auto).

    ``ground_truth``: the scene must be synthetic and annotated (the scored tasks); False for a
    user's queries on any scene.
    """
    from n3f.device import resolve_device
    from n3f.features.store import FeatureStore
    from n3f.render.model_io import load_renderer

    store = SceneStore(scene)
    if ground_truth:
        require_synthetic(store)
    feats = None
    if features is not None:
        feats = FeatureStore(features)
        if feats.n_frames != store.n_frames:
            raise N3FInputError(
                f"{features} has {feats.n_frames} frames but {scene} has {store.n_frames}; rerun teacher_features."
            )
    return Inputs(store, feats, load_renderer(model, resolve_device(device or None)), chunk, downscale)


def object_primitive(store: SceneStore, obj: str, frame: int):
    """The object's analytic primitive (world units) at ``frame`` (moving objects translated)."""
    from n3f.synthetic import primitive_from_json

    geo = {g["name"]: g for g in store.attrs["geometry"]}[obj]
    prim = primitive_from_json(geo)
    offsets = geo.get("offsets_per_frame")
    if offsets is not None:
        prim = prim.translated(np.asarray(offsets[frame], float))
    return prim


def to_world(store: SceneStore, points: np.ndarray) -> np.ndarray:
    norm = store.attrs["normalisation"]
    return np.asarray(points, np.float64) / float(norm["scale"]) + np.asarray(norm["centre"])


_SPEC_CACHE: dict[str, Any] = {}


def scene_spec(store: SceneStore):
    from n3f.synthetic import spec_from_attrs

    key = str(store.path.resolve())
    if key not in _SPEC_CACHE:
        _SPEC_CACHE[key] = spec_from_attrs(store.attrs)
    return _SPEC_CACHE[key]


def gt_view(store: SceneStore, frame: int, exclude: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Ground-truth render of a stored frame from the analytic scene (optionally without objects)."""
    from n3f.synthetic import render_view

    spec = scene_spec(store)
    h, w = store.image_size
    t = float(frame) if spec.dynamic else None
    return render_view(spec, spec.c2w[frame], spec.K, h, w, frame_time=t, exclude=tuple(exclude))


def gt_surface_points(store: SceneStore, frame: int, mask: np.ndarray, view: dict | None = None) -> np.ndarray:
    """Normalised 3D points of the analytic surface seen by the pixels of ``mask`` in ``frame``."""
    from n3f.synthetic.render import camera_rays as synth_rays

    spec = scene_spec(store)
    h, w = store.image_size
    view = view or gt_view(store, frame)
    o, d, zscale = synth_rays(spec.c2w[frame], spec.K, h, w)
    depth = view["depth"].reshape(-1)
    sel = mask.reshape(-1) & np.isfinite(depth)
    zs = np.broadcast_to(np.asarray(zscale, np.float64).reshape(-1), depth.shape)
    world = o + d[sel] * (depth[sel] / zs[sel])[:, None]
    return store.to_normalised(world)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON atomically; non-finite floats (NaN, inf) become null."""
    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, (float, np.floating)):
            return float(v) if np.isfinite(v) else None
        return v

    atomic_write_text(path, json.dumps(clean(data), indent=2, default=_json_default))


def write_png(path: str | Path, image: np.ndarray) -> None:
    """PNG of a uint8 image, or of a float one in [0, 1] (clipped, rounded to uint8), written atomically."""
    from PIL import Image

    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.round(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)
    atomic_write(path, lambda fh: Image.fromarray(img).save(fh, format="PNG"))


def write_ply(path: str | Path, points: np.ndarray, colors: np.ndarray | None = None) -> None:
    """Binary little-endian PLY of points (float32 x, y, z) with optional uint8 colours (via plyfile), atomically."""
    from plyfile import PlyData, PlyElement

    pts = np.asarray(points, np.float32).reshape(-1, 3)
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    data = np.empty(len(pts), dtype=fields)
    data["x"], data["y"], data["z"] = pts.T
    if colors is not None:
        c = np.asarray(colors)
        if c.dtype != np.uint8:
            c = np.round(np.clip(c, 0.0, 1.0) * 255).astype(np.uint8)
        data["red"], data["green"], data["blue"] = c.reshape(-1, 3).T
    ply = PlyData([PlyElement.describe(data, "vertex")])
    atomic_write(path, ply.write)


def means(rows: list[dict], keys: Iterable[str]) -> dict[str, float]:
    """``mean_<key>`` over the rows that have a finite ``key`` (NaN when none do)."""
    out = {}
    for key in keys:
        vals = [r[key] for r in rows if key in r and r[key] is not None and np.isfinite(r[key])]
        out[f"mean_{key}"] = float(np.mean(vals)) if vals else float("nan")
    return out
