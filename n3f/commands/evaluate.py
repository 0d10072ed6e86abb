"""``n3f eval-retrieval`` (teacher vs N3F object retrieval on one scene), ``n3f report``, ``n3f tables``, ``n3f task-tables``."""

from __future__ import annotations

import argparse


def run_retrieval(args: argparse.Namespace) -> None:
    from n3f.tasks.retrieval import evaluate_retrieval, write_outputs

    rows, segmentation, summary = evaluate_retrieval(
        args.scene, args.features, args.model, teacher=args.teacher, sampling=args.sampling, device=args.device,
        max_queries=args.max_queries, max_gallery=args.max_gallery, patch_cells=args.patch_cells,
        patches=args.patches, fused_path=args.fused, method=args.method, baseline=args.baseline,
    )
    write_outputs(rows, segmentation, summary, args.rows, args.segmentation, args.summary)
    labels = {"teacher": "teacher", "n3f": "N3F", "fused": "fused"}
    maps = ", ".join(f"{labels[m]} {summary[f'map_{m}']:.1f}" for m in summary["methods"])
    mious = ", ".join(f"{labels[m]} {summary[f'miou_{m}']:.1f}" for m in summary["methods"])
    print(f"[eval_retrieval {summary['scene']}/{args.teacher}] mAP {maps}; one-view mIoU {mious}")


def run_tables(args: argparse.Namespace) -> None:
    from n3f.reporting.tables import write_retrieval_tables, write_segmentation_tables

    write_retrieval_tables(args.rows, args.csv, args.md)
    if args.segmentation:
        write_segmentation_tables(args.segmentation, args.segmentation_csv, args.segmentation_md)


def run_report(args: argparse.Namespace) -> None:
    from pathlib import Path

    from n3f.reporting.report import Evaluated, write_scene_report

    evaluated = []
    for spec in args.evaluated:
        field, teacher, folder, features = spec.split(",")
        evaluated.append(Evaluated(field, teacher, Path(folder), Path(features)))
    write_scene_report(args.scene, evaluated, args.out, device=args.device or "cpu", retrieval=args.retrieval)


def run_task_tables(args: argparse.Namespace) -> None:
    from n3f.reporting.tables import write_task_tables

    write_task_tables(args.json, args.csv, args.md)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from n3f.tasks.defaults import PATCH_CELLS, PATCHES

    p = sub.add_parser("eval-retrieval", help="2D object retrieval mAP: teacher features vs rendered N3F features")
    p.add_argument("--scene", required=True)
    p.add_argument("--features", required=True, help="teacher feature store")
    p.add_argument("--model", required=True, help="model.pt to score: distilled (method n3f) or fused (--method fused)")
    p.add_argument("--method", choices=["n3f", "fused"], default="n3f",
                   help="what --model is: a distilled model (n3f, default) or an 'n3f fuse' one (fused)")
    p.add_argument("--fused", help="fused model.pt (n3f fuse): also scored, as method 'fused'")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="leave out the teacher's rows (another run scores them on the same frames)")
    p.add_argument("--teacher", required=True, help="teacher name written into the rows")
    p.add_argument("--rows", required=True, help="output CSV of per-query rows")
    p.add_argument("--segmentation", required=True, help="output CSV of one-view segmentation rows")
    p.add_argument("--summary", required=True, help="output JSON summary (written last)")
    p.add_argument("--sampling", choices=["nearest", "bilinear"], default="nearest")
    p.add_argument("--patch-cells", type=int, default=PATCH_CELLS,
                   help=f"side of a patch query in teacher patches (default {PATCH_CELLS})")
    p.add_argument("--patches", type=int, default=PATCHES,
                   help=f"patch queries per object and query frame (default {PATCHES}; 0: mask queries only)")
    p.add_argument("--max-queries", type=int, help="evenly thin the query frames to this many")
    p.add_argument("--max-gallery", type=int, help="evenly thin the gallery frames to this many")
    p.add_argument("--device")
    p.set_defaults(func=run_retrieval)

    r = sub.add_parser("report", help="write results/<scene>/report.md with scores and figures")
    r.add_argument("--scene", required=True)
    r.add_argument("--evaluated", nargs="+", required=True, help="field,teacher,folder,feature_store for each pair")
    r.add_argument("--out", required=True, help="report.md path (figures go beside it in figures/)")
    r.add_argument("--no-retrieval", dest="retrieval", action="store_false",
                   help="the scene is not scored (no annotations): report its fields and queries only")
    r.add_argument("--device")
    r.set_defaults(func=run_report)

    t = sub.add_parser("tables", help="aggregate per-query rows into results/tables/retrieval_map.{csv,md}")
    t.add_argument("--rows", nargs="+", required=True)
    t.add_argument("--csv", required=True)
    t.add_argument("--md", required=True)
    t.add_argument("--segmentation", nargs="+", help="one-view segmentation rows, for segmentation.{csv,md}")
    t.add_argument("--segmentation-csv")
    t.add_argument("--segmentation-md")
    t.set_defaults(func=run_tables)

    tt = sub.add_parser("task-tables", help="aggregate task JSONs into results/tables/tasks.{csv,md}")
    tt.add_argument("--json", nargs="+", required=True)
    tt.add_argument("--csv", required=True)
    tt.add_argument("--md", required=True)
    tt.set_defaults(func=run_task_tables)
