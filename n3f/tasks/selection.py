"""Selecting an object's 3D samples in the field: its descriptor, feature threshold and density modifier.

All three tasks (3D segmentation, object removal, amodal segmentation) pick
the field's samples whose *per-sample* feature lies within a cosine distance
of the object's descriptor. This module is the one place where that selection
is defined, so the tasks cannot drift apart:

* Descriptor: the user marks the object in one *query frame*; the descriptor
  is the mean of the L2-normalised features inside its modal mask
  (:func:`n3f.tasks.retrieval.query_descriptor`), from N3F's rendered features
  (``source="n3f"``, default) or the teacher's upsampled 2D features.
* Threshold: calibrated per object on the query frame, on the same kind of
  feature it is applied to. Selection thresholds raw per-point outputs of the
  feature head; a rendered pixel feature is a weighted average of them along
  the ray, so a threshold fitted to rendered features does not transfer
  (calibrated on rendered features, removal on toy_static changed the masked
  PSNR by 0.002 dB: it selected almost no sample). The calibration therefore
  back-projects every confidently opaque pixel of the query frame to its
  rendered depth, queries the field there (the surface points that
  compositing weights most) and keeps the points with significant density.
  Points of pixels inside the (eroded) query mask are the object, points of
  pixels outside the (dilated) mask are not; the one-pixel ring between is
  ignored (mixed pixels, depths between two surfaces). The threshold is the
  one whose selection best matches that labelling (IoU over ``CALIBRATION_GRID``),
  i.e. it uses nothing but the query mask a user gives.
* Modifier: the renderer's density hook; a sample matches when its feature is
  within the threshold *and* its density exceeds ``density_threshold`` (the
  feature head is only supervised where density is, so features in empty space
  are arbitrary and must not decide anything).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch

from n3f.tasks.common import OPACITY_THRESHOLD, Inputs, query_frame, task_objects
from n3f.tasks.retrieval import _normalise, query_descriptor

FEATURE_THRESHOLD = None  # None: calibrated per object (see calibrate_threshold)
CALIBRATION_GRID = np.round(np.linspace(0.02, 1.0, 50), 4)
AUTO = "calibrated per object on field features at the query frame's surface points"
DENSITY_THRESHOLD = 0.1  # per normalised unit: <1% opacity over 0.1 units; surfaces of small objects in an
# under-trained field measured 0.4-1.5 (median, toy_static), so 1.0 dropped half of their surface points
MASK_MARGIN = 1  # pixels: the ring around the query mask left out of the calibration


# ---------------------------------------------------------------------------
# per-sample matching
# ---------------------------------------------------------------------------
def feature_distance(features: torch.Tensor, descriptor: torch.Tensor) -> torch.Tensor:
    """Cosine distance of each row of ``features`` (P, C) to a unit ``descriptor`` (C,)."""
    f = features.float()
    f = f / f.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return 1.0 - f @ descriptor.to(f.device, f.dtype)


def feature_modifier(descriptor: np.ndarray, threshold: float, keep: bool,
                     density_threshold: float = 0.0) -> Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor]:
    """Density modifier: keep only (``keep=True``) or zero (``keep=False``) the density of matching samples.

    A sample matches when the cosine distance of its field feature to
    ``descriptor`` is below ``threshold`` and its density exceeds
    ``density_threshold``. Signature as the renderer's ``DensityModifier``:
    (world points (P, 3), field outputs) -> (P,) factor.
    """
    desc = torch.as_tensor(np.asarray(descriptor, np.float32))

    def modifier(world: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        match = (feature_distance(out["features"], desc) < threshold) & (out["density"] > density_threshold)
        return (match if keep else ~match).to(out["density"].dtype)

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


def surface_points(inputs: Inputs, frames: Iterable[int], opacity_threshold: float = OPACITY_THRESHOLD) -> PointCloud:
    """Back-project every confidently opaque pixel of ``frames`` to its rendered depth and query the field there."""
    from n3f.render.rays import camera_rays

    st, r = inputs.store, inputs.renderer
    h, w = st.image_size
    parts: list[tuple] = []
    for f in frames:
        rays = camera_rays(st.c2w[f], st.intrinsics[f], h, w, st.bounds[f], f)
        out = inputs.render(f)
        depth = out["depth"].reshape(-1)
        keep = (out["opacity"].reshape(-1) >= opacity_threshold) & np.isfinite(depth)
        pts = rays.origins.numpy()[keep] + rays.directions.numpy()[keep] * depth[keep, None]
        q = r.query(pts, frame=int(f), outputs=("features",))
        feats = _normalise(q["features"].numpy())
        parts.append((pts, out["rgb"].reshape(-1, 3)[keep], np.full(len(pts), f), np.flatnonzero(keep),
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
    best: dict[str, float] = {"threshold": float("nan"), "iou": -1.0}
    for t in grid:
        sel = distance < t
        score = float((sel & is_object).sum() / max((sel | is_object).sum(), 1))
        if score > best["iou"]:
            best = {"threshold": float(t), "iou": score}
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


def calibrate_on_query(inputs: Inputs, obj: str, frame: int, descriptor: np.ndarray,
                       density_threshold: float = DENSITY_THRESHOLD,
                       opacity_threshold: float = OPACITY_THRESHOLD) -> dict[str, Any]:
    """Per-sample threshold for ``obj`` from its query frame (see the module docstring).

    A field that has not reconstructed the object (no opaque pixel in the
    eroded query mask) cannot be calibrated: the threshold is then 0, which
    selects nothing, so the object is scored as the failure it is instead of
    being dropped from the means. When opaque pixels exist but none is dense,
    the density condition is dropped from the calibration (``note`` says so).
    """
    st = inputs.store
    mask = st.masks(frame, "modal")[st.object_names.index(obj)]
    cloud = surface_points(inputs, [frame], opacity_threshold)
    inside = _shrink(mask, MASK_MARGIN).reshape(-1)[cloud.pixel]
    outside = ~_grow(mask, MASK_MARGIN).reshape(-1)[cloud.pixel]
    labelled = inside | outside
    dense = cloud.density > density_threshold
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

    def modifier(self, keep: bool) -> Callable:
        """Renderer density modifier keeping only (``keep``) or removing this object's samples."""
        return feature_modifier(self.descriptor, self.threshold, keep, self.density_threshold)

    def row(self) -> dict[str, Any]:
        """The fields every task's per-object row starts with."""
        out: dict[str, Any] = {"object": self.name, "query_frame": self.frame, "feature_threshold": self.threshold}
        if self.calibration:
            out["calibration"] = self.calibration
        return out


