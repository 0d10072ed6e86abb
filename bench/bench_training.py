"""Training benchmark: ``grid`` vs the paper's vanilla ``nerf``, both stages, side by side in one run.

Measures on the built-in static synthetic scene (``toy_static``, 160x120):

1. throughput (rays/s) of a full RGB training step (sampling, forward,
   backward, Adam) for each field at the *same* ray batch, with 1 and 2 CPU
   threads;
2. RGB pretraining: each field trains with its default schedule under a
   wall-clock budget; held-out PSNR is measured at geometrically spaced
   training times (evaluation time excluded);
3. feature distillation, continuing from the model stage 2 left, with each
   field's own distillation recipe (frozen geometry first; NeRF: the paper's
   lambda 1e-3, lr 5e-4), held-out cosine between rendered and teacher features
   measured the same way.

Targets are the best PSNR / cosine the slower field (nerf) reached within its
budget; the tables give when each field first reached them, per stage and in
total (stage 1 + stage 2), and the ratio. The teacher is the default offline
DINOv2 ViT-S/14 (features extracted once, not timed here).

Writes ``bench/results/training.json`` and ``bench/results/training.md``.

``--grids`` instead compares the ``grid`` field before and after the real-capture
work (issue 16: occupancy-grid proposal, unbounded rays, scene-sized and
background planes, appearance codes) on ``toy_static`` and goldcape: rays/s and
held-out PSNR against training time under one budget, final PSNR and SSIM,
into ``bench/results/training_grid.{json,md}``.

    python bench/bench_training.py                      # defaults: about 30 min on 2 CPU cores
    python bench/bench_training.py --nerf-budget 60 60   # quick look
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import describe, machine, n3f_command, run_measured, write_results  # noqa: E402

from n3f.features.store import FeatureStore, upsample_grid  # noqa: E402
from n3f.render.renderer import Renderer  # noqa: E402
from n3f.scene import SceneStore, write_scene  # noqa: E402
from n3f.train.config import TrainConfig  # noqa: E402
from n3f.train.data import RaySampler  # noqa: E402
from n3f.train.loop import adam_kwargs, lr_lambda, new_renderer, training_loss  # noqa: E402

FIELDS = ("grid", "nerf")


def scene_and_features(args: argparse.Namespace, tmp: Path) -> tuple[Path, Path]:
    from n3f.synthetic import make_scene

    scene = tmp / "toy_static.zarr"
    write_scene(make_scene("toy_static", kind="static", n_frames=60, width=160, height=120, seed=0), scene, progress=False)
    feats = tmp / "features.zarr"
    run_measured(n3f_command("features", "--scene", str(scene), "--out", str(feats), "--teacher", args.teacher, "--no-progress"),
                 tmp / "features.log")
    return scene, feats


def optimiser(r: Renderer, cfg: TrainConfig) -> tuple[torch.optim.Optimizer, object]:
    groups = r.field.param_groups(cfg.lr)
    if r.background is not None:
        groups.append({"params": list(r.background.parameters()), "lr": cfg.lr})
    opt = torch.optim.Adam(groups, lr=cfg.lr, eps=cfg.adam_eps, **adam_kwargs(torch.device("cpu")))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))


class Stage:
    """One training stage of one field, stepped by the benchmark (the loop of n3f.train.loop, minus I/O)."""

    def __init__(self, r: Renderer, scene: SceneStore, cfg: TrainConfig, features: FeatureStore | None):
        self.r, self.cfg, self.features = r, cfg, features
        self.opt, self.sched = optimiser(r, cfg)
        self.sampler = RaySampler(scene, scene.split("train"), features, cfg.frames_per_step, cfg.frame_cache, cfg.feature_sampling)
        self.rng, self.gen = np.random.default_rng(0), torch.Generator().manual_seed(1)
        self.step = 0
        self.freeze = cfg.freeze_steps if features is not None else 0
        self.feature_ids = {id(p) for p in r.feature_parameters()}
        self.loss_weights = r.field.loss_weights(cfg)
        self._frozen(self.freeze > 0)

    def _frozen(self, frozen: bool) -> None:
        for p in self.r.parameters():
            p.requires_grad_(not frozen or id(p) in self.feature_ids)

    def __call__(self) -> None:
        if self.step == self.freeze and self.freeze > 0:
            self._frozen(False)
        with_f = self.features is not None
        self.r.update_occupancy(self.step, self.gen)
        rays, rgb, feats = self.sampler.sample(self.cfg.batch_rays, self.rng, with_f)
        out = self.r.render_rays(rays, ("rgb", "features") if with_f else ("rgb",), train=True, generator=self.gen)
        loss, _ = training_loss(out, rgb, feats, self.cfg, self.loss_weights)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        self.step += 1


@torch.no_grad()
def heldout(r: Renderer, scene: SceneStore, features: FeatureStore | None, frames: np.ndarray, downscale: int) -> float:
    """Held-out PSNR (no features) or mean feature cosine, one ray per ``downscale`` block of pixels."""
    import cv2

    r.eval()
    vals = []
    for i in frames:
        out = r.render_frame(scene, int(i), outputs=("rgb", "features") if features is not None else ("rgb",), downscale=downscale)
        if features is None:
            gt = scene.frame(int(i)).astype(np.float32) / 255
            gt = cv2.resize(gt, (out["rgb"].shape[1], out["rgb"].shape[0]), interpolation=cv2.INTER_AREA)
            vals.append(-10 * np.log10(max(float(np.mean((np.clip(out["rgb"], 0, 1) - gt) ** 2)), 1e-12)))
        else:
            pred = torch.from_numpy(out["features"])
            teacher = upsample_grid(torch.from_numpy(features.grid(int(i))), pred.shape[:2])
            vals.append(float(torch.nn.functional.cosine_similarity(pred, teacher, dim=-1).mean()))
    r.train()
    return float(np.mean(vals))


def run_stage(name: str, stage: Stage, budget_s: float, growth: float, measure) -> list[dict]:
    """Step under a wall-clock budget (or to the end of the schedule); measure at 2 s, 2g s, ... of training."""
    curve, trained, next_eval = [], 0.0, 2.0
    while trained < budget_s and stage.step < stage.cfg.steps:
        t0 = time.perf_counter()
        stage()
        trained += time.perf_counter() - t0
        if trained >= next_eval or trained >= budget_s or stage.step == stage.cfg.steps:
            v = measure()
            curve.append({"train_s": round(trained, 1), "step": stage.step, "value": round(v, 4)})
            print(f"[bench] {name}: {trained:7.1f}s step {stage.step:6d} held-out {v:.4f}", file=sys.stderr, flush=True)
            while next_eval <= trained:
                next_eval *= growth
    return curve


def throughput(field: str, scene: SceneStore, batch: int, steps: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = TrainConfig(field=field, batch_rays=batch, steps=10_000).resolved()
    stage = Stage(new_renderer(scene, cfg, 64).train(), scene, cfg, None)
    for _ in range(2):
        stage()
    t0 = time.perf_counter()
    for _ in range(steps):
        stage()
    dt = (time.perf_counter() - t0) / steps
    s = stage.r.sampler
    return {
        "field": field,
        "threads": threads,
        "batch_rays": batch,
        "step_s": round(dt, 4),
        "rays_per_s": round(batch / dt, 1),
        "fine_samples_per_ray": s.n_importance + (s.n_proposal if s.include_proposal else s.n_uniform),
        "proposal_samples_per_ray": s.n_proposal,
        "parameters": int(sum(p.numel() for p in stage.r.parameters())),
    }


def first_reach(curve: list[dict], target: float) -> float | None:
    return next((c["train_s"] for c in curve if c["value"] >= target), None)


def train_field(field: str, scene: SceneStore, feats: FeatureStore, args, frames: np.ndarray, budgets: tuple[float, float]) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rgb_cfg = TrainConfig(field=field, batch_rays=args.batch).resolved("rgb")
    r = new_renderer(scene, rgb_cfg, feats.channels).train()
    rgb = run_stage(f"{field} rgb", Stage(r, scene, rgb_cfg, None), budgets[0], args.eval_growth,
                    lambda: heldout(r, scene, None, frames, args.eval_downscale))
    distill_cfg = TrainConfig(field=field, batch_rays=args.batch).resolved("distill")
    distill = run_stage(f"{field} distill", Stage(r, scene, distill_cfg, feats), budgets[1], args.eval_growth,
                        lambda: heldout(r, scene, feats, frames, args.eval_downscale))
    return {"rgb": rgb, "distill": distill, "rgb_train_s": rgb[-1]["train_s"], "rgb_steps": rgb[-1]["step"],
            "distill_cfg": {k: distill_cfg.to_dict()[k] for k in ("lr", "feature_lambda", "freeze_steps", "steps")}}


OLD_GRID = {
    "field_config": {"geo_resolutions": [32, 64, 128, 256], "appearance_dim": 0, "bg_resolutions": []},
    "sampler": {"proposal": "field", "n_proposal": 64},
    "space": {"unbounded": False},
}
"""The ``grid`` field as it was before the real-capture work: fixed planes up to 256 cells over the
whole cube, the field's own density at 64 proposal points, rays stopped at the frames' far bounds,
no appearance codes. Everything else (schedule, lr, fine samples) is shared with today's ``grid``."""
GRID_VERSIONS = {"grid (before)": OLD_GRID, "grid": {}}


