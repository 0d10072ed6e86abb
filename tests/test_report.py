"""The per-scene report and the tables are regenerated from what a real (tiny) run wrote.

One tiny synthetic scene is trained for a few steps, then retrieval and the
three tasks run for real and write their per-query rows and JSON summaries.
The report must quote exactly those numbers (recomputed here from the rows,
not copied from the report's own inputs), link figures that exist, and the
tables must agree with the rows they are rebuilt from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from n3f.errors import N3FInputError
from n3f.scene import SceneStore
from n3f.reporting.report import Evaluated, write_scene_report
from n3f.reporting.tables import (
    TASK_SCORES, retrieval_map, write_retrieval_tables, write_segmentation_tables, write_task_tables,
)
from tests.test_tasks import make_tiny, train_tiny

torch.set_num_threads(1)
FIELD, TEACHER = "grid", "masks"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Path]:
    """results/<scene>/<field>/<teacher>/ as the pipeline lays it out, filled by the real stages."""
    from n3f.tasks.amodal import evaluate_amodal
    from n3f.tasks.common import load_inputs
    from n3f.tasks.editing import evaluate_editing
    from n3f.tasks.retrieval import evaluate_retrieval, write_outputs
    from n3f.tasks.segment3d import evaluate_segment3d
    from n3f.tasks.settings import SelectionSettings

    root = tmp_path_factory.mktemp("report")
    tiny = make_tiny(root)
    model = train_tiny(tiny["scene"], tiny["features"], root / "train")
    folder = root / "tiny_tasks" / FIELD / TEACHER
    folder.mkdir(parents=True)
    for name in ("model.pt", "metrics.json"):
        (folder / name).write_bytes((model.parent / name).read_bytes())
    rows, segmentation, summary = evaluate_retrieval(tiny["scene"], tiny["features"], folder / "model.pt",
                                                     teacher=TEACHER)
    write_outputs(rows, segmentation, summary, folder / "retrieval_rows.csv", folder / "segmentation_rows.csv",
                  folder / "retrieval.json")
    objects = SceneStore(tiny["scene"]).object_names[:2]
    inputs = load_inputs(tiny["scene"], tiny["features"], folder / "model.pt")
    selection = SelectionSettings(objects=objects)
    evaluate_segment3d(inputs, folder / "segment3d", selection=selection, max_frames=1)
    evaluate_editing(inputs, folder / "edit", selection=selection, max_frames=1)
    evaluate_amodal(inputs, folder / "amodal", selection=selection, max_frames=1)
    return {**tiny, "folder": folder, "report": root / "tiny_tasks" / "report.md"}


def test_report_quotes_the_scores_the_stages_wrote(run):
    ev = Evaluated(FIELD, TEACHER, run["folder"], run["features"])
    md_path = write_scene_report(run["scene"], [ev], run["report"])
    md = md_path.read_text()
    assert md.startswith("# Scene `tiny_tasks`")
    assert not list(md_path.parent.glob("*.partial")) and not list(md_path.parent.rglob(".*.tmp-*"))

    # retrieval: the mAP row recomputed from the per-query rows, not read from retrieval.json
    rows = pd.read_csv(run["folder"] / "retrieval_rows.csv")
    long = retrieval_map(rows)
    maps = long[(long["query_kind"] == "mask") & (long["split"] == "all")].set_index("method")["map"]
    metrics = json.loads((run["folder"] / "metrics.json").read_text())
    line = next(li for li in md.splitlines() if li.startswith(f"| {FIELD} | {TEACHER} |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert float(cells[2]) == pytest.approx(maps["teacher"], abs=0.051)
    assert float(cells[3]) == pytest.approx(maps["n3f"], abs=0.051)
    assert float(cells[4]) == pytest.approx(maps["n3f"] - maps["teacher"], abs=0.11)
    assert cells[5] == ("–" if "fused" not in maps else f"{maps['fused']:.1f}")  # fused mAP: this run did not fuse
    assert float(cells[6]) == pytest.approx(metrics["psnr"], abs=0.006)

    # every task that ran has its line, with the numbers of its JSON (themselves means of per-frame rows)
    for task, keys in TASK_SCORES.items():
        summary = json.loads((run["folder"] / task / f"{task}.json").read_text())
        task_line = next(li for li in md.splitlines() if li.startswith(f"**{task}** ({FIELD} / {TEACHER})"))
        quoted = dict(re.findall(r"(\w+) (-?[\d.]+|nan)", task_line.split(":", 1)[1]))
        for key in keys:
            if summary.get(key) is None:
                assert key.removeprefix("mean_") not in quoted
            else:
                assert float(quoted[key.removeprefix("mean_")]) == pytest.approx(summary[key], abs=5e-4)
        head = keys[0].removeprefix("mean_")
        per_object = [r[head] for r in summary["objects"] if r.get(head) is not None]
        if summary.get(keys[0]) is not None:
            assert summary[keys[0]] == pytest.approx(sum(per_object) / len(per_object))

    # every picture the report links exists and is a PNG
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert any("retrieval" in link for link in links) and any(link.startswith("grid/") for link in links)
    for link in links:
        path = md_path.parent / link
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link


def test_tables_regenerate_from_the_rows_and_summaries(run, tmp_path):
    folder = run["folder"]
    long = write_retrieval_tables([folder / "retrieval_rows.csv"], tmp_path / "map.csv", tmp_path / "map.md")
    summary = json.loads((folder / "retrieval.json").read_text())
    by_method = long[(long["query_kind"] == "mask") & (long["split"] == "all")].set_index("method")["map"]
    assert by_method["teacher"] == pytest.approx(summary["map_teacher"])
    assert by_method["n3f"] == pytest.approx(summary["map_n3f"])
    assert f"N3F({TEACHER})" in (tmp_path / "map.md").read_text()
    seg = write_segmentation_tables([folder / "segmentation_rows.csv"], tmp_path / "seg.csv", tmp_path / "seg.md")
    miou = seg[(seg["query_kind"] == "mask") & (seg["split"] == "all")].set_index("method")["miou"]
    assert miou["teacher"] == pytest.approx(summary["miou_teacher"]) and miou["n3f"] == pytest.approx(summary["miou_n3f"])
    assert set(seg["query_kind"]) == {"mask", "patch"} and "Oracle mIoU" in (tmp_path / "seg.md").read_text()

    jsons = [folder / t / f"{t}.json" for t in TASK_SCORES]
    tasks = write_task_tables(jsons, tmp_path / "tasks.csv", tmp_path / "tasks.md")
    assert set(tasks["task"]) == set(TASK_SCORES) and (tasks["field"] == FIELD).all() and (tasks["teacher"] == TEACHER).all()
    edit = json.loads((folder / "edit" / "edit.json").read_text())
    row = tasks[(tasks["task"] == "edit") & (tasks["score"] == "masked_psnr_edited")].iloc[0]
    assert row["value"] == pytest.approx(edit["mean_masked_psnr_edited"])


def test_report_names_the_missing_stage(run, tmp_path):
    empty = tmp_path / "tiny_tasks" / FIELD / TEACHER
    empty.mkdir(parents=True)
    with pytest.raises(N3FInputError, match="retrieval.json"):
        write_scene_report(run["scene"], [Evaluated(FIELD, TEACHER, empty, run["features"])], tmp_path / "report.md")