def object_queries(inputs: Inputs, objects: Iterable[str] | None = None, *, source: str = "n3f",
                   feature_threshold: float | None = FEATURE_THRESHOLD,
                   density_threshold: float = DENSITY_THRESHOLD) -> tuple[list[ObjectQuery], list[dict[str, str]]]:
    """Queries for the scored objects, and note rows for those visible in no annotated frame.

    ``feature_threshold`` fixes the threshold for every object; None calibrates
    it per object (:func:`calibrate_on_query`).
    """
    queries, notes = [], []
    for obj in task_objects(inputs.store, objects):
        d = descriptor(inputs, obj, source)
        if d is None:
            notes.append({"object": obj, "note": "not visible in any annotated frame"})
            continue
        desc, q = d
        if feature_threshold is None:
            calib = calibrate_on_query(inputs, obj, q, desc, density_threshold)
            thr = calib["threshold"]
            print(f"[tasks] {obj}: feature threshold {thr:.2f} (query frame {q}, IoU {calib['iou']:.3f} on "
                  f"{calib['n_object']} object / {calib['n_background']} background surface points)",
                  file=sys.stderr, flush=True)
        else:
            calib, thr = {}, float(feature_threshold)
        queries.append(ObjectQuery(obj, inputs.store.object_names.index(obj), q, desc, float(thr),
                                   float(density_threshold), calib))
    return queries, notes