def goldcape_scene(tmp: Path) -> Path | None:
    """goldcape imported as config/examples/goldcape.yaml does, or None when the data is absent."""
    src = ROOT.parent / "shared" / "data" / "goldcape"
    if not (src / "poses_bounds.npy").exists():
        return None
    spec = {"name": "goldcape", "source": "llff", "path": str(src),
            "options": {"images": "images_8", "masks": "masks_8", "layout": "object"}}
    out = tmp / "goldcape.zarr"
    run_measured(n3f_command("scene", "--spec", json.dumps(spec), "--out", str(out)), tmp / "goldcape.log")
    return out


def grid_versions(args: argparse.Namespace) -> dict:
    """Old vs new ``grid`` side by side: RGB-step rays/s, and held-out PSNR and SSIM against
    training time under one budget, on the static toy scene and on goldcape."""
    from n3f.metrics import ssim
    from n3f.synthetic import make_scene

    before = machine()
    torch.set_num_threads(args.threads)
    out: dict = {"machine": before, "settings": vars(args), "scenes": {}}
    with tempfile.TemporaryDirectory(prefix="n3f-bench-") as tmp:
        toy = write_scene(make_scene("toy_static", kind="static", n_frames=60, width=160, height=120, seed=0),
                          Path(tmp) / "toy_static.zarr", progress=False)
        paths = {"toy_static": toy, "goldcape": goldcape_scene(Path(tmp))}
        for name, path in paths.items():
            if path is None:
                print(f"[bench] {name}: data not found, skipped", file=sys.stderr)
                continue
            scene = SceneStore(path)
            val = scene.split("val")
            frames = val[np.linspace(0, len(val) - 1, args.eval_frames).round().astype(int)]
            res = {}
            for label, given in GRID_VERSIONS.items():
                torch.manual_seed(0)
                asked = TrainConfig.from_dict({**given, "quality": args.quality})
                cfg = asked.resolved("rgb")
                r = new_renderer(scene, asked, 64).train()  # sized from the scene: settings as asked, not resolved
                stage = Stage(r, scene, cfg, None)
                stage.step = r.sampler.grid_warmup  # throughput with the occupancy grid filled, as after warm-up
                for _ in range(3):
                    stage()
                t0 = time.perf_counter()
                for _ in range(args.throughput_steps):
                    stage()
                step_s = (time.perf_counter() - t0) / args.throughput_steps
                torch.manual_seed(0)
                r = new_renderer(scene, asked, 64).train()
                stage = Stage(r, scene, cfg, None)

                def measure(r=r) -> float:
                    return heldout(r, scene, None, frames, args.grid_eval_downscale)

                curve = run_stage(f"{name} {label}", stage, args.grid_rgb_budget, args.eval_growth, measure)
                final = final_metrics(r, scene, frames, ssim)
                res[label] = {"rays_per_s": round(cfg.batch_rays / step_s, 1), "step_s": round(step_s, 4),
                              "batch_rays": cfg.batch_rays, "steps_done": stage.step, "parameters":
                              int(sum(p.numel() for p in r.parameters())), "curve": curve, **final}
            target = max(c["value"] for c in res["grid (before)"]["curve"])
            for v in res.values():
                v["to_old_best_s"] = first_reach(v["curve"], target)
            out["scenes"][name] = {"image_size": list(scene.image_size), "frames": scene.n_frames,
                                   "old_best_psnr": target, "versions": res}
    write_results("training_grid", out, grid_markdown(out))
    return out


