"""``n3f eval-segment3d`` / ``eval-edit`` / ``eval-amodal``: fused-feature tasks scored on synthetic scenes.

Each reads a synthetic scene store, its teacher feature store and a distilled
``model.pt``, and writes a JSON of scores (``segment3d.json``, ``edit.json``,
``amodal.json``; atomic) plus PNG/PLY artefacts into ``--out``. The
selection flags (shared by all three, :func:`_common`) become one
:class:`n3f.tasks.settings.SelectionSettings` (:func:`selection_settings`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from n3f.tasks.settings import SelectionSettings


def _inputs(args: argparse.Namespace):
    import torch

    from n3f.tasks.common import load_inputs

    if args.threads:
        torch.set_num_threads(args.threads)
    return load_inputs(args.scene, args.features, args.model, args.device, chunk=args.chunk)


def selection_settings(args: argparse.Namespace) -> "SelectionSettings":
    """The selection flags of :func:`_common` as one checked :class:`SelectionSettings`."""
    from n3f.settings import parse
    from n3f.tasks.settings import SelectionSettings

    return parse(SelectionSettings, {"objects": args.objects, "feature_threshold": args.feature_threshold,
                                     "density_threshold": args.density_threshold, "locality": args.locality,
                                     "descriptor": args.descriptor, "enclose": args.enclose}, "selection")


def run_segment3d(args: argparse.Namespace) -> None:
    from n3f.tasks.segment3d import evaluate_segment3d

    selection = selection_settings(args)
    s = evaluate_segment3d(_inputs(args), args.out, selection=selection, opacity_threshold=args.opacity_threshold,
                           tolerance=args.tolerance, max_frames=args.max_frames)
    print(f"[eval_segment3d {s['scene']}] precision {s['mean_precision']:.3f}, recall {s['mean_recall']:.3f}")


def run_edit(args: argparse.Namespace) -> None:
    from n3f.tasks.editing import evaluate_editing

    selection = selection_settings(args)
    s = evaluate_editing(_inputs(args), args.out, selection=selection, max_frames=args.max_frames)
    print(f"[eval_edit {s['scene']}] masked PSNR edited {s['mean_masked_psnr_edited']:.2f} dB, "
          f"unedited {s['mean_masked_psnr_unedited']:.2f} dB")


def run_amodal(args: argparse.Namespace) -> None:
    from n3f.tasks.amodal import evaluate_amodal

    selection = selection_settings(args)
    s = evaluate_amodal(_inputs(args), args.out, selection=selection, opacity_threshold=args.opacity_threshold,
                        max_frames=args.max_frames)
    print(f"[eval_amodal {s['scene']}] IoU N3F {s['mean_iou_n3f']:.3f}, teacher (best threshold) "
          f"{s['mean_iou_teacher_best']:.3f}")


def run_query(args: argparse.Namespace) -> None:
    import json

    import torch

    from n3f.errors import N3FInputError
    from n3f.tasks.common import load_inputs
    from n3f.tasks.queries import downscale_for, run_query
    from n3f.tasks.query_spec import QueryProducts, parse_query

    try:
        entry = json.loads(args.query)
    except json.JSONDecodeError as err:
        raise N3FInputError(f"--query: not a JSON object ({err}).") from err
    spec = parse_query(args.where, entry)
    if args.threads:
        torch.set_num_threads(args.threads)
    products = QueryProducts(max_side=args.max_side, frames=args.frames, novel=args.novel,
                             video_frames=args.video_frames, locality=args.locality, enclose=args.enclose)
    inputs = load_inputs(args.scene, args.features, args.model, args.device, chunk=args.chunk, ground_truth=False)
    inputs.downscale = downscale_for(inputs.store.image_size, products.max_side)
    s = run_query(inputs, spec, args.out, where=args.where, products=products)
    print(f"[query {s['scene']}/{spec.name}] frame {s['frame_name']}: {s['segment3d']['points']} 3D points, "
          f"{len(s['views'])} views")


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _common(p: argparse.ArgumentParser, max_frames: int) -> None:
    from n3f.tasks.defaults import DENSITY_THRESHOLD, DESCRIPTOR, DESCRIPTORS, ENCLOSE, FEATURE_THRESHOLD, LOCALITY

    p.add_argument("--scene", required=True, help="synthetic scene store (needs attrs geometry/synthetic)")
    p.add_argument("--features", required=True, help="teacher feature store")
    p.add_argument("--model", required=True, help="distilled model.pt")
    p.add_argument("--out", required=True, help="output folder (JSON scores + figures)")
    p.add_argument("--objects", nargs="+", help="objects to score (default: all but actors)")
    p.add_argument("--feature-threshold", type=float, default=FEATURE_THRESHOLD,
                   help="cosine distance to the query descriptor below which a feature matches "
                        "(default: calibrated per object on its query frame's mask)")
    p.add_argument("--density-threshold", type=float, default=DENSITY_THRESHOLD,
                   help="samples at most this dense never match (their features are unsupervised)")
    loc = p.add_mutually_exclusive_group()
    loc.add_argument("--locality", type=_positive, default=LOCALITY, metavar="MARGIN",
                     help="only samples within MARGIN (normalised scene units) of the query mask's 3D surface "
                          "points can match, so look-alike objects elsewhere are left alone (default: %(default)s)")
    loc.add_argument("--no-locality", dest="locality", action="store_const", const=None,
                     help="select by features alone, anywhere in the scene (the paper's selection)")
    p.add_argument("--descriptor", choices=list(DESCRIPTORS), default=DESCRIPTOR,
                   help="features the query descriptor is averaged from (query-frame mask)")
    p.add_argument("--no-enclose", dest="enclose", action="store_false", default=ENCLOSE,
                   help="select only the matching samples, not also the dense cells they enclose (an object's "
                        "inside, whose features are untrained)")
    p.add_argument("--max-frames", type=int, default=max_frames, help="evaluation frames per object")
    p.add_argument("--chunk", type=int, default=None, help="rays per render pass (default: 512 on CPU, 16384 on GPU)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    p.add_argument("--device")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from n3f.tasks.defaults import OPACITY_THRESHOLD, TASKS, TOLERANCE

    p = sub.add_parser(TASKS["segment3d"], help="3D segmentation by feature matching: precision/recall vs geometry")
    _common(p, 4)
    p.add_argument("--opacity-threshold", type=float, default=OPACITY_THRESHOLD,
                   help="pixels back-projected to 3D must be at least this opaque")
    p.add_argument("--tolerance", type=float, default=TOLERANCE, help="distance tolerance, normalised units")
    p.set_defaults(func=run_segment3d)

    e = sub.add_parser(TASKS["edit"], help="object removal by zeroing matched density: PSNR vs scene without it")
    _common(e, 2)
    e.set_defaults(func=run_edit)

    a = sub.add_parser(TASKS["amodal"], help="amodal segmentation by rendering only matched density: IoU")
    _common(a, 4)
    a.add_argument("--opacity-threshold", type=float, default=OPACITY_THRESHOLD)
    a.set_defaults(func=run_amodal)

    from n3f.tasks.defaults import LOCALITY as _LOCALITY
    from n3f.tasks.query_spec import QueryProducts

    d = QueryProducts()
    q = sub.add_parser("query", help="a region you draw on one frame: 2D/3D segmentation, removal and amodal products")
    q.add_argument("--scene", required=True, help="scene store (any source)")
    q.add_argument("--features", required=True, help="teacher feature store")
    q.add_argument("--model", required=True, help="distilled model.pt")
    q.add_argument("--query", required=True,
                   help='the query as JSON: {"name": ..., "frame": index or file name, and "mask": file, '
                        '"box": [x0, y0, x1, y1] or "point": [x, y] (with "radius")} (docs/queries.md)')
    q.add_argument("--where", default="query", help="how errors name the query (the config key)")
    q.add_argument("--out", required=True, help="output folder: query.json (written last) and the products")
    q.add_argument("--max-side", type=int, default=d.max_side, help="longer side of every render in pixels")
    q.add_argument("--frames", type=int, default=d.frames, help="stored frames segmented besides the query frame")
    q.add_argument("--novel", type=int, default=d.novel, help="novel views between the cameras")
    q.add_argument("--video-frames", type=int, default=d.video_frames, help="frames of removal.mp4 (0: none)")
    qloc = q.add_mutually_exclusive_group()
    qloc.add_argument("--locality", type=_positive, default=_LOCALITY, metavar="MARGIN",
                      help="3D region margin around the query's surface (normalised units; default: %(default)s)")
    qloc.add_argument("--no-locality", dest="locality", action="store_const", const=None)
    q.add_argument("--no-enclose", dest="enclose", action="store_false", default=d.enclose,
                   help="3D selection of matching samples only, not also the dense cells they enclose")
    q.add_argument("--chunk", type=int, default=None, help="rays per render pass")
    q.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    q.add_argument("--device")
    q.set_defaults(func=run_query)
