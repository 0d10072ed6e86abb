"""n3f.metrics: every score on cases with a known answer (AP also against scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from n3f.metrics import (
    PSNR_CAP,
    average_precision,
    best_threshold_iou,
    iou,
    mean_ap,
    psnr,
    psnr_from_mse,
    segmentation_precision_recall,
    ssim,
    to_unit_float,
)


# -- AP / mAP ----------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_ap_matches_sklearn_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(500) < 0.2
    continuous = rng.normal(size=500) + labels
    tied = np.round(continuous * 2) / 2  # many ties, across positives and negatives
    for scores in (continuous, tied):
        assert average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_perfect_and_constant_rankings():
    labels = np.zeros(100, bool)
    labels[:30] = True
    assert average_precision(labels.astype(float), labels) == pytest.approx(1.0)
    # one tie group: AP equals the positive fraction
    assert average_precision(np.zeros(100), labels) == pytest.approx(0.3)


def test_reversed_ranking():
    # 2 positives ranked last of 4: precision 1/3 at the first, 2/4 at the second
    labels = np.array([True, True, False, False])
    assert average_precision(np.array([0.0, 1.0, 2.0, 3.0]), labels) == pytest.approx((1 / 3 + 2 / 4) / 2)
    # one positive ranked last of n: AP = 1/n
    one = np.zeros(10, bool)
    one[0] = True
    assert average_precision(np.arange(10.0), one) == pytest.approx(0.1)
    # the order of ties does not matter, only the scores
    assert average_precision(np.ones(4), labels) == average_precision(np.ones(4), labels[::-1]) == pytest.approx(0.5)


def test_no_positive_is_an_error():
    with pytest.raises(ValueError):
        average_precision(np.arange(3.0), np.zeros(3, bool))


def test_mean_ap_leaves_out_missing_aps():
    assert mean_ap([0.2, np.nan, 0.4]) == pytest.approx(0.3)
    assert mean_ap(np.array([1.0, 1.0])) == 1.0
    assert np.isnan(mean_ap([np.nan, np.nan])) and np.isnan(mean_ap([]))


# -- PSNR --------------------------------------------------------------------
def test_psnr_from_mse_known_answers():
    assert psnr_from_mse(0.01) == pytest.approx(20.0)
    assert psnr_from_mse(1.0) == 0.0
    assert psnr_from_mse(0.0) == PSNR_CAP == psnr_from_mse(1e-10)  # at or below 10^(-cap/10): the cap
    assert psnr_from_mse(2e-10) == pytest.approx(-10 * np.log10(2e-10))
    assert psnr_from_mse(0.0, cap=120.0) == 120.0 and psnr_from_mse(1e-11, cap=120.0) == pytest.approx(110.0)
    assert np.isnan(psnr_from_mse(float("nan")))


def test_psnr_known_answers():
    a = np.zeros((4, 5, 3))
    assert psnr(a, a) == PSNR_CAP
    assert psnr(a, a + 0.1) == pytest.approx(20.0)
    assert psnr(np.zeros((4, 5, 3), np.uint8), np.full((4, 5, 3), 255, np.uint8)) == pytest.approx(0.0)
    assert psnr(np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 1.0)) == pytest.approx(0.0)  # uint8 vs float
    mask = np.zeros((4, 5), bool)
    mask[:2] = True
    b = a.copy()
    b[2:] = 1.0  # differs only outside the mask
    assert psnr(a, b, mask) == PSNR_CAP and psnr(a, b) < 10
    assert psnr(a, b, ~mask) == pytest.approx(0.0)
    assert np.isnan(psnr(a, b, np.zeros((4, 5), bool)))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a, np.zeros((4, 4, 3)))


def test_to_unit_float():
    assert to_unit_float(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    assert to_unit_float(np.array([0.25], np.float32)).dtype == np.float64


# -- SSIM --------------------------------------------------------------------
SSIM_C1 = (0.01 * 1.0) ** 2  # Wang et al.'s K1 = 0.01 at peak 1


def _textured(seed: int = 0, h: int = 32, w: int = 40) -> np.ndarray:
    """A smooth random image in [0, 1]: structure for SSIM to compare."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    return np.clip(gaussian_filter(rng.random((h, w, 3)), sigma=(2, 2, 0)) * 3 - 1, 0, 1)


