"""GPU check of issue 16: the ``grid`` RGB stage on goldcape and fox on a CUDA device, shipped
schedule against a GPU-sized one, in one prepared command for the ``device`` tool.

Why a script of its own: a lent GPU machine has a few minutes for all tries, starts bare (no n3f
install, no ``../shared/data``), and gives back at most a few files. So the captures and the wheels
its image lacks (zarr and its codecs) are copied here into ignored folders first, and the run sizes
each GPU schedule from a short probe of its own step time, so that it ends inside the lease.

    # here, once (needs pip's registry): captures into .gpudata/, wheels into .whl/
    python bench/bench_gpu.py --prepare
    # there: the device tool's run, carry [".whl", ".gpudata"], timeout_s 560, with the command
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \
      PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 python3 bench/bench_gpu.py --data .gpudata --out $OUT

Per scene (goldcape first: the issue's open target), two RGB runs, each scored by the stage's own
``metrics.json`` (held-out PSNR / SSIM over 4 frames at full resolution):

* ``shipped``: ``quality: default``'s field and 256-ray batches, as a CPU user gets them, on CUDA;
* ``gpu``: 8192-ray batches and planes to 2048 cells (what a GPU affords and the CPU did not:
  bench/NOTES.md "Session 11"/"Session 12").

Each trains for as many steps as ``--budget`` seconds allow at the step time a 100-step probe of the
same settings measured (at most the shipped schedule's steps for ``shipped``), so that both scenes fit
one call of the lease.

Writes ``gpu.{json,md}`` into ``--out`` (``$OUT`` there, so they come back; copy them into
``bench/results/`` here); each scene's figures are written as soon as they exist, so a run cut short
still returns what it finished.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from measure import RESULTS, describe, machine, n3f_command, write_results  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SCENES: dict[str, dict[str, Any]] = {
    "goldcape": {"source": "llff", "path": "goldcape", "options": {"images": "images_8", "masks": "masks_8", "layout": "object"},
                 "copy": ["images_8", "masks_8", "poses_bounds.npy"]},
    "fox": {"source": "transforms", "path": "fox/transforms.json", "options": {"max_size": 480, "layout": "object"},
            "copy": ["images", "transforms.json"]},
}
"""The two real captures of issue 16, as in config/examples/{goldcape,fox}.yaml."""

WHEELS = ["zarr==3.1.6", "numcodecs==0.16.6", "donfig==0.8.1.post1", "google-crc32c==1.9.0"]
"""What the device image (KINDS.md: torch, timm, opencv, scikit-image, pyyaml, tqdm ...) lacks of n3f's
RGB stage."""

GPU_CONFIG: dict[str, Any] = {"batch_rays": 8192, "field_config": {"geo_resolutions": [32, 64, 128, 256, 512, 1024, 2048]}}
"""The GPU-sized schedule's settings besides its steps. Not tuned (no GPU was ever lent): 32x the rays a
step and 4x the finest cells of ``default``, which on a CPU cost too much a step to train."""


PROBE_STEPS = 100
SHIPPED_MOST = 12000
"""``default``'s most RGB steps (n3f/train/config.py GRID_SCHEDULES), which both captures reach."""


def prepare(data: Path, wheels: Path) -> None:
    """Copy the captures (without the full-size photos) and download the wheels."""
    for name, scene in SCENES.items():
        src_dir = SHARED / scene["path"].split("/")[0]
        for item in scene["copy"]:
            src, dst = src_dir / item, data / src_dir.name / item
            if dst.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp",
                    *[a for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
                      for a in ("--platform", p)], "-d", str(wheels), *WHEELS], check=True)
    size = sum(f.stat().st_size for d in (data, wheels) for f in d.rglob("*") if f.is_file()) / 2**20
    print(f"{data} and {wheels}: {size:.1f} MiB (the device carries at most 64 MiB)")


def train(scene: Path, out: Path, config: dict[str, Any], steps: int | None, device: str) -> dict[str, Any]:
    """One ``n3f pretrain-rgb`` run; its metrics.json plus the wall time of the command."""
    cmd = n3f_command("pretrain-rgb", "--scene", str(scene), "--out", str(out), "--device", device,
                      "--config-json", json.dumps({"progress": False, **config}))
    if steps is not None:
        cmd += ["--steps", str(steps)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    metrics = json.loads((out / "metrics.json").read_text())
    return {**{k: metrics.get(k) for k in ("steps", "psnr", "ssim", "psnr_per_frame", "train_time_s", "rays_per_s")},
            "wall_s": round(time.perf_counter() - started, 1), "config": config}


def markdown(result: dict[str, Any]) -> str:
    lines = ["# GPU check: grid RGB stage on the real captures (issue 16)", "",
             f"Measured on: {describe(result['machine'])}.", "",
             "| scene | run | steps x rays | held-out PSNR | SSIM | train s | rays/s | probe ms/step |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, runs in result["scenes"].items():
        for run, r in runs.items():
            rays = r["config"].get("batch_rays", 256)
            lines.append(f"| {name} | {run} | {r['steps']} x {rays} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                         f"{r['train_time_s']:.0f} | {r['rays_per_s']:.0f} | {r['probe_step_ms']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prepare", action="store_true", help="copy the captures and download the wheels, then stop")
    ap.add_argument("--data", type=Path, default=ROOT / ".gpudata", help="folder with goldcape/ and fox/")
    ap.add_argument("--wheels", type=Path, default=ROOT / ".whl")
    ap.add_argument("--out", type=Path, default=None, help="write the results here ($OUT on the device; default bench/results)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--scenes", nargs="+", default=list(SCENES), choices=list(SCENES))
    ap.add_argument("--budget", type=float, default=90.0, help="seconds of training of each run")
    args = ap.parse_args()
    if args.prepare:
        prepare(args.data, args.wheels)
        return
    result: dict[str, Any] = {"machine": machine(), "gpu_config": GPU_CONFIG, "scenes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.scenes:
            spec = {**{k: v for k, v in SCENES[name].items() if k != "copy"}, "name": name}
            spec["path"] = str(args.data / spec["path"])
            scene = Path(tmp) / name / "scene.zarr"
            subprocess.run(n3f_command("scene", "--spec", json.dumps(spec), "--out", str(scene)), check=True)
            runs: dict[str, Any] = result["scenes"].setdefault(name, {})
            for run, config in (("shipped", {"quality": "default"}), ("gpu", GPU_CONFIG)):
                probe = train(scene, Path(tmp) / name / f"{run}_probe",
                              {**config, "eval_frames": 1, "eval_renders": 0}, PROBE_STEPS, args.device)
                steps = max(PROBE_STEPS, int(args.budget * PROBE_STEPS / max(probe["train_time_s"], 1e-6)))
                if run == "shipped":
                    steps = min(steps, SHIPPED_MOST)
                runs[run] = {**train(scene, Path(tmp) / name / run, config, steps, args.device),
                             "probe_step_ms": round(1000 * probe["train_time_s"] / PROBE_STEPS, 2)}
            write_results("gpu", result, markdown(result), out=args.out or RESULTS)


if __name__ == "__main__":
    main()
