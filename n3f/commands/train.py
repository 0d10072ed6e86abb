"""``n3f pretrain-rgb`` and ``n3f distill``: the two N3F training stages.

Both write ``<out>/model.pt``, ``<out>/metrics.json`` (held-out PSNR; distill
also the mean cosine of rendered to teacher features on 'val' frames) and
``<out>/metrics/loss.csv``, checkpoint to ``<out>/checkpoint.pt`` and resume
from it when re-run. SIGTERM/SIGUSR1 write the checkpoint and exit with status
128 + signal number.

Settings come from ``--config-json`` (a JSON or YAML file, or an inline JSON
object; keys of :class:`n3f.train.config.TrainConfig`); the flags override it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from n3f.errors import N3FInputError


def _config(args: argparse.Namespace, **flags: Any):
    from n3f.train.config import load_config

    path, inline = None, {}
    if args.config_json:
        if args.config_json.lstrip().startswith("{"):
            try:
                inline = json.loads(args.config_json)
            except json.JSONDecodeError as err:
                raise N3FInputError(f"--config-json is not valid JSON: {err}") from err
        else:
            path = args.config_json
    # flags left unset (None) must not hide the same key of --config-json (e.g. the workflow's steps)
    return load_config(path, {**inline, **{k: v for k, v in flags.items() if v is not None}})


def _report(metrics: dict[str, Any]) -> None:
    keys = ("stage", "field", "scene", "steps", "psnr", "feature_cosine", "train_time_s", "rays_per_s")
    print(json.dumps({k: metrics[k] for k in keys if k in metrics}))


def _run(fn) -> None:
    from n3f.train.checkpoint import TrainingInterrupted

    try:
        _report(fn())
    except TrainingInterrupted as err:
        print(f"n3f: {err}", file=sys.stderr)
        sys.exit(128 + err.signum)


def run_pretrain(args: argparse.Namespace) -> None:
    from n3f.train.loop import pretrain_rgb

    cfg = _config(args, field=args.field, steps=args.steps, seed=args.seed, device=args.device)
    _run(lambda: pretrain_rgb(args.scene, args.out, cfg))


def run_distill(args: argparse.Namespace) -> None:
    from n3f.train.loop import distill

    cfg = _config(args, steps=args.steps, seed=args.seed, device=args.device)
    _run(lambda: distill(args.scene, args.features, args.init, args.out, cfg))


def _steps_help(stage: str) -> str:
    from n3f.train.config import stage_defaults

    per_field = ", ".join(f"{field} {d['steps']}" for field, d in stage_defaults(stage).items() if "steps" in d)
    grid = "by quality and scene size" if stage == "rgb" else "by quality"
    return (f"training steps (default per field: grid {grid}, {per_field}; n3f/train/config.py "
            "GRID_SCHEDULES and FIELD_DEFAULTS)")


def _common(p: argparse.ArgumentParser, stage: str) -> None:
    p.add_argument("--scene", required=True, help="scene store (results/<scene>/scene.zarr)")
    p.add_argument("--out", required=True, help="output folder: model.pt, metrics.json, metrics/loss.csv, checkpoint.pt")
    p.add_argument("--steps", type=int, help=_steps_help(stage))
    p.add_argument("--config-json", help="training settings: JSON/YAML file or inline JSON object")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default auto)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from n3f.fields.settings import FIELD_SETTINGS

    p = sub.add_parser("pretrain-rgb", help="stage 1: fit a neural field to a scene's frames")
    _common(p, "rgb")
    p.add_argument("--field", choices=list(FIELD_SETTINGS), help="architecture (default grid)")
    p.set_defaults(func=run_pretrain)

    d = sub.add_parser("distill", help="stage 2: distil teacher features into an RGB-trained field")
    _common(d, "distill")
    d.add_argument("--features", required=True, help="teacher feature store (results/<scene>/features/<teacher>.zarr)")
    d.add_argument("--init", required=True, help="stage-1 model.pt (or its folder)")
    d.add_argument("--field", help=argparse.SUPPRESS)  # the architecture comes from --init
    d.set_defaults(func=run_distill)
