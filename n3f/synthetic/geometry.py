"""Analytic primitives and vectorised ray intersection.

Synthetic scenes are built from a handful of closed-form shapes so that the
ground truth (which object a pixel sees, the full extent of an occluded
object, the 3D volume an object fills) is exact rather than estimated from a
mesh. Every primitive works on whole ray batches (``(R, 3)`` origins and unit
directions) so a frame is a few numpy calls, not a Python loop over pixels.

The JSON form of each primitive (``to_json``/``primitive_from_json``) is what
``SceneData.attrs["geometry"]`` stores, in world units, so later stages can
re-intersect rays or test point membership without importing this renderer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

EPS = 1e-6  # minimum ray parameter: avoids self-hits of shadow rays


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def rowmul(a: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``a @ m`` for many rows ((R, 3) x (3, K) or (3,)) without BLAS.

    einsum stays single-threaded: BLAS threads on such thin products cost
    more than they save, and fight other jobs for the cores.
    """
    return np.einsum("ij,jk->ik", a, m) if m.ndim == 2 else np.einsum("ij,j->i", a, m)


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _nearest_positive(t0: np.ndarray, t1: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Smallest root > EPS of a convex shape, ``inf`` where there is none."""
    t = np.where(t0 > EPS, t0, t1)
    return np.where(valid & (t > EPS), t, np.inf)


class Primitive:
    """A closed surface that rays can hit."""

    type: str = "primitive"

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """Ray parameter of the first hit (> EPS) for unit ``dirs``; ``inf`` on a miss."""
        raise NotImplementedError

    def normal(self, points: np.ndarray) -> np.ndarray:
        """Outward unit normal at surface points."""
        raise NotImplementedError

    def local(self, points: np.ndarray) -> np.ndarray:
        """Object-space coordinates, so solid textures move with the object."""
        raise NotImplementedError

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Inside test, used to score 3D segmentation against exact volumes."""
        raise NotImplementedError

    def translated(self, offset: np.ndarray) -> "Primitive":
        raise NotImplementedError

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Sphere(Primitive):
    center: np.ndarray
    radius: float
    type: str = field(default="sphere", init=False)

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        oc = origins - self.center
        b = _dot(dirs, oc)
        c = _dot(oc, oc) - self.radius**2
        disc = b * b - c
        s = np.sqrt(np.maximum(disc, 0.0))
        return _nearest_positive(-b - s, -b + s, disc >= 0)

    def normal(self, points: np.ndarray) -> np.ndarray:
        return _normalise(points - self.center)

    def local(self, points: np.ndarray) -> np.ndarray:
        return points - self.center

    def contains(self, points: np.ndarray) -> np.ndarray:
        return np.linalg.norm(points - self.center, axis=-1) <= self.radius

    def translated(self, offset: np.ndarray) -> "Sphere":
        return Sphere(self.center + offset, self.radius)

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        return self.center, self.radius

    def to_json(self) -> dict[str, Any]:
        return {"type": "sphere", "center": _list(self.center), "radius": float(self.radius)}


@dataclass(frozen=True)
class Box(Primitive):
    """Oriented box: ``rotation`` maps box axes to world (world = R @ local + center)."""

    center: np.ndarray
    half_extents: np.ndarray
    rotation: np.ndarray
    type: str = field(default="box", init=False)

    def _to_local(self, points: np.ndarray) -> np.ndarray:
        return rowmul(points - self.center, self.rotation)  # R^T (p - c), row-wise

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        o = self._to_local(origins)
        d = rowmul(dirs, self.rotation)
        d = np.where(np.abs(d) < 1e-12, 1e-12, d)  # slabs parallel to the ray: huge, signed t
        inv = 1.0 / d
        t1 = (-self.half_extents - o) * inv
        t2 = (self.half_extents - o) * inv
        tmin = np.minimum(t1, t2).max(axis=1)
        tmax = np.maximum(t1, t2).min(axis=1)
        return _nearest_positive(tmin, tmax, tmax >= np.maximum(tmin, EPS))

    def normal(self, points: np.ndarray) -> np.ndarray:
        p = self._to_local(points) / self.half_extents
        axis = np.argmax(np.abs(p), axis=1)
        n = np.zeros_like(p)
        rows = np.arange(len(p))
        n[rows, axis] = np.sign(p[rows, axis])
        return rowmul(n, self.rotation.T)

    def local(self, points: np.ndarray) -> np.ndarray:
        return self._to_local(points)

    def contains(self, points: np.ndarray) -> np.ndarray:
        return (np.abs(self._to_local(points)) <= self.half_extents).all(axis=-1)

    def translated(self, offset: np.ndarray) -> "Box":
        return Box(self.center + offset, self.half_extents, self.rotation)

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        return self.center, float(np.linalg.norm(self.half_extents))

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "box",
            "center": _list(self.center),
            "half_extents": _list(self.half_extents),
            "rotation": [_list(r) for r in self.rotation],
        }


