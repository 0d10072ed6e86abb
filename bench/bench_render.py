"""Rendering speed of trained models: feature (and colour) frames per second at evaluation resolution.

Evaluation renders every query and gallery frame's features from its camera,
so frames/s here bounds how fast retrieval, editing and amodal scoring can be.
Reads the models the pipeline benchmark left (``bench_pipeline.py``'s work
folder), or any ``results/`` folder.

Writes ``bench/results/render.json`` and ``render.md``.

    python bench/bench_render.py                              # after bench_pipeline.py
    python bench/bench_render.py --results results --frames 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_pipeline import DEFAULT_WORKDIR  # noqa: E402
from measure import describe, machine, write_results  # noqa: E402

from n3f.render.model_io import load_renderer  # noqa: E402
from n3f.render.renderer import default_chunk  # noqa: E402
from n3f.scene.store import SceneStore  # noqa: E402


def time_outputs(model: Path, scene: SceneStore, outputs: tuple[str, ...], frames: list[int], device: str, chunk: int) -> dict:
    renderer = load_renderer(model, device)
    renderer.render_frame(scene, frames[0], outputs=outputs, chunk=chunk)  # warm-up (allocations, CUDA kernels)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for i in frames:
        renderer.render_frame(scene, i, outputs=outputs, chunk=chunk)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = (time.perf_counter() - started) / len(frames)
    h, w = scene.image_size
    return {"outputs": "+".join(outputs), "s_per_frame": round(dt, 3), "frames_per_s": round(1 / dt, 2),
            "rays_per_s": round(h * w / dt)}


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [
        "# Rendering speed",
        "",
        f"Full-resolution gallery frames from their own cameras, {res['threads']} CPU thread(s); "
        f"{describe(m)}. "
        "Produced by `bench/bench_render.py`.",
        "",
        "| model | image | chunk (rays) | outputs | s/frame | frames/s | rays/s |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in res["rows"]:
        lines.append(f"| {r['model']} | {r['image']} | {r['chunk']} | {r['outputs']} | {r['s_per_frame']} | {r['frames_per_s']} | {r['rays_per_s']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=DEFAULT_WORKDIR / "results")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--chunks", type=int, nargs="+", default=[0, 4096],
                    help="rays per forward pass to compare (0: the device default, n3f.render.renderer.default_chunk)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = sorted(p for p in args.results.glob("*/*/*/model.pt") if p.parent.name != "rgb")
    if not models:
        sys.exit(f"no distilled models under {args.results}; run bench/bench_pipeline.py (or the pipeline) first.")
    before = machine()
    rows = []
    for model in models:
        scene = SceneStore(model.parents[2] / "scene.zarr")
        frames = [int(i) for i in scene.split("gallery")[: args.frames]] or list(range(args.frames))
        h, w = scene.image_size
        for chunk in args.chunks:
            chunk = chunk or default_chunk(torch.device(args.device))
            for outputs in (("features",), ("rgb", "features")):
                row = {"model": str(model.parent.relative_to(args.results)), "image": f"{w}x{h}", "chunk": chunk,
                       **time_outputs(model, scene, outputs, frames, args.device, chunk)}
                print(row, file=sys.stderr, flush=True)
                rows.append(row)
    res = {"machine": before, "threads": args.threads, "rows": rows}
    write_results("render", res, markdown(res))
    return res


if __name__ == "__main__":
    main()
