"""Dense SIFT: a handcrafted, weight-free teacher.

Why: a cheap baseline that needs no download and no GPU, and a sanity check
that the distillation pipeline learns something beyond what local gradients
already give. One upright SIFT descriptor (OpenCV) is computed at the centre
of every grid cell, with a support of ``2 x patch`` pixels so neighbouring
descriptors overlap like ViT receptive fields do.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from n3f.teachers.base import Teacher, TeacherInfo


class DenseSiftTeacher(Teacher):
    def __init__(self, patch_size: int = 8, support: float = 2.0):
        self.support = support
        self._sift = cv2.SIFT_create()
        self.info = TeacherInfo(
            name="dsift",
            patch_size=int(patch_size),
            dim=128,
            weights_source=f"handcrafted: OpenCV {cv2.__version__} SIFT, upright, support {support}x patch",
            weights_sha256="",
            layer=None,
        )

    def _keypoints(self, h: int, w: int) -> list:
        p = self.patch_size
        size = self.support * p
        return [cv2.KeyPoint(j * p + p / 2, i * p + p / 2, size, 0.0) for i in range(h // p) for j in range(w // p)]

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        b, h, w, _ = frames.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"frames of {w}x{h} are not a multiple of the patch size {p}")
        kps = self._keypoints(h, w)
        out = np.empty((b, h // p, w // p, 128), np.float32)
        for k, frame in enumerate(frames):
            gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
            got, desc = self._sift.compute(gray, kps)
            if desc is None or len(got) != len(kps):
                raise RuntimeError(f"OpenCV SIFT returned {0 if desc is None else len(got)} of {len(kps)} descriptors")
            out[k] = desc.reshape(h // p, w // p, 128)
        return torch.from_numpy(out)
