"""Fine samples per ray: RGB training and rendering with 32 + 8 and with 16 + 4 fine samples, side by side.

For each built-in scene (toy_static with ``grid``, toy_kitchen with ``neuraldiff``) the RGB stage is
trained with its default schedule twice at once, one job per core (1 thread each), differing only
in the fine samples per ray: the sampler's 32 importance + 8 uniform (every field's before session
8) and the field's own default since (grid 16 + 4, neuraldiff 24 + 4); the 64 proposal intervals
stay. Both jobs of a scene run concurrently, so a slow spell of the machine slows both. Reported:
training time and rays/s, held-out PSNR and SSIM (``metrics.json``), and the time to render one
full held-out frame with the trained model (inference uses the sampler the model was trained with).
``--seeds`` repeats each pair with other seeds: toy_kitchen's PSNR moves by about 0.5 dB with the seed.

Writes ``bench/results/samples.json`` and ``samples.md``.

    python bench/bench_samples.py            # about 13 min on 2 CPU cores (one seed)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import describe, machine, n3f_command, write_results  # noqa: E402

from n3f.render.model_io import load_renderer  # noqa: E402
from n3f.scene import SceneStore, write_scene  # noqa: E402
from n3f.synthetic import make_scene  # noqa: E402

OLD = {"n_importance": 32, "n_uniform": 8}
CASES = (  # scene, field, kind, frames, scene seed, the field's fine samples today
    ("toy_static", "grid", "static", 60, 0, {"n_importance": 16, "n_uniform": 4}),
    ("toy_kitchen", "neuraldiff", "dynamic", 80, 1, {"n_importance": 24, "n_uniform": 4}),
)


def render_seconds(model: Path, scene: SceneStore, frame: int, repeats: int = 2) -> float:
    """Best wall time of a full-frame render (rgb and features) with 1 thread."""
    torch.set_num_threads(1)
    renderer = load_renderer(model, torch.device("cpu"))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        renderer.render_frame(scene, frame, outputs=("rgb", "features"))
        best = min(best, time.perf_counter() - t0)
    return best


def _label(sampler: dict) -> str:
    return f"{sampler['n_importance']} + {sampler['n_uniform']}"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None, help="RGB steps (default: each field's default schedule)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (one pair of runs each)")
    args = ap.parse_args(argv)
    before = machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="n3f-samples-") as tmp:
        for name, field, kind, n, scene_seed, new in CASES:
            path = Path(tmp) / f"{name}.zarr"
            write_scene(make_scene(name, kind=kind, n_frames=n, width=160, height=120, seed=scene_seed), path, progress=False)
            scene = SceneStore(path)
            frame = int(scene.split("val")[0])
            for seed in args.seeds:
                procs = {}
                for sampler in (OLD, new):
                    out = Path(tmp) / f"{name}-{sampler['n_importance']}-{seed}"
                    settings = {"progress": False, "threads": 1, "seed": seed, "sampler": sampler}
                    if args.steps:
                        settings["steps"] = args.steps
                    cmd = n3f_command("pretrain-rgb", "--scene", str(path), "--out", str(out), "--field", field,
                                      "--config-json", json.dumps(settings))
                    log = open(out.with_suffix(".log"), "w")
                    env = {**os.environ, "OMP_NUM_THREADS": "1"}
                    procs[_label(sampler)] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), out)
                for label, (proc, out) in procs.items():
                    if proc.wait() != 0:
                        raise SystemExit(f"{label} on {name} failed: see {out.with_suffix('.log')}")
                for label, (_, out) in procs.items():
                    m = json.loads((out / "metrics.json").read_text())
                    rows.append({
                        "scene": name, "field": field, "fine": label, "default": label == _label(new), "seed": seed,
                        "steps": m["steps"], "train_s": m["train_time_s"], "rays_per_s": m["rays_per_s"],
                        "psnr": round(m["psnr"], 2), "ssim": round(m["ssim"], 4),
                        "render_s": round(render_seconds(out / "model.pt", scene, frame), 2),
                    })
                    print(rows[-1], file=sys.stderr, flush=True)
    res = {"machine": before, "rows": rows}
    md = [
        "# Fine samples per ray: the old 32 + 8 and each field's default, side by side",
        "",
        f"RGB stage, default schedules, the two variants of a scene and seed trained concurrently (1 thread each); "
        f"render: one full 160x120 held-out frame, rgb + features, 1 thread, best of 2; {describe(before)}. "
        "Produced by `bench/bench_samples.py`.",
        "",
        "| scene | field | fine samples | seed | steps | train (s) | rays/s | held-out PSNR (dB) | SSIM | frame render (s) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {r['scene']} | {r['field']} | {r['fine']}{' (default)' if r['default'] else ''} | {r['seed']} | {r['steps']} | "
          f"{r['train_s']:.0f} | {r['rays_per_s']:.0f} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['render_s']:.2f} |" for r in rows],
    ]
    write_results("samples", res, "\n".join(md) + "\n")
    return res


if __name__ == "__main__":
    main()
