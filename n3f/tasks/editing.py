"""Object removal by editing density with fused features, scored against a synthetic re-render.

For each object: the descriptor comes from the query frame (see
:mod:`n3f.tasks.segment3d`; rendered N3F features by default). The edit zeroes
the density of every sample whose field feature lies within cosine distance
``feature_threshold`` of it (``feature_modifier(..., keep=False)``), in both
sampling passes, and the scene is re-rendered from each evaluation frame in
which the object is visible. The ground truth is the analytic scene rendered
from the same camera *without* that object (``render_view(..., exclude=(name,))``,
shadows included).

Scores per (object, frame), averaged per object and overall:

* ``psnr_edited`` / ``psnr_unedited``: PSNR of the edited / unedited render
  against the ground truth without the object, over the whole image (the
  unedited render is the baseline: it still shows the object);
* ``masked_psnr_edited`` / ``masked_psnr_unedited``: the same inside the
  object's amodal mask (where removal must reveal what was behind it).

PSNR of identical images is infinite; it is capped at ``PSNR_CAP`` (100 dB).
Figures: ``edit_<object>_f<frame>.png`` = [input frame | unedited render |
edited render | ground truth without the object]; ``before``/``after`` PNGs too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from n3f.tasks.segment3d import (
    AUTO,
    FEATURE_THRESHOLD,
    Inputs,
    _means,
    eval_frames,
    feature_modifier,
    gt_view,
    task_objects,
    write_json,
    write_png,
)

PSNR_CAP = 100.0


def _float01(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    return img.astype(np.float64) / 255.0 if img.dtype == np.uint8 else img.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, cap: float = PSNR_CAP) -> float:
    """PSNR (dB, peak 1) of two images (uint8 or float in [0, 1]), optionally inside ``mask`` (H, W).

    Identical images give ``cap``; an empty mask gives NaN.
    """
    a, b = _float01(a), _float01(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    diff = (a - b) ** 2
    if mask is not None:
        mask = np.asarray(mask, bool)
        if not mask.any():
            return float("nan")
        diff = diff[mask]
    mse = float(diff.mean())
    if mse <= 10 ** (-cap / 10):
        return float(cap)
    return float(-10.0 * np.log10(mse))


def evaluate_editing(
    inputs: Inputs,
    out_dir: str | Path,
    *,
    objects: Iterable[str] | None = None,
    feature_threshold: float | None = FEATURE_THRESHOLD,
    max_frames: int = 2,
    source: str = "n3f",
) -> dict[str, Any]:
    st = inputs.store
    out_dir = Path(out_dir)
    frames = eval_frames(st, max_frames * 4)  # thinned further per object to frames where it is visible
    rows = []
    for obj in task_objects(st, objects):
        k = st.object_names.index(obj)
        d = inputs.descriptor(obj, source)
        if d is None:
            rows.append({"object": obj, "note": "not visible in any annotated frame"})
            continue
        desc, q = d
        visible = [f for f in frames if st.masks(f, "amodal")[k].any()][:max_frames]
        thr = inputs.threshold(obj, desc, q, feature_threshold, source)
        modifier = feature_modifier(desc, thr, keep=False)
        per_frame = []
        for f in visible:
            before = inputs.render(f)["rgb"]
            after = inputs.renderer.render_frame(st, f, chunk=inputs.chunk, outputs=("rgb", "features"),
                                                 density_modifier=modifier)["rgb"]
            gt = gt_view(st, f, exclude=(obj,))["rgb"]
            amodal = st.masks(f, "amodal")[k]
            per_frame.append({
                "frame": f,
                "psnr_edited": psnr(after, gt),
                "psnr_unedited": psnr(before, gt),
                "masked_psnr_edited": psnr(after, gt, amodal),
                "masked_psnr_unedited": psnr(before, gt, amodal),
                "mask_pixels": int(amodal.sum()),
            })
            write_png(out_dir / f"before_{obj}_f{f}.png", before)
            write_png(out_dir / f"after_{obj}_f{f}.png", after)
            strip = np.concatenate([_float01(st.frame(f)), _float01(before), _float01(after), _float01(gt)], axis=1)
            write_png(out_dir / f"edit_{obj}_f{f}.png", strip)
        keys = ("psnr_edited", "psnr_unedited", "masked_psnr_edited", "masked_psnr_unedited")
        means = {k2[5:]: v for k2, v in _means(per_frame, keys).items()}
        rows.append({"object": obj, "query_frame": q, "feature_threshold": thr, **means, "frames": per_frame})
        if per_frame:
            print(f"[edit] {obj}: masked PSNR {means['masked_psnr_edited']:.2f} dB edited vs "
                  f"{means['masked_psnr_unedited']:.2f} unedited", file=sys.stderr)
    keys = ("psnr_edited", "psnr_unedited", "masked_psnr_edited", "masked_psnr_unedited")
    summary = {
        "task": "edit",
        "scene": st.name,
        "descriptor_source": source,
        "thresholds": {"feature_distance": AUTO if feature_threshold is None else feature_threshold},
        "psnr_cap": PSNR_CAP,
        "objects": rows,
        **_means(rows, keys),
    }
    write_json(out_dir / "edit.json", summary)
    return summary
