"""Key conversion from the checkpoint layouts people actually download to timm's.

Users bring weights from the authors' releases (DINO ``.pth``, MoCo-v3
``.pth.tar``, DeiT ``{'model': ...}``, DINOv2 ``.pth`` with ``mask_token`` and
``register_tokens``), from Hugging Face ``transformers`` (DINOv2) or from timm
itself. Converting all of them here means the model is always a plain timm
ViT and every path ends in one ``load_state_dict(strict=True)``, so a wrong
file fails loudly instead of silently loading half the weights.
"""

from __future__ import annotations

import re
from typing import Mapping

import torch
from torch import nn

# Prefixes under which a backbone is nested in training checkpoints, most
# specific first: MoCo-v3 (DDP + base encoder), DINO full checkpoints, DDP.
_PREFIXES = ("module.base_encoder.", "base_encoder.", "module.backbone.", "backbone.", "module.")
# Wrapping dictionaries: DINO full checkpoint ('teacher'), MoCo-v3 ('state_dict'), DeiT ('model').
_WRAPPERS = ("teacher", "state_dict", "model", "module")


def unwrap(raw: Mapping) -> dict[str, torch.Tensor]:
    """Find the parameter dictionary inside a training checkpoint and strip nesting prefixes."""
    sd = raw
    for _ in range(3):
        inner = next((sd[k] for k in _WRAPPERS if isinstance(sd.get(k), Mapping)), None)
        if inner is None:
            break
        sd = inner
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    for prefix in _PREFIXES:
        if any(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
            break
    return sd


def is_hf_dinov2(sd: Mapping[str, torch.Tensor]) -> bool:
    return any(k.endswith("embeddings.patch_embeddings.projection.weight") for k in sd)


def hf_dinov2_to_timm(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face ``Dinov2Model`` keys -> timm ``vit_*_patch14_dinov2`` keys.

    q, k and v are separate linears in transformers and one ``qkv`` in timm;
    ``layer_scale*.lambda1`` is timm's ``ls*.gamma``. Keys of a task head (e.g.
    ``classifier``) and the unused ``mask_token`` are dropped.
    """
    prefix = next(
        k[: -len("embeddings.patch_embeddings.projection.weight")]
        for k in sd
        if k.endswith("embeddings.patch_embeddings.projection.weight")
    )
    sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    out: dict[str, torch.Tensor] = {
        "cls_token": sd["embeddings.cls_token"],
        "pos_embed": sd["embeddings.position_embeddings"],
        "patch_embed.proj.weight": sd["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": sd["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": sd["layernorm.weight"],
        "norm.bias": sd["layernorm.bias"],
    }
    if "embeddings.register_tokens" in sd:
        out["register_tokens"] = sd["embeddings.register_tokens"]
    names = {
        "norm1": "norm1", "norm2": "norm2", "attention.output.dense": "attn.proj",
        "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
    }
    blocks = sorted({int(m.group(1)) for k in sd if (m := re.match(r"encoder\.layer\.(\d+)\.", k))})
    for i in blocks:
        src, dst = f"encoder.layer.{i}.", f"blocks.{i}."
        for a, b in names.items():
            for p in ("weight", "bias"):
                out[f"{dst}{b}.{p}"] = sd[f"{src}{a}.{p}"]
        for p in ("weight", "bias"):
            out[f"{dst}attn.qkv.{p}"] = torch.cat(
                [sd[f"{src}attention.attention.{n}.{p}"] for n in ("query", "key", "value")], dim=0
            )
        out[f"{dst}ls1.gamma"] = sd[f"{src}layer_scale1.lambda1"]
        out[f"{dst}ls2.gamma"] = sd[f"{src}layer_scale2.lambda1"]
    if "register_tokens" in out or "embeddings.mask_token" in sd:
        # Let timm's DINOv2 converter handle registers (and drop the mask token).
        out["mask_token"] = sd.get("embeddings.mask_token", torch.zeros(1, out["cls_token"].shape[-1]))
    return out


def to_timm_state_dict(raw: Mapping, model: nn.Module) -> dict[str, torch.Tensor]:
    """Convert any supported checkpoint to the state dict of the timm ``model``.

    After unwrapping and renaming, timm's own
    :func:`timm.models.vision_transformer.checkpoint_filter_fn` does the
    DINOv2 specifics (``mask_token``, ``register_tokens`` -> ``reg_token`` with
    the class position folded into ``cls_token``) and resamples a position
    embedding saved for another grid. Classifier / projection heads the
    backbone does not have are dropped; everything else must match exactly.
    """
    from timm.models.vision_transformer import checkpoint_filter_fn

    sd = unwrap(raw)
    if is_hf_dinov2(sd):
        sd = hf_dinov2_to_timm(sd)
    sd = dict(checkpoint_filter_fn(dict(sd), model))
    own = model.state_dict()
    head = re.compile(r"^(head|head_dist|fc_norm|pre_logits)\b")
    return {k: v for k, v in sd.items() if k in own or not head.match(k)}


def timm_to_official(sd: Mapping[str, torch.Tensor], layout: str) -> dict:
    """The inverse direction, used to build synthetic checkpoints in tests and docs.

    Produces the nesting and key names of the official release for ``layout``
    (``dino``, ``mocov3``, ``deit``, ``dinov2``; ``transformers`` for Hugging
    Face DINOv2 without registers) from a timm backbone state dict.
    """
    sd = {k: v.clone() for k, v in sd.items()}
    like = sd["cls_token"]
    dim = like.shape[-1]

    def zeros(*shape: int) -> torch.Tensor:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)

    if layout == "dino":
        return sd
    if layout == "mocov3":
        nested = {f"module.base_encoder.{k}": v for k, v in sd.items()}
        nested["module.base_encoder.head.0.weight"] = zeros(4096, dim)  # projector, dropped on load
        nested["module.momentum_encoder.cls_token"] = sd["cls_token"].clone()
        nested["module.predictor.0.weight"] = zeros(4096, 256)
        return {"epoch": 300, "arch": "vit_base", "state_dict": nested}
    if layout == "deit":
        return {"model": {**sd, "head.weight": zeros(1000, dim), "head.bias": zeros(1000)}}
    if layout == "dinov2":
        out = dict(sd)
        out["mask_token"] = zeros(1, dim)
        if "reg_token" in sd:
            # timm folds the class position into cls_token and keeps no class slot in
            # pos_embed; the official file has both separately.
            cls_pos = torch.randn(1, 1, dim, device=like.device) * 0.02
            out["register_tokens"] = out.pop("reg_token")
            out["cls_token"] = sd["cls_token"] - cls_pos
            out["pos_embed"] = torch.cat([cls_pos, sd["pos_embed"]], dim=1)
        return out
    if layout == "transformers":  # Hugging Face Dinov2Model, e.g. facebook/dinov2-small
        out = {
            "embeddings.cls_token": sd["cls_token"],
            "embeddings.mask_token": zeros(1, dim),
            "embeddings.position_embeddings": sd["pos_embed"],
            "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
            "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
            "layernorm.weight": sd["norm.weight"],
            "layernorm.bias": sd["norm.bias"],
        }
        blocks = sorted({int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))})
        for i in blocks:
            src, dst = f"blocks.{i}.", f"encoder.layer.{i}."
            for a, b in (("norm1", "norm1"), ("norm2", "norm2"), ("attn.proj", "attention.output.dense"),
                         ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")):
                for p in ("weight", "bias"):
                    out[f"{dst}{b}.{p}"] = sd[f"{src}{a}.{p}"]
            for p in ("weight", "bias"):
                q, k, v = sd[f"{src}attn.qkv.{p}"].chunk(3, dim=0)
                for n, t in (("query", q), ("key", k), ("value", v)):
                    out[f"{dst}attention.attention.{n}.{p}"] = t.clone()
            out[f"{dst}layer_scale1.lambda1"] = sd[f"{src}ls1.gamma"]
            out[f"{dst}layer_scale2.lambda1"] = sd[f"{src}ls2.gamma"]
        return out
    raise ValueError(f"unknown layout {layout!r}")
