"""Image reading with errors that name the file, and lazy frame lists.

Frames are read only when the scene writer asks for them, so importing a
2,000-frame capture never holds more than one image in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from n3f.errors import N3FInputError

_EXIF_ORIENTATION = 0x0112
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3), or raise naming the file."""
    path = Path(path)
    if not path.is_file():
        raise N3FInputError(f"image not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise N3FInputError(f"cannot decode image {path} (truncated or not an image); replace or remove it.")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file header, without decoding; ``None`` if the header is unreadable.

    An unreadable file is reported by name when its pixels are read
    (:func:`read_image`), so a size scan over a whole folder stays cheap.
    """
    try:
        from PIL import Image as PILImage
    except ImportError:  # pillow is optional: decode instead
        data = np.fromfile(str(path), dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        return None if img is None else (int(img.shape[1]), int(img.shape[0]))
    try:
        with PILImage.open(path) as im:
            w, h = int(im.size[0]), int(im.size[1])
            # OpenCV's decoder applies the EXIF orientation; report the size it will return.
            if im.getexif().get(_EXIF_ORIENTATION) in (5, 6, 7, 8):
                w, h = h, w
            return w, h
    except Exception:
        return None


def read_mask(
    path: str | Path,
    size_hw: tuple[int, int] | None = None,
    *,
    frame_hw: tuple[int, int] | None = None,
    frame_path: str | Path | None = None,
) -> np.ndarray:
    """Read a binary mask (any non-zero pixel is foreground), resized with nearest if asked.

    ``frame_hw`` is the size of the mask's frame on disk: a mask of another size
    is refused (resizing it would misalign it), then it is resized to
    ``size_hw`` together with its frame.
    """
    path = Path(path)
    if not path.is_file():
        raise N3FInputError(f"mask not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if img is None:
        raise N3FInputError(f"cannot decode mask {path}; replace or remove it.")
    if frame_hw is not None:
        from n3f.io.checks import check_mask_size

        check_mask_size(path, img.shape[:2], Path(frame_path or "?"), frame_hw)
    if size_hw is not None and img.shape != tuple(size_hw):
        img = cv2.resize(img, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_NEAREST)
    return img > 127 if img.max() > 1 else img > 0


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise N3FInputError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise N3FInputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def resize_factor_for(size_hw: tuple[int, int], max_size: int | None) -> float:
    """Downscale factor (<= 1) so that the longer side is at most ``max_size``."""
    if not max_size:
        return 1.0
    if max_size < 0:
        raise N3FInputError(f"max_size must be a positive number of pixels, got {max_size}.")
    return min(1.0, max_size / max(size_hw))


def scale_intrinsics(k: np.ndarray, sx: float, sy: float | None = None) -> np.ndarray:
    """Intrinsics of an image resized by (sx, sy), pixel-centre convention."""
    sy = sx if sy is None else sy
    out = np.array(k, dtype=np.float64, copy=True)
    out[..., 0, :] *= sx
    out[..., 1, :] *= sy
    return out


class LazyFrames:
    """A frame list that reads (and optionally transforms) each image on access.

    With ``expect_wh``, a decoded image of another size is refused (naming the
    file) instead of being stretched by the transform.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        expect_wh: tuple[int, int] | None = None,
    ):
        self.paths = list(paths)
        self.transform = transform
        self.expect_wh = expect_wh

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        img = read_image(self.paths[index])
        if self.expect_wh is not None and (img.shape[1], img.shape[0]) != tuple(self.expect_wh):
            w, h = self.expect_wh
            raise N3FInputError(
                f"image {self.paths[index]} is {img.shape[1]}x{img.shape[0]}, the other frames are {w}x{h}; "
                "all frames of a scene must have one size: replace the odd file, or remove it with its pose."
            )
        return self.transform(img) if self.transform is not None else img


def resizer(size_wh: tuple[int, int]) -> Callable[[np.ndarray], np.ndarray]:
    """A transform that resizes an image to ``size_wh`` with area filtering."""

    def resize(img: np.ndarray) -> np.ndarray:
        if (img.shape[1], img.shape[0]) == tuple(size_wh):
            return img
        return cv2.resize(img, tuple(size_wh), interpolation=cv2.INTER_AREA)

    return resize
