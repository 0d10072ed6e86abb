"""``n3f features``: run a teacher over a scene store and write its feature store."""

from __future__ import annotations

import argparse

from n3f.errors import N3FInputError


def _input_size(values: list[int]) -> int | list[int]:
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return values
    raise N3FInputError(f"--input-size takes one value (longer side) or two (H W), got {values}.")


def run(args: argparse.Namespace) -> None:
    from n3f.features.extract import extract_feature_store
    from n3f.features.store import FeatureStore

    path = extract_feature_store(
        args.scene,
        args.out,
        args.teacher,
        checkpoint=args.checkpoint,
        input_size=_input_size(args.input_size),
        layer=args.layer,
        n_components=args.components,
        batch_size=args.batch_size,
        device=args.device,
        fit_frames=args.fit_frames,
        patch_size=args.patch_size,
        progress=not args.no_progress,
    )
    store = FeatureStore(path)
    h, w = store.grid_size
    print(
        f"[features {args.teacher}] {store.n_frames} frames, {h}x{w} patches x {store.channels} channels "
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
    p.add_argument("--teacher", default=DEFAULT_TEACHER, help=f"registry name (default {DEFAULT_TEACHER})")
    p.add_argument("--checkpoint", help="local weights file (official release, timm or HF layout)")
    p.add_argument(
        "--input-size", type=int, nargs="+", default=[DEFAULT_INPUT_SIZE],
        help=f"teacher input: longer side, or H W; rounded to the patch size (default {DEFAULT_INPUT_SIZE})",
    )
    p.add_argument("--layer", type=int, default=-1, help="ViT block whose patch tokens are used (-1: last)")
    p.add_argument("--components", type=int, default=64, help="PCA channels kept (default 64)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--fit-frames", type=int, default=256, help="frames used to fit the PCA (spread evenly)")
    p.add_argument("--patch-size", type=int, help="grid stride of 'dsift' (ViTs have a fixed patch size)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
