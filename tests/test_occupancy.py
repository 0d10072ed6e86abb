"""The occupancy grid that replaces the field in the first sampling pass (n3f/render/occupancy.py).

A field with known geometry (a solid ball, density 1000 inside radius 0.25 of the
unit cube, nothing outside) checks what the grid promises: empty space reads
empty, a known surface is never culled (every ray that hits the ball renders it
opaque at the right depth), samples gather at the surface, emptied cells fade,
and the grid travels with model.pt.
"""

from __future__ import annotations

import numpy as np
import torch

from n3f.fields.base import Field, Samples
from n3f.fields.settings import GridFieldConfig
from n3f.render.occupancy import OccupancyGrid
from n3f.render.rays import camera_rays
from n3f.render.renderer import Renderer
from n3f.render.settings import SamplerConfig
from n3f.render.space import SceneSpace

BALL = 0.25  # radius in unit-cube coordinates
K = np.array([[20.0, 0, 8.0], [0, 20.0, 6.0], [0, 0, 1]])


class BallField(Field):
    """Analytic geometry: density ``level`` inside the ball, 0 outside; grey everywhere."""

    name = "ball"
    settings_class = GridFieldConfig

    def __init__(self, level: float = 1000.0):
        super().__init__(4, GridFieldConfig())
        self.level = level
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, samples: Samples, outputs=("rgb", "features"), coarse: bool = False):
        p = samples.positions
        out = {"density": (p.norm(dim=-1) < BALL).float() * self.level + 0 * self.dummy}
        if "rgb" in outputs:
            out["rgb"] = torch.full((len(p), 3), 0.5)
        if "features" in outputs:
            out["features"] = torch.zeros(len(p), 4)
        return out


def _look_at(eye, target):
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def _renderer(proposal: str, n_proposal: int = 128, resolution: int = 128, decay: float = 0.97, warmup: int = 0) -> Renderer:
    # radius 2, inner 0.5: world points map to the cube linearly as x / 4 inside 2 units
    sampler = SamplerConfig(n_proposal=n_proposal, n_importance=16, n_uniform=4, proposal=proposal,
                            grid_resolution=resolution, grid_decay=decay, grid_fraction=0.5, grid_warmup=warmup)
    return Renderer(BallField(), SceneSpace(kind="contract", radius=2.0), sampler, "black")


def _ball_depth(c2w: np.ndarray, rays) -> torch.Tensor:
    """Analytic distance to the ball (world radius 4 * BALL around the origin) per ray; nan on a miss."""
    o, d = rays.origins.double(), rays.directions.double()
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - (4 * BALL) ** 2
    disc = b * b - c
    return torch.where(disc > 0, -b - disc.clamp_min(0).sqrt(), torch.full_like(b, float("nan")))


def test_grid_reads_empty_space_as_empty_and_the_ball_as_dense():
    grid = OccupancyGrid(resolution=32)
    field = BallField()
    density = lambda p: field(Samples(p, torch.zeros_like(p), torch.zeros(len(p), dtype=torch.long)), ())["density"]  # noqa: E731
    assert not grid.ready
    grid.update(density, torch.Generator().manual_seed(0))
    assert grid.ready
    far = torch.rand(500, 3) * 0.4 + 0.55  # at least 0.55 per axis from the centre: 2+ cells off the ball
    assert float(grid.lookup(far).max()) == 0.0
    surface = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1) * BALL
    assert float(grid.lookup(surface).min()) == 1000.0  # a surface point is never culled
    assert 0.0 < grid.occupied_share() < 0.02  # the ball is ~0.8% of the cube


