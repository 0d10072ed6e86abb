"""Aggregated tables from per-query rows, in the layout of the paper's Table 1.

Tables are always recomputed from the per-query rows each scene's evaluation
writes, never typed in or cached, so a table cannot disagree with its rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from n3f.atomic import atomic_write_text
from n3f.errors import N3FInputError
from n3f.metrics import bootstrap_interval


def load_rows(paths: Iterable[str | Path], what: str = "retrieval") -> pd.DataFrame:
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise N3FInputError(f"{what} rows not found: {path}; run that scene's eval_retrieval first.")
        frames.append(pd.read_csv(path))
    if not frames:
        raise N3FInputError(f"no {what} rows to aggregate; the config lists no evaluated scene.")
    rows = pd.concat(frames, ignore_index=True)
    # rows written before query kinds and splits existed: mask queries, split unknown
    defaults = {"field": "", "query_kind": "mask", "patch": 0, "seen": np.nan}
    for column, value in defaults.items():
        if column not in rows:
            rows[column] = value
    rows["field"] = rows["field"].fillna("")
    return rows


KEYS = ["scene", "field", "teacher", "method"]
UNIT = ["object", "query", "query_kind", "patch"]
"""A query unit: the bootstrap resamples these (its gallery rows move together)."""
SPLITS = ("all", "seen", "novel")


def _splits(rows: pd.DataFrame):
    """(split name, its rows): every gallery frame, those trained on, those held out of training."""
    yield "all", rows
    seen = rows["seen"].astype("boolean")
    yield "seen", rows[seen.fillna(False).astype(bool)]
    yield "novel", rows[(~seen).fillna(False).astype(bool)]


def _summarise(rows: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Per (scene, field, teacher, method, query kind, split): the mean of each column in percent, with a
    95% bootstrap interval over query units, and the counts of rows and query units."""
    out = []
    for key, group in rows.groupby([*KEYS, "query_kind"], sort=True):
        for split, part in _splits(group):
            record = dict(zip([*KEYS, "query_kind"], key), split=split, n=int(len(part)),
                          queries=int(part[UNIT].drop_duplicates().shape[0]) if len(part) else 0)
            units = part[UNIT].astype(str).agg("/".join, axis=1).to_numpy() if len(part) else np.array([])
            for name, column in columns.items():
                values = part[column].to_numpy(np.float64) if len(part) else np.array([])
                mean = 100.0 * float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
                lo, hi = bootstrap_interval(values, units)
                record.update({name: mean, f"{name}_lo": 100.0 * lo, f"{name}_hi": 100.0 * hi})
            out.append(record)
    return pd.DataFrame(out)


def retrieval_map(rows: pd.DataFrame) -> pd.DataFrame:
    """Long form: one row per (scene, field, teacher, method, query kind, split) with its mAP in percent,
    a 95% bootstrap interval over query units, and counts."""
    return _summarise(rows.dropna(subset=["ap"]), {"map": "ap"})


def _cell(row: pd.Series | None, name: str) -> str:
    if row is None or pd.isna(row[name]):
        return "–"
    return f"{row[name]:.1f} ({row[f'{name}_lo']:.1f}–{row[f'{name}_hi']:.1f})"


METHOD_LABELS = {"teacher": "{teacher}", "n3f": "N3F({teacher})", "fused": "Fused({teacher})"}
"""How each method's rows are labelled: the teacher's 2D features, the distilled field, the fused field."""


def method_label(method: str, teacher: str) -> str:
    return METHOD_LABELS.get(method, method).format(teacher=teacher)


