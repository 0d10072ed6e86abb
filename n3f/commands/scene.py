"""``n3f scene``: import one configured scene into its canonical zarr store."""

from __future__ import annotations

import argparse
import json

from n3f.errors import N3FInputError


def run(args: argparse.Namespace) -> None:
    from n3f.scene.sources import build_scene
    from n3f.scene.store import write_scene

    try:
        entry = json.loads(args.spec)
    except json.JSONDecodeError as err:
        raise N3FInputError(f"--spec is not valid JSON: {err}") from err
    scene = build_scene(entry, colmap_model=args.colmap_model, images_dir=args.images)
    path = write_scene(scene, args.out)
    print(f"[scene {scene.name}] {len(scene.frame_names)} frames -> {path}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from n3f.scene.sources import source_names  # the registry only: no importer is loaded

    p = sub.add_parser("scene", help="import a scene into results/<scene>/scene.zarr")
    p.add_argument("--spec", required=True, help="the scene's config entry as JSON {name, source, path, options}; "
                   f"source: one of {', '.join(source_names())}")
    p.add_argument("--out", required=True, help="output scene store (.zarr folder)")
    p.add_argument("--colmap-model", help="sparse model from the sfm stage (video/images sources)")
    p.add_argument("--images", help="frames folder from the frames stage (video/images sources)")
    p.set_defaults(func=run)