def test_grid_proposal_finds_the_surface_and_gathers_samples_there():
    c2w = _look_at([0.0, -3.0, 0.3], [0.0, 0.0, 0.0])
    rays = camera_rays(c2w, K, 12, 16, (0.1, 8.0), downscale=1)
    hit = ~torch.isnan(_ball_depth(c2w, rays))
    assert 20 < int(hit.sum()) < len(rays)  # some rays hit, some miss
    grid_r, field_r = _renderer("grid"), _renderer("field", n_proposal=16)
    grid_r.update_occupancy(0, torch.Generator().manual_seed(0))
    with torch.no_grad():
        g = grid_r.render_rays(rays, outputs=("rgb",))
        f = field_r.render_rays(rays, outputs=("rgb",))
    truth = _ball_depth(c2w, rays)[hit].float()
    cell = 4.0 * 2.0 / 128  # world size of one grid cell inside the linear region
    assert float(g["opacity"][hit].min()) > 0.99 and float(g["opacity"][~hit].max()) < 1e-6
    err = (g["depth"][hit, 0] - truth).abs()
    assert float(err.median()) < 0.25 * cell and float(err.max()) < 3 * cell  # worst at grazing rays
    # fine samples within two cells of the surface: most of them with the grid, fewer from a coarse field pass
    near_g = ((g["t"][hit] - truth[:, None]).abs() < 2 * cell).float().mean()
    near_f = ((f["t"][hit] - truth[:, None]).abs() < 2 * cell).float().mean()
    assert float(near_g) > 0.4 and float(near_g) > float(near_f)


def test_emptied_cells_fade_and_the_grid_travels_with_the_model(tmp_path):
    r = _renderer("grid", resolution=16, decay=0.5, warmup=256)
    gen = torch.Generator().manual_seed(0)
    assert not r.update_occupancy(0, gen)  # warm-up: the field samples itself
    assert r.update_occupancy(256, gen) and not r.update_occupancy(257, gen)  # then every grid_update_every steps
    inside = torch.zeros(1, 3)
    assert float(r.occupancy.lookup(inside)[0]) == 1000.0
    r.field.level = 0.0  # the field empties the ball
    for step in range(256 + 64, 256 + 64 * 20, 64):
        r.update_occupancy(step, gen)
    assert float(r.occupancy.lookup(inside)[0]) < 10.0

    from n3f.fields.registry import build_field
    from n3f.render.model_io import load_renderer, model_meta, save_model

    ts, train = np.arange(2.0), np.arange(2)
    field = build_field("grid", 8, {"geo_resolutions": [16], "feat_resolutions": [8]}, ts, train)
    real = Renderer(field, SceneSpace(), SamplerConfig.for_field(field, {"proposal": "grid", "grid_resolution": 16, "grid_warmup": 0}))
    real.update_occupancy(0, gen)
    save_model(real, tmp_path / "model.pt", model_meta(real, ts, train, stage="rgb", scene="x"))
    loaded = load_renderer(tmp_path)
    assert "occupancy.density" in real.state_dict() and "occupancy.pooled" not in real.state_dict()
    assert loaded.occupancy.ready and loaded.sampler.proposal == "grid"
    assert torch.equal(loaded.occupancy.pooled, real.occupancy.pooled)


def test_the_grid_proposal_is_opt_in_and_only_for_world_space_fields():
    import pytest

    from n3f.fields.registry import build_field
    from n3f.render.settings import GRID_PROPOSAL_SAMPLES

    ts, train = np.arange(4.0), np.array([0, 1, 3])
    grid = build_field("grid", 8, {}, ts, train)
    assert SamplerConfig.for_field(grid).proposal == "field"  # default: it cost toy_static 1.8 dB
    opted = SamplerConfig.for_field(grid, {"proposal": "grid"})
    assert opted.proposal == "grid" and opted.n_proposal == GRID_PROPOSAL_SAMPLES
    assert Renderer(grid, SceneSpace(), opted).occupancy is not None
    nd = build_field("neuraldiff", 8, {}, ts, train)
    with pytest.raises(ValueError, match="camera-frame"):
        Renderer(nd, SceneSpace(), SamplerConfig.for_field(nd, {"proposal": "grid"}))
    assert SamplerConfig(**{"n_proposal": 8}).proposal == "field"  # a saved model without the key: as it was trained