def _reference_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 written out: gaussian window sigma 1.5 (11 taps), population moments, borders cropped."""
    from scipy.ndimage import gaussian_filter

    c1, c2 = SSIM_C1, (0.03 * 1.0) ** 2
    per_channel = []
    for ch in range(a.shape[-1]):
        x, y = a[..., ch], b[..., ch]
        f = lambda v: gaussian_filter(v, sigma=1.5, truncate=3.5, mode="reflect")  # noqa: E731
        mx, my = f(x), f(y)
        vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        per_channel.append(s[5:-5, 5:-5].mean())  # the 11-tap window's half width
    return float(np.mean(per_channel))


def test_ssim_of_identical_images_is_one():
    img = _textured()
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-12)
    assert ssim(np.full((16, 16, 3), 0.4), np.full((16, 16, 3), 0.4)) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_constant_images_by_hand():
    """Flat images: no variance, so SSIM is the luminance term (2ab + C1) / (a^2 + b^2 + C1), averaged over channels."""
    a, b = np.array([0.2, 0.5, 0.8]), np.array([0.3, 0.5, 0.6])
    expected = np.mean((2 * a * b + SSIM_C1) / (a**2 + b**2 + SSIM_C1))
    got = ssim(np.broadcast_to(a, (16, 20, 3)), np.broadcast_to(b, (16, 20, 3)))
    assert got == pytest.approx(expected, abs=1e-12)


def test_ssim_uses_the_literatures_settings():
    """Against Wang et al.'s formula written out with the settings NeRF papers use."""
    a, b = _textured(1), _textured(2)
    assert ssim(a, b) == pytest.approx(_reference_ssim(a, b), abs=1e-9)


def test_ssim_falls_with_shift_and_noise():
    img = _textured(3)
    shifted = np.roll(img, 2, axis=1)
    assert ssim(img, shifted) < 0.99
    rng = np.random.default_rng(0)
    noise = rng.normal(size=img.shape)
    scores = [ssim(img, np.clip(img + sd * noise, 0, 1)) for sd in (0.01, 0.05, 0.1, 0.3)]
    assert all(s < 1 for s in scores) and scores == sorted(scores, reverse=True), scores


def test_ssim_reads_uint8_and_checks_shapes():
    img = _textured(4)
    as_uint8 = np.round(img * 255).astype(np.uint8)
    assert ssim(as_uint8, img) == pytest.approx(ssim(as_uint8.astype(np.float64) / 255, img), abs=1e-12)
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(img, img[:-1])


# -- IoU ---------------------------------------------------------------------
def test_iou_known_answers():
    m = np.zeros((6, 6), bool)
    m[:3] = True
    assert iou(m, m) == 1.0 and iou(m, ~m) == 0.0  # identical, disjoint
    assert iou(m, np.ones_like(m)) == pytest.approx(0.5)
    empty = np.zeros_like(m)
    assert iou(empty, empty) == 1.0 and iou(empty, m) == 0.0


def test_best_threshold_iou_known_answers():
    m = np.zeros((6, 6), bool)
    m[:3] = True
    dist = np.where(m, 0.1, 0.9)
    grid = np.round(np.arange(0.05, 1.0001, 0.05), 2)
    best, thr = best_threshold_iou(dist, m, grid)
    assert best == 1.0 and thr == pytest.approx(0.15)  # the first threshold above the object's distance
    assert best_threshold_iou(dist, m, [0.05]) == (0.0, 0.05)  # selects nothing
    best, thr = best_threshold_iou(dist, m, [0.95])  # selects everything
    assert best == pytest.approx(0.5) and thr == 0.95
    score, thr = best_threshold_iou(dist, m, [])
    assert score == -1.0 and np.isnan(thr)


# -- 3D precision / recall ---------------------------------------------------
def test_precision_recall_known_answers():
    rng = np.random.default_rng(0)
    surface = rng.uniform(-1, 1, (200, 3))
    perfect = segmentation_precision_recall(surface, np.zeros(200, bool), surface, 0.01)
    assert perfect["precision"] == 1.0 and perfect["recall"] == 1.0 and perfect["f1"] == 1.0
    far = surface + 10.0
    wrong = segmentation_precision_recall(far, np.zeros(200, bool), surface, 0.01)
    assert wrong["precision"] == 0.0 and wrong["recall"] == 0.0 and np.isnan(wrong["f1"])
    # inside the volume counts as correct even far from the visible surface; half the surface covered
    half = segmentation_precision_recall(surface[:100], np.ones(100, bool), surface, 1e-6)
    assert half["precision"] == 1.0 and half["recall"] == pytest.approx(0.5)
    assert half["f1"] == pytest.approx(2 * 0.5 / 1.5)
    none = segmentation_precision_recall(np.zeros((0, 3)), np.zeros(0, bool), surface, 0.01)
    assert np.isnan(none["precision"]) and none["recall"] == 0.0
    no_surface = segmentation_precision_recall(surface[:4], np.array([True, False, False, False]), np.zeros((0, 3)), 0.01)
    assert no_surface["precision"] == 0.25 and np.isnan(no_surface["recall"])
    assert (no_surface["n_selected"], no_surface["n_surface"]) == (4, 0)
