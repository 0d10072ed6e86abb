"""The tasks table is rebuilt from each task's JSON summary and its folder layout."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from n3f.reporting.tables import write_task_tables


def test_task_table_reads_scene_field_teacher_and_scores(tmp_path):
    files = []
    for task, scores in (("amodal", {"mean_iou_n3f": 0.6, "mean_iou_teacher_best": 0.4}),
                         ("segment3d", {"mean_precision": 0.9, "mean_recall": 0.5, "mean_f1": 0.643})):
        path = tmp_path / "s1" / "grid" / "dino" / task / f"{task}.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"task": task, "scene": "s1", **scores}))
        files.append(path)
    long = write_task_tables(files, tmp_path / "tasks.csv", tmp_path / "tasks.md")
    back = pd.read_csv(tmp_path / "tasks.csv")
    assert len(back) == len(long)
    row = back[(back["task"] == "amodal") & (back["score"] == "iou_n3f")].iloc[0]
    assert (row["scene"], row["field"], row["teacher"], row["value"]) == ("s1", "grid", "dino", pytest.approx(0.6))
    md = (tmp_path / "tasks.md").read_text()
    assert "## segment3d" in md and "| s1 | grid | dino | 0.643 | 0.900 | 0.500 |" in md
