"""Training-free fusion (n3f/fusion): known answers on analytic geometry, the saved model, the stage.

A field whose geometry is one opaque plane (a half-space of density 1e4 beyond z = 0 in
the cube) is seen by cameras in front of it: the fused features at the plane must be the
teacher's, and where two views see the same surface their features average by the weight
each view splatted there.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from n3f.fields.base import Field, Samples
from n3f.fields.settings import GridFieldConfig
from n3f.fusion.fuse import FuseConfig, fuse, fuse_frame, strided_pixels
from n3f.fusion.volume import FeatureVolume
from n3f.render.model_io import load_renderer, save_model, model_meta
from n3f.render.rays import camera_rays, rays_from_pixels
from n3f.render.renderer import Renderer
from n3f.render.settings import SamplerConfig
from n3f.render.space import SceneSpace

C = 8
K = np.array([[30.0, 0, 12.0], [0, 30.0, 9.0], [0, 0, 1]])


class PlaneField(Field):
    """Analytic geometry: empty for z < 0 (cube coordinates), density 1e4 beyond: one opaque plane."""

    name = "plane"
    settings_class = GridFieldConfig

    def __init__(self):
        super().__init__(C, GridFieldConfig())
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, samples: Samples, outputs=("rgb", "features"), coarse: bool = False):
        p = samples.positions
        out = {"density": (p[:, 2] > 0).float() * 1e4 + 0 * self.dummy}
        if "rgb" in outputs:
            out["rgb"] = torch.full((len(p), 3), 0.5)
        if "features" in outputs:
            out["features"] = torch.zeros(len(p), C)
        return out


def _renderer() -> Renderer:
    # contract space of radius 2: world points inside 2 units map to the cube as x / 4
    sampler = SamplerConfig(n_proposal=64, n_importance=16, n_uniform=4)
    return Renderer(PlaneField(), SceneSpace(kind="contract", radius=2.0), sampler, "black").eval()


def _camera(x: float) -> np.ndarray:
    """A camera at world (x, 0, -1.5) looking along +z at the plane z = 0 (world)."""
    c2w = np.eye(4)
    c2w[:3, 3] = [x, 0.0, -1.5]
    return c2w


def _fuse_views(renderer: Renderer, views: list[tuple[np.ndarray, np.ndarray]], resolution: int = 16) -> FeatureVolume:
    volume = FeatureVolume(renderer.field.fusion_streams, resolution, C)
    for frame, (c2w, feature) in enumerate(views):
        rays = camera_rays(c2w, K, 18, 24, (0.1, 3.0), frame)
        teacher = torch.as_tensor(feature, dtype=torch.float32).expand(len(rays), C)
        fuse_frame(renderer, volume, rays, teacher, min_weight=1e-4, chunk=4096)
    volume.finish()
    return volume


def test_a_constant_teacher_feature_on_an_opaque_plane_comes_back():
    renderer = _renderer()
    feature = np.linspace(-1, 1, C)
    renderer.fused = _fuse_views(renderer, [(_camera(0.0), feature)])
    # at points of the plane the camera saw (world z = 0 is cube z = 0): the teacher's feature
    points = np.array([[0.0, 0.0, 0.01], [0.2, 0.1, 0.01], [-0.2, -0.1, 0.01]])
    got = renderer.query(points)["features"].numpy()
    np.testing.assert_allclose(got, np.tile(feature, (3, 1)), atol=1e-3)  # float16 storage
    # rendered from the camera: every ray hits the plane, so every pixel renders the feature
    rendered = renderer.render_camera(_camera(0.0), K, 18, 24, (0.1, 3.0))["features"]
    np.testing.assert_allclose(rendered.reshape(-1, C), np.tile(feature, (18 * 24, 1)), atol=2e-3)


def test_two_views_of_the_same_surface_average_their_features_by_weight():
    renderer = _renderer()
    f1, f2 = np.eye(C)[0], np.eye(C)[1]
    one = _fuse_views(renderer, [(_camera(0.0), f1)])
    two = _fuse_views(renderer, [(_camera(0.3), f2)])
    both = _fuse_views(renderer, [(_camera(0.0), f1), (_camera(0.3), f2)])
    # a voxel of the plane both views splatted into: its weight is the sum, its feature the weighted mean
    common = np.intersect1d(one.index.numpy(), two.index.numpy())
    assert len(common) > 10
    w1 = one.weight.numpy()[np.searchsorted(one.index.numpy(), common)]
    w2 = two.weight.numpy()[np.searchsorted(two.index.numpy(), common)]
    at = np.searchsorted(both.index.numpy(), common)
    np.testing.assert_allclose(both.weight.numpy()[at], w1 + w2, rtol=1e-5)
    expected = (w1[:, None] * f1 + w2[:, None] * f2) / (w1 + w2)[:, None]
    np.testing.assert_allclose(both.mean.float().numpy()[at], expected, atol=1e-3)
    assert (np.abs(w1 - w2) / (w1 + w2)).max() > 0.05  # unequal weights: a plain mean would fail


def test_volume_lookup_is_the_weighted_mean_of_its_splats():
    volume = FeatureVolume(["field"], 8, 2)
    point = torch.tensor([[0.13, -0.4, 0.77]])
    volume.splat("field", point.expand(2, 3), torch.tensor([0.25, 0.75]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    volume.finish()
    feature, weight = volume.lookup("field", point)
    np.testing.assert_allclose(feature.numpy(), [[0.25, 0.75]], atol=1e-3)
    assert float(weight) > 0.1
    # a point nobody observed has no feature rather than a pulled-down mean
    assert torch.count_nonzero(volume.lookup("field", torch.tensor([[-0.9, 0.9, -0.9]]))[0]) == 0


def test_the_fused_model_round_trips_through_model_pt(tmp_path):
    renderer = _renderer()
    renderer.fused = _fuse_views(renderer, [(_camera(0.0), np.linspace(0, 1, C))])
    path = tmp_path / "model.pt"
    meta = model_meta(renderer, np.zeros(1), np.zeros(1, np.int64), stage="fuse")
    # the plane field is not a registered architecture: check the volume's own round trip
    state = {k: v for k, v in renderer.state_dict().items() if k.startswith("fused.")}
    again = FeatureVolume.from_description(meta["fused"])
    again.load_state_dict({k.removeprefix("fused."): v for k, v in state.items()})
    pts = torch.tensor([[0.0, 0.0, 0.01], [0.1, -0.1, 0.01]])
    torch.testing.assert_close(again.lookup("field", pts)[0], renderer.fused.lookup("field", pts)[0])
    assert meta["fused"]["voxels"] == renderer.fused.index.numel() < 16**3 // 2  # only observed voxels are kept


def test_strided_pixels_cover_the_frame_with_offsets():
    a, b = strided_pixels(12, 16, 4, 0), strided_pixels(12, 16, 4, 1)
    assert len(a) == 3 * 4 and float(a[0, 0]) == 0.5 and float(b[0, 0]) == 1.5
    every = torch.cat([strided_pixels(12, 16, 4, k) for k in range(16)])
    assert len(torch.unique(every, dim=0)) == 12 * 16  # 16 offsets visit every pixel once


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 10-frame synthetic scene, its mask-derived teacher features and a 300-step RGB stage."""
    from n3f.train import TrainConfig, pretrain_rgb
    from tests.test_tasks import make_tiny

    torch.set_num_threads(1)
    tiny = make_tiny(tmp_path_factory.mktemp("fusion"))
    small = {"batch_rays": 128, "lr": 0.02, "eval_frames": 1, "progress": False, "threads": 1,
             "sampler": {"n_proposal": 16, "n_importance": 8, "n_uniform": 4}}
    pretrain_rgb(tiny["scene"], tiny["root"] / "rgb", TrainConfig(field="grid", steps=300, **small))
    return tiny["scene"], tiny["features"], tiny["root"] / "rgb" / "model.pt"


