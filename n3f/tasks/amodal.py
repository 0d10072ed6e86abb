"""Amodal segmentation by rendering only the queried object, scored against synthetic amodal masks.

N3F: the descriptor selects 3D density (``feature_modifier(..., keep=True)``
keeps the density of samples within cosine distance ``feature_threshold`` of
the descriptor and zeroes the rest), the frame is re-rendered and its opacity
thresholded at ``opacity_threshold`` - occluders have lost their density, so
the object's hidden parts show. IoU against the ground-truth amodal mask.

Baseline: the teacher's 2D segmentation, i.e. the cosine-distance map of the
teacher's (upsampled) features to the teacher descriptor of the same query
mask, thresholded. It can only be modal. Its threshold is the *best* over a
grid (``BASELINE_GRID``) per (object, frame) - an oracle that favours the
baseline, so a gain of N3F over it is conservative. N3F's IoU is reported at
the fixed, given threshold (headline) and, for reference, the oracle-best
over the same grid (``iou_n3f_best``), so the two can be compared like for like.

Frames: evaluation frames (see :mod:`n3f.tasks.segment3d`) in which the
object's amodal mask is not empty; the scores are also given over the subset
where the object is occluded (amodal area > ``1.05`` x modal area).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from n3f.tasks.retrieval import cosine_distance_map
from n3f.tasks.segment3d import (
    AUTO,
    FEATURE_THRESHOLD,
    OPACITY_THRESHOLD,
    Inputs,
    _means,
    eval_frames,
    feature_modifier,
    task_objects,
    write_json,
    write_png,
)

BASELINE_GRID = tuple(np.round(np.arange(0.05, 1.0001, 0.05), 2))
OCCLUDED_RATIO = 1.05


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks; 1 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


def best_threshold_iou(distance: np.ndarray, target: np.ndarray, grid: Iterable[float] = BASELINE_GRID) -> tuple[float, float]:
    """(best IoU, its threshold) of ``distance < threshold`` against ``target`` over ``grid``."""
    best = (-1.0, float("nan"))
    for thr in grid:
        score = iou(distance < thr, target)
        if score > best[0]:
            best = (score, float(thr))
    return best


def evaluate_amodal(
    inputs: Inputs,
    out_dir: str | Path,
    *,
    objects: Iterable[str] | None = None,
    feature_threshold: float | None = FEATURE_THRESHOLD,
    opacity_threshold: float = OPACITY_THRESHOLD,
    max_frames: int = 4,
    source: str = "n3f",
) -> dict[str, Any]:
    st = inputs.store
    if not st.has_amodal:
        from n3f.errors import N3FInputError

        raise N3FInputError(f"{st.path}: no amodal masks; amodal segmentation cannot be scored.")
    out_dir = Path(out_dir)
    frames = eval_frames(st, max(max_frames * 4, max_frames))
    rows = []
    for obj in task_objects(st, objects):
        k = st.object_names.index(obj)
        d = inputs.descriptor(obj, source)
        dt = inputs.descriptor(obj, "teacher")
        if d is None or dt is None:
            rows.append({"object": obj, "note": "not visible in any annotated frame"})
            continue
        (desc, q), (desc_t, _) = d, dt
        visible = [f for f in frames if st.masks(f, "amodal")[k].any()][:max_frames]
        thr = inputs.threshold(obj, desc, q, feature_threshold, source)
        modifier = feature_modifier(desc, thr, keep=True)
        per_frame = []
        for f in visible:
            amodal, modal = st.masks(f, "amodal")[k], st.masks(f, "modal")[k]
            out = inputs.renderer.render_frame(st, f, chunk=inputs.chunk, outputs=("features",),
                                               density_modifier=modifier)
            opacity = out["opacity"][..., 0]
            pred = opacity >= opacity_threshold
            n3f_dist = 1.0 - opacity  # ranks pixels by opacity for the reference oracle threshold
            best_n3f, thr_n3f = best_threshold_iou(n3f_dist, amodal, [1.0 - t for t in BASELINE_GRID])
            teacher_dist = cosine_distance_map(inputs.teacher(f), desc_t)
            best_t, thr_t = best_threshold_iou(teacher_dist, amodal)
            per_frame.append({
                "frame": f,
                "occluded": bool(amodal.sum() > OCCLUDED_RATIO * modal.sum()),
                "iou_n3f": iou(pred, amodal),
                "iou_n3f_best": best_n3f,
                "n3f_best_opacity": 1.0 - thr_n3f,
                "iou_teacher_best": best_t,
                "teacher_best_threshold": thr_t,
                "iou_n3f_vs_modal": iou(pred, modal),
                "amodal_pixels": int(amodal.sum()),
                "modal_pixels": int(modal.sum()),
            })
            panel = [st.frame(f) / 255.0, np.repeat(opacity[..., None], 3, -1),
                     np.repeat(pred[..., None], 3, -1).astype(float),
                     np.repeat((teacher_dist < thr_t)[..., None], 3, -1).astype(float),
                     np.repeat(amodal[..., None], 3, -1).astype(float)]
            write_png(out_dir / f"amodal_{obj}_f{f}.png", np.concatenate(panel, axis=1))
        keys = ("iou_n3f", "iou_n3f_best", "iou_teacher_best")
        means = {k2[5:]: v for k2, v in _means(per_frame, keys).items()}
        occ = {f"occluded_{k2[5:]}": v for k2, v in _means([p for p in per_frame if p["occluded"]], keys).items()}
        rows.append({"object": obj, "query_frame": q, "feature_threshold": thr, **means, **occ, "frames": per_frame})
        if per_frame:
            print(f"[amodal] {obj}: IoU N3F {means['iou_n3f']:.3f}, teacher (best threshold) "
                  f"{means['iou_teacher_best']:.3f}", file=sys.stderr)
    keys = ("iou_n3f", "iou_n3f_best", "iou_teacher_best", "occluded_iou_n3f", "occluded_iou_teacher_best")
    summary = {
        "task": "amodal",
        "scene": st.name,
        "descriptor_source": source,
        "thresholds": {"feature_distance": AUTO if feature_threshold is None else feature_threshold, "opacity": opacity_threshold,
                       "baseline": "best of grid per (object, frame)", "grid": list(BASELINE_GRID)},
        "objects": rows,
        **_means(rows, keys),
    }
    write_json(out_dir / "amodal.json", summary)
    return summary
