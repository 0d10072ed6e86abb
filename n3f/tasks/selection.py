"""Selecting an object's 3D samples in the field: its descriptor, feature threshold, region and density modifier.

The three tasks (3D segmentation, object removal, amodal segmentation) select
samples by this module's rule only, so they cannot drift apart:

* Descriptor: the mean L2-normalised feature inside the object's modal mask in
  one *query frame*, from N3F's rendered features (``descriptor="n3f"``) or
  the teacher's upsampled 2D features.
* Threshold: calibrated per object on the query frame, on the kind of feature
  it is applied to: raw per-sample outputs of the feature head at the frame's
  rendered surface points (a rendered pixel feature is an average along the
  ray, so its threshold would not transfer). Points of the eroded mask are the
  object, points outside the dilated mask are not; the threshold maximises the
  IoU of that labelling, so it uses nothing but the mask a user gives.
* Locality (default; ``locality=None`` / ``--no-locality`` turns it off): a
  sample can only match within ``locality`` of the query frame's object
  surface points (a :class:`Region`), so look-alikes elsewhere are left alone,
  which the paper's features-only selection cannot do. The margin is a
  dilation, not a tight fit, so that it also covers the object's hidden side.
* Rule: feature within the threshold, density above ``density_threshold``
  (features in empty space are unsupervised) and, with locality, inside the
  region. With ``enclose`` (the default; needs locality), also every dense
  sample in a cell that matching cells surround (:mod:`n3f.tasks.volume`): an
  object's inside keeps untrained features, and removal must take it too.
  :meth:`ObjectQuery.modifier` applies the rule in the renderer,
  :meth:`ObjectQuery.matches` to given points.

These settings are one :class:`~n3f.tasks.settings.SelectionSettings`
(``object_queries(inputs, selection)``). The measurements behind their
defaults are in ``bench/NOTES.md`` ("Task selection defaults").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

import numpy as np
import torch

from n3f.metrics import best_threshold_iou
from n3f.tasks.common import Inputs, query_frame, task_objects
from n3f.tasks.defaults import DENSITY_THRESHOLD, OPACITY_THRESHOLD
from n3f.tasks.descriptors import normalise, query_descriptor
from n3f.tasks.settings import AUTO, SelectionSettings  # noqa: F401  (AUTO: re-exported, as before)
from n3f.tasks.volume import EnclosedVolume, enclosed_volume

log = logging.getLogger(__name__)

CALIBRATION_GRID = np.round(np.linspace(0.02, 1.0, 50), 4)
MASK_MARGIN = 1  # pixels: the ring around the query mask left out of the calibration
CORE_SPREAD = 2.0  # query surface points farther than this x their 90th-percentile distance from the median are strays
REGION_VOXEL = 0.1  # region points are thinned to one per voxel of this x margin (bounds the cost on big frames)
REGION_CELL = 0.125  # cells of Region.contains' grid, x margin: 15% of the box lies in boundary cells (exact test), on a 0.2-radius ellipsoid shell


# ---------------------------------------------------------------------------
# per-sample matching
# ---------------------------------------------------------------------------
def feature_distance(features: torch.Tensor, descriptor: torch.Tensor) -> torch.Tensor:
    """Cosine distance of each row of ``features`` (P, C) to a unit ``descriptor`` (C,)."""
    f = features.float()
    f = f / f.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return 1.0 - f @ descriptor.to(f.device, f.dtype)


@dataclass
class Region:
    """A 3D region: every point within ``margin`` of one of ``points`` (normalised units).

    Built by :meth:`around` from an object's query surface points; an empty
    region (no points) contains nothing.
    """

    points: np.ndarray  # (N, 3) normalised
    margin: float
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def around(cls, points: np.ndarray, margin: float) -> "Region":
        """Region within ``margin`` of the robust core of ``points``.

        The core drops stray points (a mis-rendered depth inside the mask puts a
        point on the background far behind): those farther from the median point
        than ``CORE_SPREAD`` x the 90th percentile of the distances to it. The
        rest is thinned to one point per voxel of ``REGION_VOXEL * margin``,
        which moves the region's boundary by at most 0.17 x margin and keeps the
        per-sample test cheap whatever the frame size.
        """
        if not margin > 0:
            raise ValueError(f"locality margin must be positive, got {margin}")
        pts = np.asarray(points, np.float64).reshape(-1, 3)
        if len(pts):
            dist = np.linalg.norm(pts - np.median(pts, axis=0), axis=1)
            pts = pts[dist <= CORE_SPREAD * np.percentile(dist, 90) + 1e-9]
            _, first = np.unique(np.floor(pts / (REGION_VOXEL * margin)).astype(np.int64), axis=0, return_index=True)
            pts = pts[np.sort(first)]
        return cls(pts.astype(np.float32), float(margin))

    def contains(self, world: torch.Tensor) -> torch.Tensor:
        """(..., 3) points -> (...) bool: within ``margin`` of a region point.

        Exact, and cheap on many points: a grid of cells ``REGION_CELL`` x margin wide over the
        region's box says, per cell, whether it lies wholly inside, wholly outside or across the
        boundary (its centre's distance to the points, +- half its diagonal); only points in
        boundary cells are compared with the region points.
        """
        flat = world.reshape(-1, 3)
        inside = torch.zeros(len(flat), dtype=torch.bool, device=world.device)
        if len(self.points) == 0:
            return inside.reshape(world.shape[:-1])
        pts, lo, cell, state = self._grid(world.device, world.dtype)
        dims = torch.tensor(state.shape, device=world.device)
        ijk = torch.floor((flat - lo) / cell).long()
        cand = ((ijk >= 0) & (ijk < dims)).all(-1).nonzero().squeeze(1)  # in the box
        ijk = ijk[cand]
        st = state[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
        inside[cand[st == 1]] = True
        edge = cand[st == -1]
        for i in range(0, len(edge), 4096):
            idx = edge[i : i + 4096]
            inside[idx] = torch.cdist(flat[idx], pts).min(1).values <= self.margin
        return inside.reshape(world.shape[:-1])

    def _grid(self, device, dtype) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
        """(points, box corner, cell size, per-cell state: 1 inside, 0 outside, -1 boundary), cached."""
        key = (device, dtype)
        if key not in self._cache:
            pts = torch.as_tensor(self.points, dtype=dtype, device=device)
            lo = pts.min(0).values - self.margin
            cell = REGION_CELL * self.margin
            dims = torch.ceil((pts.max(0).values + self.margin - lo) / cell).long().clamp_min(1)
            axes = [lo[a] + (torch.arange(int(dims[a]), device=device, dtype=dtype) + 0.5) * cell for a in range(3)]
            centres = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
            near = torch.cat([torch.cdist(centres[i : i + 4096], pts).min(1).values
                              for i in range(0, len(centres), 4096)])
            half = 0.5 * cell * 3 ** 0.5
            state = torch.full((len(centres),), -1, dtype=torch.int8, device=device)
            state[near + half <= self.margin] = 1
            state[near - half > self.margin] = 0
            self._cache[key] = (pts, lo, cell, state.view(*[int(d) for d in dims]))
        return self._cache[key]

    def ray_hits(self, origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """(R,) bool: rays (origins, unit directions (R, 3)) whose forward half-line comes within
        ``margin`` of a region point, i.e. passes through the region.

        A ray it rejects has no sample in the region, so a selection restricted
        to the region leaves it exactly as unedited. Box test first, then the
        distance of each candidate ray to each point (chunked: rays x points).
        """
        hits = torch.zeros(len(origins), dtype=torch.bool, device=origins.device)
        if len(self.points) == 0:
            return hits
        pts = torch.as_tensor(self.points, dtype=origins.dtype, device=origins.device)
        lo, hi = pts.min(0).values - self.margin, pts.max(0).values + self.margin
        d = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
        t0, t1 = (lo - origins) / d, (hi - origins) / d
        t_enter, t_exit = torch.minimum(t0, t1).max(-1).values, torch.maximum(t0, t1).min(-1).values
        cand = ((t_exit >= t_enter) & (t_exit >= 0)).nonzero().squeeze(1)
        step = max(1, 2_000_000 // len(pts))
        for i in range(0, len(cand), step):
            idx = cand[i : i + step]
            o, u = origins[idx, None, :], directions[idx, None, :]
            v = pts[None] - o  # (r, P, 3)
            t = (v * u).sum(-1).clamp_min(0.0)  # nearest point of the half-line to each region point
            hits[idx] = ((v - t[..., None] * u).norm(dim=-1) <= self.margin).any(1)
        return hits

    def contains_np(self, points: np.ndarray) -> np.ndarray:
        return self.contains(torch.as_tensor(np.asarray(points, np.float32))).numpy()

    def summary(self) -> dict[str, Any]:
        """What the task JSONs record about the region."""
        out: dict[str, Any] = {"margin": self.margin, "n_points": int(len(self.points))}
        if len(self.points):
            out["bbox_min"] = (self.points.min(0) - self.margin).round(4).tolist()
            out["bbox_max"] = (self.points.max(0) + self.margin).round(4).tolist()
        return out


def feature_matches(world: torch.Tensor, out: dict[str, torch.Tensor], descriptor: torch.Tensor, threshold: float,
                    density_threshold: float = 0.0, region: Region | None = None,
                    volume: EnclosedVolume | None = None) -> torch.Tensor:
    """(P,) bool: feature within ``threshold`` of ``descriptor``, density above ``density_threshold``, in ``region``;
    or, given the object's enclosed ``volume``, dense and in one of its enclosed cells."""
    dense = out["density"] > density_threshold
    match = (feature_distance(out["features"], descriptor) < threshold) & dense
    if volume is not None:
        match |= dense & volume.contains(world)
    if region is not None:
        match &= region.contains(world)
    return match


def feature_modifier(descriptor: np.ndarray, threshold: float, keep: bool, density_threshold: float = 0.0,
                     region: Region | None = None, volume: EnclosedVolume | None = None
                     ) -> Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]:
    """Density modifier: keep only (``keep=True``) or zero (``keep=False``) the density of matching samples.

    A sample matches when the cosine distance of its field feature to
    ``descriptor`` is below ``threshold``, its density exceeds
    ``density_threshold`` and, given a ``region``, it lies inside it (None:
    anywhere, the paper's features-only selection). Signature as the
    renderer's ``DensityModifier``: (world points (P, 3), field outputs) -> (P,) factor.
    """
    desc = torch.as_tensor(np.asarray(descriptor, np.float32))

    def modifier(world: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        match = feature_matches(world, out, desc, threshold, density_threshold, region, volume)
        return (match if keep else ~match).to(out["density"].dtype)

    if keep and region is not None:  # nothing outside the region is kept: the renderer skips it (exact)
        modifier.support = region.contains
    return modifier


# ---------------------------------------------------------------------------
# field samples at rendered surfaces
# ---------------------------------------------------------------------------
@dataclass
class PointCloud:
    """Field values at the rendered surface of some frames' confidently opaque pixels."""

    points: np.ndarray  # (P, 3) normalised
    colors: np.ndarray  # (P, 3) float 0..1 (rendered colour of the pixel)
    frame: np.ndarray  # (P,) source frame
    pixel: np.ndarray  # (P,) flat pixel index in its frame
    density: np.ndarray  # (P,)
    features: np.ndarray  # (P, C) L2-normalised field features


def surface_points(inputs: Inputs, frames: Iterable, opacity_threshold: float = OPACITY_THRESHOLD) -> PointCloud:
    """Back-project every confidently opaque pixel of ``frames`` (stored frames or views) to its rendered
    depth and query the field there; ``pixel`` indexes the render (:attr:`Inputs.size`)."""
    r = inputs.renderer
    parts: list[tuple] = []
    for f in frames:
        view = inputs.view(f)
        rays = inputs.rays(view)
        out = inputs.render(view)
        depth = out["depth"].reshape(-1)
        keep = (out["opacity"].reshape(-1) >= opacity_threshold) & np.isfinite(depth)
        pts = rays.origins.numpy()[keep] + rays.directions.numpy()[keep] * depth[keep, None]
        q = r.query(pts, frame=int(view.frame), outputs=("features",))
        feats = normalise(q["features"].numpy())
        parts.append((pts, out["rgb"].reshape(-1, 3)[keep], np.full(len(pts), view.frame), np.flatnonzero(keep),
                      q["density"].numpy(), feats))
    cat = [np.concatenate(x) for x in zip(*parts)]
    return PointCloud(*cat)


# ---------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------
def calibrate_threshold(distance: np.ndarray, is_object: np.ndarray,
                        grid: Iterable[float] = CALIBRATION_GRID) -> dict[str, float]:
    """Threshold on ``distance`` whose selection ``distance < t`` best matches ``is_object`` (IoU).

    IoU rather than a balanced criterion: every background sample wrongly
    selected is a hole punched into the scene (removal) or a stray blob
    (segmentation), whatever the object's size. Ties go to the smallest
    threshold. Returns the threshold, its IoU and the fractions of object
    and background samples it selects.
    """
    distance = np.asarray(distance, np.float64).reshape(-1)
    is_object = np.asarray(is_object, bool).reshape(-1)
    if not is_object.any():
        raise ValueError("calibration needs at least one object sample")
    score, threshold = best_threshold_iou(distance, is_object, grid)
    best: dict[str, float] = {"threshold": threshold, "iou": score}
    sel = distance < best["threshold"]
    best["object_selected"] = float(sel[is_object].mean())
    best["background_selected"] = float(sel[~is_object].mean()) if (~is_object).any() else float("nan")
    return best


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, iterations=pixels) if pixels > 0 else mask


