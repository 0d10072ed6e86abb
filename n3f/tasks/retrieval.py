"""2D object retrieval, the paper's protocol (N3F, Sec. 4.1), and its driver: teacher 2D vs N3F features.

Annotated frames are split into disjoint query and gallery sets. For every
object k and query frame q where k is visible, the descriptor is the mean of
the L2-normalised features inside k's mask in q. For every gallery frame g,
all pixels are ranked by cosine distance to the descriptor, labelled positive
inside k's mask in g, and Average Precision is computed from that ranking.
mAP averages over (object, query, gallery) rows. A gallery frame in which the
object is not visible has no AP; its row is kept with ``ap`` empty and a note,
so that any table can be recomputed from the rows.

Both feature sources are compared on the same query and gallery frames and at
the same (mask) resolution: the teacher's patch grid is upsampled the way
training samples it, and N3F's features are rendered from each frame's camera.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from n3f.atomic import atomic_write_text
from n3f.errors import N3FInputError
from n3f.metrics import average_precision, mean_ap
from n3f.scene.store import SceneStore
from n3f.tasks.defaults import PATCH_CELLS, PATCHES
from n3f.tasks.descriptors import normalise, query_descriptor

log = logging.getLogger(__name__)

ROW_COLUMNS = ["scene", "field", "teacher", "method", "object", "query", "query_kind", "patch", "gallery", "seen",
               "ap", "note"]
"""Retrieval rows: one per (object, query unit, gallery frame); ``seen``: the gallery frame was trained on."""
SEGMENTATION_COLUMNS = ["scene", "field", "teacher", "method", "object", "query", "query_kind", "patch", "gallery",
                        "seen", "threshold", "iou", "acc", "oracle_threshold", "oracle_iou", "oracle_acc"]
"""One-view segmentation rows: the query unit's threshold (from the query frame alone) applied to a gallery
frame, and the oracle (the best threshold on that gallery frame, for comparison with papers that use it)."""
THRESHOLD_RULE = "query-view IoU"
"""The one-view threshold: the cosine distance whose selection best matches (IoU) the object's mask in the
query frame, over :data:`~n3f.tasks.selection.CALIBRATION_GRID`; the same rule for both feature sources."""


def score_rows(
    store: SceneStore,
    features_for: Callable[[int], np.ndarray],
    *,
    teacher: str,
    method: str,
    field: str = "",
    mask_kind: str = "modal",
    objects: list[str] | None = None,
    queries: np.ndarray | None = None,
    gallery: np.ndarray | None = None,
    patch_side: int = 1,
    patches: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Retrieval AP rows and one-view segmentation rows for one scene and one feature source.

    ``features_for(frame)`` returns (H, W, C) features at mask resolution; it is
    called once per query and gallery frame. ``objects`` restricts the objects
    scored (default: all annotated objects); ``queries``/``gallery`` default
    to the store's splits. Each object in each query frame is queried with its
    mask and with ``patches`` squares of ``patch_side`` pixels inside it
    (:mod:`n3f.tasks.query_units`); a distance map is computed once per
    (query unit, gallery frame) and scored both ways.
    """
    from n3f.metrics import iou, iou_curve, pixel_accuracy
    from n3f.tasks.query_units import query_units
    from n3f.tasks.selection import CALIBRATION_GRID, calibrate_threshold

    queries = store.split("query") if queries is None else queries
    gallery = store.split("gallery") if gallery is None else gallery
    train = set(int(f) for f in store.split("train"))
    cache: dict[int, np.ndarray] = {}

    def feats(frame: int) -> np.ndarray:
        if frame not in cache:
            cache[frame] = normalise(np.asarray(features_for(frame), dtype=np.float32))
        return cache[frame]

    masks: dict[int, np.ndarray] = {}

    def mask_of(frame: int, k: int) -> np.ndarray:
        if frame not in masks:  # one read per frame, not per (object, query unit)
            masks[frame] = store.masks(frame, mask_kind)
        return masks[frame][k]

    def distance(frame: int, desc: np.ndarray) -> np.ndarray:
        return 1.0 - feats(frame) @ desc  # the features are normalised once, in feats()

    grid = np.asarray(CALIBRATION_GRID, np.float64)
    ap_rows, seg_rows = [], []
    for k, obj in enumerate(store.object_names):
        if objects is not None and obj not in objects:
            continue
        for q in queries:
            q_mask = mask_of(int(q), k)
            if not q_mask.any():
                continue  # not visible in the query: no descriptor, no row
            for unit in query_units(obj, int(q), q_mask, patch_side=patch_side, patches=patches):
                desc = query_descriptor(feats(int(q)), unit.region)
                # the one-view threshold: from the query frame alone, against the object's mask there
                threshold = calibrate_threshold(distance(int(q), desc), q_mask, grid)["threshold"]
                base = {"scene": store.name, "field": field, "teacher": teacher, "method": method, "object": obj,
                        "query": int(q), "query_kind": unit.kind, "patch": unit.index}
                for g in gallery:
                    g_mask = mask_of(int(g), k)
                    where = {**base, "gallery": int(g), "seen": int(g) in train}
                    row = {**where, "ap": np.nan, "note": ""}
                    if not g_mask.any():
                        row["note"] = "object not visible in gallery frame; no AP"
                        ap_rows.append(row)
                        continue
                    dist = distance(int(g), desc)
                    row["ap"] = average_precision(-dist, g_mask)
                    ap_rows.append(row)
                    curve = iou_curve(dist, g_mask, grid)
                    best = int(np.argmax(curve))
                    seg_rows.append({**where, "threshold": threshold, "iou": iou(dist < threshold, g_mask),
                                     "acc": pixel_accuracy(dist < threshold, g_mask),
                                     "oracle_threshold": float(grid[best]), "oracle_iou": float(curve[best]),
                                     "oracle_acc": pixel_accuracy(dist < grid[best], g_mask)})
    return pd.DataFrame(ap_rows, columns=ROW_COLUMNS), pd.DataFrame(seg_rows, columns=SEGMENTATION_COLUMNS)


