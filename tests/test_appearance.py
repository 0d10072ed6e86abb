"""Per-frame appearance codes absorb exposure changes between shots (issue: real captures).

A synthetic static scene whose frames are re-exposed by a factor that drifts
smoothly along the capture (as a camera's auto-exposure does on a walk around an
object): a field without appearance codes can only fit the average exposure, one
with codes fits each shot, and a held-out shot reads the code interpolated
between its neighbours in capture order, so its PSNR must beat the field without.
Photo-collection sources get the codes by default, synthetic ones do not.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import torch

from n3f.scene import SceneStore, write_scene
from n3f.train import TrainConfig, pretrain_rgb
from n3f.train.loop import new_renderer

torch.set_num_threads(1)
RUN = {
    "steps": 700, "batch_rays": 256, "lr": 0.02, "lr_final_factor": 0.3, "eval_frames": 0,
    "sampler": {"n_proposal": 48, "n_importance": 16, "n_uniform": 4}, "progress": False, "threads": 1,
}


def _exposed_scene(tmp_path) -> SceneStore:
    from n3f.synthetic import make_scene

    scene = make_scene("exposure", kind="static", n_frames=32, width=48, height=36, seed=1)
    n = len(scene.frames)
    # three cycles around the orbit: faster than the view-dependent colour (SH degree <= 2 per orbit) can follow
    gain = 0.75 + 0.35 * np.sin(np.linspace(0.0, 6.0 * np.pi, n, endpoint=False))  # 0.4 .. 1.1 of the photo
    frames = [np.clip(np.asarray(f, np.float32) * g, 0, 255).astype(np.uint8) for f, g in zip(scene.frames, gain)]
    return SceneStore(write_scene(replace(scene, frames=frames), tmp_path / "exposure.zarr", progress=False))


def test_appearance_codes_absorb_a_drifting_exposure(tmp_path):
    store = _exposed_scene(tmp_path)
    assert len(store.split("val")) >= 3
    psnr = {}
    for dim in (0, 16):
        cfg = TrainConfig.from_dict({**RUN, "field_config": {"appearance_dim": dim}})
        metrics = pretrain_rgb(store.path, tmp_path / f"app{dim}", cfg)
        psnr[dim] = metrics["psnr"]
        saved = json.loads((tmp_path / f"app{dim}" / "metrics.json").read_text())
        assert saved["psnr"] == metrics["psnr"]
    assert psnr[16] > psnr[0] + 1.0, psnr


def test_photo_collections_get_appearance_codes_by_default(tmp_path):
    store = _exposed_scene(tmp_path)
    assert new_renderer(store, TrainConfig(), 8).field.settings.appearance_dim == 0  # synthetic: exact exposure
    from n3f.fields.sizing import PHOTO_SOURCES, appearance_default

    assert all(appearance_default(s) > 0 for s in PHOTO_SOURCES)
    assert appearance_default("video") == 0 and appearance_default("epic") == 0
    explicit = TrainConfig.from_dict({"field_config": {"appearance_dim": 4}})
    assert new_renderer(store, explicit, 8).field.settings.appearance_dim == 4  # what the user sets wins