def _shrink(mask: np.ndarray, pixels: int) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    if pixels <= 0:
        return mask
    eroded = binary_erosion(mask, iterations=pixels)
    return eroded if eroded.any() else mask  # a sliver of an object: use it whole


@dataclass(frozen=True)
class QuerySurface:
    """The query frame's surface points and their labels (per point of ``cloud``)."""

    cloud: PointCloud
    inside: np.ndarray  # (P,) bool: the pixel is in the eroded query mask (the object)
    outside: np.ndarray  # (P,) bool: outside the dilated mask (not the object)
    dense: np.ndarray  # (P,) bool: the field's density there exceeds the density threshold


def query_surface(inputs: Inputs, obj: str, frame: int, density_threshold: float = DENSITY_THRESHOLD,
                  opacity_threshold: float = OPACITY_THRESHOLD) -> QuerySurface:
    """The query frame's surface points, labelled object / not the object / dense (see :class:`QuerySurface`)."""
    st = inputs.store
    mask = st.masks(frame, "modal")[st.object_names.index(obj)]
    return mask_surface(inputs, mask, frame, density_threshold, opacity_threshold)


def mask_surface(inputs: Inputs, mask: np.ndarray, frame: int, density_threshold: float = DENSITY_THRESHOLD,
                 opacity_threshold: float = OPACITY_THRESHOLD) -> QuerySurface:
    """:func:`query_surface` for any region ``mask`` of a frame, at the render size."""
    cloud = surface_points(inputs, [frame], opacity_threshold)
    inside = _shrink(mask, MASK_MARGIN).reshape(-1)[cloud.pixel]
    outside = ~_grow(mask, MASK_MARGIN).reshape(-1)[cloud.pixel]
    return QuerySurface(cloud, inside, outside, cloud.density > density_threshold)


