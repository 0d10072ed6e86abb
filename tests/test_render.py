"""Rays, spaces, sampling and compositing on hand-made cases (no training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from n3f.fields import build_field
from n3f.render import Renderer, SamplerConfig, SceneSpace, camera_rays, composite, project, rays_from_pixels
from n3f.render.composite import distortion_loss, render_weights
from n3f.render.sampling import dilate_weights, sample_pdf, stratified_s
from n3f.render.space import space_for_scene

torch.set_num_threads(1)


def _look_at(eye, target, up=(0, 0, 1)) -> np.ndarray:
    """OpenCV c2w: z forward to the target, y down."""
    eye, target, up = map(lambda v: np.asarray(v, float), (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


K = np.array([[90.0, 0.5, 80.0], [0.0, 95.0, 60.0], [0.0, 0.0, 1.0]])


def test_composite_single_opaque_sample_takes_everything():
    density = torch.tensor([[0.0, 1e6, 0.0]])
    deltas = torch.ones(1, 3)
    rgb = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]])
    out = composite(density, deltas, {"rgb": rgb}, t=torch.tensor([[1.0, 2.0, 3.0]]), background={"rgb": 1.0})
    assert torch.allclose(out["rgb"], torch.tensor([[0.0, 1.0, 0.0]]), atol=1e-6)
    assert torch.allclose(out["opacity"], torch.ones(1, 1))
    assert torch.allclose(out["depth"], torch.tensor([[2.0]]))


def test_composite_matches_closed_form_and_background():
    # two samples with alpha 0.5 each: weights 0.5, 0.25; background gets 0.25
    a = float(-np.log(0.5))
    density = torch.tensor([[a, a]])
    deltas = torch.ones(1, 2)
    feats = torch.tensor([[[2.0, 0.0], [0.0, 4.0]]])
    out = composite(density, deltas, {"features": feats}, background={"features": torch.tensor([8.0, 8.0])})
    assert torch.allclose(out["weights"], torch.tensor([[0.5, 0.25]]), atol=1e-6)
    assert torch.allclose(out["features"], torch.tensor([[1.0 + 2.0, 1.0 + 2.0]]), atol=1e-5)
    # empty space: nothing rendered, full transmittance
    w = render_weights(torch.zeros(3, 5), torch.ones(3, 5))
    assert float(w.abs().max()) == 0.0


def test_distortion_loss_matches_double_sum_and_prefers_compact_weights():
    g = torch.Generator().manual_seed(0)
    edges = torch.rand(4, 13, generator=g).sort(-1).values
    w = torch.rand(4, 12, generator=g)
    mids, widths = 0.5 * (edges[:, 1:] + edges[:, :-1]), edges[:, 1:] - edges[:, :-1]
    brute = (w[:, :, None] * w[:, None, :] * (mids[:, :, None] - mids[:, None, :]).abs()).sum((1, 2))
    brute = brute + (w**2 * widths).sum(-1) / 3
    assert torch.allclose(distortion_loss(w, edges), brute.mean(), rtol=1e-5)
    # the same total weight: one surface costs less than two separated ones (fog, floaters)
    e = torch.linspace(0, 1, 11)[None]
    one = torch.zeros(1, 10); one[0, 5] = 1.0
    two = torch.zeros(1, 10); two[0, 1] = two[0, 8] = 0.5
    assert float(distortion_loss(one, e)) < float(distortion_loss(two, e))
    assert float(distortion_loss(one, e)) == pytest.approx(0.1 / 3, rel=1e-5)


def test_ray_through_pixel_passes_through_projected_point():
    rng = np.random.default_rng(0)
    c2w = _look_at([0.9, -0.4, 0.5], [0.0, 0.1, 0.0])
    pts = rng.uniform(-0.4, 0.4, size=(50, 3))
    uv, depth = project(pts, c2w, K)
    assert (depth > 0).all()
    rays = rays_from_pixels(torch.tensor(c2w).float(), torch.tensor(K).float(), torch.tensor(uv).float(), torch.tensor([0.1, 5.0]))
    o, d = rays.origins.double().numpy(), rays.directions.double().numpy()
    t = ((pts - o) * d).sum(-1)
    closest = o + t[:, None] * d
    assert np.abs(closest - pts).max() < 1e-4
    # near/far are distances along the unit ray for depth bounds along the optical axis
    cos = rays.dirs_cam[:, 2].numpy()
    assert np.allclose(rays.near[:, 0].numpy() * cos, 0.1, atol=1e-6)
    # the camera-frame direction times distance is the point in camera coordinates
    w2c = np.linalg.inv(c2w)
    pc = pts @ w2c[:3, :3].T + w2c[:3, 3]
    assert np.abs(t[:, None] * rays.dirs_cam.double().numpy() - pc).max() < 1e-4


def test_camera_rays_pixel_centres_and_order():
    c2w = _look_at([0, -1, 0], [0, 0, 0])
    rays = camera_rays(c2w, K, 120, 160, (0.1, 2.0))
    assert len(rays) == 120 * 160
    # principal point (80, 60) is the corner between pixels (79|80, 59|60): the mean of
    # those four rays is the optical axis; row-major order puts pixel (x, y) at y*W + x
    idx = [59 * 160 + 79, 59 * 160 + 80, 60 * 160 + 79, 60 * 160 + 80]
    mean = rays.dirs_cam[idx].mean(0)
    assert abs(float(mean[0])) < 1e-6 and abs(float(mean[1])) < 1e-6
    assert float(rays.dirs_cam[0, 0]) < 0 and float(rays.dirs_cam[0, 1]) < 0  # top-left looks up-left


def test_contraction_and_spacing():
    space = SceneSpace(kind="contract", radius=1.0)
    x = torch.tensor([[0.5, 0.0, 0.0], [3.0, 0.0, 0.0], [1e6, 0.0, 0.0]])
    u = space.to_unit(x)
    assert torch.allclose(u[0], torch.tensor([0.25, 0.0, 0.0]))
    assert 0.5 < float(u[1, 0]) < 1.0 and abs(float(u[2, 0]) - 1.0) < 1e-4
    o = torch.tensor([[0.0, 0.0, -0.5]])
    d = torch.tensor([[0.0, 0.0, 1.0]])
    s = torch.linspace(0, 1, 33)[None]
    t = space.t_from_s(s, torch.tensor([[0.1]]), torch.tensor([[50.0]]), o, d)
    assert torch.all(t[:, 1:] > t[:, :-1])
    assert abs(float(t[0, 0]) - 0.1) < 1e-5 and abs(float(t[0, -1]) - 50.0) < 1e-3
    inside = (t < 1.5).float().mean()  # the ray leaves the unit ball at t = 1.5
    assert 0.3 < float(inside) < 0.9


def test_egocentric_space_fits_an_ellipsoid_to_the_frusta():
    # a camera panning over a table: content on one side of the camera path, flat in z
    c2ws = np.stack([_look_at((0.1 * i, 0.0, 0.3), (0.1 * i, 0.6, 0.0)) for i in range(-2, 3)])
    bounds = np.array([[0.1, 0.8]] * 5)
    space = space_for_scene("egocentric", c2ws, np.stack([K] * 5), bounds, (120, 160))
    radii = np.asarray(space.radius)
    assert radii.shape == (3,) and space.inner == 0.8
    # every point a camera sees between the near and far distances is in the linear part ...
    rays = camera_rays(c2ws[4], K, 120, 160, (0.1, 0.8))
    for t in (0.1, 0.8):
        u = space.to_unit(rays.origins + t * rays.directions)
        assert float(u.norm(dim=-1).max()) <= 0.8 + 1e-5
    # ... and it uses the cube better than the unit sphere did (grid cells are finer)
    spread = space.to_unit(rays.origins + 0.8 * rays.directions).std(0).sum()
    old = SceneSpace(kind="contract", radius=1.0).to_unit(rays.origins + 0.8 * rays.directions).std(0).sum()
    assert float(spread) > 1.3 * float(old)
    # continuous at the ellipsoid's surface, and everything beyond lands inside the cube
    edge = torch.tensor(space.centre) + torch.tensor([radii[0], 0.0, 0.0])
    u = space.to_unit(torch.stack([edge * (1 - 1e-4) + torch.tensor(space.centre) * 1e-4, edge]).float())
    assert torch.allclose(u[0], u[1], atol=1e-3)
    assert float(space.to_unit(torch.tensor([[1e6, 1e6, 1e6]])).abs().max()) <= 1.0
    # samples still run from near to far in order
    s = torch.linspace(0, 1, 17)[None].expand(len(rays), 17)
    tt = space.t_from_s(s, rays.near, rays.far, rays.origins, rays.directions)
    assert torch.all(tt[:, 1:] >= tt[:, :-1]) and torch.allclose(tt[:, -1:], rays.far, rtol=2e-3)


def test_ndc_space_maps_frustum_to_cube():
    c2ws = np.stack([_look_at([x, -1.0, 0.0], [x, 0.0, 0.0]) for x in (-0.05, 0.0, 0.05)])
    space = space_for_scene("forward", c2ws, np.stack([K] * 3), np.array([[0.5, 3.0]] * 3), (120, 160))
    assert space.kind == "ndc"
    ref = c2ws[1]
    # a point on the near plane at the image corner direction maps to about (-1, -1, -1)
    near = space.ndc_near
    corner_cam = np.array([(0 - K[0, 2]) / K[0, 0], (0 - K[1, 2]) / K[1, 1], 1.0]) * near
    p = ref[:3, :3] @ corner_cam + ref[:3, 3]
    u = space.to_unit(torch.tensor(p[None]).float())[0]
    assert torch.allclose(u, torch.tensor([-1.0, -1.0, -1.0]), atol=0.05)
    far = ref[:3, :3] @ np.array([0, 0, 1e5]) + ref[:3, 3]
    assert abs(float(space.to_unit(torch.tensor(far[None]).float())[0, 2]) - 1.0) < 1e-3


def test_sample_pdf_concentrates_on_mass():
    edges = torch.linspace(0, 1, 11)[None].repeat(4, 1)
    w = torch.zeros(4, 10)
    w[:, 6] = 1.0
    s = sample_pdf(edges, w, 64, jitter=True, generator=torch.Generator().manual_seed(0), floor=0.0)
    assert ((s >= 0.6) & (s <= 0.7)).float().mean() > 0.99
    assert torch.all(s[:, 1:] >= s[:, :-1])
    assert torch.equal(dilate_weights(w)[0, 5:8], torch.ones(3))
    e = stratified_s(3, 8, True, torch.Generator().manual_seed(1), "cpu")
    assert torch.all(e[:, 1:] >= e[:, :-1]) and float(e[:, 0].max()) == 0.0 and float(e[:, -1].min()) == 1.0


def _sphere_field_renderer() -> Renderer:
    field = build_field("grid", 8, {"geo_resolutions": [16], "feat_resolutions": [8]}, np.arange(2.0), np.arange(2))
    return Renderer(field, SceneSpace(kind="contract", radius=1.0), SamplerConfig(n_proposal=32, n_importance=16, n_uniform=4), "black")


def test_density_modifier_removes_content():
    r = _sphere_field_renderer()
    torch.nn.init.constant_(r.field.density_net[-1].bias, 5.0)  # dense everywhere: opaque rays
    rays = camera_rays(_look_at([0, -1.5, 0], [0, 0, 0]), K, 12, 16, (0.2, 3.0), downscale=1)
    with torch.no_grad():
        full = r.render_rays(rays)
        removed = r.render_rays(rays, density_modifier=lambda x, out: (x.norm(dim=-1) > 10.0).float())
        half = r.render_rays(rays, density_modifier=lambda x, out: (x[:, 1] > 0).float())  # keep y > 0 only
    assert float(full["opacity"].min()) > 0.99
    assert float(removed["opacity"].max()) < 1e-6
    assert float(half["depth"].min()) > 1.5 - 0.05  # nothing before the plane y = 0 (1.5 from the camera)


def test_query_points_and_chunked_render_agree():
    r = _sphere_field_renderer()
    pts = torch.rand(100, 3) - 0.5
    q = r.query(pts, outputs=("features", "rgb"), chunk=7)
    assert q["density"].shape == (100,) and q["features"].shape == (100, 8) and q["rgb"].shape == (100, 3)
    rays = camera_rays(_look_at([0, -1.5, 0], [0, 0, 0]), K, 12, 16, (0.2, 3.0))
    a = r.render_rays_chunked(rays, chunk=50)
    b = r.render_rays_chunked(rays, chunk=1000)
    assert torch.allclose(a["rgb"], b["rgb"], atol=1e-5) and torch.allclose(a["features"], b["features"], atol=1e-5)
    c = r.render_rays_chunked(rays)  # the device's default chunk
    assert torch.allclose(a["features"], c["features"], atol=1e-5)
    empty = r.query(torch.zeros(0, 3), outputs=("features",))  # no opaque pixel to back-project: empty, not missing
    assert empty["density"].shape == (0,) and empty["features"].shape == (0, 8)


@pytest.mark.parametrize("name", ["grid", "nerf", "neuraldiff"])
def test_every_field_renders_with_gradients(name):
    cfg = {"depth": 2, "width": 32} if name == "nerf" else {}
    field = build_field(name, 8, cfg, np.arange(4.0), np.array([0, 1, 3]))
    r = Renderer(field, SceneSpace(), SamplerConfig.for_field(field, {"n_proposal": 8, "n_importance": 8}))
    rays = camera_rays(_look_at([0, -1.5, 0], [0, 0, 0]), K, 4, 4, (0.2, 3.0), frame=2, downscale=1)
    out = r.render_rays(rays, train=True, generator=torch.Generator().manual_seed(0))
    loss = out["rgb"].mean() + out["features"].mean() + sum(out["losses"].values(), torch.tensor(0.0))
    assert out["s_edges"].shape == (16, out["weights"].shape[1] + 1)
    loss = loss + distortion_loss(out["weights"], out["s_edges"])
    if "coarse" in out:
        loss = loss + out["coarse"]["rgb"].mean()
    loss.backward()
    grads = [p.grad for p in r.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert out["rgb"].shape == (16, 3) and out["features"].shape == (16, 8)
    if name == "neuraldiff":
        assert "beta" in out and float(out["beta"].detach().min()) >= field.beta_min


def test_model_files_of_older_versions_still_load(tmp_path):
    """model.pt keeps field_config and sampler as plain mappings; a NeuralDiff file written before
    time knots existed (no time_knot_spacing: one code per training frame) loads, weights intact."""
    from n3f.render import load_renderer, save_model
    from n3f.render.model_io import model_meta

    ts, train = np.arange(6.0), np.array([0, 1, 2, 4, 5])
    field = build_field("neuraldiff", 8, {"time_knot_spacing": 0}, ts, train)
    r = Renderer(field, SceneSpace(), SamplerConfig.for_field(field, {"n_proposal": 8}))
    meta = model_meta(r, ts, train, stage="rgb", scene="x")
    assert type(meta["field_config"]) is dict and type(meta["field_config"]["static"]) is dict
    assert type(meta["sampler"]) is dict and meta["sampler"]["n_proposal"] == 8
    del meta["field_config"]["time_knot_spacing"]
    save_model(r, tmp_path / "model.pt", meta)
    loaded = load_renderer(tmp_path)
    assert loaded.field.settings.time_knot_spacing == 0 and loaded.sampler == r.sampler
    state = r.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())


def test_field_hooks_keep_the_renderer_generic():
    """Queries at bare world points leave out NeuralDiff's camera-frame actor; the rendered beta
    gets the field's floor (``adjust_render``), a grid field renders none."""
    ts, train = np.arange(4.0), np.array([0, 1, 3])
    field = build_field("neuraldiff", 8, {}, ts, train)
    r = Renderer(field, SceneSpace(), SamplerConfig(n_proposal=8, n_importance=8, n_uniform=0))
    q = r.query(torch.rand(20, 3) - 0.5, outputs=("features",))
    assert "density_actor" not in q and {"density_static", "density_dynamic"} <= set(q)
    rays = camera_rays(_look_at([0, -1.5, 0], [0, 0, 0]), K, 4, 4, (0.2, 3.0), frame=1, downscale=1)
    with torch.no_grad():
        out = r.render_rays(rays, outputs=("rgb",))
        beta_only = field.adjust_render({"beta": torch.zeros(2, 1)})["beta"]
    assert torch.allclose(beta_only, torch.full((2, 1), field.beta_min))
    assert float(out["beta"].min()) >= field.beta_min
    assert "beta" not in _sphere_field_renderer().render_rays(rays, outputs=("rgb",))
