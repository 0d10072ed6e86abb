"""Amodal segmentation by rendering only the queried object, scored against synthetic amodal masks.

N3F: the object's query (:mod:`n3f.tasks.selection`) selects 3D density
(``ObjectQuery.modifier(keep=True)`` keeps the density of samples whose feature
matches the descriptor and zeroes the rest), the frame is re-rendered and its opacity
thresholded at ``opacity_threshold`` - occluders have lost their density, so
the object's hidden parts show. IoU against the ground-truth amodal mask.
With locality (default, :mod:`n3f.tasks.selection`) only samples in the
object's 3D region are kept, which drops look-alike objects elsewhere; the
region is dilated by ``locality`` around the visible query surface so that it
also covers the object's hidden side (an object's hidden extent lies within
about its size of its visible surface). The teacher baseline below has no
such 3D prior, so with locality part of N3F's gain over it is the region's;
``locality=None`` (``--no-locality``) compares features with features.

Baseline: the teacher's 2D segmentation, i.e. the cosine-distance map of the
teacher's (upsampled) features to the teacher descriptor of the same query
mask, thresholded. It can only be modal. Its threshold is the *best* over a
grid (``BASELINE_GRID``) per (object, frame) - an oracle that favours the
baseline, so a gain of N3F over it is conservative. N3F's IoU is reported at
the fixed, given threshold (headline) and, for reference, the oracle-best
over the same grid (``iou_n3f_best``), so the two can be compared like for like.
``iou_modal_oracle`` (the ground-truth visible mask against the amodal one)
bounds every 2D method, the teacher included.

Frames: evaluation frames (see :mod:`n3f.tasks.segment3d`) in which the
object's amodal mask is not empty; the scores are also given over the subset
where the object is occluded (amodal area > ``1.05`` x modal area).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from n3f.metrics import best_threshold_iou, iou
from n3f.tasks.common import Inputs, eval_frames, means, write_json, write_png
from n3f.tasks.defaults import OPACITY_THRESHOLD
from n3f.tasks.descriptors import cosine_distance_map
from n3f.tasks.selection import descriptor, object_queries, selection_info
from n3f.tasks.settings import SelectionSettings

log = logging.getLogger(__name__)

BASELINE_GRID = tuple(np.round(np.arange(0.05, 1.0001, 0.05), 2))
OCCLUDED_RATIO = 1.05


def amodal_scores(opacity: np.ndarray, teacher_distance: np.ndarray, amodal: np.ndarray, modal: np.ndarray,
                  opacity_threshold: float = OPACITY_THRESHOLD) -> dict[str, Any]:
    """Scores of one (object, frame): N3F's object-only opacity vs the teacher's distance map.

    ``iou_modal_oracle`` is the IoU of the ground-truth *modal* mask with the
    amodal one: the best any 2D (modal) segmentation can reach, so the
    teacher baseline is bounded by it and N3F beats every modal method only
    above it.
    """
    amodal, modal = np.asarray(amodal, bool), np.asarray(modal, bool)
    pred = opacity >= opacity_threshold
    # ranking pixels by opacity gives N3F the same per-frame oracle threshold as the teacher, for reference
    best_n3f, thr_n3f = best_threshold_iou(1.0 - opacity, amodal, [1.0 - t for t in BASELINE_GRID])
    best_t, thr_t = best_threshold_iou(teacher_distance, amodal, BASELINE_GRID)
    return {
        "occluded": bool(amodal.sum() > OCCLUDED_RATIO * modal.sum()),
        "iou_n3f": iou(pred, amodal),
        "iou_n3f_best": best_n3f,
        "n3f_best_opacity": 1.0 - thr_n3f,
        "iou_teacher_best": best_t,
        "teacher_best_threshold": thr_t,
        "iou_modal_oracle": iou(modal, amodal),
        "iou_n3f_vs_modal": iou(pred, modal),
        "amodal_pixels": int(amodal.sum()),
        "modal_pixels": int(modal.sum()),
    }


def evaluate_amodal(
    inputs: Inputs,
    out_dir: str | Path,
    *,
    selection: SelectionSettings = SelectionSettings(),
    opacity_threshold: float = OPACITY_THRESHOLD,
    max_frames: int = 4,
) -> dict[str, Any]:
    """Render each selected object alone and score its amodal mask against the teacher's; returns the summary.

    ``selection``: which objects, and how their samples are selected (:class:`SelectionSettings`).
    """
    st = inputs.store
    if not st.has_amodal:
        from n3f.errors import N3FInputError

        raise N3FInputError(f"{st.path}: no amodal masks; amodal segmentation cannot be scored.")
    out_dir = Path(out_dir)
    frames = eval_frames(st, max(max_frames * 4, max_frames))
    queries, rows = object_queries(inputs, selection)
    for oq in queries:
        obj, k = oq.name, oq.index
        desc_t = descriptor(inputs, obj, "teacher")[0]  # same query frame and mask as oq
        visible = [f for f in frames if st.masks(f, "amodal")[k].any()][:max_frames]
        per_frame = []
        for f in visible:
            amodal, modal = st.masks(f, "amodal")[k], st.masks(f, "modal")[k]
            opacity = oq.render_edit(inputs, f, keep=True)["opacity"][..., 0]
            teacher_dist = cosine_distance_map(inputs.teacher(f), desc_t)
            scores = amodal_scores(opacity, teacher_dist, amodal, modal, opacity_threshold)
            per_frame.append({"frame": f, **scores})
            pred, thr_t = opacity >= opacity_threshold, scores["teacher_best_threshold"]
            panel = [st.frame(f) / 255.0, np.repeat(opacity[..., None], 3, -1),
                     np.repeat(pred[..., None], 3, -1).astype(float),
                     np.repeat((teacher_dist < thr_t)[..., None], 3, -1).astype(float),
                     np.repeat(amodal[..., None], 3, -1).astype(float)]
            write_png(out_dir / f"amodal_{obj}_f{f}.png", np.concatenate(panel, axis=1))
        keys = ("iou_n3f", "iou_n3f_best", "iou_teacher_best", "iou_modal_oracle")
        avg = {k2[5:]: v for k2, v in means(per_frame, keys).items()}
        occ = {f"occluded_{k2[5:]}": v for k2, v in means([p for p in per_frame if p["occluded"]], keys).items()}
        rows.append({**oq.row(), **avg, **occ, "frames": per_frame})
        if per_frame:
            log.info("%s: IoU N3F %.3f, teacher (best threshold) %.3f", obj, avg["iou_n3f"], avg["iou_teacher_best"])
    keys = ("iou_n3f", "iou_n3f_best", "iou_teacher_best", "iou_modal_oracle", "occluded_iou_n3f",
            "occluded_iou_teacher_best", "occluded_iou_modal_oracle")
    summary = {
        "task": "amodal",
        "scene": st.name,
        "descriptor_source": selection.descriptor,
        "selection": selection_info(selection.locality, selection.enclose),
        "thresholds": {**selection.thresholds(), "opacity": opacity_threshold,
                       "baseline": "best of grid per (object, frame)", "grid": list(BASELINE_GRID)},
        "objects": rows,
        **means(rows, keys),
    }
    write_json(out_dir / "amodal.json", summary)
    return summary
