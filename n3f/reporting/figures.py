"""Pictures people want to see: distance maps (as the paper's Figure 3) and
PCA-to-RGB views of teacher and rendered features."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from n3f.atomic import atomic_write  # noqa: E402
from n3f.tasks.descriptors import cosine_distance_map, query_descriptor  # noqa: E402


def features_to_rgb(features: list[np.ndarray]) -> list[np.ndarray]:
    """Project features of several images onto one shared 3-component PCA so colours compare."""
    flat = np.concatenate([f.reshape(-1, f.shape[-1]) for f in features])
    flat = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-8)
    mean = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat[:: max(1, len(flat) // 20000)] - mean, full_matrices=False)
    proj = (flat - mean) @ vt[:3].T
    lo, hi = np.percentile(proj, 1, axis=0), np.percentile(proj, 99, axis=0)
    rgb = np.clip((proj - lo) / np.maximum(hi - lo, 1e-8), 0, 1)
    out, start = [], 0
    for f in features:
        n = f.shape[0] * f.shape[1]
        out.append(rgb[start : start + n].reshape(f.shape[0], f.shape[1], 3))
        start += n
    return out


def _overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = image.astype(np.float32) / 255.0
    out[mask] = 0.5 * out[mask] + 0.5 * np.array([1.0, 0.2, 0.2])
    return out


def retrieval_figure(
    path: str | Path,
    query_image: np.ndarray,
    query_mask: np.ndarray,
    target_image: np.ndarray,
    target_mask: np.ndarray,
    teacher_query: np.ndarray,
    teacher_target: np.ndarray,
    n3f_query: np.ndarray,
    n3f_target: np.ndarray,
    title: str,
) -> Path:
    """Query with mask, target, and each method's distance map on the target (dark = close)."""
    d_teacher = cosine_distance_map(teacher_target, query_descriptor(teacher_query, query_mask))
    d_n3f = cosine_distance_map(n3f_target, query_descriptor(n3f_query, query_mask))
    vmax = max(float(d_teacher.max()), float(d_n3f.max()))
    panels = [
        (_overlay(query_image, query_mask), "query + mask", None),
        (_overlay(target_image, target_mask), "target (+ true mask)", None),
        (d_teacher, "teacher distance", vmax),
        (d_n3f, "N3F distance", vmax),
    ]
    return _panel_row(path, panels, title)


def segmentation_figure(
    path: str | Path,
    query_image: np.ndarray,
    query_mask: np.ndarray,
    target_image: np.ndarray,
    target_mask: np.ndarray,
    teacher: tuple[np.ndarray, np.ndarray, float],
    n3f: tuple[np.ndarray, np.ndarray, float],
    title: str,
) -> Path:
    """One-view segmentation: the query and its mask, the target's true mask, and each method's mask on the
    target (``(query features, target features, threshold)`` per method; the threshold from the query view)."""
    panels = [(_overlay(query_image, query_mask), "query + mask", None),
              (_overlay(target_image, target_mask), "target (+ true mask)", None)]
    for label, (fq, ft, thr) in (("teacher", teacher), ("N3F", n3f)):
        pred = cosine_distance_map(ft, query_descriptor(fq, query_mask)) < thr
        panels.append((_overlay(target_image, pred), f"{label} mask", None))
    return _panel_row(path, panels, title)


def pca_figure(path: str | Path, image: np.ndarray, teacher: np.ndarray, rendered: np.ndarray, title: str) -> Path:
    """Frame, teacher features and rendered N3F features in one shared PCA colouring."""
    t_rgb, r_rgb = features_to_rgb([teacher, rendered])
    panels = [(image, "frame", None), (t_rgb, "teacher features (PCA)", None), (r_rgb, "N3F features (PCA)", None)]
    return _panel_row(path, panels, title)


def _panel_row(path: str | Path, panels: list[tuple[np.ndarray, str, float | None]], title: str) -> Path:
    """One row of titled images; panels with a ``vmax`` are drawn as scalar maps on a shared scale."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3))
    for ax, (img, label, vmax) in zip(axes, panels):
        if vmax is None:
            ax.imshow(img)
        else:
            ax.imshow(img, cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    try:
        atomic_write(path, lambda fh: fig.savefig(fh, dpi=100, format=path.suffix.lstrip(".") or "png"))
    finally:
        plt.close(fig)
    return path