def query_region(surface: QuerySurface, margin: float) -> Region:
    """The object's :class:`Region`: within ``margin`` of its dense query surface points (all if none is dense)."""
    inside, dense = surface.inside, surface.dense
    core = inside & dense if (inside & dense).any() else inside
    return Region.around(surface.cloud.points[core], margin)


def calibrate_on_query(inputs: Inputs, obj: str, frame: int, descriptor: np.ndarray,
                       density_threshold: float = DENSITY_THRESHOLD,
                       opacity_threshold: float = OPACITY_THRESHOLD,
                       region: Region | None = None,
                       surface: QuerySurface | None = None) -> dict[str, Any]:
    """Per-sample threshold for ``obj`` from its query frame (see the module docstring).

    Given the object's ``region`` (locality), only the background points inside
    it compete with the object: points outside can never be selected, so a
    look-alike elsewhere must not make the threshold stricter
    (``n_background_outside_region`` counts those left out). ``surface``:
    :func:`query_surface`'s result, if already computed.

    A field that has not reconstructed the object (no opaque pixel in the
    eroded query mask) cannot be calibrated: the threshold is then 0, which
    selects nothing, so the object is scored as the failure it is instead of
    being dropped from the means. When opaque pixels exist but none is dense,
    the density condition is dropped from the calibration (``note`` says so).
    """
    if surface is None:
        surface = query_surface(inputs, obj, frame, density_threshold, opacity_threshold)
    cloud, inside, outside, dense = surface.cloud, surface.inside, surface.outside, surface.dense
    far = 0
    if region is not None:
        near = region.contains_np(cloud.points)
        far = int((outside & ~near).sum())
        outside = outside & near
    labelled = inside | outside
    note = None
    if not (inside & dense).any():
        if not inside.any():
            return {"threshold": 0.0, "iou": float("nan"), "n_object": 0, "n_background": int(outside.sum()),
                    "note": "no opaque pixel inside the query mask: nothing selected"}
        dense = np.ones_like(dense)
        note = "no dense surface point inside the query mask: density not used in calibration"
    use = labelled & dense
    dist = 1.0 - cloud.features[use] @ descriptor
    result: dict[str, Any] = calibrate_threshold(dist, inside[use])
    result.update(n_object=int((use & inside).sum()), n_background=int((use & outside).sum()))
    if region is not None:
        result["n_background_outside_region"] = far
    if note:
        result["note"] = note
    return result


