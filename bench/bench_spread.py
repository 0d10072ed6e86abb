"""Seed spread of the N3F - teacher gain: distillation and evaluation of one scene rerun with several seeds.

The RGB-pretrained field, the scene and the teacher features are taken from a
finished pipeline run (``--results``, e.g. the folder ``bench/bench_pipeline.py``
leaves), so only what a seed changes reruns: ``n3f distill`` (initialisation of
the feature head, ray batches, jitter) with the pipeline's default settings and
``--seed``, then ``n3f eval-retrieval`` (retrieval and one-view segmentation on
the same frames as the pipeline). The teacher's scores do not depend on the seed
(same features, same frames), N3F's and the gain do.

Writes ``bench/results/spread.json`` and ``bench/results/spread.md``.

    python bench/bench_spread.py --results /tmp/n3f-bench-pipeline/results --scene toy_static --field grid
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import RESULTS, machine, n3f_command, run_measured  # noqa: E402

TEACHER = "dinov2_vits14_imgfocus"


def _table(rows: pd.DataFrame, value: str, kind: str, split: str = "all") -> dict[str, float]:
    part = rows[(rows["query_kind"] == kind)]
    if split != "all":
        part = part[part["seen"].astype(bool) == (split == "seen")]
    return {m: 100.0 * float(g[value].mean()) for m, g in part.dropna(subset=[value]).groupby("method")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, required=True, help="results folder of a finished pipeline run")
    ap.add_argument("--scene", default="toy_static")
    ap.add_argument("--field", default="grid")
    ap.add_argument("--teacher", default=TEACHER)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-queries", type=int, default=4)
    ap.add_argument("--max-gallery", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    scene = args.results / args.scene / "scene.zarr"
    features = args.results / args.scene / "features" / f"{args.teacher}.zarr"
    init = args.results / args.scene / args.field / "rgb" / "model.pt"
    for path in (scene, features, init):
        if not path.exists():
            sys.exit(f"{path} not found: run the pipeline into {args.results} first (bench/bench_pipeline.py)")
    env = {**__import__("os").environ, "OMP_NUM_THREADS": str(args.threads)}
    runs = []
    with tempfile.TemporaryDirectory(prefix="n3f-spread-") as tmp:
        for seed in args.seeds:
            out = Path(tmp) / f"seed{seed}"
            settings = json.dumps({"seed": seed, "threads": args.threads, "progress": False})
            distill = run_measured(n3f_command("distill", "--scene", str(scene), "--features", str(features),
                                               "--init", str(init), "--out", str(out), "--config-json", settings),
                                   log=Path(tmp) / f"distill{seed}.log", env=env)
            evaluate = run_measured(n3f_command(
                "eval-retrieval", "--scene", str(scene), "--features", str(features), "--model", str(out / "model.pt"),
                "--teacher", args.teacher, "--max-queries", str(args.max_queries), "--max-gallery", str(args.max_gallery),
                "--rows", str(out / "retrieval_rows.csv"), "--segmentation", str(out / "segmentation_rows.csv"),
                "--summary", str(out / "retrieval.json")), log=Path(tmp) / f"eval{seed}.log", env=env)
            ret = pd.read_csv(out / "retrieval_rows.csv")
            seg = pd.read_csv(out / "segmentation_rows.csv")
            run = {"seed": seed, "distill_s": distill["wall_s"], "eval_s": evaluate["wall_s"]}
            for kind in ("mask", "patch"):
                for split in ("all", "seen", "novel"):
                    for name, rows, value in (("map", ret, "ap"), ("miou", seg, "iou")):
                        by = _table(rows, value, kind, split)
                        run[f"{name}_{kind}_{split}_teacher"] = by.get("teacher")
                        run[f"{name}_{kind}_{split}_n3f"] = by.get("n3f")
                        if by.get("teacher") is not None and by.get("n3f") is not None:
                            run[f"{name}_{kind}_{split}_gain"] = by["n3f"] - by["teacher"]
            runs.append(run)
            print(f"seed {seed}: mAP (mask) {run['map_mask_all_teacher']:.1f} -> {run['map_mask_all_n3f']:.1f}, "
                  f"mIoU (mask) {run['miou_mask_all_teacher']:.1f} -> {run['miou_mask_all_n3f']:.1f}", flush=True)

    frame = pd.DataFrame(runs)
    stats = {c: {"mean": float(frame[c].mean()), "std": float(frame[c].std(ddof=1)), "min": float(frame[c].min()),
                 "max": float(frame[c].max())} for c in frame.columns if c != "seed" and frame[c].notna().all()}
    result = {"machine": machine(), "scene": args.scene, "field": args.field, "teacher": args.teacher,
              "seeds": args.seeds, "runs": runs, "stats": stats}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "spread.json").write_text(json.dumps(result, indent=2))
    lines = [f"# Seed spread: {args.scene} / {args.field} / {args.teacher}", "",
             f"`bench/bench_spread.py`: distillation and evaluation rerun from one RGB-pretrained field with seeds "
             f"{args.seeds} ({machine()['date']}, {machine()['device']}). Mean, sample std and range over seeds; "
             "the teacher's scores do not depend on the seed.", "",
             "| score | queries | views | teacher | N3F mean ± std | N3F range | gain mean ± std | gain range |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for name, label in (("map", "mAP"), ("miou", "one-view mIoU")):
        for kind in ("mask", "patch"):
            for split in ("all", "seen", "novel"):
                key = f"{name}_{kind}_{split}"
                if f"{key}_gain" not in stats:
                    continue
                t, n, g = stats[f"{key}_teacher"], stats[f"{key}_n3f"], stats[f"{key}_gain"]
                lines.append(f"| {label} | {kind} | {split} | {t['mean']:.1f} | {n['mean']:.1f} ± {n['std']:.1f} | "
                             f"{n['min']:.1f}–{n['max']:.1f} | {g['mean']:+.1f} ± {g['std']:.1f} | "
                             f"{g['min']:+.1f}–{g['max']:+.1f} |")
    lines += ["", f"Per seed: distillation {np.mean(frame['distill_s']):.0f} s, evaluation {np.mean(frame['eval_s']):.0f} s "
              f"wall on average ({args.threads} thread(s))."]
    (RESULTS / "spread.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
