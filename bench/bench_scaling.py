"""Scaling with the length of a video: teacher extraction and distillation at 50, 200 and 800 frames.

Each size is a synthetic egocentric video (the built-in ``dynamic`` kind, the
default 160x120), imported to a scene store, then measured as separate
processes so peak memory is the kernel's own figure for that stage:

* teacher extraction (``n3f features``): time should grow linearly with the
  frames (frames/s constant), memory stay flat: frames are streamed in batches
  and PCA is fitted on a fixed-size sample;
* distillation (``n3f distill``) for a fixed number of steps: time per step and
  memory flat, because rays are drawn through an LRU cache of decoded frames,
  never from the whole video in RAM.

Writes ``bench/results/scaling.json`` and ``scaling.md``.

    python bench/bench_scaling.py                         # 50/200/800 frames, about 20 min on 2 cores
    python bench/bench_scaling.py --frames 20 40 --steps 50 --input-size 224   # quick look
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import RESULTS, describe, machine, n3f_command, run_measured, write_results  # noqa: E402


def one_size(n: int, work: Path, args: argparse.Namespace) -> dict:
    spec = {"name": f"video{n}", "source": "synthetic",
            "options": {"kind": "dynamic", "n_frames": n, "width": 160, "height": 120, "seed": 1}}
    scene, feats = work / f"video{n}.zarr", work / f"video{n}_features.zarr"
    threads = json.dumps({"threads": args.threads, "progress": False, "eval_frames": 2, "checkpoint_every": 10_000})
    imported = run_measured(n3f_command("scene", "--spec", json.dumps(spec), "--out", str(scene)), work / f"scene{n}.log")
    teacher = run_measured(n3f_command("features", "--scene", str(scene), "--out", str(feats), "--teacher", args.teacher,
                                       "--input-size", str(args.input_size), "--no-progress"), work / f"features{n}.log")
    rgb = run_measured(n3f_command("pretrain-rgb", "--scene", str(scene), "--out", str(work / f"rgb{n}"), "--field", args.field,
                                   "--steps", str(args.rgb_steps), "--config-json", threads), work / f"rgb{n}.log")
    distill = run_measured(n3f_command("distill", "--scene", str(scene), "--features", str(feats), "--init", str(work / f"rgb{n}"),
                                       "--out", str(work / f"distill{n}"), "--steps", str(args.steps), "--config-json", threads),
                           work / f"distill{n}.log")
    row = {
        "frames": n,
        "import": imported,
        "teacher": {**teacher, "frames_per_s": round(n / teacher["wall_s"], 2)},
        "pretrain_rgb": rgb,
        "distill": {**distill, "ms_per_step": round(1000 * distill["wall_s"] / args.steps, 1)},
    }
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def markdown(res: dict) -> str:
    s, m = res["settings"], res["machine"]
    lines = [
        "# Scaling with video length",
        "",
        f"Synthetic egocentric video (160x120), teacher `{s['teacher']}` at input {s['input_size']}, "
        f"field `{s['field']}`, distillation {s['steps']} steps ({s['threads']} thread(s)); {describe(m)}. "
        "Each stage is its own process; peak RSS is the kernel's figure for it. Produced by `bench/bench_scaling.py`.",
        "",
        "| frames | teacher wall (s) | teacher CPU (s) | teacher peak RSS (MB) | distill wall (s) | distill CPU (s) | distill peak RSS (MB) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in res["sizes"]:
        t, d = r["teacher"], r["distill"]
        lines.append(f"| {r['frames']} | {t['wall_s']} | {t['cpu_s']} | {t['peak_rss_mb']} | {d['wall_s']} | {d['cpu_s']} | {d['peak_rss_mb']} |")
    first, last = res["sizes"][0], res["sizes"][-1]
    ratio = last["frames"] / first["frames"]
    # CPU seconds: wall time on a shared machine moves with the load, CPU time much less
    per_frame = (last["teacher"]["cpu_s"] - first["teacher"]["cpu_s"]) / (last["frames"] - first["frames"])
    fixed = first["teacher"]["cpu_s"] - per_frame * first["frames"]
    lines += [
        "",
        f"From {first['frames']} to {last['frames']} frames ({ratio:.0f}x): teacher memory x{last['teacher']['peak_rss_mb'] / first['teacher']['peak_rss_mb']:.2f}, "
        f"distillation memory x{last['distill']['peak_rss_mb'] / first['distill']['peak_rss_mb']:.2f}; "
        f"teacher CPU time {fixed:.0f} s fixed (model load, PCA fit) + {per_frame:.2f} s per frame; "
        f"distillation CPU time x{last['distill']['cpu_s'] / first['distill']['cpu_s']:.2f} (a fixed number of steps, whatever the length).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[50, 200, 800])
    ap.add_argument("--teacher", default="dinov2_vits14_imgfocus")
    ap.add_argument("--input-size", type=int, default=448)
    ap.add_argument("--field", default="neuraldiff")
    ap.add_argument("--rgb-steps", type=int, default=100, help="stage 1 only has to exist: distillation is what is measured")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report-only", action="store_true", help="rewrite scaling.md from scaling.json")
    args = ap.parse_args(argv)
    if args.report_only:
        res = json.loads((RESULTS / "scaling.json").read_text())
        write_results("scaling", res, markdown(res))
        return res
    before = machine()
    with tempfile.TemporaryDirectory(prefix="n3f-scaling-") as tmp:
        sizes = [one_size(n, Path(tmp), args) for n in args.frames]
    res = {"machine": before, "settings": vars(args), "sizes": sizes}
    write_results("scaling", res, markdown(res))
    return res


if __name__ == "__main__":
    main()
