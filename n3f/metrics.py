"""Scores with known answers: retrieval AP and mAP, PSNR, SSIM, mask IoU and accuracy, 3D precision/recall,
bootstrap intervals.

Pure functions of arrays; the tasks and training decide what they are fed.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

PSNR_CAP = 100.0  # dB: PSNR of identical images, which is otherwise infinite
# SSIM as the NeRF literature reports it (Wang et al. 2004): an 11-tap gaussian window of sigma 1.5,
# population (not sample) covariances, peak 1
SSIM_SETTINGS = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 1.0}


# -- retrieval ---------------------------------------------------------------
def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """AP of ranking by ``scores`` (higher first) against binary ``labels``.

    Tied scores form one threshold, as in scikit-learn's
    ``average_precision_score``: AP = sum_n (R_n - R_{n-1}) P_n over distinct
    thresholds, so the result does not depend on how ties are ordered.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    n_pos = int(labels.sum())
    if n_pos == 0:
        raise ValueError("average precision is undefined without positives")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    tps = np.cumsum(sorted_labels)[last_of_tie]
    precision = tps / (last_of_tie + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_ap(aps: Iterable[float]) -> float:
    """mAP: the mean of the APs that exist (NaN, a row without an AP, is left out); NaN when none does."""
    values = np.asarray(aps, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


# -- images ------------------------------------------------------------------
def to_unit_float(image: np.ndarray) -> np.ndarray:
    """An image as float64 in [0, 1]: uint8 is divided by 255, anything else is taken as already in [0, 1]."""
    image = np.asarray(image)
    return image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)


def psnr_from_mse(mse: float, cap: float = PSNR_CAP) -> float:
    """PSNR (dB, peak 1) of a mean squared error; ``cap`` where the mse is at most ``10 ** (-cap / 10)`` (and for 0)."""
    if mse <= 10 ** (-cap / 10):
        return float(cap)
    return float(-10.0 * np.log10(mse))


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, cap: float = PSNR_CAP) -> float:
    """PSNR (dB, peak 1) of two images (uint8 or float in [0, 1]), optionally inside ``mask`` (H, W).

    Identical images give ``cap``; an empty mask gives NaN.
    """
    a, b = to_unit_float(a), to_unit_float(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    diff = (a - b) ** 2
    if mask is not None:
        mask = np.asarray(mask, bool)
        if not mask.any():
            return float("nan")
        diff = diff[mask]
    return psnr_from_mse(float(diff.mean()), cap)


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM of two (H, W, 3) images (uint8 or float in [0, 1]), the channels' SSIMs averaged.

    Computed by scikit-image's ``structural_similarity``, a maintained reference
    implementation, rather than our own: with :data:`SSIM_SETTINGS` (Wang et al.
    2004's gaussian window, sigma 1.5, ``use_sample_covariance=False``,
    ``data_range=1``) it gives the figures NeRF papers report, so ours compare
    with theirs. Both sides need at least 11 pixels (the window).
    """
    from skimage.metrics import structural_similarity

    pred, target = to_unit_float(pred), to_unit_float(target)
    if pred.shape != target.shape:
        raise ValueError(f"image shapes differ: {pred.shape} vs {target.shape}")
    return float(structural_similarity(pred, target, channel_axis=-1, **SSIM_SETTINGS))


# -- masks -------------------------------------------------------------------
def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks; 1 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(a, b).sum() / union)


def best_threshold_iou(distance: np.ndarray, target: np.ndarray, grid: Iterable[float]) -> tuple[float, float]:
    """(best IoU, its threshold) of ``distance < threshold`` against ``target`` over ``grid``; ties go to the first.

    An empty ``grid`` gives (-1, NaN).
    """
    best = (-1.0, float("nan"))
    for thr in grid:
        score = iou(distance < thr, target)
        if score > best[0]:
            best = (score, float(thr))
    return best


def pixel_accuracy(pred: np.ndarray, target: np.ndarray) -> float:
    """Share of pixels whose label (object / not) is right: the ``Acc`` of SPIn-NeRF and NVOS."""
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    if pred.shape != target.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {target.shape}")
    return float((pred == target).mean())


def iou_curve(distance: np.ndarray, target: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """IoU of ``distance < t`` against ``target`` for every ``t`` at once (one sort; equals :func:`iou` per t)."""
    d = np.asarray(distance, np.float64).ravel()
    target = np.asarray(target, bool).ravel()
    t = np.asarray(thresholds, np.float64)
    selected = np.searchsorted(np.sort(d), t, side="left")          # pixels with d < t
    hits = np.searchsorted(np.sort(d[target]), t, side="left")      # object pixels with d < t
    union = selected + int(target.sum()) - hits
    return np.where(union > 0, hits / np.maximum(union, 1), 1.0)


# -- spread ------------------------------------------------------------------
def bootstrap_interval(values: np.ndarray, groups: np.ndarray | None = None, *, level: float = 0.95,
                       resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaN left out).

    With ``groups``, whole groups are resampled (a query's rows move together: its gallery rows are not
    independent draws), and each resample's statistic is the mean over all rows of the drawn groups.
    Fixed ``seed``: the same rows give the same interval. (NaN, NaN) without values.
    """
    values = np.asarray(values, np.float64).ravel()
    groups = np.arange(len(values)) if groups is None else np.asarray(groups).ravel()
    keep = ~np.isnan(values)
    values, groups = values[keep], groups[keep]
    if len(values) == 0:
        return float("nan"), float("nan")
    _, inverse = np.unique(groups, return_inverse=True)
    sums = np.bincount(inverse, weights=values)
    counts = np.bincount(inverse).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sums), size=(resamples, len(sums)))
    stats = sums[draws].sum(1) / counts[draws].sum(1)
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


# -- 3D points ---------------------------------------------------------------
def segmentation_precision_recall(
    selected: np.ndarray, inside: np.ndarray, gt_surface: np.ndarray, tolerance: float
) -> dict[str, float]:
    """Precision/recall (and F1) of selected 3D points against an object.

    ``selected`` (P, 3) points; ``inside`` (P,) bool: the point is inside the
    object's volume; ``gt_surface`` (G, 3) the object's visible surface
    points. A selected point counts as correct when inside or within
    ``tolerance`` of a surface point; a surface point is recalled when a
    selected point lies within ``tolerance``. Precision is NaN without a
    selection, recall NaN without surface points.
    """
    from scipy.spatial import cKDTree

    selected = np.asarray(selected, np.float64).reshape(-1, 3)
    gt_surface = np.asarray(gt_surface, np.float64).reshape(-1, 3)
    inside = np.asarray(inside, bool).reshape(-1)
    out = {"n_selected": int(len(selected)), "n_surface": int(len(gt_surface))}
    if len(selected) == 0:
        out.update(precision=float("nan"), recall=0.0 if len(gt_surface) else float("nan"))
    elif len(gt_surface) == 0:
        out.update(precision=float(inside.mean()), recall=float("nan"))
    else:
        near_gt = cKDTree(gt_surface).query(selected, k=1, distance_upper_bound=tolerance)[0] <= tolerance
        near_sel = cKDTree(selected).query(gt_surface, k=1, distance_upper_bound=tolerance)[0] <= tolerance
        out.update(precision=float((inside | near_gt).mean()), recall=float(near_sel.mean()))
    p, r = out["precision"], out["recall"]
    out["f1"] = float(2 * p * r / (p + r)) if np.isfinite(p) and np.isfinite(r) and p + r > 0 else float("nan")
    return out
