"""The teacher stage: scene store in, PCA-reduced patch feature store out.

Each frame is resized *whole* (no crop) to the patch multiple nearest to the
target size, so the patch grid spans the entire frame as the feature store
contract (:mod:`n3f.features.store`) requires. Two passes keep memory bounded
for long videos:

1. **fit** -- run the teacher on up to ``fit_frames`` frames spread evenly
   over the video, L2-normalise each patch and accumulate the exact PCA
   moments (:class:`n3f.features.pca.StreamingPCA`);
2. **project** -- run the teacher on every frame, L2-normalise, project onto
   the scene's axes and write float16, one zarr chunk per frame.

Raw features of fit frames are kept for pass 2 only while they fit in
``cache_bytes``, so short scenes (and tests) run the teacher once per frame
while a 2,000-frame video costs at most ``fit_frames`` extra forward passes.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

import n3f
from n3f.errors import N3FInputError
from n3f.features.pca import PCA, StreamingPCA, check_finite, l2_normalise
from n3f.features.writer import FeatureStoreWriter
from n3f.scene.store import SceneStore
from n3f.teachers import Teacher, get_spec, load_teacher
from n3f.teachers.registry import DEFAULT_INPUT_SIZE


def input_size_for(image_hw: tuple[int, int], target: int | Sequence[int], patch: int) -> tuple[int, int]:
    """Teacher input (H, W): multiples of ``patch`` nearest to the target, aspect kept approximately.

    An int target is the longer side; a pair (H, W) is used as given, each
    rounded to the nearest multiple of the patch size.
    """
    h, w = image_hw
    if isinstance(target, (int, np.integer)):
        if target < patch:
            raise N3FInputError(f"teacher input size {target} is smaller than the patch size {patch}.")
        scale = target / max(h, w)
        want = (h * scale, w * scale)
    else:
        if len(target) != 2 or min(target) < patch:
            raise N3FInputError(f"teacher input size {list(target)} must be one int or [H, W], each >= {patch}.")
        want = (float(target[0]), float(target[1]))
    return tuple(max(patch, int(round(v / patch)) * patch) for v in want)  # type: ignore[return-value]


def resize_frame(frame: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Area interpolation when shrinking (no aliasing), cubic when enlarging."""
    h, w = frame.shape[:2]
    if (h, w) == tuple(size_hw):
        return frame
    shrink = size_hw[0] * size_hw[1] < h * w
    return cv2.resize(frame, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _batches(
    scene: SceneStore, indices: Sequence[int], size_hw: tuple[int, int], batch_size: int
) -> Iterator[tuple[list[int], np.ndarray]]:
    """Resized uint8 batches; the next batch is read while the teacher runs on this one."""

    def load(chunk: list[int]) -> np.ndarray:
        return np.stack([resize_frame(scene.frame(i), size_hw) for i in chunk])

    chunks = [list(indices[k : k + batch_size]) for k in range(0, len(indices), batch_size)]
    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, chunks[0])
        for k, chunk in enumerate(chunks):
            batch = pending.result()
            if k + 1 < len(chunks):
                pending = pool.submit(load, chunks[k + 1])
            yield chunk, batch


def fit_frame_indices(n_frames: int, fit_frames: int) -> list[int]:
    """Up to ``fit_frames`` indices spread evenly over the video (all if fewer)."""
    if fit_frames <= 0 or fit_frames >= n_frames:
        return list(range(n_frames))
    return sorted({int(round(x)) for x in np.linspace(0, n_frames - 1, fit_frames)})


def _describe(teacher: Teacher) -> str:
    """``teacher 'x' (weights <source>)``: what the user changes when its output is bad."""
    return f"teacher '{teacher.name}' (weights {teacher.info.weights_source})"


def _features(teacher: Teacher, batch: np.ndarray, chunk: list[int], names: list[str]) -> torch.Tensor:
    feats = teacher(batch)
    if not bool(torch.isfinite(feats).all()):
        bad = [
            names[i] if i < len(names) else str(i)
            for k, i in enumerate(chunk)
            if not torch.isfinite(feats[k]).all()
        ]
        check_finite(feats, f"{_describe(teacher)} output for frame(s) {bad[:5]}")
    return l2_normalise(feats)