# ---------------------------------------------------------------------------
# the per-object loop every task starts with
# ---------------------------------------------------------------------------
def descriptor(inputs: Inputs, obj: str, source: str = "n3f") -> tuple[np.ndarray, int] | None:
    """(descriptor, query frame) for ``obj`` from rendered N3F or teacher features; None if never visible."""
    st = inputs.store
    q = query_frame(st, obj)
    if q is None:
        return None
    mask = st.masks(q, "modal")[st.object_names.index(obj)]
    if source == "n3f":
        feats = inputs.render(q)["features"]
    elif source == "teacher":
        feats = inputs.teacher(q)
    else:
        raise ValueError(f"descriptor source '{source}' unknown; 'n3f' or 'teacher'")
    return query_descriptor(np.asarray(feats, np.float32), mask).astype(np.float32), q


def selection_info(locality: float | None, enclose: bool = False) -> dict[str, Any]:
    """How samples were selected, for the task JSONs (``"selection"``)."""
    if locality is None:
        return {"mode": "features", "locality": None, "enclose": False,
                "rule": "feature distance < threshold and density > density threshold, anywhere (the paper's)"}
    rule = ("feature distance < threshold and density > density threshold, within `locality` "
            "(normalised units) of the query frame's object surface points")
    if enclose:
        rule += "; or dense and in a cell of that region that matching cells enclose on 5 of 6 sides"
    return {"mode": "features+locality", "locality": float(locality), "enclose": bool(enclose), "rule": rule}


