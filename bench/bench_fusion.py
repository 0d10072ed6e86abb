"""Teacher / fused / distilled / fused-then-distilled, side by side on the same scenes and protocol.

For each scene folder (a ``results/<scene>`` of a finished run: ``scene.zarr``, the teacher's
feature store and the ``<field>/rgb`` model), in one run, one job at a time:

* ``fuse``: ``n3f fuse`` on the RGB model (training-free);
* ``distilled``: ``n3f distill`` with the default schedule;
* ``fused+distill``: ``n3f distill`` with ``feature_init`` = the fused model and ``--fraction`` of
  the steps (the feature branch is first fitted to the fused volume at 3D points);
* then ``n3f eval-retrieval`` scores the teacher and the three fields on the same query and
  gallery frames (``--max-queries`` / ``--max-gallery``, or the scene's own after its field:
  ``FOLDER:FIELD:QUERIES:GALLERY``);
* on synthetic scenes, the three tasks (``n3f eval-amodal``, ``eval-edit``, ``eval-segment3d``,
  their default settings) on each of the three fields: amodal IoU (and the 2D teacher's best),
  masked PSNR of object removal, 3D segmentation F1.

Each job's wall time, CPU time and peak memory come from ``bench/measure.py``. ``--reuse-distilled``
takes an already distilled model instead of training one (a real capture's distillation is long):
its training time is then read from its ``metrics.json`` and marked so.

Writes ``bench/results/fusion.json`` and ``fusion.md``.

    python bench/bench_fusion.py --scene /tmp/n3f-bench-pipeline/results/toy_static:grid \\
        --scene /tmp/n3f-bench-pipeline/results/toy_kitchen:neuraldiff
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import describe, machine, n3f_command, run_measured, write_results  # noqa: E402

TEACHER = "dinov2_vits14_imgfocus"


def distill_steps(field: str) -> int:
    from n3f.train.config import GRID_SCHEDULES, FIELD_DEFAULTS

    return int(FIELD_DEFAULTS[field].get("distill_steps", GRID_SCHEDULES["default"][2]))


TASKS = {"amodal": ("mean_iou_n3f", "mean_iou_teacher_best"), "edit": ("mean_masked_psnr_edited",),
         "segment3d": ("mean_f1",)}
"""Each task's headline scores (its JSON summary's keys)."""


def task_scores(scene: Path, features: Path, model: Path, out: Path, env: dict[str, str]) -> tuple[dict, dict]:
    """The three tasks on one field: {task: {score: value}} and {task: job measurement}."""
    scores, jobs = {}, {}
    out.mkdir(parents=True, exist_ok=True)
    for task, keys in TASKS.items():
        folder = out / task
        jobs[task] = run_measured(n3f_command(f"eval-{task}", "--scene", str(scene), "--features", str(features),
                                              "--model", str(model), "--out", str(folder)), out / f"{task}.log", env)
        summary = json.loads((folder / f"{task}.json").read_text())
        scores[task] = {k.removeprefix("mean_"): summary.get(k) for k in keys}
    return scores, jobs


def bench_scene(folder: Path, field: str, work: Path, args: argparse.Namespace, env: dict[str, str],
                limits: tuple[int, int]) -> dict:
    scene, features = folder / "scene.zarr", folder / "features" / f"{TEACHER}.zarr"
    rgb = folder / field / "rgb" / "model.pt"
    name = folder.name
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    threads = json.dumps({"threads": args.threads, "progress": False})
    jobs: dict[str, dict] = {}
    jobs["fused"] = run_measured(n3f_command("fuse", "--scene", str(scene), "--features", str(features), "--init", str(rgb),
                                             "--out", str(out / "fused"), "--config-json", json.dumps({"threads": args.threads})),
                                 out / "fuse.log", env)
    steps = distill_steps(field)
    if args.reuse_distilled:
        distilled = folder / field / TEACHER / "model.pt"
        m = json.loads((distilled.parent / "metrics.json").read_text())
        jobs["distilled"] = {"wall_s": m["train_time_s"], "cpu_s": None, "peak_rss_mb": None, "reused": True}
    else:
        distilled = out / "distilled" / "model.pt"
        jobs["distilled"] = run_measured(n3f_command("distill", "--scene", str(scene), "--features", str(features), "--init",
                                                     str(rgb), "--out", str(distilled.parent), "--steps", str(steps),
                                                     "--config-json", threads), out / "distill.log", env)
    short = max(1, round(steps * args.fraction))
    init = json.dumps({"threads": args.threads, "progress": False, "feature_init": str(out / "fused" / "model.pt"),
                       "freeze_steps": min(250, short // 4)})
    jobs["fused+distill"] = run_measured(n3f_command("distill", "--scene", str(scene), "--features", str(features), "--init",
                                                     str(rgb), "--out", str(out / "fused_distilled"), "--steps", str(short),
                                                     "--config-json", init), out / "fused_distill.log", env)
    scores = {}
    for method, model in (("distilled", distilled), ("fused+distill", out / "fused_distilled" / "model.pt")):
        limits_args = ["--max-queries", str(limits[0]), "--max-gallery", str(limits[1])]
        extra = ["--fused", str(out / "fused" / "model.pt")] if method == "distilled" else []
        job = run_measured(n3f_command("eval-retrieval", "--scene", str(scene), "--features", str(features), "--model",
                                       str(model), *extra, "--teacher", TEACHER, *limits_args, "--rows", str(out / f"{method}_rows.csv"),
                                       "--segmentation", str(out / f"{method}_seg.csv"), "--summary",
                                       str(out / f"{method}.json")), out / f"eval_{method}.log", env)
        s = json.loads((out / f"{method}.json").read_text())
        if method == "distilled":
            scores["teacher"] = (s["map_teacher"], s["miou_teacher"])
            scores["fused"] = (s["map_fused"], s["miou_fused"])
            scores["distilled"] = (s["map_n3f"], s["miou_n3f"])
        else:
            scores["fused+distill"] = (s["map_n3f"], s["miou_n3f"])
        jobs[f"eval {method}"] = job
    tasks, task_jobs = {}, {}
    from n3f.scene import SceneStore

    if "synthetic" in SceneStore(scene).attrs:  # analytic ground truth: the tasks can be scored
        for method, model in (("fused", out / "fused" / "model.pt"), ("distilled", distilled),
                              ("fused+distill", out / "fused_distilled" / "model.pt")):
            tasks[method], task_jobs[method] = task_scores(scene, features, model, out / f"tasks_{method}", env)
    variants = []
    for spec in (args.variants if args.variants_scene in (None, name) else []):
        stride, resolution = (int(v) for v in spec.split(":"))
        folder_v = out / f"fused_s{stride}_r{resolution}"
        job = run_measured(n3f_command("fuse", "--scene", str(scene), "--features", str(features), "--init", str(rgb),
                                       "--out", str(folder_v), "--config-json",
                                       json.dumps({"threads": args.threads, "stride": stride, "resolution": resolution})),
                           out / f"fuse_{folder_v.name}.log", env)
        run_measured(n3f_command("eval-retrieval", "--scene", str(scene), "--features", str(features), "--model",
                                 str(folder_v / "model.pt"), "--method", "fused", "--no-baseline", "--teacher", TEACHER,
                                 "--max-queries", str(limits[0]), "--max-gallery", str(limits[1]),
                                 "--rows", str(folder_v / "rows.csv"),
                                 "--segmentation", str(folder_v / "seg.csv"), "--summary", str(folder_v / "retrieval.json")),
                     folder_v / "eval.log", env)
        s_v = json.loads((folder_v / "retrieval.json").read_text())
        m_v = json.loads((folder_v / "metrics.json").read_text())
        variants.append({"stride": stride, "resolution": resolution, "map": s_v["map_fused"], "miou": s_v["miou_fused"],
                         "rays": m_v["rays"], "voxels": m_v["voxels"], "fuse_time_s": m_v["fuse_time_s"], **job})
    cos = {m: json.loads((p / "metrics.json").read_text()).get("feature_cosine")
           for m, p in (("fused", out / "fused"), ("distilled", distilled.parent), ("fused+distill", out / "fused_distilled"))}
    return {"scene": name, "field": field, "distill_steps": steps, "short_steps": short, "jobs": jobs, "scores": scores,
            "feature_cosine": cos, "queries": limits[0], "gallery": limits[1], "variants": variants,
            "tasks": tasks, "task_jobs": task_jobs}


def markdown(results: list[dict], m: dict, args: argparse.Namespace) -> str:
    lines = ["# Training-free fusion against distillation", "",
             f"{describe(m)}; {args.threads} thread(s) per job, one job at a time. Produced by `bench/bench_fusion.py`.", "",
             "| scene | method | retrieval mAP | one-view mIoU | held-out feature cosine | stage wall (s) | stage CPU (s) | peak RSS (MB) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        for method in ("teacher", "fused", "distilled", "fused+distill"):
            mp, miou = r["scores"][method]
            job = r["jobs"].get(method, {})
            label = method if method != "fused+distill" else f"fused+distill ({r['short_steps']} of {r['distill_steps']} steps)"
            reused = " (reused run)" if job.get("reused") else ""
            cos = r["feature_cosine"].get(method)
            cells = [f"{mp:.1f}", f"{miou:.1f}", f"{cos:.3f}" if cos is not None else "–",
                     f"{job['wall_s']:.1f}{reused}" if job else "–",
                     f"{job['cpu_s']:.1f}" if job.get("cpu_s") is not None else "–",
                     f"{job['peak_rss_mb']:.0f}" if job.get("peak_rss_mb") is not None else "–"]
            lines.append(f"| {r['scene']}/{r['field']} | {label} | " + " | ".join(cells) + " |")
        if r["jobs"]["distilled"].get("wall_s"):
            ratio = r["jobs"]["fused"]["wall_s"] / r["jobs"]["distilled"]["wall_s"]
            lines.append(f"| | fuse / distill wall time | {ratio:.3f} | | | | | |")
    with_tasks = [r for r in results if r.get("tasks")]
    if with_tasks:
        lines += ["", "Tasks on the synthetic scenes (default settings; each job's wall time and peak memory):", "",
                  "| scene | method | amodal IoU (2D teacher's best) | removal masked PSNR (dB) | 3D segmentation F1 "
                  "| tasks wall (s) | peak RSS (MB) |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in with_tasks:
            for method in ("fused", "distilled", "fused+distill"):
                t, jobs = r["tasks"][method], r["task_jobs"][method]
                wall = sum(j["wall_s"] for j in jobs.values())
                peak = max(j["peak_rss_mb"] for j in jobs.values())
                lines.append(f"| {r['scene']}/{r['field']} | {method} | {t['amodal']['iou_n3f']:.3f} "
                             f"({t['amodal']['iou_teacher_best']:.3f}) | {t['edit']['masked_psnr_edited']:.2f} "
                             f"| {t['segment3d']['f1']:.3f} | {wall:.1f} | {peak:.0f} |")
    for r in results:
        if r["variants"]:
            lines += ["", f"Fusion settings on {r['scene']} (rays through every `stride`-th pixel, `resolution`^3 voxels; "
                      "retrieval of the fused field alone):", "",
                      "| stride | resolution | rays | voxels kept | fusion (s) | job wall (s) | peak RSS (MB) | mAP | mIoU |",
                      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
            lines += [f"| {v['stride']} | {v['resolution']} | {v['rays']} | {v['voxels']} | {v['fuse_time_s']} | {v['wall_s']} "
                      f"| {v['peak_rss_mb']:.0f} | {v['map']:.1f} | {v['miou']:.1f} |" for v in r["variants"]]
    frames = ", ".join(f"{r['scene']} {r['queries']} x {r['gallery']}" for r in results)
    lines += ["", "mAP and mIoU: mask queries on the same query and gallery frames for every method "
              f"(at most query x gallery frames: {frames}). Stage wall time is the "
              "whole job (process start, loading, the held-out metrics it writes). The evaluation jobs' times are in the JSON.", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", action="append", required=True, metavar="FOLDER:FIELD[:QUERIES:GALLERY]",
                   help="a finished run's results/<scene> folder, its field and, optionally, its own frame limits")
    p.add_argument("--fraction", type=float, default=0.25, help="distillation steps of fused+distill, as a fraction")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-queries", type=int, default=4)
    p.add_argument("--max-gallery", type=int, default=16)
    p.add_argument("--variants", nargs="*", default=[], metavar="STRIDE:RESOLUTION",
                   help="also fuse with these settings and score the fused field alone (e.g. 4:64 16:64 8:32 8:128)")
    p.add_argument("--variants-scene", help="only this scene (folder name) gets the --variants")
    p.add_argument("--reuse-distilled", action="store_true", help="score the folder's distilled model instead of training one")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    m = machine()
    work = args.work or Path(tempfile.mkdtemp(prefix="n3f-bench-fusion-"))
    results = []
    for spec in args.scene:
        folder, field, *own = spec.split(":")
        limits = (int(own[0]), int(own[1])) if own else (args.max_queries, args.max_gallery)
        results.append(bench_scene(Path(folder), field, work, args, env, limits))
        print(json.dumps(results[-1]["scores"]), flush=True)
    name = os.environ.get("N3F_BENCH_NAME", "fusion")
    write_results(name, {"machine": m, "results": results, "fraction": args.fraction}, markdown(results, m, args))


if __name__ == "__main__":
    main()
