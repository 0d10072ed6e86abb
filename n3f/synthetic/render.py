"""Vectorised ray casting of a :class:`SceneSpec` from any camera.

Masks and depth come from one ray through each pixel centre (the convention
of the stored intrinsics), so they agree exactly with re-intersecting the
analytic geometry; colour is optionally averaged over ``s x s`` sub-pixel rays
(anti-aliasing), which keeps high-frequency textures from flickering between
views without blurring the ground truth.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from n3f.synthetic.geometry import EPS, intersect_all, rowmul
from n3f.synthetic.scene_spec import SceneSpec


def camera_rays(
    c2w: np.ndarray, K: np.ndarray, height: int, width: int, supersample: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera centre (3,), world unit directions (R, 3) and z-depth per unit distance.

    With ``supersample == 1`` one ray per pixel centre, row-major; with
    ``s > 1``, ``s * s`` rays per pixel on a regular sub-pixel grid, ordered
    sample-major (all pixels of sub-sample 0, then 1...).
    """
    s = max(1, int(supersample))
    sub = (np.arange(s) + 0.5) / s
    sv, su = np.meshgrid(sub, sub, indexing="ij")
    vv, uu = np.meshgrid(np.arange(height, dtype=float), np.arange(width, dtype=float), indexing="ij")
    u = (uu.ravel()[None] + su.ravel()[:, None]).ravel()
    v = (vv.ravel()[None] + sv.ravel()[:, None]).ravel()
    d_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1)
    norm = np.linalg.norm(d_cam, axis=1)
    dirs = rowmul(d_cam / norm[:, None], c2w[:3, :3].T)
    return c2w[:3, 3].copy(), dirs, 1.0 / norm


