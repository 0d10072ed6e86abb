"""Finding a teacher's pretrained weights: local file, caches, download, in that order.

Compute nodes of a cluster usually have no internet, so a download must never
be the only way: a checkpoint named in ``config.yaml`` wins, then whatever a
login node already put in the Hugging Face or torch hub cache, then a download
when the network allows. When all fail, one :class:`N3FInputError` says how to
provide the weights. Every source ends as a timm state dict plus a sha256 of
the file it came from, which the feature store records for provenance.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from n3f.errors import N3FInputError
from n3f.teachers.convert import to_timm_state_dict
from n3f.teachers.registry import TeacherSpec

_HF_FILES = ("model.safetensors", "pytorch_model.bin")
_TRUTHY = {"1", "true", "yes", "on"}


@dataclass
class Weights:
    """A raw checkpoint and where it came from (``source`` is human readable)."""

    raw: dict
    source: str
    sha256: str
    path: Path | None = None


def sha256_of(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def n3f_cache_dir() -> Path:
    """Where n3f keeps converted weights: ``$N3F_CACHE`` or ``~/.cache/n3f``."""
    env = os.environ.get("N3F_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "n3f"


def offline() -> bool:
    """True when downloads must not even be attempted (read at call time, not import time)."""
    for var in ("HF_HUB_OFFLINE", "N3F_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUTHY:
            return True
    return False


def _why(err: BaseException, limit: int = 200) -> str:
    """One short line saying why a file could not be read (exception messages may be empty or pages long)."""
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:  # torch's weights_only message: the useful part follows the marker
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0][:limit]}" if lines else type(err).__name__


def read_checkpoint(path: str | Path) -> dict:
    """Read a ``.pth``/``.pth.tar``/``.bin``/``.safetensors`` file without running pickled code.

    ``weights_only`` loading refuses arbitrary objects; DINO's full
    checkpoints also store their ``argparse.Namespace``, which is allowed here.
    An empty, truncated or foreign file (what an interrupted download leaves)
    is one :class:`N3FInputError` naming the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise N3FInputError(f"teacher checkpoint not found: {path}; fix 'checkpoint:' in config.yaml.")
    fix = "re-download it, or point 'checkpoint:' (--checkpoint) at a complete file"
    size = path.stat().st_size
    if size == 0:
        raise N3FInputError(
            f"cannot read teacher checkpoint {path}: the file is empty (0 bytes), as an interrupted download "
            f"leaves it; {fix}."
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        with torch.serialization.safe_globals([argparse.Namespace]):
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, unsupported pickle, truncated download...
        raise N3FInputError(
            f"cannot read teacher checkpoint {path} ({size} bytes; {_why(err)}): the file is truncated, "
            f"damaged or not a PyTorch/safetensors checkpoint; {fix} "
            "(or save a plain state dict with torch.save(model.state_dict(), path))."
        ) from None
    if not isinstance(raw, dict):
        raise N3FInputError(f"teacher checkpoint {path} holds a {type(raw).__name__}, not a state dict.")
    return raw


def _hf_cache_dir() -> str | None:
    return os.environ.get("HF_HUB_CACHE") or (
        str(Path(os.environ["HF_HOME"]) / "hub") if os.environ.get("HF_HOME") else None
    )


def cached_file(spec: TeacherSpec) -> tuple[Path, str] | None:
    """A file for ``spec`` already in the Hugging Face or torch hub cache, without network."""
    if spec.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for fname in _HF_FILES:
            hit = try_to_load_from_cache(spec.hf_hub_id, fname, cache_dir=_hf_cache_dir())
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit), f"hf-cache:{spec.hf_hub_id}/{fname}"
    if spec.official_url:
        hub = Path(torch.hub.get_dir()) / "checkpoints" / Path(spec.official_url).name
        if hub.is_file():
            return hub, f"torch-hub-cache:{spec.official_url}"
    return None


