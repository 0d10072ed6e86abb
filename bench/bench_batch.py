"""Making one training batch (``RaySampler.sample``): the per-frame loop it replaced vs one gather, side by side.

A training step draws ``batch_rays`` rays over ``frames_per_step`` (16) random
frames. The old sampler looped over the distinct frames of the batch, indexing
each cached frame and calling ``grid_sample`` on each frame's teacher grid (and
re-opened the zarr feature array once per batch to read its channel count);
the new one keeps the cached frames as rows of one tensor and gathers every
target with one index. Both are timed on the same real scene (goldcape, 119
frames at 456x456, teacher grid 32x32x64 from ``dsift``) with warm caches (the
scene fits in the default 256-frame cache), for RGB-only batches (stage 1) and
RGB + features (stage 2, nearest and bilinear), at 256 and 1024 rays.
Interleaved rounds, best of them, one thread. Before timing, both samplers are
run from the same RNG state and their outputs compared.

Writes ``bench/results/batch.json`` and ``batch.md``.

    python bench/bench_batch.py
    python bench/bench_batch.py --scene S.zarr --features F.zarr   # existing stores
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import OrderedDict
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import describe, machine, n3f_command, run_measured, write_results  # noqa: E402

from n3f.features.store import FeatureStore, pixel_to_grid, sample_grid  # noqa: E402
from n3f.render.rays import rays_from_pixels  # noqa: E402
from n3f.scene import SceneStore  # noqa: E402
from n3f.train.data import RaySampler  # noqa: E402

GOLDCAPE = ROOT.parent / "shared" / "data" / "goldcape"
SPEC = {"name": "goldcape", "source": "llff", "path": str(GOLDCAPE),
        "options": {"images": "images_8", "masks": "masks_8", "layout": "object"}}
CASES = (("rgb", False, "nearest"), ("rgb+features nearest", True, "nearest"), ("rgb+features bilinear", True, "bilinear"))


# ---------------------------------------------------------------------------
# REFERENCE: the sampler as it was before this change (n3f/train/data.py at
# 9198281), kept as it was (minus its input checks) so the two run side by side.
# ---------------------------------------------------------------------------
class OldLRUCache:
    def __init__(self, capacity, load):
        self.capacity = max(1, int(capacity))
        self.load = load
        self._data = OrderedDict()

    def __getitem__(self, key):
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        value = self.load(key)
        self._data[key] = value
        if len(self._data) > self.capacity:
            self._data.popitem(last=False)
        return value


class OldRaySampler:
    def __init__(self, scene, frames, features=None, frames_per_step=16, cache_frames=256, feature_mode="nearest"):
        self.scene = scene
        self.frames = np.asarray(frames, dtype=np.int64)
        self.features = features
        self.frames_per_step = int(min(frames_per_step, len(self.frames)))
        self.feature_mode = feature_mode
        self.h, self.w = scene.image_size
        self.c2w = torch.as_tensor(scene.c2w, dtype=torch.float32)
        self.K = torch.as_tensor(scene.intrinsics, dtype=torch.float32)
        self.bounds = torch.as_tensor(scene.bounds, dtype=torch.float32)
        self.rgb = OldLRUCache(cache_frames, lambda i: torch.from_numpy(scene.frame(i)))
        if features is not None:
            self.grids = OldLRUCache(cache_frames, lambda i: torch.from_numpy(features.grid(i)))

    def sample(self, n_rays, rng, with_features):
        chosen = rng.choice(self.frames, size=self.frames_per_step, replace=False)
        frame = np.sort(rng.choice(chosen, size=n_rays))
        x = rng.integers(0, self.w, size=n_rays)
        y = rng.integers(0, self.h, size=n_rays)
        return self.rays_at(frame, x, y, with_features)

    def rays_at(self, frame, x, y, with_features):
        f = torch.from_numpy(frame)
        uv = torch.from_numpy(np.stack([x + 0.5, y + 0.5], axis=-1)).float()
        rays = rays_from_pixels(self.c2w[f], self.K[f], uv, self.bounds[f], f)
        rgb = torch.empty(len(frame), 3)
        feats = torch.empty(len(frame), self.features.channels) if with_features and self.features is not None else None
        xs, ys = torch.from_numpy(x), torch.from_numpy(y)
        for i in np.unique(frame):
            sel = torch.from_numpy(np.flatnonzero(frame == i))
            img = self.rgb[int(i)]
            rgb[sel] = img[ys[sel], xs[sel]].float() / 255.0
            if feats is not None:
                grid = self.grids[int(i)]
                xy = pixel_to_grid(uv[sel].numpy(), (self.h, self.w), tuple(grid.shape[:2]))
                feats[sel] = sample_grid(grid, torch.from_numpy(xy).float(), self.feature_mode)
        return rays, rgb, feats
# ------------------------------ end of reference ----------------------------


def stores(args: argparse.Namespace, tmp: Path) -> tuple[Path, Path]:
    scene, feats = args.scene, args.features
    if scene is None:
        scene = tmp / "goldcape.zarr"
        run_measured(n3f_command("scene", "--spec", json.dumps(SPEC), "--out", str(scene)), tmp / "scene.log")
    if feats is None:
        feats = tmp / "dsift.zarr"
        run_measured(n3f_command("features", "--scene", str(scene), "--out", str(feats), "--teacher", "dsift",
                                 "--input-size", "448", "--patch-size", "14", "--no-progress"), tmp / "features.log")
    return Path(scene), Path(feats)


def compare(old, new, n_rays: int, with_features: bool, calls: int) -> dict:
    """Both samplers from the same RNG state: are rays and targets the same?"""
    ro, rn = np.random.default_rng(7), np.random.default_rng(7)
    worst, identical = 0.0, True
    for _ in range(calls):
        a, b = old.sample(n_rays, ro, with_features), new.sample(n_rays, rn, with_features)
        pairs = [(getattr(a[0], f.name), getattr(b[0], f.name)) for f in fields(a[0])] + [(a[1], b[1])]
        if with_features:
            pairs.append((a[2], b[2]))
        for u, v in pairs:
            identical &= bool(torch.equal(u, v))
            worst = max(worst, float((u.double() - v.double()).abs().max()))
    return {"identical": identical, "max_abs_diff": worst}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", type=Path, help="scene store (default: goldcape imported here)")
    ap.add_argument("--features", type=Path, help="feature store of that scene (default: dsift, 32x32 grid)")
    ap.add_argument("--rays", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--calls", type=int, default=200, help="batches per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    before = machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="n3f-batch-") as tmp:
        scene_path, feats_path = stores(args, Path(tmp))
        scene, features = SceneStore(scene_path), FeatureStore(feats_path)
        train = scene.split("train")
        info = {"scene": scene.name, "frames": scene.n_frames, "train_frames": len(train),
                "image_hw": list(scene.image_size), "grid_hw": list(features.grid_size), "channels": features.channels}
        for label, with_f, mode in CASES:
            old = OldRaySampler(scene, train, features, feature_mode=mode)
            new = RaySampler(scene, train, features, feature_mode=mode)
            warm = np.random.default_rng(0)
            for _ in range(30):  # fill both caches with every training frame
                old.sample(1024, warm, with_f)
            new.sample(1, np.random.default_rng(0), with_f)
            for i in train:
                new.rgb.slot(int(i))
                if with_f:
                    new.grids.slot(int(i))
            for n in args.rays:
                same = compare(old, new, n, with_f, 20)
                times = {"old": [], "new": []}
                rngs = {"old": np.random.default_rng(1), "new": np.random.default_rng(1)}
                for _ in range(args.rounds):
                    for name, s in (("old", old), ("new", new)):
                        t0 = time.perf_counter()
                        for _ in range(args.calls):
                            s.sample(n, rngs[name], with_f)
                        times[name].append((time.perf_counter() - t0) / args.calls * 1e3)
                o, w = min(times["old"]), min(times["new"])
                rows.append({"targets": label, "rays": n, "old_ms": round(o, 3), "new_ms": round(w, 3),
                             "speedup": round(o / w, 2), **same, "rounds_ms": {k: [round(t, 3) for t in v] for k, v in times.items()}})
                print({k: v for k, v in rows[-1].items() if k != "rounds_ms"}, file=sys.stderr, flush=True)
    after = machine()
    res = {"machine": before, "load_after_1min": after["load_avg_1min"], "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
           "scene": info, "rows": rows}
    md = [
        "# One training batch: per-frame loop (old) vs one gather (new)",
        "",
        f"`RaySampler.sample` on {info['scene']} ({info['train_frames']} training frames of {info['image_hw'][1]}x{info['image_hw'][0]}, "
        f"teacher grid {info['grid_hw'][1]}x{info['grid_hw'][0]}x{info['channels']} from dsift), 16 frames per batch, warm cache, "
        f"{args.threads} thread(s), best of {args.rounds} interleaved rounds of {args.calls} batches; "
        f"{describe(before)}, load after {after['load_avg_1min']}. Produced by `bench/bench_batch.py`.",
        "",
        "| targets | rays | old (ms) | new (ms) | speed-up | same output (20 batches) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        *[f"| {r['targets']} | {r['rays']} | {r['old_ms']:.2f} | {r['new_ms']:.2f} | {r['speedup']}x | "
          f"{'bit-identical' if r['identical'] else 'max abs diff %.2g' % r['max_abs_diff']} |" for r in rows],
    ]
    write_results("batch", res, "\n".join(md) + "\n")
    return res


if __name__ == "__main__":
    main()
