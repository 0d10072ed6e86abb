"""Retrieval evaluation of one (scene, field, teacher): teacher 2D vs N3F features.

Both feature sources are compared on the same query and gallery frames and at
the same (mask) resolution: the teacher's patch grid is upsampled the way
training samples it, and N3F's features are rendered from each frame's camera.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from n3f.errors import N3FInputError
from n3f.features.store import FeatureStore
from n3f.scene.store import SceneStore
from n3f.tasks.retrieval import mean_ap, retrieval_rows, thin


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
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    renderer = load_renderer(model_path, device)
    objects = retrieval_objects(store)
    queries = thin(store.split("query"), max_queries)
    gallery = thin(store.split("gallery"), max_gallery)
    frames = {"objects": objects, "queries": queries, "gallery": gallery}

    started = time.perf_counter()
    rendered: dict[int, np.ndarray] = {}

    def n3f_features(frame: int) -> np.ndarray:
        if frame not in rendered:
            rendered[frame] = renderer.render_frame(store, frame, chunk=chunk, outputs=("features",))["features"]
            print(f"[eval_retrieval] rendered features of frame {frame} ({len(rendered)})", file=sys.stderr, flush=True)
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
    by_method = {m: 100.0 * mean_ap(part) for m, part in rows.groupby("method")}
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
    """Write both files via temporary names, so a killed job leaves no finished-looking output."""
    for path, write in (
        (Path(rows_csv), lambda p: rows.to_csv(p, index=False)),
        (Path(summary_json), lambda p: p.write_text(json.dumps(summary, indent=2))),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        write(tmp)
        tmp.replace(path)
