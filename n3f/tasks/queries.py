"""A user's query on their own scene: 2D segmentation, 3D segment, removal and amodal products, no ground truth.

From one region of one frame (:mod:`n3f.tasks.query_spec`) everything is derived
from that frame alone, as a user without annotations would have it:

* descriptor: the mean N3F feature (and, for the 2D baseline, the mean teacher
  feature) in the region;
* 2D thresholds: the cosine distance that best separates the region from the
  rest of the query frame (IoU, :func:`n3f.tasks.selection.calibrate_threshold`),
  one for N3F's rendered features and one for the teacher's;
* 3D selection: the rule of the scored tasks (:mod:`n3f.tasks.selection`:
  per-sample feature threshold calibrated on the query frame's surface
  points, density floor, locality region around the region's surface).

Products (``out_dir``, see ``docs/queries.md``): ``segment2d/<view>.png``
panels [image | teacher distance | N3F distance | N3F mask] and
``masks/<view>.png`` on stored frames and novel views between the cameras;
``segment3d.ply`` (selected surface points, world units, their colours) and
the bounding box in ``query.json``; ``removal/<view>.png`` [before | after]
strips and ``removal.mp4`` along a camera path through the capture;
``amodal/<view>.png`` [render | object-only opacity | its mask]. ``query.json``
is written last, so its presence means the query is complete.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from n3f.errors import N3FInputError
from n3f.tasks.common import Inputs, View, to_world, write_json, write_png, write_ply
from n3f.tasks.descriptors import cosine_distance_map, query_descriptor
from n3f.tasks.query_spec import QueryProducts, QuerySpec, annotation_region, region_mask, resolve_frame
from n3f.tasks.selection import (
    ObjectQuery, calibrate_on_query, calibrate_threshold, mask_surface, query_region, surface_points,
)

log = logging.getLogger(__name__)


def downscale_for(size_hw: tuple[int, int], max_side: int) -> int:
    """The smallest integer factor that brings the longer side to at most ``max_side``."""
    return max(1, int(np.ceil(max(size_hw) / max_side)))


def block_mask(mask: np.ndarray, downscale: int) -> np.ndarray:
    """A full-size mask sampled at the centres of ``downscale`` blocks, as the renders' pixels are."""
    if downscale == 1:
        return mask
    h, w = mask.shape[0] // downscale, mask.shape[1] // downscale
    c = downscale // 2
    return mask[c : c + h * downscale : downscale, c : c + w * downscale : downscale]


def interpolate_view(a: View, b: View, t: float, name: str) -> View:
    """The camera a fraction ``t`` of the way from ``a`` to ``b``: rotation along the geodesic
    (OpenCV's Rodrigues), centre and intrinsics linearly; codes of the nearer frame."""
    import cv2

    rel = a.c2w[:3, :3].T @ b.c2w[:3, :3]
    rvec = cv2.Rodrigues(rel)[0]
    c2w = np.eye(4)
    c2w[:3, :3] = a.c2w[:3, :3] @ cv2.Rodrigues(rvec * t)[0]
    c2w[:3, 3] = (1 - t) * a.c2w[:3, 3] + t * b.c2w[:3, 3]
    bounds = np.array([min(a.bounds[0], b.bounds[0]), max(a.bounds[1], b.bounds[1])])
    return View(name, c2w, (1 - t) * a.intrinsics + t * b.intrinsics, bounds, a.frame if t < 0.5 else b.frame,
                stored=t == 0.0)


def camera_path(inputs: Inputs, n: int) -> list[View]:
    """``n`` views along the capture's cameras in frame order (the walk the photos were taken on)."""
    frames = list(range(inputs.store.n_frames))
    pos = np.linspace(0, len(frames) - 1, n)
    views = []
    for i, p in enumerate(pos):
        lo = int(np.floor(p))
        hi = min(lo + 1, len(frames) - 1)
        views.append(interpolate_view(inputs.view(lo), inputs.view(hi), float(p - lo), f"path_{i:03d}"))
    return views


def _grey(x: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(x, 0, 1)[..., None], 3, -1)