@dataclass(frozen=True)
class Cylinder(Primitive):
    """Vertical (world z) capped cylinder standing on ``base_center``."""

    base_center: np.ndarray
    radius: float
    height: float
    type: str = field(default="cylinder", init=False)

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        ox, oy = origins[:, 0] - self.base_center[0], origins[:, 1] - self.base_center[1]
        dx, dy, dz = dirs[:, 0], dirs[:, 1], dirs[:, 2]
        z0, z1 = self.base_center[2], self.base_center[2] + self.height
        a = dx * dx + dy * dy
        b = ox * dx + oy * dy
        c = ox * ox + oy * oy - self.radius**2
        disc = b * b - a * c
        s = np.sqrt(np.maximum(disc, 0.0))
        safe_a = np.where(a > 1e-12, a, 1.0)
        best = np.full(len(origins), np.inf)
        for root in ((-b - s) / safe_a, (-b + s) / safe_a):
            z = origins[:, 2] + root * dz
            ok = (disc >= 0) & (a > 1e-12) & (root > EPS) & (z >= z0) & (z <= z1)
            best = np.where(ok & (root < best), root, best)
        safe_dz = np.where(np.abs(dz) > 1e-12, dz, 1e-12)
        for zc in (z0, z1):
            t = (zc - origins[:, 2]) / safe_dz
            px, py = ox + t * dx, oy + t * dy
            ok = (t > EPS) & (px * px + py * py <= self.radius**2)
            best = np.where(ok & (t < best), t, best)
        return best

    def normal(self, points: np.ndarray) -> np.ndarray:
        rel = points - self.base_center
        radial = np.linalg.norm(rel[:, :2], axis=1)
        # Whichever surface the point is closest to (side, top or bottom cap).
        d_side = np.abs(radial - self.radius)
        d_top = np.abs(rel[:, 2] - self.height)
        d_bot = np.abs(rel[:, 2])
        side = np.concatenate([rel[:, :2], np.zeros((len(rel), 1))], axis=1)
        n = np.where((d_side <= np.minimum(d_top, d_bot))[:, None], _normalise(side), 0.0)
        n[:, 2] = np.where(d_side <= np.minimum(d_top, d_bot), 0.0, np.where(d_top < d_bot, 1.0, -1.0))
        return n

    def local(self, points: np.ndarray) -> np.ndarray:
        return points - self.base_center

    def contains(self, points: np.ndarray) -> np.ndarray:
        rel = points - self.base_center
        return (np.linalg.norm(rel[..., :2], axis=-1) <= self.radius) & (rel[..., 2] >= 0) & (
            rel[..., 2] <= self.height
        )

    def translated(self, offset: np.ndarray) -> "Cylinder":
        return Cylinder(self.base_center + offset, self.radius, self.height)

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        centre = self.base_center + np.array([0.0, 0.0, self.height / 2])
        return centre, float(np.hypot(self.radius, self.height / 2))

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "cylinder",
            "base_center": _list(self.base_center),
            "radius": float(self.radius),
            "height": float(self.height),
        }


