"""``model.pt``: everything needed to rebuild a trained renderer, and nothing else.

Later stages (segmentation, editing, evaluation) only call
:func:`load_renderer`; the training checkpoint (optimiser, RNG state) lives in
a separate file so that ``model.pt`` stays small and stable.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from n3f.atomic import atomic_torch_save
from n3f.errors import N3FInputError
from n3f.fields.registry import build_field, field_class
from n3f.fusion.volume import FeatureVolume
from n3f.render.pose_offsets import PoseOffsets
from n3f.render.renderer import Renderer
from n3f.render.settings import SamplerConfig
from n3f.render.space import SceneSpace

FORMAT = "n3f.model/1"


def model_meta(renderer: Renderer, timestamps: np.ndarray, train_frames: np.ndarray, **extra: Any) -> dict[str, Any]:
    """The architecture description stored next to the weights."""
    f = renderer.field
    return {
        "format": FORMAT,
        "field": f.name,
        "feature_dim": f.feature_dim,
        "field_config": f.settings.to_dict(),
        "space": renderer.space.to_dict(),
        "sampler": asdict(renderer.sampler),
        "background": renderer.background_kind,
        "timestamps": np.asarray(timestamps, np.float64).tolist(),
        "train_frames": np.asarray(train_frames, np.int64).tolist(),
        "pose_offsets": renderer.pose_offsets.n_frames if renderer.pose_offsets is not None else None,
        "fused": renderer.fused.describe() if renderer.fused is not None else None,
        **extra,
    }


def build_renderer(meta: dict[str, Any]) -> Renderer:
    """The renderer described by ``meta`` (untrained weights); the field reads its own
    ``field_config``, including those older versions of n3f saved (``Field.settings_from_saved``)."""
    settings = field_class(meta["field"]).settings_from_saved(meta["field_config"])
    field = build_field(
        meta["field"], meta["feature_dim"], settings, np.asarray(meta["timestamps"]), np.asarray(meta["train_frames"])
    )
    n_cameras = meta.get("pose_offsets")  # camera refinement: its buffers come with the state dict
    offsets = PoseOffsets(np.tile(np.eye(4), (int(n_cameras), 1, 1)), []) if n_cameras else None
    renderer = Renderer(
        field, SceneSpace.from_dict(meta["space"]), SamplerConfig(**meta["sampler"]), meta.get("background", "learned"),
        pose_offsets=offsets,
    )
    if meta.get("fused"):  # training-free fused features (n3f.fusion): sized so its buffers load
        renderer.fused = FeatureVolume.from_description(meta["fused"])
    return renderer


def save_model(renderer: Renderer, path: str | Path, meta: dict[str, Any]) -> None:
    atomic_torch_save({**meta, "state_dict": renderer.state_dict()}, path)


def load_model_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.exists():
        raise N3FInputError(f"{path}: no trained model; run the training stage first.")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # zero bytes, truncated, or not a torch file at all
        raise N3FInputError(
            f"{path}: cannot read this model file ({type(err).__name__}: {str(err)[:200] or 'empty or truncated'}); "
            "it is damaged or not an n3f model.pt: delete it and rerun the stage that writes it."
        ) from err
    if not isinstance(data, dict) or data.get("format") != FORMAT or "state_dict" not in data:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise N3FInputError(
            f"{path}: not an n3f model (format {found!r}); point to the model.pt a training stage wrote, "
            "or delete it and rerun that stage."
        )
    return data


def load_renderer(path: str | Path, device: str | torch.device = "cpu") -> Renderer:
    """Rebuild a trained :class:`Renderer` from ``model.pt`` (or its folder), in eval mode."""
    data = load_model_file(path)
    renderer = build_renderer(data)
    renderer.load_state_dict(data["state_dict"])
    return renderer.to(device).eval()
