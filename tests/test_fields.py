"""Field architectures: the shared interface, feature heads, frame codes and NeuralDiff streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from n3f.fields import FIELDS, FeatureHead, Samples, build_field
from n3f.fields.encoding import FrameCodes, PlaneEncoding, contract, positional_encoding, sh_encoding
from n3f.fields.neuraldiff import time_knot_spacing

torch.set_num_threads(1)
TS = np.arange(6, dtype=float)
TRAIN = np.array([0, 1, 2, 4, 5])


def _samples(n: int = 64, frame: int = 1, seed: int = 0) -> Samples:
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n, 3, generator=g)
    return Samples(
        positions=torch.rand(n, 3, generator=g) * 1.6 - 0.8,
        directions=d / d.norm(dim=-1, keepdim=True),
        frame=torch.full((n,), frame, dtype=torch.long),
        cam_positions=torch.randn(n, 3, generator=g) * 0.3,
    )


def _small(name: str):
    cfg = {"depth": 2, "width": 32} if name == "nerf" else {}
    return build_field(name, 16, cfg, TS, TRAIN)


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_interface_shapes_and_ranges(name):
    f = _small(name)
    with torch.no_grad():
        out = f(_samples(), outputs=("rgb", "features"))
    assert out["density"].shape == (64,) and float(out["density"].min()) >= 0
    assert out["rgb"].shape == (64, 3) and 0 <= float(out["rgb"].min()) and float(out["rgb"].max()) <= 1
    assert out["features"].shape == (64, 16) and float(out["features"].abs().max()) < 1  # tanh head
    dens = f.density(_samples())
    assert torch.allclose(dens, out["density"], atol=1e-5)
    only = f(_samples(), outputs=())
    assert "rgb" not in only and "features" not in only


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_feature_branch_is_separate(name):
    f = _small(name)
    feat = {id(p) for p in f.feature_parameters()}
    assert feat and len(feat) < len(list(f.parameters()))
    heads = [m for m in f.modules() if isinstance(m, FeatureHead)]
    assert heads and all(h.linear.out_features == 16 for h in heads)
    keys = [k for k in f.state_dict() if k.startswith(f.feature_state_prefixes())]
    assert keys and all("feature_head" in k for k in keys)
    # colour and density do not depend on the feature branch
    s = _samples()
    before = f(s, outputs=("rgb",))
    with torch.no_grad():
        for p in f.feature_parameters():
            p.add_(1.0)
    after = f(s, outputs=("rgb",))
    assert torch.allclose(before["rgb"], after["rgb"]) and torch.allclose(before["density"], after["density"])


def test_frame_codes_interpolate_held_out_frames():
    codes = FrameCodes(TS, TRAIN, 4)
    with torch.no_grad():
        codes.codes.copy_(torch.arange(5, dtype=torch.float32)[:, None].expand(5, 4))
    got = codes(torch.tensor([0, 2, 3, 4]))
    # train frames 0, 2, 4 are rows 0, 2, 3; held-out frame 3 lies halfway between rows 2 and 3
    assert torch.allclose(got[:, 0], torch.tensor([0.0, 2.0, 2.5, 3.0]))


def test_time_knots_make_codes_piecewise_linear_in_time():
    ts = np.arange(9, dtype=float)
    train = np.array([0, 1, 2, 3, 5, 6, 7, 8])  # frame 4 held out
    assert time_knot_spacing(ts, train) == 2.0  # twice the usual gap, and >= the gap around frame 4
    codes = FrameCodes(ts, train, 2, knot_spacing=2.0)
    assert codes.codes.shape[0] == 5  # knots at 0, 2, 4, 6, 8
    with torch.no_grad():
        codes.codes.copy_(torch.tensor([0.0, 2.0, 4.0, 6.0, 8.0])[:, None].expand(5, 2))
    # a linear function on the knots is read back exactly at every frame, trained or held out
    assert torch.allclose(codes(torch.arange(9))[:, 0], torch.arange(9, dtype=torch.float32))
    # every knot is read by a training frame, so none is left at its random initial value
    (codes(torch.from_numpy(train)) ** 2).sum().backward()
    assert bool((codes.codes.grad.abs().sum(-1) > 0).all())


def test_encodings():
    enc = PlaneEncoding([4, 8], channels=3)
    x = (torch.rand(10, 3) * 2 - 1).requires_grad_()
    y = enc(x)
    assert y.shape == (10, 6)
    y.sum().backward()
    assert enc.planes[0].grad is not None and x.grad is not None
    d = torch.nn.functional.normalize(torch.randn(5, 3), dim=-1)
    assert sh_encoding(d, 4).shape == (5, 16)
    assert positional_encoding(torch.zeros(2, 3), 4).shape == (2, 3 + 24)
    far = contract(torch.tensor([[100.0, 0, 0]]), torch.zeros(3), 1.0)
    assert 1.9 < float(far.norm()) < 2.0


def test_neuraldiff_streams():
    f = build_field("neuraldiff", 8, {}, TS, TRAIN)
    s = _samples()
    out = f(s)
    total = out["density_static"] + out["density_dynamic"] + out["density_actor"]
    assert torch.allclose(out["density"], total)
    static = f(s, streams=("static",))
    assert torch.allclose(static["density"], out["density_static"])
    assert float(static["beta"].abs().max()) == 0.0  # static content is certain
    # the actor lives in camera coordinates: moving the world point alone changes nothing
    actor_only = f(s, streams=("actor",))
    moved = Samples(s.positions + 0.3, s.directions, s.frame, s.cam_positions)
    assert torch.allclose(actor_only["density"], f(moved, streams=("actor",))["density"])
    # the dynamic stream depends on the frame (time code)
    with torch.no_grad():
        f.dynamic.time.codes.normal_()
    a = f(s, streams=("dynamic",))["density"]
    b = f(Samples(s.positions, s.directions, torch.full_like(s.frame, 4), s.cam_positions), streams=("dynamic",))["density"]
    assert not torch.allclose(a, b)
    w = torch.full((1, len(s.frame)), 1.0 / len(s.frame))
    moving = f.extra_losses(out, w)["sparsity"].detach()
    assert 0.0 < moving.item() < 1.0  # the share of the pixel that the moving streams explain


def test_unknown_field_is_a_user_error():
    from n3f.errors import N3FInputError

    with pytest.raises(N3FInputError):
        build_field("instant-nsr", 8, {}, TS, TRAIN)