@dataclass(frozen=True)
class Capsule(Primitive):
    """Segment ``p0``-``p1`` swept by a ball of ``radius`` (the actor's arm)."""

    p0: np.ndarray
    p1: np.ndarray
    radius: float
    type: str = field(default="capsule", init=False)

    def _closest_on_segment(self, points: np.ndarray) -> np.ndarray:
        ba = self.p1 - self.p0
        h = np.clip(rowmul(points - self.p0, ba) / (ba @ ba), 0.0, 1.0)
        return self.p0 + h[:, None] * ba

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        # Closed form after I. Quilez ("capsule - ray intersection"): the side
        # (infinite cylinder restricted to the segment), else the end spheres.
        ba = self.p1 - self.p0
        oa = origins - self.p0
        baba = ba @ ba
        bard = rowmul(dirs, ba)
        baoa = rowmul(oa, ba)
        rdoa = _dot(dirs, oa)
        oaoa = _dot(oa, oa)
        a = baba - bard * bard
        b = baba * rdoa - baoa * bard
        c = baba * oaoa - baoa * baoa - self.radius**2 * baba
        h = b * b - a * c
        safe_a = np.where(np.abs(a) > 1e-12, a, 1.0)
        t_side = (-b - np.sqrt(np.maximum(h, 0.0))) / safe_a
        y = baoa + t_side * bard
        side_ok = (h >= 0) & (np.abs(a) > 1e-12) & (y > 0) & (y < baba) & (t_side > EPS)
        best = np.where(side_ok, t_side, np.inf)
        for end in (self.p0, self.p1):
            cap = Sphere(end, self.radius).intersect(origins, dirs)
            best = np.where(~side_ok & (cap < best), cap, best)
        return best

    def normal(self, points: np.ndarray) -> np.ndarray:
        return _normalise(points - self._closest_on_segment(points))

    def local(self, points: np.ndarray) -> np.ndarray:
        return points - self.p0

    def contains(self, points: np.ndarray) -> np.ndarray:
        flat = points.reshape(-1, 3)
        inside = np.linalg.norm(flat - self._closest_on_segment(flat), axis=1) <= self.radius
        return inside.reshape(points.shape[:-1])

    def translated(self, offset: np.ndarray) -> "Capsule":
        return Capsule(self.p0 + offset, self.p1 + offset, self.radius)

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        return (self.p0 + self.p1) / 2, float(np.linalg.norm(self.p1 - self.p0) / 2 + self.radius)

    def to_json(self) -> dict[str, Any]:
        return {"type": "capsule", "p0": _list(self.p0), "p1": _list(self.p1), "radius": float(self.radius)}


@dataclass(frozen=True)
class GroundSquare(Primitive):
    """The table top: the square ``|x|, |y| <= half_size`` of the plane z = 0.

    Finite, so per-frame far bounds are finite and rays past the edge see the
    sky, as in a tabletop capture.
    """

    half_size: float
    type: str = field(default="ground", init=False)

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        dz = dirs[:, 2]
        t = -origins[:, 2] / np.where(dz < -1e-12, dz, -1e-12)
        p = origins[:, :2] + t[:, None] * dirs[:, :2]
        ok = (dz < -1e-12) & (t > EPS) & (np.abs(p) <= self.half_size).all(axis=1)
        return np.where(ok, t, np.inf)

    def normal(self, points: np.ndarray) -> np.ndarray:
        n = np.zeros_like(points)
        n[:, 2] = 1.0
        return n

    def local(self, points: np.ndarray) -> np.ndarray:
        return points

    def contains(self, points: np.ndarray) -> np.ndarray:
        return np.zeros(points.shape[:-1], bool)

    def translated(self, offset: np.ndarray) -> "GroundSquare":
        return self

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        return np.zeros(3), float(np.sqrt(2) * self.half_size)

    def to_json(self) -> dict[str, Any]:
        return {"type": "ground", "z": 0.0, "half_size": float(self.half_size)}


def _list(v: np.ndarray) -> list[float]:
    return [float(x) for x in np.asarray(v).ravel()]


