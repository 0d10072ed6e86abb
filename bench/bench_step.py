"""One training step, three Adam implementations side by side: per-tensor, foreach, fused.

The plane grids hold most parameters and every step updates all of them, so
the optimiser is a large share of a CPU step; n3f uses the fused kernel
(``n3f.train.loop.adam_kwargs``). Measured for ``grid`` on the static toy scene
and ``neuraldiff`` on the dynamic one, 256 rays per step, interleaved rounds so
a busy machine slows all variants alike.

Writes ``bench/results/step.json`` and ``step.md``.

    python bench/bench_step.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from measure import describe, machine, write_results  # noqa: E402

from n3f.scene import SceneStore, write_scene  # noqa: E402
from n3f.synthetic import make_scene  # noqa: E402
from n3f.train.config import TrainConfig  # noqa: E402
from n3f.train.data import RaySampler  # noqa: E402
from n3f.train.loop import lr_lambda, new_renderer, training_loss  # noqa: E402

VARIANTS = {"per-tensor": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
CASES = (("grid", "static", 60, 0), ("neuraldiff", "dynamic", 80, 1))


def stepper(field: str, scene: SceneStore, adam: dict, batch: int):
    torch.manual_seed(0)
    cfg = TrainConfig(field=field, batch_rays=batch, steps=10_000).resolved()
    r = new_renderer(scene, cfg, 64).train()
    groups = r.field.param_groups(cfg.lr)
    if r.background is not None:
        groups.append({"params": list(r.background.parameters()), "lr": cfg.lr})
    opt = torch.optim.Adam(groups, lr=cfg.lr, eps=cfg.adam_eps, **adam)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    sampler = RaySampler(scene, scene.split("train"))
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(1)
    weights = r.field.loss_weights(cfg)

    count = [0]

    def step() -> None:
        r.update_occupancy(count[0], gen)  # the training loop's occupancy refresh (grid proposal)
        count[0] += 1
        rays, rgb, _ = sampler.sample(cfg.batch_rays, rng, False)
        loss, _ = training_loss(r.render_rays(rays, ("rgb",), train=True, generator=gen), rgb, None, cfg, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()

    return step


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10, help="steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    before = machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="n3f-step-") as tmp:
        for field, kind, n, seed in CASES:
            path = Path(tmp) / f"{kind}.zarr"
            write_scene(make_scene(kind, kind=kind, n_frames=n, width=160, height=120, seed=seed), path, progress=False)
            scene = SceneStore(path)
            steppers = {name: stepper(field, scene, kw, args.batch) for name, kw in VARIANTS.items()}
            times = {name: [] for name in VARIANTS}
            for s in steppers.values():
                s()  # warm-up
            for _ in range(args.rounds):
                for name, s in steppers.items():
                    t0 = time.perf_counter()
                    for _ in range(args.steps):
                        s()
                    times[name].append((time.perf_counter() - t0) / args.steps)
            base = min(times["per-tensor"])
            for name in VARIANTS:
                best = min(times[name])
                rows.append({"field": field, "adam": name, "step_s": round(best, 4), "speedup": round(base / best, 2)})
                print(rows[-1], file=sys.stderr, flush=True)
    res = {"machine": before, "settings": vars(args), "rows": rows}
    m = before
    md = [
        "# One training step: Adam variants",
        "",
        f"{args.batch} rays per step, {args.threads} thread(s), best of {args.rounds} interleaved rounds of {args.steps} steps; "
        f"{describe(m)}. "
        "Produced by `bench/bench_step.py`.",
        "",
        "| field | Adam | step (s) | speed-up vs per-tensor |",
        "| --- | --- | ---: | ---: |",
        *[f"| {r['field']} | {r['adam']} | {r['step_s']} | {r['speedup']}x |" for r in rows],
    ]
    write_results("step", res, "\n".join(md) + "\n")
    return res


if __name__ == "__main__":
    main()