@torch.no_grad()
def final_metrics(r: Renderer, scene: SceneStore, frames: np.ndarray, ssim) -> dict:
    """Full-resolution held-out PSNR and SSIM at the end of the budget."""
    r.eval()
    ps, ss = [], []
    for i in frames:
        pred = np.clip(r.render_frame(scene, int(i), outputs=("rgb",))["rgb"], 0, 1)
        gt = scene.frame(int(i)).astype(np.float32) / 255
        ps.append(-10 * np.log10(max(float(np.mean((pred - gt) ** 2)), 1e-12)))
        ss.append(ssim(pred, gt))
    r.train()
    return {"final_psnr": round(float(np.mean(ps)), 3), "final_ssim": round(float(np.mean(ss)), 4)}


def grid_markdown(res: dict) -> str:
    s = res["settings"]
    lines = [
        "# Training benchmark: grid before and after the real-capture work",
        "",
        f"RGB pretraining only, each variant under the same {s['grid_rgb_budget']:.0f} s training budget (evaluation "
        f"excluded) or to the end of its schedule, {s['threads']} thread(s), quality `{s['quality']}`; "
        f"{describe(res['machine'])}. Produced by `bench/bench_training.py --grids`.",
        "`grid (before)`: planes up to 256 cells, field-density proposal at 64 points, rays stopped at the",
        "frames' far bounds, no appearance codes. Curves are held-out PSNR at 1/"
        f"{s['grid_eval_downscale']} resolution on {s['eval_frames']} val frames; final figures at full resolution.",
        "",
        "| scene | variant | rays/s (RGB step) | parameters | steps done | final PSNR | final SSIM | to old best PSNR (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, sc in res["scenes"].items():
        for label, v in sc["versions"].items():
            lines.append(f"| {name} | {label} | {v['rays_per_s']:.0f} | {v['parameters']:,} | {v['steps_done']} | "
                         f"{v['final_psnr']:.2f} | {v['final_ssim']:.3f} | {v['to_old_best_s']} |")
    lines += ["", "Curves (training seconds / step: held-out PSNR):", ""]
    for name, sc in res["scenes"].items():
        for label, v in sc["versions"].items():
            lines.append(f"- {name} {label}: " + ", ".join(f"{c['train_s']}s/{c['step']}: {c['value']}" for c in v["curve"]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", action="store_true", help="compare grid before/after the real-capture work instead (toy_static, goldcape)")
    ap.add_argument("--grid-rgb-budget", type=float, default=300.0, help="--grids: seconds of RGB training per variant and scene")
    ap.add_argument("--quality", default="default", help="--grids: quality preset of both variants")
    ap.add_argument("--grid-eval-downscale", type=int, default=1,
                    help="--grids: one ray per this many pixels in the curves (1: full resolution; at 4, one point "
                         "sample per 4x4 block against the block's mean penalises the sharper field: toy_static "
                         "25.9 dB at 1/4 against 29.9 at full resolution, 2026-12-02)")
    ap.add_argument("--batch", type=int, default=256, help="rays per step for both fields")
    ap.add_argument("--throughput-steps", type=int, default=5)
    ap.add_argument("--grid-budget", type=float, nargs=2, default=[600.0, 600.0], help="seconds for grid's two stages (its schedules end sooner)")
    ap.add_argument("--nerf-budget", type=float, nargs=2, default=[600.0, 600.0], help="seconds for nerf's rgb and distill stages")
    ap.add_argument("--eval-growth", type=float, default=1.5, help="evaluate at 2 s of training, then each time it grows by this factor")
    ap.add_argument("--eval-frames", type=int, default=2)
    ap.add_argument("--eval-downscale", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="threads of the curves")
    ap.add_argument("--teacher", default="dinov2_vits14_imgfocus")
    args = ap.parse_args(argv)
    if args.grids:
        return grid_versions(args)
    before = machine()
    with tempfile.TemporaryDirectory(prefix="n3f-bench-") as tmp:
        scene_path, feats_path = scene_and_features(args, Path(tmp))
        scene, feats = SceneStore(scene_path), FeatureStore(feats_path)
        val = scene.split("val")
        frames = val[np.linspace(0, len(val) - 1, args.eval_frames).round().astype(int)]
        tp = [throughput(f, scene, args.batch, args.throughput_steps, t) for t in (1, 2) for f in FIELDS]
        for t in tp:
            print(f"[bench] {t['field']} x{t['threads']}: {t['rays_per_s']} rays/s", file=sys.stderr, flush=True)
        runs = {f: train_field(f, scene, feats, args, frames, tuple(getattr(args, f"{f}_budget"))) for f in FIELDS}
    targets = {
        stage: min(max(c["value"] for c in runs[f][stage]) for f in FIELDS) for stage in ("rgb", "distill")
    }
    reach = {}
    for f in FIELDS:
        rgb_t, dis_t = first_reach(runs[f]["rgb"], targets["rgb"]), first_reach(runs[f]["distill"], targets["distill"])
        reach[f] = {"rgb_s": rgb_t, "distill_s": dis_t,
                    "total_s": None if dis_t is None else round(runs[f]["rgb_train_s"] + dis_t, 1)}
    ratios = {k: (round(reach["nerf"][k] / reach["grid"][k], 1) if reach["nerf"][k] and reach["grid"][k] else None)
              for k in ("rgb_s", "distill_s", "total_s")}
    res = {"scene": scene.name, "image_size": list(scene.image_size), "machine": before, "settings": vars(args),
           "throughput": tp, "runs": runs, "targets": targets, "time_to_target_s": reach, "ratio_nerf_over_grid": ratios}
    write_results("training", res, markdown(res))
    return res


def markdown(res: dict) -> str:
    m, s = res["machine"], res["settings"]
    lines = [
        "# Training benchmark: grid vs nerf",
        "",
        f"Scene `{res['scene']}` ({res['image_size'][1]}x{res['image_size'][0]}), {s['batch']} rays per step for both fields, "
        f"teacher `{s['teacher']}`; {describe(m)}. Produced by `bench/bench_training.py`.",
        "",
        "| field | threads | rays/s (RGB train step) | step (s) | fine + proposal samples/ray | parameters |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in res["throughput"]:
        lines.append(f"| {t['field']} | {t['threads']} | {t['rays_per_s']:.0f} | {t['step_s']:.3f} | "
                     f"{t['fine_samples_per_ray']} + {t['proposal_samples_per_ray']} | {t['parameters']:,} |")
    tp = {(t["field"], t["threads"]): t["rays_per_s"] for t in res["throughput"]}
    lines += ["", "grid is " + ", ".join(f"**{tp[('grid', k)] / tp[('nerf', k)]:.0f}x** faster per ray with {k} thread(s)" for k in (1, 2)) + ".", ""]
    tg, reach, ratio = res["targets"], res["time_to_target_s"], res["ratio_nerf_over_grid"]
    lines += [
        f"Curves with {s['threads']} thread(s); held-out metrics on {s['eval_frames']} val frames at 1/{s['eval_downscale']} "
        f"resolution. Targets = best value nerf reached within its budgets: PSNR **{tg['rgb']:.2f} dB**, "
        f"feature cosine **{tg['distill']:.4f}**.",
        "",
        "| field | budgets rgb / distill (s) | best PSNR | best cosine | to PSNR target (s) | to cosine target, distill only (s) | total to cosine target (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    fmt = lambda v: "not reached" if v is None else f"{v}"  # noqa: E731
    for f in FIELDS:
        run = res["runs"][f]
        b = s[f"{f}_budget"]
        lines.append(f"| {f} | {b[0]:.0f} / {b[1]:.0f} | {max(c['value'] for c in run['rgb']):.2f} | "
                     f"{max(c['value'] for c in run['distill']):.4f} | {fmt(reach[f]['rgb_s'])} | {fmt(reach[f]['distill_s'])} | "
                     f"{fmt(reach[f]['total_s'])} |")
    lines += [
        "",
        f"nerf / grid wall time: PSNR target **{fmt(ratio['rgb_s'])}x**, cosine target in distillation **{fmt(ratio['distill_s'])}x**, "
        f"whole recipe (stage 1 as trained + distillation to the cosine target) **{fmt(ratio['total_s'])}x**.",
        "",
        "Training seconds exclude evaluation. grid stops at the end of its default schedules; nerf runs the",
        "paper's schedule (200k + 50k steps) cut by the budgets, so its targets are what a CPU reaches in that",
        "time, not its converged quality. Throughput rows run first, the curves after, on a machine that may",
        "have been shared (load above).",
        "",
        "Curves (training seconds / step: value):",
        "",
    ]
    for f in FIELDS:
        for stage in ("rgb", "distill"):
            lines.append(f"- {f} {stage}: " + ", ".join(f"{c['train_s']}s/{c['step']}: {c['value']}" for c in res["runs"][f][stage]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
