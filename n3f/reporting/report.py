"""Per-scene report: ``results/<scene>/report.md`` with scores and figures.

Everything in it is read from what the evaluation stages wrote (metrics.json,
retrieval.json, per-query rows) or rendered from the trained model; nothing
is typed in.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from n3f.atomic import atomic_write_text
from n3f.errors import N3FInputError
from n3f.features.store import FeatureStore
from n3f.reporting.figures import pca_figure, retrieval_figure
from n3f.reporting.tables import TASK_SCORES
from n3f.scene.store import SceneStore


@dataclass
class Evaluated:
    """Where one (field, teacher) pair's outputs are."""

    field: str
    teacher: str
    folder: Path  # results/<scene>/<field>/<teacher>
    features: Path  # results/<scene>/features/<teacher>.zarr


def _typical_pair(rows: pd.DataFrame) -> tuple[str, int, int]:
    """A (object, query, gallery) whose N3F AP is the median one: a fair, not a best, example."""
    n3f = rows[(rows["method"] == "n3f")].dropna(subset=["ap"])
    if "query_kind" in n3f:
        n3f = n3f[n3f["query_kind"] == "mask"]
    n3f = n3f.reset_index(drop=True)
    i = int((n3f["ap"] - n3f["ap"].median()).abs().idxmin())
    return str(n3f.loc[i, "object"]), int(n3f.loc[i, "query"]), int(n3f.loc[i, "gallery"])


def _require(folder: Path, names: tuple[str, ...]) -> None:
    """Name the stage whose output is missing instead of failing on the first file read."""
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise N3FInputError(f"{folder}: {', '.join(missing)} missing; run training and eval_retrieval for it first.")


