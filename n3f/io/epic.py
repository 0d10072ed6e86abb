"""EPIC-KITCHENS / NeuralDiff (EPIC-Diff) sequence importer.

Reads ``<root>/<video id>/meta.json`` as NeuralDiff and the official N3F code
do: ``ids_all/ids_train/ids_val/ids_test``, ``images`` (id -> file name in
``frames/``), ``poses`` (id -> 3x4 camera-to-world in NeuralDiff's "right, up,
back" axes, i.e. COLMAP's pose with the y and z axes negated), per-id
``nears``/``fars`` and one shared 3x3 ``intrinsics``. Frame ids are the time
index. Binary masks in ``annotations/`` named like the frames become one
annotated object (``foreground``) on those frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from n3f.errors import N3FInputError
from n3f.io.checks import check_bounds, check_intrinsics, check_one_size, check_rigid, pose_matrix
from n3f.io.annotations import AnnotationPaths, read_annotations
from n3f.io.images import LazyFrames, image_size, read_image, resize_factor_for, resizer, scale_intrinsics
from n3f.scene_data import SceneData

_REQUIRED = ("ids_all", "images", "poses", "nears", "fars", "intrinsics")
NEURALDIFF_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def load_epic(
    path: str | Path,
    *,
    video: str | None = None,
    name: str | None = None,
    max_size: int | None = None,
    annotations_dir: str = "annotations",
    masks: str | None = None,
    labels: str | None = None,
    objects: str | None = None,
    amodal_masks: str | None = None,
    amodal_labels: str | None = None,
) -> SceneData:
    """Import one EPIC-Diff sequence (``path/video``, or ``path`` itself); ``name`` defaults to its folder.

    ``masks``, ``labels``, ``objects``, ``amodal_masks``, ``amodal_labels``: object annotations under the
    sequence (:mod:`n3f.io.annotations`); without them, ``annotations_dir`` is read when present.
    """
    seq = Path(path) / video if video else Path(path)
    meta_path = seq / "meta.json"
    if not meta_path.is_file():
        raise N3FInputError(f"EPIC-Diff meta not found: {meta_path}; 'path' must hold <video id>/meta.json.")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise N3FInputError(f"{meta_path} is not valid JSON: {err}") from err
    absent = [k for k in _REQUIRED if k not in meta]
    if absent:
        raise N3FInputError(f"{meta_path} lacks {absent}; is this a NeuralDiff/EPIC-Diff meta.json?")

    try:
        ids = sorted(int(i) for i in meta["ids_all"])
        lookup = {key: {int(k): v for k, v in meta[key].items()} for key in ("images", "poses", "nears", "fars")}
    except (TypeError, ValueError, AttributeError):
        raise N3FInputError(
            f"{meta_path}: 'ids_all' must be a list of integer frame ids and 'images'/'poses'/'nears'/'fars' "
            "objects keyed by frame id; is this a NeuralDiff/EPIC-Diff meta.json?"
        ) from None
    if not ids:
        raise N3FInputError(f"{meta_path}: 'ids_all' lists no frames.")
    for key, table in lookup.items():
        lost = [i for i in ids if i not in table]
        if lost:
            raise N3FInputError(f"{meta_path}: '{key}' has no entry for frame ids {lost[:5]}; the meta is incomplete.")
    bad_names = [i for i in ids if not isinstance(lookup["images"][i], str) or not lookup["images"][i]]
    if bad_names:
        raise N3FInputError(f"{meta_path}: 'images' of frame ids {bad_names[:5]} are not file names.")
    files = [seq / "frames" / lookup["images"][i] for i in ids]
    gone = [f for f in files if not f.is_file()]
    if gone:
        raise N3FInputError(
            f"{len(gone)} frames listed in {meta_path} are missing, e.g. {gone[0]}; extract the EPIC-KITCHENS "
            "frames into frames/ as NeuralDiff's get_started.sh does."
        )
    frame_labels = [f"{i} ({f.name})" for i, f in zip(ids, files)]
    where = str(meta_path)
    c2w = np.stack([pose_matrix(lookup["poses"][i], f"{where}: poses of frame id {label}") for i, label in zip(ids, frame_labels)])
    c2w = c2w @ NEURALDIFF_TO_OPENCV
    check_rigid(
        c2w, frame_labels, where,
        "NeuralDiff poses are 3x4 camera-to-world matrices in right/up/back axes (COLMAP's with y and z negated).",
    )
    try:
        bounds = np.array([[lookup["nears"][i], lookup["fars"][i]] for i in ids], dtype=np.float64)
    except (TypeError, ValueError):
        raise N3FInputError(f"{where}: 'nears'/'fars' must hold one number per frame id.") from None
    check_bounds(bounds, frame_labels, where, "'nears'/'fars' hold per-frame depth bounds; fix them in meta.json.")

    h0, w0 = read_image(files[0]).shape[:2]
    check_one_size([(w0, h0)] + [image_size(f) for f in files[1:]], files)
    factor = resize_factor_for((h0, w0), max_size)
    out_wh = (round(w0 * factor), round(h0 * factor))
    try:
        k_meta = np.asarray(meta["intrinsics"], dtype=np.float64)
    except (TypeError, ValueError):
        k_meta = np.zeros(0)
    if k_meta.shape != (3, 3):
        raise N3FInputError(f"{where}: 'intrinsics' must be one 3x3 matrix of numbers, got {str(meta['intrinsics'])[:80]}.")
    check_intrinsics(k_meta, None, where, "'intrinsics' is the shared 3x3 pinhole matrix K.")
    k = scale_intrinsics(k_meta, out_wh[0] / w0, out_wh[1] / h0)

    position = {frame_id: row for row, frame_id in enumerate(ids)}

    def rows(key: str) -> np.ndarray:
        return np.array(sorted(position[int(i)] for i in meta.get(key, []) if int(i) in position), dtype=np.int64)

    if masks is None and labels is None and (seq / annotations_dir).is_dir():
        masks = annotations_dir  # EPIC-Diff's own annotations (one mask per frame, or a folder per object)
    paths = AnnotationPaths(masks, labels, objects, amodal_masks, amodal_labels)
    annotations, summary = read_annotations(paths, seq, files, (h0, w0), (out_wh[1], out_wh[0]))

    split = {"train": rows("ids_train") if "ids_train" in meta else np.arange(len(ids)), "val": rows("ids_val")}
    test = rows("ids_test")
    if annotations is not None:
        annotated_rows = np.asarray(annotations.frame_indices)
        split["query"] = annotated_rows[::5]
        split["gallery"] = np.setdiff1d(annotated_rows, split["query"])
    else:
        split["query"], split["gallery"] = test[:0], test[:0]

    return SceneData(
        name=name or seq.name,
        source="epic",
        frames=LazyFrames(files, resizer(out_wh), expect_wh=(w0, h0)),
        frame_names=[f.name for f in files],
        c2w=c2w,
        intrinsics=np.tile(k, (len(ids), 1, 1)),
        bounds=bounds,
        layout="egocentric",
        timestamps=np.array(ids, dtype=np.float64),
        split=split,
        annotations=annotations,
        dynamic=True,
        attrs={"import": {"path": str(seq), "ids_test": test.tolist(), "max_size": max_size, **paths.record()},
               **({"annotations": summary} if summary else {})},
    )