def _overlay(image: np.ndarray, mask: np.ndarray, colour=(1.0, 0.2, 0.1)) -> np.ndarray:
    out = np.array(image, np.float32, copy=True)
    out[mask] = 0.45 * out[mask] + 0.55 * np.asarray(colour, np.float32)
    return out


def _photo(inputs: Inputs, view: View) -> np.ndarray:
    """The stored photo at the render size (block centres), or the render for a novel view."""
    if not view.stored:
        return inputs.render(view)["rgb"]
    img = np.asarray(inputs.store.frame(view.frame), np.float32) / 255.0
    return block_mask(img, inputs.downscale)


def write_video(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """H.264 MP4 (imageio-ffmpeg) written to a temporary name and renamed, so a killed run leaves none."""
    import imageio.v2 as imageio

    tmp = path.with_name(f".{path.stem}.partial.mp4")
    h, w = frames[0].shape[:2]
    even = [np.ascontiguousarray(np.round(np.clip(f[: h - h % 2, : w - w % 2], 0, 1) * 255).astype(np.uint8))
            for f in frames]  # yuv420p needs even sizes
    with imageio.get_writer(tmp, fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=1) as writer:
        for f in even:
            writer.append_data(f)
    os.replace(tmp, path)


PRODUCTS = ("query.json", "segment2d", "masks", "amodal", "removal", "segment3d.ply", "removal.mp4")


def clear_products(out: Path) -> None:
    """Remove a previous run's products first, so that a rerun with other views leaves none of the old ones
    (``query.json`` goes first: without it the folder never looks finished)."""
    import shutil

    for name in PRODUCTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_query(inputs: Inputs, spec: QuerySpec, out_dir: str | Path, *, where: str = "query",
              products: QueryProducts = QueryProducts()) -> dict[str, Any]:
    """Every product of one query (module docstring); returns the summary written as ``query.json``."""
    st = inputs.store
    out = Path(out_dir)
    if spec.kind == "annotation":
        q, full_mask = annotation_region(where, spec, st)
    else:
        q = resolve_frame(where, spec, list(st.attrs["frame_names"]))
        full_mask = region_mask(where, spec, st.image_size)
    mask = block_mask(full_mask, inputs.downscale)
    if not mask.any():
        raise N3FInputError(f"{where}: the region covers no pixel at the render size {inputs.size[::-1]} "
                            "(products.max_side); draw a larger region.")
    clear_products(out)
    query_out = inputs.render(q)
    desc = query_descriptor(np.asarray(query_out["features"], np.float32), mask).astype(np.float32)
    have_teacher = inputs.features is not None
    desc_t = query_descriptor(inputs.teacher(q), mask).astype(np.float32) if have_teacher else None

    # 2D thresholds from the query frame alone
    d_n3f = cosine_distance_map(query_out["features"], desc)
    thr_n3f = calibrate_threshold(d_n3f.reshape(-1), mask.reshape(-1))
    thr_t = calibrate_threshold(cosine_distance_map(inputs.teacher(q), desc_t).reshape(-1), mask.reshape(-1)) \
        if have_teacher else None

    # 3D selection, as the scored tasks select
    surface = mask_surface(inputs, mask, q, products.density_threshold, products.opacity_threshold)
    region = query_region(surface, products.locality) if products.locality is not None else None
    calib = calibrate_on_query(inputs, spec.name, q, desc, products.density_threshold, products.opacity_threshold,
                               region=region, surface=surface)
    oq = ObjectQuery(spec.name, -1, q, desc, float(calib["threshold"]), products.density_threshold, calib, region)
    if products.enclose:
        oq = oq.enclosed(inputs)
    log.info("%s: frame %d, %s region of %d px; 3D feature threshold %.2f (IoU %.3f on the query frame)",
             spec.name, q, spec.kind, int(full_mask.sum()), oq.threshold, calib.get("iou", float("nan")))

    others = [f for f in np.linspace(0, st.n_frames - 1, products.frames + 1).round().astype(int).tolist() if f != q]
    stored = [inputs.view(q)] + [inputs.view(f) for f in others[: products.frames]]
    order = sorted(stored[1:], key=lambda v: v.frame)
    novel = [interpolate_view(a, b, 0.5, f"novel_{i:02d}") for i, (a, b) in enumerate(zip(order, order[1:]))]
    views = stored + novel[: products.novel]

    rows = []
    for v in views:
        r = inputs.render(v)
        photo = _photo(inputs, v)
        dist = cosine_distance_map(r["features"], desc)
        seg = dist < thr_n3f["threshold"]
        panel = [photo]
        row: dict[str, Any] = {"view": v.name, "frame": v.frame, "stored": v.stored}
        if have_teacher and v.stored:
            dist_t = cosine_distance_map(inputs.teacher(v.frame), desc_t)
            panel.append(_grey(1.0 - dist_t))
            row["teacher_pixels"] = int((dist_t < thr_t["threshold"]).sum())
        else:
            panel.append(np.zeros_like(photo))
        panel += [_grey(1.0 - dist), _overlay(photo, seg)]
        write_png(out / "segment2d" / f"{v.name}.png", np.concatenate(panel, axis=1))
        write_png(out / "masks" / f"{v.name}.png", seg.astype(np.uint8) * 255)
        row["n3f_pixels"] = int(seg.sum())

        amodal = oq.render_edit(inputs, v, keep=True)["opacity"][..., 0]
        write_png(out / "amodal" / f"{v.name}.png",
                  np.concatenate([r["rgb"], _grey(amodal), _overlay(r["rgb"], amodal >= products.opacity_threshold,
                                                                      (0.1, 0.4, 1.0))], axis=1))
        removed = oq.render_edit(inputs, v, keep=False)["rgb"]
        write_png(out / "removal" / f"{v.name}.png", np.concatenate([r["rgb"], removed], axis=1))
        row.update(amodal_pixels=int((amodal >= products.opacity_threshold).sum()),
                   removed_change=float(np.abs(removed - r["rgb"]).mean()))
        rows.append(row)

    cloud = surface_points(inputs, stored, products.opacity_threshold)
    sel = oq.matches(cloud.points, cloud.features, cloud.density)
    world = to_world(st, cloud.points[sel]) if "normalisation" in st.attrs else cloud.points[sel]
    write_ply(out / "segment3d.ply", world, cloud.colors[sel])
    bbox = ({"min": world.min(0).round(5).tolist(), "max": world.max(0).round(5).tolist()} if len(world)
            else None)

    video = None
    if products.video_frames > 0:
        d_video = max(inputs.downscale, downscale_for(st.image_size, products.video_side))
        vid_inputs = Inputs(st, inputs.features, inputs.renderer, inputs.chunk, d_video)
        frames_v = []
        for v in camera_path(vid_inputs, products.video_frames):
            before = vid_inputs.render(v)["rgb"]
            after = oq.render_edit(vid_inputs, v, keep=False)["rgb"]
            frames_v.append(np.concatenate([before, after], axis=1))
        write_video(out / "removal.mp4", frames_v, products.fps)
        video = {"file": "removal.mp4", "frames": len(frames_v), "fps": products.fps,
                 "size": list(frames_v[0].shape[1::-1]), "layout": "[before | after]"}

    summary = {
        "query": spec.to_json(),
        "scene": st.name,
        "method": "fused" if inputs.renderer.fused is not None else "n3f",  # the field's features: distilled or fused
        "frame": q,
        "frame_name": st.attrs["frame_names"][q],
        "region_pixels": int(full_mask.sum()),
        "render_size": list(inputs.size),
        "thresholds": {"n3f_2d": thr_n3f, "teacher_2d": thr_t, "feature_3d": oq.threshold,
                       "density": products.density_threshold, "opacity": products.opacity_threshold},
        "calibration": calib,
        "region": region.summary() if region is not None else None,
        "views": rows,
        "segment3d": {"file": "segment3d.ply", "points": int(sel.sum()), "of_surface_points": int(len(sel)),
                      "bbox_world": bbox},
        "removal_video": video,
        "derived_from": "the query frame's region only (no ground truth)",
    }
    write_json(out / "query.json", summary)
    return summary