def table1_markdown(long: pd.DataFrame, value: str = "map") -> str:
    """Rows: each teacher, then N3F(teacher) and Fused(teacher); columns: scenes, Average, gain over the
    teacher (mask queries, every gallery frame; each cell with its 95% interval over queries)."""
    long = long[(long["query_kind"] == "mask") & (long["split"] == "all")]
    scenes = sorted(long["scene"].unique())
    lines = ["| method | " + " | ".join(scenes) + " | Average | gain |", "|---" * (len(scenes) + 3) + "|"]
    for teacher in sorted(long["teacher"].unique()):
        base = None
        for method in METHOD_LABELS:
            label = method_label(method, teacher)
            part = long[(long["teacher"] == teacher) & (long["method"] == method)]
            if part.empty:
                continue
            by_scene = part.groupby("scene")[value].mean().reindex(scenes)
            cells = [_cell(part[part["scene"] == sc].iloc[0], value) if sc in set(part["scene"]) else "–"
                     for sc in scenes]
            avg = by_scene.mean()
            gain = "" if method == "teacher" or base is None else f"{avg - base:+.1f}"
            if method == "teacher":
                base = avg
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {avg:.1f} | {gain} |")
    return "\n".join(lines) + "\n"


def breakdown_markdown(long: pd.DataFrame, value: str) -> str:
    """Per (scene, field, teacher, method): the value for mask and patch queries on all / seen / novel
    gallery frames, each with its interval, and the number of query units and rows behind it."""
    kinds = [k for k in ("mask", "patch") if k in set(long["query_kind"])]
    header = [f"{k} {s}" for k in kinds for s in SPLITS]
    lines = ["| scene | field | teacher | method | " + " | ".join(header) + " |",
             "|---" * (4 + len(header)) + "|"]
    rank = {m: i for i, m in enumerate(METHOD_LABELS)}
    groups = sorted(long.groupby(KEYS, sort=True), key=lambda kv: (kv[0][:3], rank.get(kv[0][3], 2), kv[0][3]))
    for key, part in groups:
        cells = []
        for k in kinds:
            for s in SPLITS:
                hit = part[(part["query_kind"] == k) & (part["split"] == s)]
                row = hit.iloc[0] if len(hit) and hit.iloc[0]["n"] > 0 else None
                cells.append(_cell(row, value) + (f" n={row['queries']}/{row['n']}" if row is not None else ""))
        scene, field, teacher, method = key
        label = method_label(method, teacher)
        lines.append(f"| {scene} | {field or '–'} | {teacher} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


INTERVAL_NOTE = ("Each value is followed by its 95% bootstrap interval over query units (an object in a query "
                 "frame, queried by its mask or by one patch; 2000 resamples, fixed seed); `n=queries/rows`. "
                 "*seen*: gallery frames the field was trained on; *novel*: frames held out of training (`val`).")


def write_retrieval_tables(row_files: Iterable[str | Path], out_csv: str | Path, out_md: str | Path) -> pd.DataFrame:
    long = retrieval_map(load_rows(row_files))
    atomic_write_text(out_csv, long.to_csv(index=False))
    atomic_write_text(
        out_md,
        "# Object retrieval mAP (%)\n\nPaper protocol (Table 1 layout: mask queries, every gallery frame); "
        "computed from per-query rows.\n\n" + table1_markdown(long)
        + "\n## By query kind and view\n\nA *patch* query is a square of teacher patches inside the object "
        "(the paper's Fig. 7), scored by AP against the object's whole mask.\n\n" + breakdown_markdown(long, "map")
        + "\n" + INTERVAL_NOTE + "\n",
    )
    return long


def segmentation_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Long form of one-view segmentation: mIoU and mAcc (percent, with intervals) per (scene, field, teacher,
    method, query kind, split), the oracle mIoU beside them, and the threshold rule."""
    from n3f.tasks.retrieval import THRESHOLD_RULE

    long = _summarise(rows, {"miou": "iou", "macc": "acc", "oracle_miou": "oracle_iou"})
    long["threshold_rule"] = THRESHOLD_RULE
    return long


def write_segmentation_tables(row_files: Iterable[str | Path], out_csv: str | Path, out_md: str | Path) -> pd.DataFrame:
    from n3f.tasks.retrieval import THRESHOLD_RULE

    long = segmentation_table(load_rows(row_files, "segmentation"))
    atomic_write_text(out_csv, long.to_csv(index=False))
    atomic_write_text(
        out_md,
        "# One-view segmentation (%)\n\nThe SPIn-NeRF / NVOS protocol: from one annotated query view, segment the "
        "object in every gallery view by thresholding the cosine distance to the query's descriptor. The "
        f"threshold comes from the query view alone ({THRESHOLD_RULE}: the distance that best matches the "
        "object's mask there), the same rule for both feature sources.\n\n## mIoU (mask queries, every gallery "
        "frame)\n\n" + table1_markdown(long, "miou")
        + "\n## mIoU by query kind and view\n\n" + breakdown_markdown(long, "miou")
        + "\n## Pixel accuracy (mAcc)\n\n" + breakdown_markdown(long, "macc")
        + "\n## Oracle mIoU (threshold chosen on each target view: uses the answer, for comparison with papers "
        "that report it only)\n\n" + breakdown_markdown(long, "oracle_miou")
        + "\n" + INTERVAL_NOTE + "\n",
    )
    return long


TASK_SCORES = {
    "segment3d": ("mean_precision", "mean_recall", "mean_f1"),
    "edit": ("mean_masked_psnr_edited", "mean_masked_psnr_unedited", "mean_masked_psnr_reconstruction",
             "mean_psnr_edited", "mean_psnr_unedited"),
    "amodal": ("mean_iou_n3f", "mean_iou_teacher_best", "mean_iou_modal_oracle", "mean_occluded_iou_n3f",
               "mean_occluded_iou_teacher_best"),
}


FUSED_FOLDER = "fused"
"""The folder of the fused field inside a distilled one (``results/<scene>/<field>/<teacher>/fused``)."""


def task_source(path: Path) -> tuple[str, str, str]:
    """(field, teacher, method) of a task JSON, from the folder layout
    ``<field>/<teacher>/<task>/<task>.json`` (method ``n3f``) or ``<field>/<teacher>/fused/<task>/<task>.json``."""
    if path.parents[1].name == FUSED_FOLDER:
        return path.parents[3].name, path.parents[2].name, "fused"
    return path.parents[2].name, path.parents[1].name, "n3f"


def write_task_tables(json_files: Iterable[str | Path], out_csv: str | Path, out_md: str | Path) -> pd.DataFrame:
    """Long table (scene, field, teacher, method, task, score, value) from each task's JSON summary; the
    field, teacher and method come from the folder layout (:func:`task_source`)."""
    records = []
    for path in map(Path, json_files):
        summary = json.loads(path.read_text())
        task = summary["task"]
        field, teacher, method = task_source(path)
        for score in TASK_SCORES.get(task, ()):
            records.append({"scene": summary["scene"], "field": field, "teacher": teacher, "method": method,
                            "task": task, "score": score.removeprefix("mean_"), "value": summary.get(score)})
    long = pd.DataFrame(records, columns=["scene", "field", "teacher", "method", "task", "score", "value"])
    atomic_write_text(out_csv, long.to_csv(index=False))
    lines = ["# Scene editing, 3D and amodal segmentation", "",
             "Scored against synthetic ground truth; `teacher_best` is the 2D teacher at its best threshold; "
             "`modal_oracle` the ground-truth visible mask, the best any 2D segmentation can do; "
             "`masked_psnr_reconstruction` the unedited render vs the scene *with* the object, the field's "
             "fidelity there (a ceiling for removal).", ""]
    for task, part in long.groupby("task", sort=True):
        wide = part.pivot_table(index=["scene", "field", "teacher", "method"], columns="score", values="value")
        rank = {m: i for i, m in enumerate(METHOD_LABELS)}
        order = sorted(wide.index, key=lambda k: (k[:3], rank.get(k[3], len(rank)), k[3]))
        lines += [f"## {task}", "", "| scene | field | teacher | method | " + " | ".join(wide.columns) + " |",
                  "|---" * (4 + len(wide.columns)) + "|"]
        for idx in order:
            row = wide.loc[idx]
            lines.append("| " + " | ".join(idx) + " | " + " | ".join(f"{v:.3f}" for v in row.values) + " |")
        lines.append("")
    atomic_write_text(out_md, "\n".join(lines))
    return long
