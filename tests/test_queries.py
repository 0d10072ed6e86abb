"""Queries a user draws on their own scene: config checks, every product, bad inputs, and the planned jobs.

The products run on the tiny synthetic scene of test_tasks with a briefly
trained field, but with ``ground_truth=False`` (nothing of the synthetic
scene's geometry is read); its analytic geometry is used only afterwards, to
check that the 3D segment is enriched in the queried object.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from n3f.errors import N3FInputError
from n3f.scene import SceneStore
from n3f.tasks.query_spec import QueryProducts, parse_queries, parse_query, region_mask, resolve_frame
from tests.test_tasks import make_tiny, train_tiny
from tests.test_workflow import _snakemake


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    tiny = make_tiny(tmp_path_factory.mktemp("queries"))
    tiny["model"] = train_tiny(tiny["scene"], tiny["features"], tiny["root"], steps=200)
    return tiny


def test_query_entries_are_checked_with_their_key():
    ok = parse_queries("scenes[s].queries", [{"name": "cape", "frame": "IMG_1.jpg", "mask": "q/cape.png"},
                                             {"name": "stand", "frame": 3, "box": [1, 2, 30, 40]},
                                             {"name": "knob", "frame": 0, "point": [5, 6], "radius": 3}])
    assert [q.kind for q in ok] == ["mask", "box", "point"] and ok[2].radius == 3
    bad = {
        "two regions": ({"name": "a", "frame": 0, "box": [0, 0, 2, 2], "point": [1, 1]}, r"exactly one of mask"),
        "no region": ({"name": "a", "frame": 0}, r"exactly one of mask"),
        "bad name": ({"name": "my cup", "frame": 0, "point": [1, 1]}, r"\.name: 'my cup'"),
        "flipped box": ({"name": "a", "frame": 0, "box": [5, 0, 2, 2]}, r"\.box: .* x0 < x1"),
        "short box": ({"name": "a", "frame": 0, "box": [5, 0, 2]}, r"\.box: .*4 numbers"),
        "negative frame": ({"name": "a", "frame": -1, "point": [1, 1]}, r"\.frame: -1"),
        "radius of a box": ({"name": "a", "frame": 0, "box": [0, 0, 2, 2], "radius": 4}, r"only a point"),
        "typo": ({"name": "a", "frame": 0, "point": [1, 1], "radious": 4}, r"unknown key\(s\) \['radious'\]"),
    }
    for case, (entry, message) in bad.items():
        with pytest.raises(N3FInputError, match=message):
            parse_query("scenes[s].queries[0]", entry)
    with pytest.raises(N3FInputError, match=r"query names \['a'\] repeat"):
        parse_queries("q", [{"name": "a", "frame": 0, "point": [1, 1]}, {"name": "a", "frame": 1, "point": [1, 1]}])


def test_regions_and_frames_against_the_scene(tmp_path):
    names = ["IMG_0001.JPG", "IMG_0002.JPG"]
    spec = parse_query("q", {"name": "a", "frame": "IMG_0002", "box": [2, 1, 6, 4]})
    assert resolve_frame("q", spec, names) == 1
    m = region_mask("q", spec, (10, 12))
    assert m.sum() == 4 * 3 and m[1:4, 2:6].all()
    point = region_mask("q", parse_query("q", {"name": "a", "frame": 0, "point": [5.5, 5.5], "radius": 2}), (10, 12))
    assert point[5, 5] and not point[0, 0] and 9 <= point.sum() <= 16
    cases = [
        ({"name": "a", "frame": "IMG_9.JPG", "point": [1, 1]}, r"q\.frame: 'IMG_9\.JPG' is not a frame"),
        ({"name": "a", "frame": 5, "point": [1, 1]}, r"q\.frame: 5 is not a frame of this scene \(it has 2"),
        ({"name": "a", "frame": 0, "box": [0, 0, 13, 4]}, r"q\.box: .* lies outside the 12x10 frame"),
        ({"name": "a", "frame": 0, "point": [12, 3]}, r"q\.point: .* lies outside the 12x10 frame"),
        ({"name": "a", "frame": 0, "mask": str(tmp_path / "none.png")}, r"q\.mask: .*none\.png not found"),
    ]
    for entry, message in cases:
        with pytest.raises(N3FInputError, match=message):
            s = parse_query("q", entry)
            region_mask("q", s, (10, 12)) if resolve_frame("q", s, names) is not None else None


def test_query_products(trained, tmp_path):
    """Every product is written and well formed; the 3D segment is enriched in the queried object."""
    import imageio.v2 as imageio
    from plyfile import PlyData

    from n3f.tasks.common import load_inputs, object_primitive, to_world, write_png
    from n3f.tasks.queries import run_query
    from n3f.tasks.selection import surface_points

    st = SceneStore(trained["scene"])
    obj, frame = "orange_cylinder_2", 3
    k = st.object_names.index(obj)
    mask_file = tmp_path / "query.png"
    write_png(mask_file, st.masks(frame, "modal")[k].astype(np.uint8) * 255)
    spec = parse_query("scenes[tiny].queries[cyl]", {"name": "cyl", "frame": frame, "mask": str(mask_file)})
    inputs = load_inputs(trained["scene"], trained["features"], trained["model"], "cpu", ground_truth=False)
    products = QueryProducts(frames=2, novel=1, video_frames=4)
    out = trained["model"].parent / "queries" / "cyl"  # where the pipeline puts it: beside the distilled field
    summary = run_query(inputs, spec, out, products=products)

    assert json.loads((out / "query.json").read_text())["query"]["name"] == "cyl"
    views = [v["view"] for v in summary["views"]]
    assert len(views) == 4 and sum(not v["stored"] for v in summary["views"]) == 1
    for folder in ("segment2d", "masks", "amodal", "removal"):
        assert sorted(p.stem for p in (out / folder).glob("*.png")) == sorted(views), folder
    h, w = st.image_size
    assert imageio.imread(out / "masks" / f"{views[0]}.png").shape == (h, w)
    with imageio.get_reader(out / "removal.mp4") as reader:
        frames = [f for f in reader]
    assert len(frames) == 4 and frames[0].shape[1] >= 2 * (w // 2) - 2
    ply = PlyData.read(str(out / "segment3d.ply"))["vertex"]
    assert len(ply) == summary["segment3d"]["points"] > 0
    # enrichment: the selected points lie in the object far more often than the frames' surface points do
    world = np.stack([ply["x"], ply["y"], ply["z"]], 1).astype(np.float64)
    inside = object_primitive(st, obj, frame).contains
    cloud = surface_points(inputs, [inputs.view(v["frame"]) for v in summary["views"] if v["stored"]])
    base = inside(to_world(st, cloud.points)).mean()
    # (200 steps on 32x24 frames place surfaces roughly: 13% of the selection vs 0.9% of all surface points
    # fall strictly inside the cylinder when this was written)
    assert inside(world).mean() > max(0.05, 5 * base), (inside(world).mean(), base)
    # the removal changes the rendered image where the object is, the amodal opacity is there
    assert summary["views"][0]["removed_change"] > 0.01 and summary["views"][0]["amodal_pixels"] > 0

    # the scene's report (a scene without retrieval scores) shows the query and links files that exist
    from n3f.reporting.report import Evaluated, write_scene_report

    report = write_scene_report(trained["scene"], [Evaluated("grid", "mask", out.parent.parent, trained["features"])],
                                tmp_path / "report" / "report.md", retrieval=False)
    text = report.read_text()
    assert "## Queries (grid / mask)" in text and "| cyl | " in text and "## Object retrieval" not in text
    links = [line[line.index("(") + 1 : -1] for line in text.splitlines() if line.startswith("![")]
    assert links and all((report.parent / link).is_file() for link in links)

    # a rerun starts from an empty product set: nothing of an earlier run with other views survives
    from n3f.tasks.queries import clear_products

    (out / "segment2d" / "frame_9999.png").write_bytes(b"stale")
    clear_products(out)
    assert not (out / "query.json").exists() and not (out / "segment2d").exists()

    # a box on a frame that is not there: one error naming the query, nothing written
    bad = parse_query("scenes[tiny].queries[box]", {"name": "box", "frame": 99, "box": [0, 0, 4, 4]})
    with pytest.raises(N3FInputError, match=r"scenes\[tiny\]\.queries\[box\]\.frame: 99"):
        run_query(inputs, bad, tmp_path / "box", where="scenes[tiny].queries[box]", products=products)
    assert not (tmp_path / "box").exists()


def test_queries_plan_one_job_each(tmp_path):
    cfg = tmp_path / "q.yaml"
    cfg.write_text(
        "scenes:\n  - name: toy\n    source: synthetic\n    options: {n_frames: 8, width: 32, height: 24}\n"
        "    queries:\n      - {name: cup, frame: 2, box: [1, 1, 10, 10]}\n      - {name: mug, frame: 3, point: [5, 5]}\n"
        f"results: {tmp_path}/results\nintermediate: {tmp_path}/intermediate\n"
    )
    result = _snakemake("-n", "--configfile", str(cfg))
    assert result.returncode == 0, result.stdout + result.stderr
    for q in ("cup", "mug"):
        assert f"{tmp_path}/results/toy/grid/dinov2_vits14_imgfocus/queries/{q}/query.json" in result.stdout
    cfg.write_text(cfg.read_text().replace("box: [1, 1, 10, 10]", "box: [10, 1, 1, 10]"))
    result = _snakemake("-n", "--configfile", str(cfg))
    assert result.returncode != 0 and "scenes[toy].queries[0].box" in result.stdout + result.stderr


def test_annotation_queries_use_the_objects_own_mask(trained):
    """An ``annotation`` query's region is the object's imported mask; without a frame, the first query-split
    frame that shows it; bad names and frames are refused with the key."""
    from n3f.tasks.query_spec import annotation_queries, annotation_region, query_name

    st = SceneStore(trained["scene"])
    obj = st.object_names[1]
    spec = parse_query("q", {"name": "o", "annotation": obj})
    frame, mask = annotation_region("q", spec, st)
    k = st.object_names.index(obj)
    visible = [int(f) for f in st.split("query") if st.masks(int(f))[k].any()]
    assert frame == visible[0] and np.array_equal(mask, st.masks(frame)[k])
    later = visible[-1]
    frame, mask = annotation_region("q", parse_query("q", {"name": "o", "annotation": obj, "frame": later}), st)
    assert frame == later and np.array_equal(mask, st.masks(later)[k])
    with pytest.raises(N3FInputError, match=r"q\.annotation: 'teapot' is not an object of this scene; .*"
                                            + obj):
        annotation_region("q", parse_query("q", {"name": "o", "annotation": "teapot"}), st)
    absent = next((int(f) for f in st.annotated_frames if not st.masks(int(f))[k].any()), None)
    if absent is not None:
        with pytest.raises(N3FInputError, match=rf"not annotated in frame {absent}"):
            annotation_region("q", parse_query("q", {"name": "o", "annotation": obj, "frame": absent}), st)
    with pytest.raises(N3FInputError, match=r"q\.frame: missing; a box query"):
        parse_query("q", {"name": "o", "box": [0, 0, 2, 2]})
    assert query_name("my cup/1") == "my_cup_1" and query_name("_x") == "object__x"
    assert annotation_queries(["cup", "tea pot"]) == [{"name": "cup", "annotation": "cup"},
                                                       {"name": "tea_pot", "annotation": "tea pot"}]


def test_a_scene_with_annotations_gets_one_query_per_object(tmp_path):
    """Without ``queries:``, every object imported with a real scene gets its query job once the scene is
    imported (a checkpoint); ``queries: []`` asks for none."""
    from tests.cluster_support import run_snakemake
    from tests.test_annotations import write_folders
    from tests.test_bad_inputs_import import write_llff

    root = write_llff(tmp_path / "cap")
    write_folders(root / "objects", [f"img_{i:02d}" for i in range(5)], 32, 24)
    body = (f"scenes:\n  - name: cap\n    source: llff\n    path: {root}\n    options: {{masks: objects}}\n"
            f"results: {tmp_path}/results\nintermediate: {tmp_path}/intermediate\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(body)
    store = f"{tmp_path}/results/cap/scene.zarr"
    imported = run_snakemake(tmp_path, cfg, "--cores", "1", store)
    assert imported.returncode == 0, imported.stdout[-2000:] + imported.stderr[-3000:]
    plan = run_snakemake(tmp_path, cfg, "-n")
    assert plan.returncode == 0, plan.stdout[-2000:] + plan.stderr[-3000:]
    for obj in ("cup", "box", "ball"):
        assert f"{tmp_path}/results/cap/grid/dinov2_vits14_imgfocus/queries/{obj}/query.json" in plan.stdout, obj
    cfg.write_text(body.replace("    options: {masks: objects}\n", "    options: {masks: objects}\n    queries: []\n"))
    none = run_snakemake(tmp_path, cfg, "-n")
    assert none.returncode == 0 and "/queries/" not in none.stdout, none.stdout[-2000:]
