"""``n3f features``: run a teacher over a scene store and write its feature store."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from n3f.errors import N3FInputError

if TYPE_CHECKING:
    from n3f.teachers.settings import TeacherSettings


def _input_size(values: list[int] | None) -> int | list[int] | None:
    if values is None or len(values) == 1:
        return values[0] if values else None
    if len(values) == 2:
        return values
    raise N3FInputError(f"--input-size takes one value (longer side) or two (H W), got {values}.")


# flag -> key of the ``teachers:`` entry
_FLAGS = {"teacher": "name", "checkpoint": "checkpoint", "layer": "layer", "components": "components",
          "batch_size": "batch_size", "fit_frames": "fit_frames", "patch_size": "patch_size"}


def settings_from_args(args: argparse.Namespace) -> "TeacherSettings":
    """``--settings`` (a ``teachers:`` entry, as the workflow passes it) with the flags given on top,
    checked like the config before torch or any file is touched.

    Flags left unset stay out of the entry, so an option the teacher does not
    use (``--checkpoint`` or ``--layer`` for ``dsift``) is refused only when given.
    """
    from n3f.settings import load_mapping
    from n3f.teachers.registry import DEFAULT_TEACHER
    from n3f.teachers.settings import parse_teacher_entry

    entry = load_mapping(args.settings, "--settings")
    for flag, key in _FLAGS.items():
        if getattr(args, flag) is not None:
            entry[key] = getattr(args, flag)
    if args.input_size is not None:
        entry["input_size"] = _input_size(args.input_size)
    entry.setdefault("name", DEFAULT_TEACHER)
    return parse_teacher_entry(entry, "teacher")


def run(args: argparse.Namespace) -> None:
    settings = settings_from_args(args)
    from n3f.features.extract import extract_feature_store
    from n3f.features.store import FeatureStore

    path = extract_feature_store(
        args.scene,
        args.out,
        settings.name,
        device=args.device,
        progress=not args.no_progress,
        **settings.extract_kwargs(),
    )
    store = FeatureStore(path)  # verifies what was just written (re-reads the small patch grids once)
    h, w = store.grid_size
    print(
        f"[features {settings.name}] {store.n_frames} frames, {h}x{w} patches x {store.channels} channels "
        f"({store.attrs['pca_fit']['explained_variance_ratio']:.1%} variance kept) -> {path}"
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    # Only the light registry here: `n3f --help` must not import torch.
    from n3f.teachers.registry import DEFAULT_INPUT_SIZE, DEFAULT_TEACHER, known_teachers

    p = sub.add_parser(
        "features",
        help="extract PCA-reduced teacher patch features of a scene store",
        description=f"Known teachers: {', '.join(known_teachers())}.",
    )
    p.add_argument("--scene", required=True, help="scene store (results/<scene>/scene.zarr)")
    p.add_argument("--out", required=True, help="output feature store (results/<scene>/features/<teacher>.zarr)")
    p.add_argument(
        "--settings",
        help="the teacher's settings: a 'teachers:' entry of the config as inline JSON or a JSON/YAML file "
        "(keys: n3f.teachers.settings.TeacherSettings, docs/teachers.md); the flags below override it",
    )
    p.add_argument("--teacher", help=f"registry name (default {DEFAULT_TEACHER})")
    p.add_argument("--checkpoint", help="local weights file (official release, timm or HF layout)")
    p.add_argument(
        "--input-size", type=int, nargs="+",
        help=f"teacher input: longer side, or H W; rounded to the patch size (default {DEFAULT_INPUT_SIZE})",
    )
    p.add_argument("--layer", type=int, help="ViT block whose patch tokens are used (default -1: last)")
    p.add_argument("--components", type=int, help="PCA channels kept (default 64)")
    p.add_argument("--batch-size", type=int, help="frames per teacher forward pass (default 8)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--fit-frames", type=int, help="frames used to fit the PCA, spread evenly (default 256)")
    p.add_argument("--patch-size", type=int, help="grid stride of 'dsift' (ViTs have a fixed patch size)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