def _first_hits(t_obj: np.ndarray, t_ground: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per ray: group (-2 sky, -1 ground, j >= 0 primitive j) and hit distance."""
    n = t_obj.shape[1]
    if len(t_obj):
        winner = np.argmin(t_obj, axis=0)
        t_best = t_obj[winner, np.arange(n)]
    else:
        winner, t_best = np.zeros(n, np.int64), np.full(n, np.inf)
    group = np.where(t_ground < t_best, -1, winner)
    t_hit = np.minimum(t_best, t_ground)
    return np.where(np.isfinite(t_hit), group, -2), t_hit


def _shade(
    spec: SceneSpec, prims: list, o: np.ndarray, d: np.ndarray, t_obj: np.ndarray, t_ground: np.ndarray
) -> np.ndarray:
    """Linear RGB (R, 3) of rays from the shared origin ``o`` (3,) along ``d`` (R, 3).

    Rays are sorted by what they hit so each surface's texture and normal are
    evaluated on one contiguous slice (cheaper than boolean masks per object).
    """
    group, t_hit = _first_hits(t_obj, t_ground)
    rgb = spec.lighting.sky(d)
    order = np.argsort(group, kind="stable")
    first = np.searchsorted(group[order], -1)  # skip sky rays
    idx = order[first:]
    if len(idx) == 0:
        return rgb
    g = group[idx]
    dirs = d[idx]
    pts = o + t_hit[idx, None] * dirs
    normals = np.empty_like(pts)
    albedo = np.empty_like(pts)
    ks = np.empty(len(idx))
    shin = np.empty(len(idx))
    surfaces = [(-1, spec.ground, spec.table, 0.15, 12.0)] + [
        (j, prim, tex, k_s, n_s) for j, (_, prim, tex, k_s, n_s) in enumerate(prims)
    ]
    bounds = np.searchsorted(g, [sid for sid, *_ in surfaces] + [len(prims)])
    for (sid, prim, tex, k_s, n_s), lo, hi in zip(surfaces, bounds[:-1], bounds[1:]):
        if hi > lo:
            p = pts[lo:hi]
            normals[lo:hi] = prim.normal(p)
            albedo[lo:hi] = tex.evaluate(prim.local(p))
            ks[lo:hi], shin[lo:hi] = k_s, n_s

    lit = np.ones(len(idx))
    if spec.shadows and prims:
        sun = spec.lighting.sun
        facing = np.where((np.einsum("ij,ij->i", normals, dirs) > 0)[:, None], -normals, normals)
        need = np.flatnonzero(rowmul(facing, sun) > 0)  # back-facing points are dark anyway
        if len(need):
            so = pts[need] + facing[need] * 1e-4
            t_sh = intersect_all([p for _, p, *_ in prims], so, sun)
            lit[need[np.isfinite(t_sh).any(axis=0)]] = 0.0
    rgb[idx] = spec.lighting.shade(albedo, normals, dirs, lit, ks, shin)
    return rgb


def render_view(
    spec: SceneSpec,
    c2w: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    frame_time: float | None = None,
    exclude: Iterable[str] = (),
    supersample: int | None = None,
) -> dict[str, np.ndarray]:
    """Render one camera of ``spec``, optionally with objects removed.

    ``frame_time`` places moving objects (fractional frame index; None = rest
    pose at time 0) and attaches the actor to this camera when it is present
    at that time (never when ``frame_time`` is None). ``exclude`` removes
    objects (by name, ``"actor"`` included) from the scene entirely, shadows
    and all: the ground truth of object removal.

    Returns ``rgb`` uint8 (H, W, 3); ``depth`` float (H, W) z-depth along the
    optical axis, ``inf`` where a ray sees only sky; ``object_id`` int16 (H, W),
    the index into ``spec.object_names`` of the visible object or -1 (table,
    sky); ``amodal`` bool (K, H, W), the full projection of each present
    object ignoring occluders (all False for excluded/absent objects); and
    ``modal`` bool (K, H, W) = ``object_id == k``.
    """
    c2w = np.asarray(c2w, float)
    K = np.asarray(K, float)
    t = 0.0 if frame_time is None else float(frame_time)
    prims = spec.primitives_at(t, c2w if frame_time is not None else None, exclude)
    shapes = [p for _, p, *_ in prims]
    n_obj, n_px = len(spec.object_names), height * width
    o, d, zscale = camera_rays(c2w, K, height, width)
    t_obj = intersect_all(shapes, o, d)
    t_ground = spec.ground.intersect(np.broadcast_to(o, d.shape), d)

    ids = np.array([k for k, *_ in prims], np.int64)
    amodal = np.zeros((n_obj, n_px), bool)
    amodal[ids] = np.isfinite(t_obj)
    group, t_hit = _first_hits(t_obj, t_ground)
    object_id = np.where(group >= 0, ids[np.maximum(group, 0)] if len(ids) else -1, -1).astype(np.int16)
    depth = np.where(np.isfinite(t_hit), t_hit * zscale, np.inf)

    s = max(1, spec.supersample if supersample is None else int(supersample))
    if s == 1:
        rgb = _shade(spec, prims, o, d, t_obj, t_ground)
    else:
        so, sd, _ = camera_rays(c2w, K, height, width, s)
        t_sub = intersect_all(shapes, so, sd)
        rgb = _shade(spec, prims, so, sd, t_sub, spec.ground.intersect(np.broadcast_to(so, sd.shape), sd))
        rgb = rgb.reshape(s * s, n_px, 3).mean(axis=0)
    img = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8).reshape(height, width, 3)
    object_id = object_id.reshape(height, width)
    return {
        "rgb": img,
        "depth": depth.reshape(height, width),
        "object_id": object_id,
        "amodal": amodal.reshape(n_obj, height, width),
        "modal": object_id[None] == np.arange(n_obj)[:, None, None],
    }


def frame_bounds(spec: SceneSpec, c2w: np.ndarray, depth: np.ndarray, t: float) -> tuple[float, float]:
    """Near/far z-depths that enclose everything this camera can see.

    Near comes from the rendered depth (the closest surface, e.g. the actor);
    far from the corners of the table slab up to the highest object, so every
    frame's interval covers the whole visible table even past its edges.
    """
    finite = depth[np.isfinite(depth)]
    near = 0.9 * float(finite.min()) if finite.size else 0.05
    tops = [c[2] + r for c, r in (p.bounding_sphere() for _, p, *_ in spec.primitives_at(t))]
    top = max(tops, default=1.0)
    h = spec.ground.half_size
    corners = np.array([[x, y, z] for x in (-h, h) for y in (-h, h) for z in (0.0, top)])
    z_cam = (corners - c2w[:3, 3]) @ c2w[:3, 2]
    far = 1.05 * float(max(z_cam.max(), finite.max() if finite.size else 0.0))
    return max(near, EPS * 100), max(far, near * 1.5)
