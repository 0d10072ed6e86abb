"""2D object retrieval, the paper's protocol (N3F, Sec. 4.1).

Annotated frames are split into disjoint query and gallery sets. For every
object k and query frame q where k is visible, the descriptor is the mean of
the L2-normalised features inside k's mask in q. For every gallery frame g,
all pixels are ranked by cosine distance to the descriptor, labelled positive
inside k's mask in g, and Average Precision is computed from that ranking.
mAP averages over (object, query, gallery) rows. A gallery frame in which the
object is not visible has no AP; its row is kept with ``ap`` empty and a note,
so that any table can be recomputed from the rows.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from n3f.scene.store import SceneStore

ROW_COLUMNS = ["scene", "teacher", "method", "object", "query", "gallery", "ap", "note"]


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """AP of ranking by ``scores`` (higher first) against binary ``labels``.

    Tied scores form one threshold, as in scikit-learn's
    ``average_precision_score``: AP = sum_n (R_n - R_{n-1}) P_n over distinct
    thresholds, so the result does not depend on how ties are ordered.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    n_pos = int(labels.sum())
    if n_pos == 0:
        raise ValueError("average precision is undefined without positives")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    tps = np.cumsum(sorted_labels)[last_of_tie]
    precision = tps / (last_of_tie + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _normalise(features: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(features, axis=-1, keepdims=True)
    return features / np.maximum(norm, 1e-8)


def query_descriptor(features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the L2-normalised features inside ``mask``, itself L2-normalised."""
    return _normalise(_normalise(features)[mask].mean(axis=0))


def cosine_distance_map(features: np.ndarray, descriptor: np.ndarray) -> np.ndarray:
    """(H, W) cosine distance of every pixel's feature to the descriptor."""
    return 1.0 - _normalise(features) @ descriptor


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
            cache[frame] = _normalise(np.asarray(features_for(frame), dtype=np.float32))
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


def mean_ap(rows: pd.DataFrame) -> float:
    """mAP over the rows that have an AP (skipped gallery frames excluded)."""
    return float(rows["ap"].dropna().mean())


def thin(frames: np.ndarray, limit: int | None) -> np.ndarray:
    """At most ``limit`` frames, evenly spread (to bound evaluation cost on long captures)."""
    frames = np.asarray(frames)
    if not limit or len(frames) <= limit:
        return frames
    return frames[np.linspace(0, len(frames) - 1, limit).round().astype(int)]
