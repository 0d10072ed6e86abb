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
from n3f.tasks.descriptors import cosine_distance_map, normalise, query_descriptor

log = logging.getLogger(__name__)

ROW_COLUMNS = ["scene", "teacher", "method", "object", "query", "gallery", "ap", "note"]


def retrieval_rows(
    store: SceneStore,
    features_for: Callable[[int], np.ndarray],
    *,
    teacher: str,
    method: str,
    mask_kind: str = "modal",
    objects: list[str] | None = None,
    queries: np.ndarray | None = None,
    gallery: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per (object, query, gallery) AP rows for one scene and one feature source.

    ``features_for(frame)`` returns (H, W, C) features at mask resolution; it is
    called once per query and gallery frame. ``objects`` restricts the objects
    scored (default: all annotated objects); ``queries``/``gallery`` default
    to the store's splits.
    """
    queries = store.split("query") if queries is None else queries
    gallery = store.split("gallery") if gallery is None else gallery
    cache: dict[int, np.ndarray] = {}

    def feats(frame: int) -> np.ndarray:
        if frame not in cache:
            cache[frame] = normalise(np.asarray(features_for(frame), dtype=np.float32))
        return cache[frame]

    rows = []
    for k, obj in enumerate(store.object_names):
        if objects is not None and obj not in objects:
            continue
        for q in queries:
            q_mask = store.masks(int(q), mask_kind)[k]
            if not q_mask.any():
                continue  # not visible in the query: no descriptor, no row
            desc = query_descriptor(feats(int(q)), q_mask)
            for g in gallery:
                g_mask = store.masks(int(g), mask_kind)[k]
                row = {"scene": store.name, "teacher": teacher, "method": method, "object": obj,
                       "query": int(q), "gallery": int(g), "ap": np.nan, "note": ""}
                if not g_mask.any():
                    row["note"] = "object not visible in gallery frame; no AP"
                else:
                    row["ap"] = average_precision(-cosine_distance_map(feats(int(g)), desc), g_mask)
                rows.append(row)
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


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
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-query rows for both methods and a summary (mAP per method, gain)."""
    from n3f.device import resolve_device
    from n3f.features.store import FeatureStore
    from n3f.render.model_io import load_renderer

    store = SceneStore(scene_path)
    feats = FeatureStore(features_path)
    if feats.n_frames != store.n_frames:
        raise N3FInputError(
            f"{features_path} has {feats.n_frames} frames but {scene_path} has {store.n_frames}; "
            "the feature store is stale: rerun teacher_features for this scene."
        )
    if len(store.split("query")) == 0 or len(store.split("gallery")) == 0:
        raise N3FInputError(f"{scene_path} has no annotated query/gallery frames; retrieval needs object masks.")
    renderer = load_renderer(model_path, resolve_device(device or None))
    objects = retrieval_objects(store)
    queries = thin(store.split("query"), max_queries)
    gallery = thin(store.split("gallery"), max_gallery)
    frames = {"objects": objects, "queries": queries, "gallery": gallery}

    started = time.perf_counter()
    rendered: dict[int, np.ndarray] = {}

    def n3f_features(frame: int) -> np.ndarray:
        if frame not in rendered:
            rendered[frame] = renderer.render_frame(store, frame, chunk=chunk, outputs=("features",))["features"]
            log.info("rendered features of frame %d (%d)", frame, len(rendered))
        return rendered[frame]

    def teacher_features(frame: int) -> np.ndarray:
        return feats.upsampled(frame, store.image_size, sampling)

    rows = pd.concat(
        [
            retrieval_rows(store, teacher_features, teacher=teacher, method="teacher", **frames),
            retrieval_rows(store, n3f_features, teacher=teacher, method="n3f", **frames),
        ],
        ignore_index=True,
    )
    by_method = {m: 100.0 * mean_ap(part["ap"]) for m, part in rows.groupby("method")}
    summary = {
        "scene": store.name,
        "teacher": teacher,
        "map_teacher": by_method.get("teacher"),
        "map_n3f": by_method.get("n3f"),
        "gain": by_method.get("n3f", np.nan) - by_method.get("teacher", np.nan),
        "objects": objects,
        "queries": [int(q) for q in queries],
        "gallery": [int(g) for g in gallery],
        "rows_with_ap": int(rows["ap"].notna().sum()),
        "rows_skipped": int(rows["ap"].isna().sum()),
        "sampling": sampling,
        "seconds": time.perf_counter() - started,
    }
    return rows, summary


def write_outputs(rows: pd.DataFrame, summary: dict[str, Any], rows_csv: str | Path, summary_json: str | Path) -> None:
    """Write the rows CSV and the summary JSON atomically (a killed job leaves no finished-looking output)."""
    atomic_write_text(rows_csv, rows.to_csv(index=False))
    atomic_write_text(summary_json, json.dumps(summary, indent=2))