def write_scene_report(scene_path: str | Path, evaluated: list[Evaluated], out_md: str | Path, device: str = "cpu",
                       retrieval: bool = True) -> Path:
    """The scene's report.md; ``retrieval=False`` for a scene without annotations (fields and queries only)."""
    from n3f.render.model_io import load_renderer

    store = SceneStore(scene_path)
    out_md = Path(out_md)
    fig_dir = out_md.parent / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# Scene `{store.name}`", "", f"Source: {store.attrs['source']}, layout {store.attrs['layout']}, "
             f"{store.n_frames} frames of {store.image_size[1]}x{store.image_size[0]}.", ""]
    if retrieval:
        lines += ["## Object retrieval mAP (%)", "",
                  "| field | teacher | teacher mAP | N3F mAP | gain | fused mAP | held-out PSNR (dB) | SSIM | feature cosine |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    else:
        lines += ["## Fields", "", "| field | teacher | held-out PSNR (dB) | SSIM | feature cosine |", "|---|---|---:|---:|---:|"]
    for ev in evaluated:
        _require(ev.folder, ("retrieval.json", "metrics.json", "retrieval_rows.csv", "model.pt") if retrieval
                 else ("metrics.json", "model.pt"))
    for ev in evaluated:
        metrics = json.loads((ev.folder / "metrics.json").read_text())
        quality = (f"{metrics.get('psnr', float('nan')):.2f} | {metrics.get('ssim', float('nan')):.3f} | "
                   f"{metrics.get('feature_cosine', float('nan')):.3f} |")
        if retrieval:
            summary = json.loads((ev.folder / "retrieval.json").read_text())
            fused_path = ev.folder / "fused" / "retrieval.json"  # the fused field's own job, where fusion is on
            fused_map = json.loads(fused_path.read_text()).get("map_fused") if fused_path.is_file() else None
            fused = f"{fused_map:.1f}" if fused_map is not None else "–"
            lines.append(f"| {ev.field} | {ev.teacher} | {summary['map_teacher']:.1f} | {summary['map_n3f']:.1f} | "
                         f"{summary['gain']:+.1f} | {fused} | {quality}")
        else:
            lines.append(f"| {ev.field} | {ev.teacher} | {quality}")
    lines.append("")
    # renders/ is a by-product, not a rule output: link only strips that are there
    strips = [(ev, r) for ev in evaluated for r in json.loads((ev.folder / "metrics.json").read_text()).get("renders", [])[:1]
              if (ev.folder / r).is_file()]
    if strips:  # what the held-out numbers look like: [photo | render | error] of the distilled field
        lines += ["Held-out frames, photo | render | error (each stage's `renders/`):", ""]
        lines += [f"![{ev.field} {ev.teacher}]({Path(os.path.relpath(ev.folder / r, out_md.parent)).as_posix()})" for ev, r in strips]
        lines.append("")
    for ev in evaluated:
        lines += _query_section(ev, out_md.parent)
        if not retrieval:
            continue
        rows = pd.read_csv(ev.folder / "retrieval_rows.csv")
        obj, q, g = _typical_pair(rows)
        k = store.object_names.index(obj)
        feats = FeatureStore(ev.features)
        renderer = load_renderer(ev.folder / "model.pt", device)
        rendered = {f: renderer.render_frame(store, f, outputs=("features",))["features"] for f in (q, g)}
        teacher = {f: feats.upsampled(f, store.image_size) for f in (q, g)}
        pair = rows[(rows["object"] == obj) & (rows["query"] == q) & (rows["gallery"] == g)]
        if "query_kind" in pair:
            pair = pair[pair["query_kind"] == "mask"]
        ap = pair.set_index("method")["ap"]
        title = f"{obj}: query frame {q} -> frame {g}; AP teacher {100 * ap['teacher']:.1f}, N3F {100 * ap['n3f']:.1f}"
        name = f"{ev.field}_{ev.teacher}"
        retrieval_figure(
            fig_dir / f"{name}_retrieval.png", store.frame(q), store.masks(q)[k], store.frame(g), store.masks(g)[k],
            teacher[q], teacher[g], rendered[q], rendered[g], title,
        )
        pca_figure(fig_dir / f"{name}_pca.png", store.frame(g), teacher[g], rendered[g], f"frame {g}, {ev.teacher}")
        lines += [f"## {ev.field} / {ev.teacher}", "",
                  "Distance of every pixel to the query object's mean feature (dark = close); the example is the "
                  "query/gallery pair with the median N3F AP, not a hand-picked one.", "",
                  f"![retrieval](figures/{name}_retrieval.png)", "", f"![pca](figures/{name}_pca.png)", ""]
        if (ev.folder / "segmentation_rows.csv").is_file():
            lines += _segmentation_section(ev, store, renderer, feats, fig_dir, name, rendered)
        lines += _task_section(ev, out_md.parent)
    atomic_write_text(out_md, "\n".join(lines))
    return out_md


def _segmentation_section(ev: Evaluated, store: SceneStore, renderer: Any, feats: Any, fig_dir: Path,
                          name: str, rendered: dict[int, Any]) -> list[str]:
    """One-view segmentation scores (mask and patch queries, seen / novel views) and the median N3F case."""
    from n3f.reporting.figures import segmentation_figure
    from n3f.reporting.tables import segmentation_table

    rows = pd.read_csv(ev.folder / "segmentation_rows.csv")
    if rows.empty:
        return []
    long = segmentation_table(rows)
    lines = ["**One-view segmentation** (threshold from the query view only; mIoU / mAcc in %, 95% interval over "
             "queries):", "", "| queries | views | teacher mIoU | N3F mIoU | teacher mAcc | N3F mAcc | queries / rows |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for (kind, split), part in long.groupby(["query_kind", "split"], sort=False):
        by = part.set_index("method")
        if "n3f" not in by.index or by.loc["n3f", "n"] == 0:
            continue

        def cell(method: str, col: str) -> str:
            if method not in by.index or pd.isna(by.loc[method, col]):
                return "–"
            return f"{by.loc[method, col]:.1f} ({by.loc[method, col + '_lo']:.1f}–{by.loc[method, col + '_hi']:.1f})"

        lines.append(f"| {kind} | {split} | {cell('teacher', 'miou')} | {cell('n3f', 'miou')} | "
                     f"{cell('teacher', 'macc')} | {cell('n3f', 'macc')} | {by.loc['n3f', 'queries']} / {by.loc['n3f', 'n']} |")
    lines.append("")
    masks = rows[(rows["query_kind"] == "mask")]
    n3f = masks[masks["method"] == "n3f"].reset_index(drop=True)
    i = int((n3f["iou"] - n3f["iou"].median()).abs().idxmin())
    case = n3f.loc[i]
    obj, q, g = str(case["object"]), int(case["query"]), int(case["gallery"])
    teacher_row = masks[(masks["method"] == "teacher") & (masks["object"] == obj) & (masks["query"] == q)
                        & (masks["gallery"] == g)].iloc[0]
    k = store.object_names.index(obj)
    for f in (q, g):  # frames the retrieval figure rendered are reused
        if f not in rendered:
            rendered[f] = renderer.render_frame(store, f, outputs=("features",))["features"]
    teacher = {f: feats.upsampled(f, store.image_size) for f in (q, g)}
    segmentation_figure(
        fig_dir / f"{name}_segmentation.png", store.frame(q), store.masks(q)[k], store.frame(g), store.masks(g)[k],
        (teacher[q], teacher[g], float(teacher_row["threshold"])), (rendered[q], rendered[g], float(case["threshold"])),
        f"{obj}: query frame {q} -> frame {g} ({'seen' if case['seen'] else 'novel'}); IoU teacher "
        f"{100 * teacher_row['iou']:.1f}, N3F {100 * case['iou']:.1f}",
    )
    lines += ["The N3F case with the median IoU (mask query), not a hand-picked one:", "",
              f"![segmentation](figures/{name}_segmentation.png)", ""]
    return lines


def _task_section(ev: Evaluated, report_dir: Path) -> list[str]:
    """Scores and first picture of the 3D segmentation, editing and amodal tasks, where they ran."""
    lines = []
    for task, keys in TASK_SCORES.items():
        path = ev.folder / task / f"{task}.json"
        if not path.is_file():
            continue
        summary = json.loads(path.read_text())
        scores = ", ".join(f"{k.removeprefix('mean_')} {summary[k]:.3f}" for k in keys if summary.get(k) is not None)
        lines += [f"**{task}** ({ev.field} / {ev.teacher}): {scores}", ""]
        pictures = sorted((ev.folder / task).glob(f"{task}_*_f*.png"))  # edit: the before/after strip
        clouds = sorted((ev.folder / task).glob("*_highlight.ply"))
        if pictures:
            lines += [f"![{task}]({pictures[0].relative_to(report_dir)})", ""]
        if clouds:
            lines += [f"Point clouds: `{clouds[0].relative_to(report_dir)}` (selected points in red) and others beside it.", ""]
    return lines


def _query_section(ev: Evaluated, report_dir: Path) -> list[str]:
    """Every query's products on the distilled field (``queries/<query>/``) and on the fused one
    (``fused/queries/<query>/``, where fusion ran): what it selected, where, and the figures."""
    lines = _queries_of(ev, ev.folder / "queries", report_dir, "", "N3F")
    return lines + _queries_of(ev, ev.folder / "fused" / "queries", report_dir, ", fused field", "fused")


def _queries_of(ev: Evaluated, queries: Path, report_dir: Path, label: str, method: str) -> list[str]:
    summaries = sorted(queries.glob("*/query.json"))
    if not summaries:
        return []
    lines = [f"## Queries ({ev.field} / {ev.teacher}{label})", "",
             "Each query is a region drawn on one frame; everything below is derived from that frame alone.", "",
             "| query | frame | region | 3D threshold | 3D points | bounding box (world) |", "|---|---|---|---:|---:|---|"]
    for path in summaries:
        q = json.loads(path.read_text())
        box = q["segment3d"]["bbox_world"]
        extent = "none" if box is None else " x ".join(f"{b - a:.3g}" for a, b in zip(box["min"], box["max"]))
        lines.append(f"| {q['query']['name']} | {q['frame_name']} | {next(k for k in ('mask', 'box', 'point') if k in q['query'])}"
                     f" ({q['region_pixels']} px) | {q['thresholds']['feature_3d']:.2f} | {q['segment3d']['points']} | {extent} |")
    lines.append("")
    for path in summaries:
        q = json.loads(path.read_text())
        folder = path.parent
        rel = lambda p: Path(os.path.relpath(folder / p, report_dir)).as_posix()  # noqa: E731
        name, views = q["query"]["name"], [v["view"] for v in q["views"]]
        novel = next((v["view"] for v in q["views"] if not v["stored"]), None)
        lines += [f"### {name}", "",
                  f"2D segmentation, image | teacher similarity | {method} similarity | {method} mask (query frame, "
                  "then a novel view):", "",
                  f"![{name} segmentation]({rel(f'segment2d/{views[0]}.png')})", ""]
        if novel:
            lines += [f"![{name} novel view]({rel(f'segment2d/{novel}.png')})", ""]
        lines += ["Removal, before | after; amodal, render | object-only opacity | mask:", "",
                  f"![{name} removal]({rel(f'removal/{views[0]}.png')})", "",
                  f"![{name} amodal]({rel(f'amodal/{views[0]}.png')})", ""]
        links = [f"3D segment `{rel(q['segment3d']['file'])}` ({q['segment3d']['points']} points)"]
        if q.get("removal_video"):
            links.append(f"removal video `{rel(q['removal_video']['file'])}`")
        lines += [", ".join(links) + ".", ""]
    return lines