def primitive_from_json(d: dict[str, Any]) -> Primitive:
    """Rebuild a primitive from its ``to_json`` form (extra keys are ignored)."""
    kind = d["type"]
    if kind == "sphere":
        return Sphere(np.asarray(d["center"], float), float(d["radius"]))
    if kind == "box":
        return Box(
            np.asarray(d["center"], float), np.asarray(d["half_extents"], float), np.asarray(d["rotation"], float)
        )
    if kind == "cylinder":
        return Cylinder(np.asarray(d["base_center"], float), float(d["radius"]), float(d["height"]))
    if kind == "capsule":
        return Capsule(np.asarray(d["p0"], float), np.asarray(d["p1"], float), float(d["radius"]))
    if kind == "ground":
        return GroundSquare(float(d["half_size"]))
    raise ValueError(f"unknown primitive type {kind!r}")


def yaw_rotation(yaw: float) -> np.ndarray:
    """Rotation about world z by ``yaw`` radians."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def intersect_all(prims: Sequence[Primitive], origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Hit distances (P, R) of every primitive, ``inf`` on a miss.

    ``origins`` may be a single (3,) point shared by all rays (camera rays) or
    ``dirs`` a single (3,) direction (shadow rays towards the sun); the other
    is (R, 3). Each primitive's bounding sphere is first tested for all rays
    at once with one thin product, in the form that the shared vector makes
    cheapest; the exact (costlier) test then runs only on rays that pass, so
    objects covering a small part of an image cost little. The result equals
    ``[p.intersect(o, d) for p in prims]`` with ``o``, ``d`` broadcast to (R, 3).
    """
    origins, dirs = np.asarray(origins, float), np.asarray(dirs, float)
    n = max(len(origins) if origins.ndim == 2 else 1, len(dirs) if dirs.ndim == 2 else 1)
    out = np.full((len(prims), n), np.inf)
    if not len(prims):
        return out
    spheres = [p.bounding_sphere() for p in prims]
    centres = np.stack([c for c, _ in spheres])  # (P, 3)
    radii = np.array([r for _, r in spheres]) * 1.001 + 1e-9
    if origins.ndim == 1:
        # Ray d hits the sphere only if angle(d, c - o) <= asin(r / |c - o|).
        oc = centres - origins[None]
        dist2 = (oc * oc).sum(axis=1)
        cos_min = np.sqrt(np.maximum(dist2 - radii**2, 0.0)) - 1e-9
        proj = np.einsum("pk,rk->pr", oc, dirs)
        cand = np.where((dist2 <= radii**2)[:, None], True, proj >= cos_min[:, None])
    elif dirs.ndim == 1:
        # Distance from the centre to each ray's line, all lines parallel to d.
        along = np.einsum("rk,k->r", origins, dirs)  # o . d
        c_along = centres @ dirs
        q = origins - along[:, None] * dirs  # origins projected on the plane normal to d
        qc = centres - c_along[:, None] * dirs[None]
        d2 = (q * q).sum(axis=1)[None] + (qc * qc).sum(axis=1)[:, None] - 2.0 * np.einsum("pk,rk->pr", qc, q)
        ahead = (c_along[:, None] - along[None]) >= -radii[:, None]
        cand = (d2 <= (radii**2)[:, None] + 1e-12) & ahead
    else:
        oc = origins[None] - centres[:, None]  # (P, R, 3)
        b = np.einsum("prk,rk->pr", oc, dirs)
        disc = b * b - ((oc * oc).sum(axis=2) - (radii**2)[:, None])
        cand = (disc >= 0) & (-b + np.sqrt(np.maximum(disc, 0.0)) > EPS)
    for j, prim in enumerate(prims):
        rows = np.flatnonzero(cand[j])
        if len(rows):
            o = origins[rows] if origins.ndim == 2 else np.broadcast_to(origins, (len(rows), 3))
            d = dirs[rows] if dirs.ndim == 2 else np.broadcast_to(dirs, (len(rows), 3))
            out[j, rows] = prim.intersect(o, d)
    return out
