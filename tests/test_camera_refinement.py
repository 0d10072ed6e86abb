"""Camera refinement (learned pose corrections of the training cameras).

The geometry is checked exactly (a correction moves a frame's rays as the corrected pose's own rays
would be, and leaves other frames alone; it survives ``model.pt``), and the learning end to end: a
synthetic capture whose training poses are perturbed by a couple of degrees and a few hundredths of
its size is fitted with and without refinement; with it the recovered poses move toward the true
ones and the held-out frames (whose stored poses are exact) render better.
"""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import torch

from n3f.render.model_io import load_renderer
from n3f.render.pose_offsets import PoseOffsets, so3_exp
from n3f.render.rays import rays_from_pixels
from n3f.scene import SceneStore, write_scene
from n3f.train import TrainConfig, distill, pretrain_rgb

torch.set_num_threads(1)
RUN = {
    "steps": 700, "batch_rays": 256, "lr": 0.02, "lr_final_factor": 0.3, "eval_frames": 0, "eval_renders": 0,
    "sampler": {"n_proposal": 48, "n_importance": 16, "n_uniform": 4}, "progress": False, "threads": 1,
}


def _rotation_deg(a: np.ndarray, b: np.ndarray) -> float:
    cos = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def test_so3_exp_is_rodrigues():
    w = torch.tensor([[0.0, 0.0, 0.0], [0.1, -0.2, 0.3], [1.0, 0.5, -0.25]], dtype=torch.float64)
    got = so3_exp(w).numpy()
    for i, v in enumerate(w.numpy()):
        np.testing.assert_allclose(got[i], cv2.Rodrigues(v)[0], atol=1e-10)


def test_a_correction_moves_its_frames_rays_as_the_corrected_pose_would():
    rng = np.random.default_rng(0)
    c2w = np.tile(np.eye(4), (3, 1, 1))
    for i in range(3):
        c2w[i, :3, :3] = cv2.Rodrigues(rng.normal(size=3))[0]
        c2w[i, :3, 3] = rng.normal(size=3)
    K = np.array([[40.0, 0, 24], [0, 40.0, 18], [0, 0, 1]])
    offsets = PoseOffsets(c2w, refined=[0, 2])
    with torch.no_grad():
        offsets.offsets.copy_(torch.tensor(rng.normal(scale=0.05, size=(3, 6)), dtype=torch.float32))
    uv = torch.tensor(rng.uniform(0, 40, size=(10, 2)), dtype=torch.float32)
    bounds = torch.tensor([0.1, 5.0])
    for frame in range(3):
        stored = rays_from_pixels(torch.tensor(c2w[frame]), torch.tensor(K), uv, bounds, frame)
        moved = offsets.apply(stored)
        expected_pose = offsets.corrected(c2w[frame], frame)
        if frame == 1:  # not refined: untouched whatever its offset holds
            np.testing.assert_allclose(expected_pose, c2w[1], atol=1e-12)
        else:
            assert _rotation_deg(expected_pose, c2w[frame]) > 0.5
        expected = rays_from_pixels(torch.tensor(expected_pose), torch.tensor(K), uv, bounds, frame)
        torch.testing.assert_close(moved.origins, expected.origins, atol=1e-5, rtol=0)
        torch.testing.assert_close(moved.directions, expected.directions, atol=1e-5, rtol=0)
        torch.testing.assert_close(moved.dirs_cam, stored.dirs_cam)  # pixels stay where they are in the camera


def _perturbed_scene(tmp_path) -> tuple[SceneStore, np.ndarray]:
    """A small synthetic capture whose *training* poses are off by ~2 degrees and ~0.03 units;
    held-out poses stay exact. Returns the store and the true poses."""
    from n3f.synthetic import make_scene

    scene = make_scene("offset", kind="static", n_frames=32, width=48, height=36, seed=1)
    true = np.asarray(scene.c2w, np.float64).copy()
    path = write_scene(scene, tmp_path / "exact.zarr", progress=False)
    val = set(SceneStore(path).split("val").tolist())
    rng = np.random.default_rng(3)
    wrong = true.copy()
    for i in range(len(true)):
        if i in val:
            continue
        axis = rng.normal(size=3)
        delta = np.eye(4)
        delta[:3, :3] = cv2.Rodrigues(axis / np.linalg.norm(axis) * np.radians(2.0))[0]
        shift = rng.normal(size=3)
        delta[:3, 3] = 0.03 * shift / np.linalg.norm(shift)
        wrong[i] = true[i] @ delta
    store = SceneStore(write_scene(replace(scene, c2w=wrong.astype(np.float32)), tmp_path / "perturbed.zarr", progress=False))
    return store, true


def test_refinement_recovers_perturbed_poses_and_renders_held_out_views_better(tmp_path):
    store, true = _perturbed_scene(tmp_path)
    # the store normalises the scene: compare in its frame, where the held-out poses are exact
    stored = np.asarray(store.c2w, np.float64)
    train = store.split("train")
    psnr = {}
    for refine in (False, True):
        out = tmp_path / f"refine{int(refine)}"
        cfg = TrainConfig.from_dict({**RUN, "eval_frames": 0, "camera_refinement": refine})
        psnr[refine] = pretrain_rgb(store.path, out, cfg)["psnr"]
    renderer = load_renderer(tmp_path / "refine1")
    saved = json.loads((tmp_path / "refine1" / "metrics.json").read_text())
    assert saved["camera_offsets"]["frames"] == len(train)
    assert "camera_offsets" not in json.loads((tmp_path / "refine0" / "metrics.json").read_text())
    before, after = _rotation_errors(stored, true, renderer, train)
    assert after < 0.6 * before, (before, after)
    assert psnr[True] > psnr[False] + 0.5, psnr


def _rotation_errors(stored, true, renderer, train) -> tuple[float, float]:
    """Mean rotation error (degrees) of the training poses before and after refinement, against
    the truth brought into the store's frame (the store rotates every pose by the same matrix)."""
    val = [i for i in range(len(stored)) if i not in set(train.tolist())]
    align = stored[val[0], :3, :3] @ true[val[0], :3, :3].T
    before, after = [], []
    for i in train:
        target = np.eye(4)
        target[:3, :3] = align @ true[i, :3, :3]
        before.append(_rotation_deg(stored[i], target))
        after.append(_rotation_deg(renderer.stored_pose(stored[i], int(i)), target))
    return float(np.mean(before)), float(np.mean(after))


def test_distillation_keeps_the_learned_corrections(tmp_path):
    from n3f.features.extract import extract_feature_store

    store, _ = _perturbed_scene(tmp_path)
    rgb = tmp_path / "rgb"
    pretrain_rgb(store.path, rgb, TrainConfig.from_dict({**RUN, "steps": 60, "camera_refinement": True}))
    feats = extract_feature_store(store.path, tmp_path / "feats.zarr", "dsift", input_size=64, n_components=8, progress=False)
    distill(store.path, feats, rgb, tmp_path / "distilled", TrainConfig.from_dict({**RUN, "steps": 30}))
    a, b = load_renderer(rgb), load_renderer(tmp_path / "distilled")
    assert b.pose_offsets is not None
    torch.testing.assert_close(a.pose_offsets.offsets, b.pose_offsets.offsets, atol=0, rtol=0)
    assert float(a.pose_offsets.offsets.detach().abs().max()) > 0
