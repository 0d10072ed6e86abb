"""The whole default pipeline, from an empty ``results/``: wall time, peak memory, and every rule.

Runs ``snakemake --cores N`` on the repository's ``config.yaml`` in a fresh
working directory (so nothing already built is reused), then reads the
per-rule ``benchmarks/results/*.tsv`` that every rule writes (seconds, CPU seconds,
peak RSS) and the evaluation summaries (retrieval seconds and AP pairs).

Writes ``bench/results/pipeline.json`` and ``pipeline.md``.

    python bench/bench_pipeline.py                 # about 15 min on 2 CPU cores
    python bench/bench_pipeline.py --cores 16      # a workstation
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import ROOT, describe, machine, run_measured, write_results  # noqa: E402

DEFAULT_WORKDIR = Path("/tmp/n3f-bench-pipeline")


def rule_table(workdir: Path) -> list[dict]:
    """One row per job from Snakemake's benchmark files (``benchmarks/<run>/<rule>/<wildcards>.tsv``)."""
    rows = []
    bench = workdir / "benchmarks" / "results"  # the run into results/ (workflow/rules/common.smk run_tag)
    for tsv in sorted(bench.rglob("*.tsv")):
        rel = tsv.relative_to(bench)
        last = pd.read_csv(tsv, sep="\t").iloc[-1]
        rows.append(
            {
                "rule": rel.parts[0],
                "job": "/".join(rel.with_suffix("").parts[1:]),
                "wall_s": round(float(last["s"]), 1),
                "cpu_s": round(float(last["cpu_time"]), 1),
                "peak_rss_mb": round(float(last["max_rss"]), 1),
            }
        )
    return rows


def evaluation_figures(results: Path) -> list[dict]:
    """Retrieval cost per (scene, field, teacher): seconds and AP pairs scored, the teacher and N3F job's
    and the fused field's (its own job, ``fused/retrieval.json``)."""
    rows = []
    for path in sorted(results.glob("*/*/*/retrieval.json")):
        s = json.loads(path.read_text())
        fused_path = path.parent / "fused" / "retrieval.json"
        f = json.loads(fused_path.read_text()) if fused_path.is_file() else {}
        seconds = float(s["seconds"]) + float(f.get("seconds", 0.0))
        pairs = int(s["rows_with_ap"]) + int(f.get("rows_with_ap", 0))
        rows.append(
            {
                "job": str(path.parent.relative_to(results)),
                "seconds": round(seconds, 1),
                "ap_pairs": pairs,
                "ap_pairs_per_s": round(pairs / max(seconds, 1e-9), 1),
                "map_teacher": round(float(s["map_teacher"]), 1),
                "map_n3f": round(float(s["map_n3f"]), 1),
                "map_fused": round(float(f["map_fused"]), 1) if f.get("map_fused") is not None else None,
            }
        )
    return rows


def markdown(res: dict) -> str:
    m, total = res["machine"], res["total"]
    lines = [
        "# The default pipeline, end to end",
        "",
        f"`snakemake --cores {res['cores']}` on `config.yaml` from an empty results folder; "
        f"{describe(m)}. Produced by `bench/bench_pipeline.py`.",
        "",
        f"**Wall time {total['wall_s'] / 60:.1f} min**, CPU {total['cpu_s'] / 60:.1f} min, "
        f"peak memory of any job {total['peak_rss_mb']:.0f} MB.",
        "",
        "| rule | job | wall (s) | CPU (s) | peak RSS (MB) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {r['rule']} | {r['job']} | {r['wall_s']} | {r['cpu_s']} | {r['peak_rss_mb']} |" for r in res["rules"]]
    lines += ["", "Retrieval evaluation (teacher, N3F and fused on the same frames; seconds and pairs of both jobs):", "",
              "| scene/field/teacher | seconds | AP pairs | pairs/s | mAP teacher | mAP N3F | mAP fused |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['job']} | {r['seconds']} | {r['ap_pairs']} | {r['ap_pairs_per_s']} | {r['map_teacher']} | {r['map_n3f']} "
              f"| {r.get('map_fused') if r.get('map_fused') is not None else '–'} |" for r in res["evaluation"]]
    by_job = {(r["rule"], r["job"]): r for r in res["rules"]}
    ratios = [(job, r["wall_s"] / by_job[("distill", job)]["wall_s"]) for (rule, job), r in by_job.items()
              if rule == "fuse" and ("distill", job) in by_job]
    if ratios:
        lines += ["", "The `fuse` rule's wall time against `distill` on the same (scene, field, teacher), same run:", ""]
        lines += [f"- {job}: {ratio:.3f}" for job, ratio in ratios]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", default="2")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="emptied first; kept for bench_render.py")
    ap.add_argument("--configfile", type=Path, default=ROOT / "config.yaml")
    args = ap.parse_args(argv)
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    before = machine()
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--configfile", str(args.configfile),
           "--directory", str(args.workdir), "--cores", str(args.cores)]
    total = run_measured(cmd, log=args.workdir / "snakemake.log")
    res = {
        "machine": before,
        "cores": args.cores,
        "config": str(args.configfile.relative_to(ROOT) if args.configfile.is_relative_to(ROOT) else args.configfile),
        "total": total,
        "rules": rule_table(args.workdir),
        "evaluation": evaluation_figures(args.workdir / "results"),
    }
    write_results("pipeline", res, markdown(res))
    return res


if __name__ == "__main__":
    main()
