"""Aggregated tables from per-query rows, in the layout of the paper's Table 1.

Tables are always recomputed from the per-query rows each scene's evaluation
writes, never typed in or cached, so a table cannot disagree with its rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pandas as pd

from n3f.atomic import atomic_write_text
from n3f.errors import N3FInputError


def load_rows(paths: Iterable[str | Path]) -> pd.DataFrame:
    frames = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise N3FInputError(f"retrieval rows not found: {path}; run that scene's eval_retrieval first.")
        frames.append(pd.read_csv(path))
    if not frames:
        raise N3FInputError("no retrieval rows to aggregate; the config lists no evaluated scene.")
    return pd.concat(frames, ignore_index=True)


def retrieval_map(rows: pd.DataFrame) -> pd.DataFrame:
    """Long form: one row per (scene, teacher, method) with its mAP in percent."""
    valid = rows.dropna(subset=["ap"])
    table = (
        valid.groupby(["scene", "teacher", "method"], sort=True)["ap"]
        .agg(map=lambda s: 100.0 * s.mean(), n="count")
        .reset_index()
    )
    return table


def table1_markdown(long: pd.DataFrame) -> str:
    """Rows: each teacher, then N3F(teacher); columns: scenes, Average, gain over the teacher."""
    scenes = sorted(long["scene"].unique())
    lines = ["| method | " + " | ".join(scenes) + " | Average | gain |", "|---" * (len(scenes) + 3) + "|"]
    wide = long.pivot_table(index=["teacher", "method"], columns="scene", values="map")
    for teacher in sorted(long["teacher"].unique()):
        base = None
        for method, label in (("teacher", teacher), ("n3f", f"N3F({teacher})")):
            if (teacher, method) not in wide.index:
                continue
            values = wide.loc[(teacher, method)].reindex(scenes)
            avg = values.mean()
            gain = "" if method == "teacher" or base is None else f"{avg - base:+.1f}"
            if method == "teacher":
                base = avg
            cells = ["–" if pd.isna(v) else f"{v:.1f}" for v in values]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {avg:.1f} | {gain} |")
    return "\n".join(lines) + "\n"


def write_retrieval_tables(row_files: Iterable[str | Path], out_csv: str | Path, out_md: str | Path) -> pd.DataFrame:
    long = retrieval_map(load_rows(row_files))
    atomic_write_text(out_csv, long.to_csv(index=False))
    atomic_write_text(
        out_md,
        "# Object retrieval mAP (%)\n\nPaper protocol (Table 1 layout); computed from per-query rows.\n\n"
        + table1_markdown(long),
    )
    return long


TASK_SCORES = {
    "segment3d": ("mean_precision", "mean_recall", "mean_f1"),
    "edit": ("mean_masked_psnr_edited", "mean_masked_psnr_unedited", "mean_masked_psnr_reconstruction",
             "mean_psnr_edited", "mean_psnr_unedited"),
    "amodal": ("mean_iou_n3f", "mean_iou_teacher_best", "mean_iou_modal_oracle", "mean_occluded_iou_n3f",
               "mean_occluded_iou_teacher_best"),
}


def write_task_tables(json_files: Iterable[str | Path], out_csv: str | Path, out_md: str | Path) -> pd.DataFrame:
    """Long table (scene, field, teacher, task, score, value) from each task's JSON summary.

    The field and teacher are read from the folder layout
    ``results/<scene>/<field>/<teacher>/<task>/<task>.json``.
    """
    records = []
    for path in map(Path, json_files):
        summary = json.loads(path.read_text())
        task = summary["task"]
        field, teacher = path.parents[2].name, path.parents[1].name
        for score in TASK_SCORES.get(task, ()):
            records.append({"scene": summary["scene"], "field": field, "teacher": teacher, "task": task,
                            "score": score.removeprefix("mean_"), "value": summary.get(score)})
    long = pd.DataFrame(records, columns=["scene", "field", "teacher", "task", "score", "value"])
    atomic_write_text(out_csv, long.to_csv(index=False))
    lines = ["# Scene editing, 3D and amodal segmentation", "",
             "Scored against synthetic ground truth; `teacher_best` is the 2D teacher at its best threshold; "
             "`modal_oracle` the ground-truth visible mask, the best any 2D segmentation can do; "
             "`masked_psnr_reconstruction` the unedited render vs the scene *with* the object, the field's "
             "fidelity there (a ceiling for removal).", ""]
    for task, part in long.groupby("task", sort=True):
        wide = part.pivot_table(index=["scene", "field", "teacher"], columns="score", values="value")
        lines += [f"## {task}", "", "| scene | field | teacher | " + " | ".join(wide.columns) + " |",
                  "|---" * (3 + len(wide.columns)) + "|"]
        for idx, row in wide.iterrows():
            lines.append("| " + " | ".join(idx) + " | " + " | ".join(f"{v:.3f}" for v in row.values) + " |")
        lines.append("")
    atomic_write_text(out_md, "\n".join(lines))
    return long
