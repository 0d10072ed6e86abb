"""3D segmentation from fused features, scored against a synthetic scene's analytic geometry.

The protocol (N3F, Sec. 4.3, made measurable):

* Object query: descriptor from one query frame and a per-object feature
  threshold, exactly as for editing and amodal segmentation (see
  :mod:`n3f.tasks.selection`).
* Candidate 3D points: for a few *evaluation frames* (``gallery`` split,
  evenly thinned to ``max_frames``) every pixel whose rendered opacity is at
  least ``opacity_threshold`` is back-projected to its rendered (expected)
  depth, so the points lie on the surfaces the field has learnt.
* Selection: the field is queried at those points; a point is selected when
  the cosine distance of its field feature to the descriptor is below the
  object's threshold, its density is above ``density_threshold`` and (with
  locality, the default) it lies in the object's 3D region
  (:meth:`n3f.tasks.selection.ObjectQuery.matches`, the rule editing uses).

Scores (synthetic scenes only, everything in the store's normalised frame;
``tolerance`` is a distance in normalised units, also reported in world units):

* precision: the fraction of selected points that are inside the object's
  analytic volume (:meth:`Primitive.contains`) or within ``tolerance`` of its
  visible surface;
* recall: the fraction of the object's *visible surface points* - the ground
  truth depth of the pixels in the object's ground truth modal mask in the
  evaluation frames, from ray casting the analytic scene - that have a
  selected point within ``tolerance``.

The feature-distance threshold is calibrated per object on its query frame
(:func:`n3f.tasks.selection.calibrate_on_query`); the other thresholds are the
fixed defaults of :mod:`n3f.tasks.defaults`. A sweep over feature thresholds
is reported alongside (``sweep``) for reference only; the headline scores use
the object's threshold.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from n3f.metrics import segmentation_precision_recall
from n3f.tasks.common import (
    Inputs,
    eval_frames,
    gt_surface_points,
    gt_view,
    means,
    object_primitive,
    to_world,
    write_json,
    write_ply,
)
from n3f.tasks.defaults import OPACITY_THRESHOLD, TOLERANCE
from n3f.tasks.selection import object_queries, selection_info, surface_points
from n3f.tasks.settings import SelectionSettings

log = logging.getLogger(__name__)

SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def evaluate_segment3d(
    inputs: Inputs,
    out_dir: str | Path,
    *,
    selection: SelectionSettings = SelectionSettings(),
    opacity_threshold: float = OPACITY_THRESHOLD,
    tolerance: float = TOLERANCE,
    max_frames: int = 4,
) -> dict[str, Any]:
    """Select, export and score a 3D segmentation per object; returns the summary written as JSON.

    ``selection``: which objects, and how their samples are selected (:class:`SelectionSettings`).
    """
    st = inputs.store
    out_dir = Path(out_dir)
    frames = eval_frames(st, max_frames)
    cloud = surface_points(inputs, frames, opacity_threshold)
    views = {f: gt_view(st, f) for f in frames}
    write_ply(out_dir / "points_all.ply", cloud.points, cloud.colors)
    queries, rows = object_queries(inputs, selection)
    dense = cloud.density > selection.density_threshold
    for oq in queries:
        obj, k = oq.name, oq.index
        dist = 1.0 - cloud.features @ oq.descriptor
        inside = np.zeros(len(cloud.points), bool)
        for f in frames:
            at = cloud.frame == f
            inside[at] = object_primitive(st, obj, f).contains(to_world(st, cloud.points[at]))
        surf = np.concatenate([gt_surface_points(st, f, views[f]["modal"][k], views[f]) for f in frames])
        near = oq.region.contains_np(cloud.points) if oq.region is not None else np.ones(len(cloud.points), bool)
        sel = oq.matches(cloud.points, cloud.features, cloud.density)
        score = segmentation_precision_recall(cloud.points[sel], inside[sel], surf, tolerance)
        sweep = {}
        for thr in SWEEP:
            s = dense & near & (dist < thr)
            sweep[f"{thr:g}"] = {k2: v for k2, v in segmentation_precision_recall(
                cloud.points[s], inside[s], surf, tolerance).items() if k2 in ("precision", "recall", "f1")}
        write_ply(out_dir / f"segment3d_{obj}.ply", cloud.points[sel], cloud.colors[sel])
        highlight = cloud.colors.copy()
        highlight[sel] = 0.3 * highlight[sel] + 0.7 * np.array([1.0, 0.0, 0.0])
        write_ply(out_dir / f"segment3d_{obj}_highlight.ply", cloud.points, highlight)
        rows.append({**oq.row(), **score, "sweep": sweep})
        log.info("%s: precision %.3f recall %.3f", obj, score["precision"], score["recall"])
    scale = float(st.attrs["normalisation"]["scale"])
    summary = {
        "task": "segment3d",
        "scene": st.name,
        "descriptor_source": selection.descriptor,
        "selection": selection_info(selection.locality, selection.enclose),
        "frames": frames,
        "n_points": int(len(cloud.points)),
        "thresholds": {**selection.thresholds(), "opacity": opacity_threshold},
        "tolerance": tolerance,
        "tolerance_world": tolerance / scale,
        "objects": rows,
        **means(rows, ("precision", "recall", "f1")),
    }
    write_json(out_dir / "segment3d.json", summary)
    return summary

