"""``model.pt``: everything needed to rebuild a trained renderer, and nothing else.

Later stages (segmentation, editing, evaluation) only call
:func:`load_renderer`; the training checkpoint (optimiser, RNG state) lives in
a separate file so that ``model.pt`` stays small and stable.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from n3f.errors import N3FInputError
from n3f.fields import build_field
from n3f.render.renderer import Renderer, SamplerConfig
from n3f.render.space import SceneSpace

FORMAT = "n3f.model/1"


def model_meta(renderer: Renderer, timestamps: np.ndarray, train_frames: np.ndarray, **extra: Any) -> dict[str, Any]:
    """The architecture description stored next to the weights."""
    f = renderer.field
    return {
        "format": FORMAT,
        "field": f.name,
        "feature_dim": f.feature_dim,
        "field_config": f.config,
        "space": renderer.space.to_dict(),
        "sampler": asdict(renderer.sampler),
        "background": renderer.background_kind,
        "timestamps": np.asarray(timestamps, np.float64).tolist(),
        "train_frames": np.asarray(train_frames, np.int64).tolist(),
        **extra,
    }


def build_renderer(meta: dict[str, Any]) -> Renderer:
    config = dict(meta["field_config"])
    if meta["field"] == "neuraldiff" and "time_knot_spacing" not in config:
        config["time_knot_spacing"] = 0  # saved before time knots existed: one code per training frame
    field = build_field(
        meta["field"], meta["feature_dim"], config, np.asarray(meta["timestamps"]), np.asarray(meta["train_frames"])
    )
    return Renderer(
        field, SceneSpace.from_dict(meta["space"]), SamplerConfig(**meta["sampler"]), meta.get("background", "learned")
    )


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary sibling, fsync, then rename: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_model(renderer: Renderer, path: str | Path, meta: dict[str, Any]) -> None:
    atomic_save({**meta, "state_dict": renderer.state_dict()}, path)


def load_model_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.exists():
        raise N3FInputError(f"{path}: no trained model; run the training stage first.")
    data = torch.load(path, map_location="cpu", weights_only=False)
    if data.get("format") != FORMAT:
        raise N3FInputError(f"{path}: not an n3f model (format {data.get('format')!r}).")
    return data


def load_renderer(path: str | Path, device: str | torch.device = "cpu") -> Renderer:
    """Rebuild a trained :class:`Renderer` from ``model.pt`` (or its folder), in eval mode."""
    data = load_model_file(path)
    renderer = build_renderer(data)
    renderer.load_state_dict(data["state_dict"])
    return renderer.to(device).eval()
