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


def test_neuraldiff_renders_what_it_trains():
    """The shortcuts of rendering (density alone; a moving stream's feature head skipped where its share
    of the density is under SHARE_FLOOR) give what training's full evaluation gives, within the floor."""
    from n3f.fields.base import SHARE_FLOOR

    f = build_field("neuraldiff", 8, {}, TS, TRAIN)
    s = _samples(512)
    with torch.no_grad():
        # a dynamic stream dense on some samples and sparse (skipped) on others
        g = torch.Generator().manual_seed(1)
        for plane in f.dynamic.enc.planes:
            plane.normal_(0.0, 1.0, generator=g)
        f.dynamic.out.weight[0].normal_(0.0, 3.0, generator=g)
        f.dynamic.time.codes.normal_(generator=torch.Generator().manual_seed(2))
        full = f(s)  # inference: shortcuts taken
    trained = f(s)  # gradients on: every head at every sample
    share = (trained["density_dynamic"] / trained["density"]).detach()
    assert bool((share < SHARE_FLOOR).any()) and bool((share > 0.1).any())
    with torch.no_grad():
        assert torch.allclose(f.density(s), full["density"], rtol=1e-5)
        gap = (full["features"] - trained["features"]).abs().max()
    assert float(gap) <= 2 * SHARE_FLOOR  # two moving streams, each under the floor where skipped
    assert torch.allclose(full["rgb"], trained["rgb"])


def test_unknown_field_is_a_user_error():
    from n3f.errors import N3FInputError

    with pytest.raises(N3FInputError):
        build_field("instant-nsr", 8, {}, TS, TRAIN)


def test_one_list_of_field_names():
    """The torch-free settings registry names every field; the torch registry and the trainer's
    per-field defaults agree with it, and each field declares its own settings class."""
    from n3f.fields.settings import FIELD_SETTINGS
    from n3f.train.config import FIELD_DEFAULTS

    assert list(FIELDS) == list(FIELD_SETTINGS) and set(FIELD_DEFAULTS) == set(FIELDS)
    for name, cls in FIELDS.items():
        assert cls.name == name and cls.settings_class is FIELD_SETTINGS[name]


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_settings_are_typed_and_saved_as_a_plain_mapping(name):
    f = _small(name)
    assert isinstance(f.settings, FIELDS[name].settings_class)
    saved = f.settings.to_dict()
    assert isinstance(saved, dict) and all(not hasattr(v, "__dataclass_fields__") for v in saved.values())
    # a saved mapping reads back as the same settings, and builds the same architecture
    again = FIELDS[name].settings_from_saved(saved)
    assert again == f.settings
    assert {k: v.shape for k, v in build_field(name, 16, again, TS, TRAIN).state_dict().items()} == \
        {k: v.shape for k, v in f.state_dict().items()}


def test_field_settings_errors_name_their_path():
    from n3f.errors import N3FInputError
    from n3f.fields.settings import check_overrides, settings_for

    where = "training settings.field_config"
    with pytest.raises(N3FInputError, match=r"training settings\.field_config\.time_knot_spacing: -1 is out of range"):
        settings_for("neuraldiff", {"time_knot_spacing": -1}, where)
    with pytest.raises(N3FInputError, match=r"field_config: unknown setting\(s\) \['time_knot_spacing'\]"):
        settings_for("grid", {"time_knot_spacing": 0}, where)  # a neuraldiff key is not a grid one
    with pytest.raises(N3FInputError, match=r"field_config\.static: unknown setting\(s\) \['hiden'\]"):
        settings_for("neuraldiff", {"static": {"hiden": 3}}, where)
    with pytest.raises(N3FInputError, match=r"field_config\.geo_resolutions\[1\]: 0 is out of range"):
        settings_for("grid", {"geo_resolutions": [16, 0]}, where)
    with pytest.raises(N3FInputError, match=r"field_config\.sh_degree: 5 is out of range"):
        settings_for("grid", {"sh_degree": 5}, where)
    with pytest.raises(N3FInputError, match=r"field_config\.depth: '8' is not a valid value"):
        settings_for("nerf", {"depth": "8"}, where)
    # before the field is known (a config's shared training block): any field's key is fine,
    # a key of no field is not, and values are checked against every field that has the key
    check_overrides({"time_knot_spacing": 0, "geo_channels": 2, "depth": 4}, "training.rgb.field_config")
    with pytest.raises(N3FInputError, match=r"training\.rgb\.field_config: unknown setting\(s\) \['time_knot_spacin'\]"):
        check_overrides({"time_knot_spacin": 0}, "training.rgb.field_config")
    with pytest.raises(N3FInputError, match=r"training\.rgb\.field_config\.hidden: 0 is out of range"):
        check_overrides({"hidden": 0}, "training.rgb.field_config")


def test_neuraldiff_static_stream_settings():
    """Default static stream: the grid defaults plus a finer level; a given one replaces it
    (keys left out take the grid field's defaults)."""
    from n3f.fields.settings import GridFieldConfig, NeuralDiffFieldConfig

    assert NeuralDiffFieldConfig().static.geo_resolutions == [32, 64, 128, 256, 512]
    given = NeuralDiffFieldConfig.from_dict({"static": {"hidden": 32}}, "x")
    assert given.static == GridFieldConfig(hidden=32)
    f = build_field("neuraldiff", 8, {"static": {"hidden": 32}, "time_knot_spacing": 0}, TS, TRAIN)
    assert f.static.colour_net[0].out_features == 32 and f.dynamic.time.codes.shape[0] == len(TRAIN)


def test_old_saved_configs_are_upgraded_by_their_field():
    """model.pt files of older versions: NeuralDiff before time knots (one code per training
    frame), and keys a field never read (a shared training block's other-field settings)."""
    from n3f.fields.neuraldiff import NeuralDiffField

    current = build_field("neuraldiff", 8, {"time_knot_spacing": 0}, TS, TRAIN).settings.to_dict()
    old = {k: v for k, v in current.items() if k != "time_knot_spacing"}
    old["static"] = {**old["static"], "not_a_grid_setting": 1}
    assert NeuralDiffField.settings_from_saved(old) == NeuralDiffField.settings_from_saved(current)
    assert NeuralDiffField.settings_from_saved(old).time_knot_spacing == 0
    grid = FIELDS["grid"].settings_from_saved({**_small("grid").settings.to_dict(), "time_knot_spacing": 0})
    assert grid == _small("grid").settings
    # values are what the model was trained with, even where today's bounds are stricter
    # (a negative spacing trained per-frame codes), and keys missing from a file take the defaults
    lenient = NeuralDiffField.settings_from_saved({"time_knot_spacing": -1.0})
    assert lenient.time_knot_spacing == -1.0 and lenient.static.geo_resolutions == [32, 64, 128, 256, 512]
    assert build_field("neuraldiff", 8, lenient, TS, TRAIN).dynamic.time.codes.shape[0] == len(TRAIN)


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_every_extra_loss_has_a_weight_from_the_training_settings(name):
    from n3f.train.config import TrainConfig

    f = _small(name)
    s = _samples()
    out = f(s)
    w = torch.full((1, len(s.frame)), 1.0 / len(s.frame))
    cfg = TrainConfig(field=name).resolved("distill")
    weights = f.loss_weights(cfg)
    assert set(f.extra_losses(out, w)) <= set(weights)
    if name == "neuraldiff":
        assert weights == {"sparsity": cfg.sparsity_lambda} and set(f.extra_losses(out, w)) == {"sparsity"}
    else:
        assert weights == {}
