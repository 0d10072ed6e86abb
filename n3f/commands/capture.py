"""``n3f frames`` and ``n3f sfm``: the capture stages for video and photo sources."""

from __future__ import annotations

import argparse
import json
from typing import Any

from n3f.errors import N3FInputError


def _options(text: str | None, flag: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise N3FInputError(f"{flag} is not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise N3FInputError(f"{flag} must be a JSON object, got {text!r}")
    return value


def run_frames(args: argparse.Namespace) -> None:
    from n3f.io.video import extract_frames
    from n3f.scene.options import check_options
    from n3f.scene.sources import FRAME_OPTIONS

    options = check_options("--options", _options(args.options, "--options"), FRAME_OPTIONS, "n3f frames")
    files = extract_frames(args.video, args.out, **options)
    print(f"[frames] {len(files)} frames -> {args.out}")


def run_sfm_command(args: argparse.Namespace) -> None:
    from n3f.io.sfm import run_sfm
    from n3f.scene.options import check_options
    from n3f.scene.sources import SFM_OPTIONS

    options = check_options(
        "--options", _options(args.options, "--options"), SFM_OPTIONS, "n3f sfm", " Threads are set with --threads."
    )
    model = run_sfm(args.images, args.out, num_threads=args.threads, **options)
    print(f"[sfm] model -> {model}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("frames", help="extract frames from a video")
    p.add_argument("--video", required=True)
    p.add_argument("--out", required=True, help="output folder of frames")
    p.add_argument("--options", help='JSON, e.g. {"every": 5, "max_size": 640} or {"target_count": 200}')
    p.set_defaults(func=run_frames)

    p = sub.add_parser("sfm", help="structure-from-motion (pycolmap) on a folder of frames")
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True, help="SfM workspace; the model lands in <out>/model")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--options", help='JSON, e.g. {"matcher": "exhaustive"}')
    p.set_defaults(func=run_sfm_command)
