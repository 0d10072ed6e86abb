"""Undistortion of OpenCV-model (k1 k2 p1 p2 [k3]) images to a pinhole camera.

Fields assume pinhole projection, so distorted captures are resampled once at
import time. ``alpha=0`` keeps only valid pixels (no black borders that the
field would otherwise learn as geometry).
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np


def undistorter(
    k: np.ndarray, dist: np.ndarray, size_wh: tuple[int, int], out_wh: tuple[int, int]
) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """Return (image transform, new intrinsics) mapping distorted ``size_wh`` frames
    to undistorted pinhole frames of size ``out_wh``."""
    w, h = size_wh
    new_k, _ = cv2.getOptimalNewCameraMatrix(k, dist, (w, h), 0, (w, h))
    sx, sy = out_wh[0] / w, out_wh[1] / h
    out_k = np.array(new_k, dtype=np.float64)
    out_k[0] *= sx
    out_k[1] *= sy
    map1, map2 = cv2.initUndistortRectifyMap(k, dist, None, out_k, tuple(out_wh), cv2.CV_32FC1)

    def transform(img: np.ndarray) -> np.ndarray:
        if (img.shape[1], img.shape[0]) != (w, h):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        if sx < 1:  # pre-filter before sparse remap sampling to avoid aliasing
            sigma = 0.5 / sx
            img = cv2.GaussianBlur(img, (0, 0), sigma)
        return cv2.remap(img, map1, map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    return transform, out_k