@dataclass
class ObjectQuery:
    """One object as a user queries it: descriptor from its query frame, and the selection it implies."""

    name: str
    index: int  # in the store's object (mask) order
    frame: int  # query frame
    descriptor: np.ndarray  # (C,) unit
    threshold: float  # cosine distance
    density_threshold: float
    calibration: dict[str, Any] = field(default_factory=dict)  # empty for a fixed threshold
    region: Region | None = None  # None: features-only selection (no locality)
    volume: EnclosedVolume | None = None  # the region's cells its matching samples enclose (None: matches only)

    def modifier(self, keep: bool) -> Callable:
        """Renderer density modifier keeping only (``keep``) or removing this object's samples."""
        return feature_modifier(self.descriptor, self.threshold, keep, self.density_threshold, self.region,
                                self.volume)

    def enclosed(self, inputs: Inputs) -> "ObjectQuery":
        """This query with its :class:`~n3f.tasks.volume.EnclosedVolume` (needs a region; at the query frame)."""
        if self.region is None or len(self.region.points) == 0 or not self.threshold > 0:
            return self
        desc = torch.as_tensor(self.descriptor)

        def matches(world: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:  # world: region points
            return feature_matches(world, out, desc, self.threshold, self.density_threshold)

        volume = enclosed_volume(inputs.renderer, self.region, self.frame, matches, self.density_threshold)
        return replace(self, volume=volume)

    def render_edit(self, inputs: Inputs, frame, keep: bool) -> dict[str, np.ndarray]:
        """Render a view (a stored frame or a :class:`~n3f.tasks.common.View`) with only this object kept
        (``keep``) or with it removed, at the inputs' render size.

        With a region (locality) only the rays that can meet it are rendered:
        the others are exactly as without the edit - unedited (from the
        cached render) when removing, empty when keeping. Keeping returns
        ``opacity`` only (an empty ray's colour is the background's, which
        no task reads); removing returns the unedited render's keys. Amodal
        rendering on the toy scenes touches about half the pixels this way.
        """
        r = inputs.renderer
        view = inputs.view(frame)
        h, w = inputs.size
        modifier = self.modifier(keep)
        rays = inputs.rays(view)
        if self.region is None:
            hits = torch.ones(len(rays), dtype=torch.bool)
        else:
            hits = self.region.ray_hits(rays.origins, rays.directions)
        if keep:
            base = {"opacity": np.zeros((h, w, 1), np.float32)}
        else:
            base = {k: np.array(v, copy=True) for k, v in inputs.render(view).items()}
        if hits.any():
            dev = next(r.field.parameters()).device
            out = r.render_rays_chunked(rays[hits].to(dev), chunk=inputs.chunk,
                                        outputs=("features",) if keep else ("rgb", "features"),
                                        density_modifier=modifier)
            idx = hits.numpy()
            for k, v in base.items():
                if k in out:
                    v.reshape(h * w, -1)[idx] = out[k].numpy()
        return base

    def matches(self, points: np.ndarray, features: np.ndarray, density: np.ndarray) -> np.ndarray:
        """(P,) bool: the same rule as :meth:`modifier` for field values at given normalised points."""
        out = {"features": torch.as_tensor(np.asarray(features, np.float32)),
               "density": torch.as_tensor(np.asarray(density, np.float32))}
        return feature_matches(torch.as_tensor(np.asarray(points, np.float32)), out,
                               torch.as_tensor(self.descriptor), self.threshold, self.density_threshold,
                               self.region, self.volume).numpy()

    def row(self) -> dict[str, Any]:
        """The fields every task's per-object row starts with."""
        out: dict[str, Any] = {"object": self.name, "query_frame": self.frame, "feature_threshold": self.threshold}
        if self.calibration:
            out["calibration"] = self.calibration
        if self.region is not None:
            out["region"] = self.region.summary()
        if self.volume is not None:
            out["enclosed_volume"] = self.volume.summary()
        return out


def object_queries(inputs: Inputs, selection: SelectionSettings = SelectionSettings()
                   ) -> tuple[list[ObjectQuery], list[dict[str, str]]]:
    """Queries for the objects ``selection`` scores, and note rows for those visible in no annotated frame.

    ``selection.feature_threshold`` fixes the threshold for every object; None
    calibrates it per object (:func:`calibrate_on_query`).
    ``selection.locality``: margin of each object's :class:`Region`
    (normalised units); None selects by features alone, anywhere in the scene
    (the paper's selection). ``selection.descriptor``: the features the
    descriptor is averaged from (:func:`descriptor`).
    """
    feature_threshold, density_threshold, locality = (selection.feature_threshold, selection.density_threshold,
                                                      selection.locality)
    queries, notes = [], []
    for obj in task_objects(inputs.store, selection.objects):
        d = descriptor(inputs, obj, selection.descriptor)
        if d is None:
            notes.append({"object": obj, "note": "not visible in any annotated frame"})
            continue
        desc, q = d
        region, surface = None, None
        if locality is not None:
            surface = query_surface(inputs, obj, q, density_threshold)
            region = query_region(surface, locality)
        if feature_threshold is None:
            calib = calibrate_on_query(inputs, obj, q, desc, density_threshold, region=region, surface=surface)
            thr = calib["threshold"]
            log.info("%s: feature threshold %.2f (query frame %d, IoU %.3f on %d object / %d background surface "
                     "points%s)", obj, thr, q, calib["iou"], calib["n_object"], calib["n_background"],
                     "" if region is None else f" within {locality:g} of the object")
        else:
            calib, thr = {}, float(feature_threshold)
        oq = ObjectQuery(obj, inputs.store.object_names.index(obj), q, desc, float(thr), float(density_threshold),
                         calib, region)
        queries.append(oq.enclosed(inputs) if selection.enclose else oq)
    return queries, notes
