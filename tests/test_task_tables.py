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
    assert "## segment3d" in md and "| s1 | grid | dino | n3f | 0.643 | 0.900 | 0.500 |" in md


def test_a_fused_task_folder_is_read_as_method_fused(tmp_path):
    files = []
    for method, f1 in (("n3f", 0.5), ("fused", 0.7)):
        folder = tmp_path / "s1" / "grid" / "dino" / ("fused" if method == "fused" else "")
        path = folder / "segment3d" / "segment3d.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"task": "segment3d", "scene": "s1", "mean_precision": 1.0, "mean_recall": 1.0,
                                    "mean_f1": f1}))
        files.append(path)
    long = write_task_tables(files, tmp_path / "tasks.csv", tmp_path / "tasks.md")
    f1 = long[long["score"] == "f1"].set_index("method")["value"]
    assert f1.to_dict() == {"n3f": 0.5, "fused": 0.7}
    assert set(long["teacher"]) == {"dino"} and set(long["field"]) == {"grid"}
    md = (tmp_path / "tasks.md").read_text()
    assert md.index("| s1 | grid | dino | n3f |") < md.index("| s1 | grid | dino | fused |")
