"""``n3f fuse``: training-free fusion of teacher features onto an RGB-trained field (:mod:`n3f.fusion`).

Writes ``<out>/model.pt`` (the RGB model with its fused feature volume: it renders, queries and
is evaluated like a distilled model) and then ``<out>/metrics.json``. Settings come from
``--config-json`` (keys of :class:`n3f.fusion.fuse.FuseConfig`).
"""

from __future__ import annotations

import argparse
import json


def run_fuse(args: argparse.Namespace) -> None:
    from n3f.fusion.fuse import FuseConfig, fuse
    from n3f.settings import load_mapping, parse

    settings = load_mapping(args.config_json, "--config-json") if args.config_json else {}
    if args.device:
        settings["device"] = args.device
    cfg = parse(FuseConfig, settings, "fusion")
    metrics = fuse(args.scene, args.features, args.init, args.out, cfg)
    keys = ("stage", "field", "scene", "fuse_time_s", "rays", "samples", "voxels", "feature_cosine")
    print(json.dumps({k: metrics[k] for k in keys if k in metrics}))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fuse", help="lift teacher features onto an RGB-trained field without training")
    p.add_argument("--scene", required=True, help="scene store (results/<scene>/scene.zarr)")
    p.add_argument("--features", required=True, help="teacher feature store (results/<scene>/features/<teacher>.zarr)")
    p.add_argument("--init", required=True, help="RGB-stage model.pt (or its folder)")
    p.add_argument("--out", required=True, help="output folder: model.pt, metrics.json")
    p.add_argument("--config-json", help="fusion settings (n3f.fusion.fuse.FuseConfig): JSON/YAML file or inline JSON")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default auto)")
    p.set_defaults(func=run_fuse)