def download(spec: TeacherSpec) -> tuple[Path, str] | None:
    """Download into the usual caches (so a login node can prefetch for compute nodes)."""
    if offline():
        return None
    if spec.hf_hub_id:
        from huggingface_hub import hf_hub_download

        for fname in _HF_FILES:
            try:
                return Path(hf_hub_download(spec.hf_hub_id, fname, cache_dir=_hf_cache_dir())), (
                    f"hf-download:{spec.hf_hub_id}/{fname}"
                )
            except Exception:  # no network, file not in repo, auth...
                continue
    if spec.official_url:
        dst = Path(torch.hub.get_dir()) / "checkpoints" / Path(spec.official_url).name
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(spec.official_url, str(dst), progress=True)
            return dst, f"download:{spec.official_url}"
        except Exception:
            return None
    return None


def missing_weights_message(spec: TeacherSpec) -> str:
    how = []
    if spec.hf_hub_id:
        how.append(
            f"on a machine with internet (e.g. a login node) run "
            f"`python -c \"import huggingface_hub as h; h.hf_hub_download('{spec.hf_hub_id}', 'model.safetensors')\"` "
            "to fill the Hugging Face cache (share it via HF_HOME/HF_HUB_CACHE)"
        )
    if spec.official_url:
        how.append(f"download {spec.official_url} and set 'checkpoint: <that file>' in config.yaml")
    else:
        how.append("set 'checkpoint: <file>' in config.yaml")
    why = "downloads are disabled (offline mode)" if offline() else "the download failed"
    return (
        f"no weights for teacher '{spec.name}' ({spec.description}): no checkpoint given, nothing in the "
        f"Hugging Face/torch hub cache, and {why}. To provide them: {'; or '.join(how)}. "
        "The offline default teacher 'dinov2_vits14_imgfocus' needs no download."
    )


def find_weights(spec: TeacherSpec, checkpoint: str | Path | None = None) -> Weights:
    """Locate the raw weights of ``spec`` (see the module docstring for the order)."""
    if checkpoint:
        path = Path(checkpoint).expanduser()
        return Weights(read_checkpoint(path), f"checkpoint:{path}", sha256_of(path), path)
    if spec.builtin == "imgfocus":
        from n3f.teachers.imgfocus import imgfocus_weights

        return imgfocus_weights()
    hit = cached_file(spec) or download(spec)
    if hit is None:
        raise N3FInputError(missing_weights_message(spec))
    path, source = hit
    return Weights(read_checkpoint(path), source, sha256_of(path), path)


def load_into(model: nn.Module, weights: Weights, spec: TeacherSpec) -> None:
    """Convert and load strictly; a mismatch names the file and the expected layout.

    Works for a model on the meta device too (tensors are assigned, not
    copied); every parameter and buffer must then come from the checkpoint.
    """
    where = weights.path or weights.source
    try:
        sd = to_timm_state_dict(weights.raw, model)
        own = model.state_dict()
        missing = [k for k in own if k not in sd]
        unexpected = [k for k in sd if k not in own]
        if missing or unexpected:
            raise KeyError(f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
        wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if sd[k].shape != v.shape]
        if wrong:
            raise ValueError(f"shape mismatch: {wrong[:3]}")
        sd = {k: v.to(own[k].dtype).contiguous() for k, v in sd.items()}
        model.load_state_dict(sd, strict=True, assign=True)
        if any(t.is_meta for t in list(model.parameters()) + list(model.buffers())):
            raise ValueError("some parameters or buffers are not in the checkpoint")
    except (KeyError, RuntimeError, ValueError, StopIteration, IndexError, TypeError, AttributeError) as err:
        raise N3FInputError(
            f"checkpoint {where} does not fit teacher '{spec.name}' ({spec.timm_arch}, {spec.layout} layout): "
            f"{_why(err, 300)}. Is it the right model/patch size?"
        ) from None
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise N3FInputError(
            f"checkpoint {where} contains NaN/Inf in {bad[:3]}; the file is corrupt, re-download it."
        )
