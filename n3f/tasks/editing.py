"""Object removal by editing density with fused features, scored against a synthetic re-render.

For each object the descriptor and its feature threshold come from the query
frame (:mod:`n3f.tasks.selection`; the threshold is calibrated on per-sample
field features, which is what the edit thresholds). The edit zeroes the
density of every sample that matches (``ObjectQuery.modifier(keep=False)``),
in both sampling passes and in every stream of a multi-stream field (NeuralDiff:
a moved object lives in the dynamic stream, the others in the static one; the
match is on the density-mixed feature, so it does not need to know which), and
the scene is re-rendered from each evaluation frame in which the object is
visible. The ground truth is the analytic scene rendered from the same camera
*without* that object (``render_view(..., exclude=(name,))``, shadows included).
By default a sample is only removed inside the object's 3D region around its
query-frame surface (``locality``, see :mod:`n3f.tasks.selection`): removing
an object should not remove its look-alikes elsewhere in the scene, which the
paper's features-only selection (``locality=None``) does.

Scores per (object, frame), averaged per object and overall:

* ``psnr_edited`` / ``psnr_unedited``: PSNR of the edited / unedited render
  against the ground truth without the object, over the whole image (the
  unedited render is the baseline: it still shows the object);
* ``masked_psnr_edited`` / ``masked_psnr_unedited``: the same inside the
  object's amodal mask (where removal must reveal what was behind it);
* ``masked_psnr_reconstruction``: the unedited render against the scene *with*
  the object, inside the same mask: the field's own fidelity there.

The masked score rewards removing too much (other objects, shadows) as long
as the object's region is right; the whole-image ``psnr_edited`` against
``psnr_unedited`` shows that cost, so both are reported. (The whole-image score
also charges the object's own shadow, which the ground truth drops and a
removal by density keeps.)

PSNR of identical images is infinite; it is capped at
:data:`n3f.metrics.PSNR_CAP` (100 dB).
Figures: ``edit_<object>_f<frame>.png`` = [input frame | unedited render |
edited render | ground truth without the object]; ``before``/``after`` PNGs too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from n3f.metrics import PSNR_CAP, psnr, to_unit_float
from n3f.tasks.common import Inputs, eval_frames, gt_view, means, write_json, write_png
from n3f.tasks.selection import object_queries, selection_info
from n3f.tasks.settings import SelectionSettings

log = logging.getLogger(__name__)

SCORES = ("psnr_edited", "psnr_unedited", "masked_psnr_edited", "masked_psnr_unedited", "masked_psnr_reconstruction")


def edit_scores(unedited: np.ndarray, edited: np.ndarray, removed: np.ndarray, original: np.ndarray,
                mask: np.ndarray) -> dict[str, float]:
    """Scores of one removal: renders against the ground truth without the object (``removed``).

    ``original`` is the ground truth *with* the object: the unedited render's
    masked PSNR against it (``masked_psnr_reconstruction``) is how well the
    field reproduces that region at all, a ceiling a removal cannot be
    expected to beat. ``mask``: the object's amodal mask.
    """
    return {
        "psnr_edited": psnr(edited, removed),
        "psnr_unedited": psnr(unedited, removed),
        "masked_psnr_edited": psnr(edited, removed, mask),
        "masked_psnr_unedited": psnr(unedited, removed, mask),
        "masked_psnr_reconstruction": psnr(unedited, original, mask),
        "mask_pixels": int(np.asarray(mask, bool).sum()),
    }


def evaluate_editing(
    inputs: Inputs,
    out_dir: str | Path,
    *,
    selection: SelectionSettings = SelectionSettings(),
    max_frames: int = 2,
) -> dict[str, Any]:
    """Remove each selected object, re-render and score; returns the summary written as JSON.

    ``selection``: which objects, and how their samples are selected (:class:`SelectionSettings`).
    """
    st = inputs.store
    out_dir = Path(out_dir)
    frames = eval_frames(st, max_frames * 4)  # thinned further per object to frames where it is visible
    queries, rows = object_queries(inputs, selection)
    for oq in queries:
        obj, k = oq.name, oq.index
        visible = [f for f in frames if st.masks(f, "amodal")[k].any()][:max_frames]
        per_frame = []
        for f in visible:
            before = inputs.render(f)["rgb"]
            after = oq.render_edit(inputs, f, keep=False)["rgb"]
            gt = gt_view(st, f, exclude=(obj,))["rgb"]
            amodal = st.masks(f, "amodal")[k]
            per_frame.append({"frame": f, **edit_scores(before, after, gt, st.frame(f), amodal)})
            write_png(out_dir / f"before_{obj}_f{f}.png", before)
            write_png(out_dir / f"after_{obj}_f{f}.png", after)
            strip = np.concatenate([to_unit_float(im) for im in (st.frame(f), before, after, gt)], axis=1)
            write_png(out_dir / f"edit_{obj}_f{f}.png", strip)
        avg = {k2[5:]: v for k2, v in means(per_frame, SCORES).items()}
        rows.append({**oq.row(), **avg, "frames": per_frame})
        if per_frame:
            log.info("%s: masked PSNR %.2f dB edited vs %.2f unedited", obj, avg["masked_psnr_edited"],
                     avg["masked_psnr_unedited"])
    summary = {
        "task": "edit",
        "scene": st.name,
        "descriptor_source": selection.descriptor,
        "selection": selection_info(selection.locality, selection.enclose),
        "thresholds": selection.thresholds(),
        "psnr_cap": PSNR_CAP,
        "objects": rows,
        **means(rows, SCORES),
    }
    write_json(out_dir / "edit.json", summary)
    return summary
