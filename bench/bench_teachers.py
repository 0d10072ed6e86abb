"""Benchmark of the teacher stage: extraction speed and feature store size.

For each teacher (by default the offline DINOv2 and dense SIFT; any other
registry name whose weights are available can be added with --teachers) it
builds the feature store of a goldcape subset and reports

* frames/s of ``extract_feature_store`` (teacher forward, L2, PCA fit and
  projection, float16 zarr write), model loading excluded and timed apart;
* the store's bytes per frame on disk against keeping full-resolution float32
  teacher features (H x W x D x 4 bytes), the alternative the patch-grid store
  avoids.

Results go to bench/results/teachers.json and bench/results/teachers.md.

    python bench/bench_teachers.py --frames 12
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "goldcape"
RESULTS = REPO / "bench" / "results"


def goldcape_scene(path: Path, n: int) -> Path:
    """Scene store of ``n`` goldcape frames spread over the 360 degree walk-around."""
    from n3f.io.llff import load_llff
    from n3f.scene import write_scene

    scene = load_llff(DATA, name="goldcape", images="images_8", layout="object", n_frames=n)
    return write_scene(scene, path, progress=False)


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_one(name: str, scene: Path, out: Path, args) -> dict:
    from n3f.errors import N3FInputError
    from n3f.features import FeatureStore
    from n3f.features.extract import extract_feature_store
    from n3f.teachers import load_teacher

    t0 = time.perf_counter()
    try:
        teacher = load_teacher(name, device=args.device)
    except N3FInputError as err:
        return {"teacher": name, "skipped": str(err)}
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    extract_feature_store(
        scene, out, teacher, input_size=args.input_size, n_components=args.components,
        batch_size=args.batch_size, progress=False,
    )
    extract_s = time.perf_counter() - t0
    store = FeatureStore(out)
    n = store.n_frames
    (h_img, w_img), (h, w) = store.image_size, store.grid_size
    full = h_img * w_img * teacher.dim * 4
    on_disk = folder_bytes(out / "features") / n
    return {
        "teacher": name,
        "device": str(getattr(teacher, "device", "cpu")),
        "frames": n,
        "input_size": store.attrs["input_size"],
        "grid_size": [h, w],
        "teacher_dim": teacher.dim,
        "channels": store.channels,
        "load_s": round(load_s, 2),
        "extract_s": round(extract_s, 2),
        "frames_per_s": round(n / extract_s, 3),
        "store_bytes_per_frame_disk": int(on_disk),
        "store_bytes_per_frame_raw": h * w * store.channels * 2,
        "full_res_f32_bytes_per_frame": full,
        "reduction_vs_full_res": round(full / on_disk, 1),
        "explained_variance_ratio": round(store.attrs["pca_fit"]["explained_variance_ratio"], 4),
    }


def to_markdown(meta: dict, rows: list[dict]) -> str:
    lines = [
        "# Teacher stage benchmark",
        "",
        f"goldcape subset, {meta['frames']} frames of {meta['image_size'][1]}x{meta['image_size'][0]}, "
        f"input size {meta['input_size']}, {meta['components']} PCA channels, batch {meta['batch_size']}; "
        f"{meta['device']} ({meta['cpu']}, {meta['threads']} torch threads), torch {meta['torch']}; "
        f"1-min load average before the run {meta['load_avg_1min_before']} (other jobs skew CPU timings).",
        "",
        "| teacher | device | grid | frames/s | load s | store B/frame (disk) | full-res f32 B/frame "
        "| reduction | var. kept |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['teacher']} | skipped: weights unavailable | | | | | | | |")
            continue
        lines.append(
            f"| {r['teacher']} | {r['device']} | {r['grid_size'][0]}x{r['grid_size'][1]} | {r['frames_per_s']:.2f} | "
            f"{r['load_s']:.1f} | {r['store_bytes_per_frame_disk']:,} | {r['full_res_f32_bytes_per_frame']:,} | "
            f"{r['reduction_vs_full_res']:,.0f}x | {r['explained_variance_ratio']:.1%} |"
        )
    lines += [
        "",
        "frames/s covers the whole stage (teacher forward, L2, PCA, float16 zarr write); model loading is timed "
        "apart. 'full-res f32' is H x W x D x 4 bytes, storing upsampled teacher features per pixel.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--teachers", nargs="+", default=["dinov2_vits14_imgfocus", "dsift"])
    parser.add_argument("--input-size", type=int, default=448)
    parser.add_argument("--components", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not (DATA / "images_8").is_dir():
        print(f"goldcape data not found at {DATA}", file=sys.stderr)
        return 1
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    load_before = os.getloadavg()[0]  # other jobs on a shared machine skew CPU timings
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scene = goldcape_scene(Path(tmp) / "scene.zarr", args.frames)
        for name in args.teachers:
            row = bench_one(name, scene, Path(tmp) / f"{name}.zarr", args)
            rows.append(row)
            print(json.dumps(row), flush=True)
    meta = {
        "frames": args.frames,
        "image_size": [456, 456],
        "input_size": args.input_size,
        "components": args.components,
        "batch_size": args.batch_size,
        "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu",
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_avg_1min_before": round(load_before, 2),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "teachers.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    (args.out / "teachers.md").write_text(to_markdown(meta, rows))
    print(to_markdown(meta, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