def extract_feature_store(
    scene_path: str | Path,
    out_path: str | Path,
    teacher: str | Teacher,
    *,
    checkpoint: str | Path | None = None,
    input_size: int | Sequence[int] = DEFAULT_INPUT_SIZE,
    layer: int = -1,
    n_components: int = 64,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    fit_frames: int = 256,
    cache_bytes: int = 1 << 30,
    patch_size: int | None = None,
    progress: bool = True,
) -> Path:
    """Run ``teacher`` over every frame of the scene store and write the feature store.

    ``teacher`` is a registry name (see :func:`n3f.teachers.known_teachers`) or
    an already built :class:`~n3f.teachers.Teacher`. ``input_size`` is the
    longer side (int) or [H, W]; ``layer`` the ViT block (-1: last);
    ``patch_size`` only applies to ``dsift``. Returns ``out_path``.
    """
    if isinstance(teacher, str):
        get_spec(teacher)  # an unknown name fails before any scene I/O
    scene = SceneStore(scene_path)
    if isinstance(teacher, str):
        teacher = load_teacher(teacher, checkpoint=checkpoint, layer=layer, device=device, patch_size=patch_size)
    if batch_size < 1:
        raise N3FInputError(f"batch size must be >= 1, got {batch_size}.")
    n = scene.n_frames
    image_hw = scene.image_size
    in_hw = input_size_for(image_hw, input_size, teacher.patch_size)
    grid_hw = (in_hw[0] // teacher.patch_size, in_hw[1] // teacher.patch_size)
    if n_components > teacher.dim:
        raise N3FInputError(
            f"n_components={n_components} exceeds the {teacher.dim} channels of teacher '{teacher.name}'; "
            f"choose at most {teacher.dim}."
        )
    names = list(scene.attrs.get("frame_names", []))
    tag = f"[features {scene.name}/{teacher.name}]"
    quiet = not progress

    # Pass 1: exact PCA moments over the fit frames; keep their features while RAM allows.
    moments = StreamingPCA(teacher.dim)
    fit_idx = fit_frame_indices(n, fit_frames)
    per_frame = grid_hw[0] * grid_hw[1] * teacher.dim * 4
    cache: dict[int, torch.Tensor] = {}
    bar = tqdm(total=len(fit_idx), desc=f"{tag} fit PCA", unit="frame", disable=quiet, file=sys.stderr)
    for chunk, batch in _batches(scene, fit_idx, in_hw, batch_size):
        feats = _features(teacher, batch, chunk, names)
        moments.update(feats)
        for k, i in enumerate(chunk):
            if (len(cache) + 1) * per_frame <= cache_bytes:
                cache[i] = feats[k].cpu().clone()  # host RAM: GPU memory stays free for the teacher
        bar.update(len(chunk))
    bar.close()
    pca = moments.fit(n_components)
    check_finite(pca.components, f"PCA of teacher '{teacher.name}' features")

    # Pass 2: project every frame onto the scene's axes.
    with FeatureStoreWriter(out_path, n, grid_hw, n_components, source=_describe(teacher)) as writer:
        bar = tqdm(total=n, desc=f"{tag} project", unit="frame", disable=quiet, file=sys.stderr)
        for i, feats in cache.items():
            writer.write(i, _project(pca, feats.to(teacher.device), teacher, i, names), _name(names, i))
            bar.update(1)
        todo = [i for i in range(n) if i not in cache]
        cache.clear()
        for chunk, batch in _batches(scene, todo, in_hw, batch_size):
            feats = _features(teacher, batch, chunk, names)
            for k, i in enumerate(chunk):
                writer.write(i, _project(pca, feats[k], teacher, i, names), _name(names, i))
            bar.update(len(chunk))
        bar.close()
        info = teacher.info
        attrs = {
            "teacher": info.name,
            "weights_source": info.weights_source,
            "weights_sha256": info.weights_sha256,
            "layer": info.layer,
            "patch_size": int(info.patch_size),
            "input_size": [int(v) for v in in_hw],
            "grid_size": [int(v) for v in grid_hw],
            "image_size": [int(v) for v in image_hw],
            "channels": int(n_components),
            "teacher_dim": int(info.dim),
            "normalisation": "per-patch L2, then scene PCA (features = (x - pca/mean) @ pca/components.T)",
            "pca_fit": {
                "frames": len(fit_idx),
                "patches": int(pca.n_samples),
                "explained_variance_ratio": float(pca.explained_variance.sum() / max(pca.total_variance, 1e-30)),
            },
            "teacher_extra": info.extra,
            "scene": scene.name,
            "n_frames": int(n),
            "n3f_version": n3f.__version__,
        }
        return writer.finish(pca, attrs)


def _name(names: list[str], index: int) -> str:
    return names[index] if index < len(names) else str(index)


def _project(pca: PCA, feats: torch.Tensor, teacher: Teacher, index: int, names: list[str]) -> np.ndarray:
    """Projection onto the scene's axes; the writer refuses values float16 cannot hold."""
    out = pca.project(feats).cpu().numpy()
    check_finite(out, f"{_describe(teacher)} projected features of frame {_name(names, index)}")
    return out