def test_fuse_stage_writes_a_model_that_renders_the_teachers_features(trained, tmp_path):
    scene, features, rgb = trained
    metrics = fuse(scene, features, rgb, tmp_path / "fused", FuseConfig(stride=2, eval_frames=1, threads=1))
    saved = json.loads((tmp_path / "fused" / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert saved["voxels"] > 0 and saved["rays"] > 0
    model = load_renderer(tmp_path / "fused" / "model.pt")
    assert model.fused is not None and model.fused.channels == 64
    # the RGB model's feature head is untrained: its features do not point where the teacher's do
    from n3f.features.store import FeatureStore
    from n3f.scene import SceneStore
    from n3f.train.evaluate import evaluate

    before = evaluate(load_renderer(rgb), SceneStore(scene), FeatureStore(features), max_frames=1)["feature_cosine"]
    assert saved["feature_cosine"] > 0.8 > before


def test_fused_retrieval_in_its_own_run_scores_the_same_pairs(trained, tmp_path):
    """The workflow scores the fused field in a job of its own (``--method fused --no-baseline``): its rows
    are those of the fused field scored beside the teacher and a distilled model in one run."""
    from n3f.errors import N3FInputError
    from n3f.tasks.retrieval import evaluate_retrieval

    scene, features, rgb = trained
    fuse(scene, features, rgb, tmp_path / "fused", FuseConfig(stride=2, eval_frames=0, threads=1))
    fused = tmp_path / "fused" / "model.pt"
    limits = {"teacher": "masks", "max_queries": 2, "max_gallery": 3, "patches": 0}
    rows, seg, summary = evaluate_retrieval(scene, features, rgb, fused_path=fused, **limits)
    alone, alone_seg, alone_summary = evaluate_retrieval(scene, features, fused, method="fused", baseline=False, **limits)
    assert set(alone["method"]) == {"fused"} and alone_summary["methods"] == ["fused"]
    together = rows[rows["method"] == "fused"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone.reset_index(drop=True), together, check_dtype=False)
    assert alone_summary["map_fused"] == pytest.approx(summary["map_fused"])
    assert "map_teacher" not in alone_summary and "gain_fused" in summary
    with pytest.raises(N3FInputError, match="is a fused model.*--method fused"):
        evaluate_retrieval(scene, features, fused, **limits)
    with pytest.raises(N3FInputError, match="holds no fused features"):
        evaluate_retrieval(scene, features, rgb, method="fused", **limits)


def test_a_query_runs_on_the_fused_field(trained, tmp_path):
    """A user's query (``query_fused`` in the workflow) on the fused model: every product, labelled fused."""
    from n3f.tasks.common import load_inputs
    from n3f.tasks.queries import QueryProducts, run_query
    from n3f.tasks.query_spec import parse_query

    scene, features, rgb = trained
    fuse(scene, features, rgb, tmp_path / "fused", FuseConfig(stride=2, eval_frames=0, threads=1))
    inputs = load_inputs(scene, features, tmp_path / "fused" / "model.pt", "cpu", ground_truth=False)
    spec = parse_query("q", {"name": "box", "frame": 0, "box": [6, 4, 26, 20]})
    out = tmp_path / "fused" / "queries" / "box"
    summary = run_query(inputs, spec, out, products=QueryProducts(frames=2, novel=1, video_frames=0))
    assert json.loads((out / "query.json").read_text())["method"] == summary["method"] == "fused"
    assert summary["segment3d"]["points"] > 0 and (out / "segment3d.ply").is_file()
    for folder in ("segment2d", "masks", "amodal", "removal"):
        assert len(list((out / folder).glob("*.png"))) == len(summary["views"]) == 4, folder


def test_fused_then_distilled_starts_from_the_fused_features(trained, tmp_path):
    from n3f.train import TrainConfig, distill

    scene, features, rgb = trained
    fuse(scene, features, rgb, tmp_path / "fused", FuseConfig(stride=2, eval_frames=0, threads=1))
    small = {"batch_rays": 128, "lr": 0.02, "eval_frames": 1, "progress": False, "threads": 1, "freeze_steps": 10,
             "sampler": {"n_proposal": 16, "n_importance": 8, "n_uniform": 4}}
    plain = distill(scene, features, rgb, tmp_path / "plain", TrainConfig(field="grid", steps=20, **small))
    init = distill(scene, features, rgb, tmp_path / "init", TrainConfig(
        field="grid", steps=20, feature_init=str(tmp_path / "fused" / "model.pt"), feature_init_steps=200, **small))
    assert init["feature_cosine"] > plain["feature_cosine"] + 0.05


def test_feature_init_must_be_a_fused_model(trained, tmp_path):
    from n3f.errors import N3FInputError
    from n3f.train import TrainConfig, distill

    scene, features, rgb = trained
    with pytest.raises(N3FInputError, match="feature_init.*no fused features"):
        distill(scene, features, rgb, tmp_path / "bad", TrainConfig(field="grid", steps=2, feature_init=str(rgb),
                                                                    progress=False, eval_frames=1))


@pytest.mark.parametrize("field,kind", [("nerf", "static"), ("neuraldiff", "dynamic")])
def test_every_field_fuses_into_its_own_streams(field, kind, tmp_path):
    """nerf (coarse + fine model) and neuraldiff (three streams, the actor in camera coordinates)."""
    from n3f.scene import SceneStore, write_scene
    from n3f.synthetic import make_scene
    from n3f.teachers.mask import write_mask_features
    from n3f.train import TrainConfig, pretrain_rgb

    torch.set_num_threads(1)
    scene = write_scene(make_scene("tiny_fuse", kind=kind, n_frames=8, width=32, height=24, seed=2),
                        tmp_path / "scene.zarr", progress=False)
    features = write_mask_features(scene, tmp_path / "features.zarr", patch=4)
    small = {"batch_rays": 64, "eval_frames": 1, "eval_renders": 0, "progress": False, "threads": 1,
             "sampler": {"n_proposal": 8, "n_importance": 8, "n_uniform": 2}}
    pretrain_rgb(scene, tmp_path / "rgb", TrainConfig(field=field, steps=10, **small))
    # min_weight 0: a 10-step field is nearly empty; this checks where samples go, not their quality
    metrics = fuse(scene, features, tmp_path / "rgb", tmp_path / "fused",
                   FuseConfig(stride=2, eval_frames=1, threads=1, min_weight=0.0))
    model = load_renderer(tmp_path / "fused" / "model.pt")
    assert model.fused.streams == model.field.fusion_streams
    stream_of = model.fused.index // model.fused.resolution**3
    assert len(torch.unique(stream_of)) == len(model.fused.streams)  # every stream received samples
    out = model.render_frame(SceneStore(scene), 0, outputs=("features",))["features"]
    assert out.shape == (24, 32, 64) and np.isfinite(out).all() and np.isfinite(metrics["feature_cosine"])