def retrieval_rows(store: SceneStore, features_for: Callable[[int], np.ndarray], *, teacher: str, method: str,
                   **options: Any) -> pd.DataFrame:
    """The retrieval AP rows of :func:`score_rows` (mask queries unless ``patches`` is given)."""
    return score_rows(store, features_for, teacher=teacher, method=method, **options)[0]


def gallery_frames(store: SceneStore, limit: int | None) -> np.ndarray:
    """Gallery frames scored: at most ``limit``, half of them held out of training where the scene has such
    frames (``val``), so that seen and novel views are both measured; each part evenly thinned."""
    gallery = np.asarray(store.split("gallery"))
    if not limit or len(gallery) <= limit:
        return gallery
    novel = np.intersect1d(gallery, store.split("val"))
    seen = np.setdiff1d(gallery, novel)
    n_novel = min(len(novel), limit // 2)
    picked = np.concatenate([thin(novel, n_novel) if n_novel else novel[:0], thin(seen, limit - n_novel)])
    return np.sort(picked)


def thin(frames: np.ndarray, limit: int | None) -> np.ndarray:
    """At most ``limit`` frames, evenly spread (to bound evaluation cost on long captures)."""
    frames = np.asarray(frames)
    if not limit or len(frames) <= limit:
        return frames
    return frames[np.linspace(0, len(frames) - 1, limit).round().astype(int)]


def retrieval_objects(store: SceneStore) -> list[str]:
    """Objects scored: every annotated object except camera-anchored actors."""
    actors = set(store.attrs.get("synthetic", {}).get("actor_names", []))
    return [name for name in store.object_names if name not in actors]


def evaluate_retrieval(
    scene_path: str | Path,
    features_path: str | Path,
    model_path: str | Path,
    *,
    teacher: str,
    sampling: str = "nearest",
    device: str | None = None,
    chunk: int | None = None,
    max_queries: int | None = None,
    max_gallery: int | None = None,
    patch_cells: int = PATCH_CELLS,
    patches: int = PATCHES,
    fused_path: str | Path | None = None,
    method: str = "n3f",
    baseline: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Retrieval rows, one-view segmentation rows (every method, mask and patch queries) and a summary.

    Methods: ``teacher`` (2D features; with ``baseline``), ``method`` rendered from ``model_path``
    (``n3f``: a distilled model; ``fused``: a training-free fused one, :mod:`n3f.fusion`) and, with
    ``fused_path``, ``fused`` from that model too, all on the same query and gallery frames (the
    frames depend on the scene and the limits only, so separate runs of one method each score the
    same pairs: the workflow scores the fused field in its own job, beside distillation)."""
    from n3f.features.store import FeatureStore

    store = SceneStore(scene_path)
    feats = FeatureStore(features_path)
    if feats.n_frames != store.n_frames:
        raise N3FInputError(
            f"{features_path} has {feats.n_frames} frames but {scene_path} has {store.n_frames}; "
            "the feature store is stale: rerun teacher_features for this scene."
        )
    if len(store.split("query")) == 0 or len(store.split("gallery")) == 0:
        raise N3FInputError(f"{scene_path} has no annotated query/gallery frames; retrieval needs object masks.")
    if method not in METHODS:
        raise N3FInputError(f"retrieval method '{method}' unknown; one of {', '.join(METHODS)}")
    if method == "fused" and fused_path is not None:
        raise N3FInputError("--model is already scored as 'fused': leave out --fused (or score --model as n3f)")
    renderer = _load_model(model_path, method, device)
    objects = retrieval_objects(store)
    queries = thin(store.split("query"), max_queries)
    gallery = gallery_frames(store, max_gallery)
    patch_side = max(1, round(patch_cells * store.image_size[0] / feats.grid_size[0]))
    frames = {"objects": objects, "queries": queries, "gallery": gallery, "field": renderer.field.name,
              "patch_side": patch_side, "patches": patches}

    started = time.perf_counter()

    def rendered_features(model, method: str) -> Callable[[int], np.ndarray]:
        rendered: dict[int, np.ndarray] = {}

        def features_of(frame: int) -> np.ndarray:
            if frame not in rendered:
                rendered[frame] = model.render_frame(store, frame, chunk=chunk, outputs=("features",))["features"]
                log.info("rendered %s features of frame %d (%d)", method, frame, len(rendered))
            return rendered[frame]

        return features_of

    def teacher_features(frame: int) -> np.ndarray:
        return feats.upsampled(frame, store.image_size, sampling)

    scored = [score_rows(store, teacher_features, teacher=teacher, method="teacher", **frames)] if baseline else []
    scored.append(score_rows(store, rendered_features(renderer, method), teacher=teacher, method=method, **frames))
    del renderer
    if fused_path is not None:
        fused = _load_model(fused_path, "fused", device)
        scored.append(score_rows(store, rendered_features(fused, "fused"), teacher=teacher, method="fused", **frames))
    rows = pd.concat([s[0] for s in scored], ignore_index=True)
    segmentation = pd.concat([s[1] for s in scored], ignore_index=True)
    masks = rows[rows["query_kind"] == "mask"]
    by_method = {m: 100.0 * mean_ap(part["ap"]) for m, part in masks.groupby("method")}
    seg = segmentation[segmentation["query_kind"] == "mask"]
    miou = {m: 100.0 * part["iou"].mean() for m, part in seg.groupby("method")}
    methods = [*(["teacher"] if baseline else []), method, *(["fused"] if fused_path is not None else [])]
    summary: dict[str, Any] = {"scene": store.name, "teacher": teacher, "methods": methods}
    for m in methods:  # map_<method>, miou_<method>; gain (n3f) and gain_fused against the teacher
        summary[f"map_{m}"], summary[f"miou_{m}"] = by_method.get(m), miou.get(m)
        if baseline and m != "teacher":
            summary["gain" if m == "n3f" else f"gain_{m}"] = by_method.get(m, np.nan) - by_method.get("teacher", np.nan)
    summary.update({
        "threshold_rule": THRESHOLD_RULE,
        "patch_pixels": patch_side,
        "patches": patches,
        "objects": objects,
        "queries": [int(q) for q in queries],
        "gallery": [int(g) for g in gallery],
        "gallery_novel": np.setdiff1d(gallery, store.split("train")).astype(int).tolist(),
        "rows_with_ap": int(rows["ap"].notna().sum()),
        "rows_skipped": int(rows["ap"].isna().sum()),
        "sampling": sampling,
        "seconds": time.perf_counter() - started,
    })
    return rows, segmentation, summary


METHODS = ("n3f", "fused")
"""Rendered methods a model is scored as: distilled (``n3f``) or fused (``fused``)."""


def _load_model(path: str | Path, method: str, device: str | None):
    """The renderer of ``path``, checked to be the kind of model ``method`` scores."""
    from n3f.device import resolve_device
    from n3f.render.model_io import load_renderer

    renderer = load_renderer(path, resolve_device(device or None))
    if method == "fused" and renderer.fused is None:
        raise N3FInputError(f"{path} holds no fused features; point the fused model at the model.pt 'n3f fuse' wrote.")
    if method == "n3f" and renderer.fused is not None:
        raise N3FInputError(f"{path} is a fused model ('n3f fuse'); score it as method 'fused' (--method fused).")
    return renderer


def write_outputs(rows: pd.DataFrame, segmentation: pd.DataFrame, summary: dict[str, Any], rows_csv: str | Path,
                  segmentation_csv: str | Path, summary_json: str | Path) -> None:
    """Write the rows CSVs, then the summary JSON, atomically (a killed job leaves no finished-looking output)."""
    atomic_write_text(rows_csv, rows.to_csv(index=False))
    atomic_write_text(segmentation_csv, segmentation.to_csv(index=False))
    atomic_write_text(summary_json, json.dumps(summary, indent=2))
