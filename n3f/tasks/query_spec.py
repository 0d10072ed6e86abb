"""A query a user draws on one frame of their own scene: the config entry, checked without torch.

A scene entry may list ``queries:``, each a region of one frame that names an
object (``docs/queries.md``)::

    queries:
      - {name: cape, frame: IMG_0012.JPG, mask: queries/cape.png}
      - {name: stand, frame: 40, box: [180, 300, 280, 450]}
      - {name: knob, frame: 7, point: [210, 95], radius: 12}
      - {name: cup, annotation: cup}     # an imported object's own mask (frame: optional)

Without ``queries:``, a scene with imported annotations gets one ``annotation``
query per object (the Snakefile reads the objects from the scene store); an
annotation query without ``frame`` uses the first frame of the scene's query
split where the object is visible, as retrieval's queries do.

Coordinates are pixels of the stored frames (the images on disk unless the
import's ``max_size`` shrinks them); a mask file has the stored frame's size,
or the same aspect ratio (it is resized nearest-neighbour). The checks that
need the scene (does the frame exist, does the box lie inside it) run when the
query's stage starts (:func:`resolve_query`), naming the config key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from n3f.errors import N3FInputError
from n3f.tasks.defaults import DENSITY_THRESHOLD, ENCLOSE, LOCALITY, OPACITY_THRESHOLD

QUERY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
QUERY_KEYS = ("name", "frame", "mask", "box", "point", "annotation", "radius")
REGION_KEYS = ("mask", "box", "point", "annotation")
DEFAULT_RADIUS = 8  # pixels: a point query's disc, about half a ViT-S/14 patch at 456 px


@dataclass(frozen=True)
class QuerySpec:
    """One query: a region of one frame (exactly one of ``mask``, ``box``, ``point``, ``annotation``)."""

    name: str
    """Names the query's results folder (letters, digits, ``_ . -``)."""
    frame: int | str | None
    """The frame: its index in the scene store, or its file name (or stem) as imported (None: only for
    an annotation query, the first query-split frame that shows the object)."""
    mask: str | None = None
    """A binary mask file of the frame (relative paths: from where Snakemake runs)."""
    box: tuple[float, float, float, float] | None = None
    """``[x0, y0, x1, y1]`` in pixels of the stored frame, x0 < x1, y0 < y1."""
    point: tuple[float, float] | None = None
    """``[x, y]`` in pixels of the stored frame; the region is a disc of ``radius`` around it."""
    radius: int = DEFAULT_RADIUS
    """Radius in pixels of a point query's disc."""
    annotation: str | None = None
    """An object imported with the scene (``objects`` of the store): its mask in the frame is the region."""

    @property
    def kind(self) -> str:
        return next(k for k in REGION_KEYS if getattr(self, k) is not None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, self.kind: getattr(self, self.kind)}
        if self.frame is not None:
            out["frame"] = self.frame
        if self.kind == "point":
            out["radius"] = self.radius
        return out


def _numbers(where: str, value: Any, n: int, what: str) -> tuple[float, ...]:
    if (not isinstance(value, (list, tuple)) or len(value) != n
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in value)):
        raise N3FInputError(f"{where}: {value!r} must be {what} ({n} numbers in pixels).")
    return tuple(float(v) for v in value)


def parse_query(where: str, entry: Any) -> QuerySpec:
    """Check one ``queries:`` entry (types, one region, a valid name); ``where`` names it in errors."""
    if not isinstance(entry, Mapping):
        raise N3FInputError(f"{where}: a query must be a mapping with name, frame and one of mask/box/point/annotation, "
                            f"got {entry!r}.")
    unknown = sorted(set(entry) - set(QUERY_KEYS))
    if unknown:
        raise N3FInputError(f"{where}: unknown key(s) {unknown}; a query has {list(QUERY_KEYS)}.")
    name = entry.get("name")
    if not isinstance(name, str) or not QUERY_NAME.match(name):
        raise N3FInputError(f"{where}.name: {name!r} must be letters, digits, '_', '.', '-' (it names the "
                            "query's results folder).")
    given = [k for k in REGION_KEYS if entry.get(k) is not None]
    if len(given) != 1:
        raise N3FInputError(f"{where}: give exactly one of mask (a file), box [x0, y0, x1, y1], point [x, y] or "
                            f"annotation (an imported object's name); got {given or 'none'}.")
    kind = given[0]
    frame = entry.get("frame")
    if frame is None and kind != "annotation":
        raise N3FInputError(f"{where}.frame: missing; a {kind} query is drawn on one frame (its index or file name).")
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, (int, str))
                              or (isinstance(frame, int) and frame < 0) or (isinstance(frame, str) and not frame.strip())):
        raise N3FInputError(f"{where}.frame: {frame!r} must be a frame index (>= 0) or a frame's file name.")
    radius = entry.get("radius", DEFAULT_RADIUS)
    if "radius" in entry and kind != "point":
        raise N3FInputError(f"{where}.radius: only a point query has a radius.")
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 1:
        raise N3FInputError(f"{where}.radius: {radius!r} must be a whole number of pixels >= 1.")
    mask = box = point = annotation = None
    if kind == "annotation":
        annotation = entry["annotation"]
        if not isinstance(annotation, str) or not annotation.strip():
            raise N3FInputError(f"{where}.annotation: {annotation!r} must be the name of an object imported with "
                                "the scene.")
    elif kind == "mask":
        mask = entry["mask"]
        if not isinstance(mask, str) or not mask.strip():
            raise N3FInputError(f"{where}.mask: {mask!r} must be the path of a binary mask image.")
    elif kind == "box":
        box = _numbers(f"{where}.box", entry["box"], 4, "[x0, y0, x1, y1]")
        if not (box[0] < box[2] and box[1] < box[3]):
            raise N3FInputError(f"{where}.box: {list(box)} must have x0 < x1 and y0 < y1.")
    else:
        point = _numbers(f"{where}.point", entry["point"], 2, "[x, y]")
    return QuerySpec(name, frame, mask, box, point, radius, annotation)


def parse_queries(where: str, entries: Any) -> list[QuerySpec]:
    """A scene's ``queries:`` list, checked; names must be unique."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise N3FInputError(f"{where}: must be a list of queries, got {type(entries).__name__}.")
    specs = [parse_query(f"{where}[{i}]", e) for i, e in enumerate(entries)]
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise N3FInputError(f"{where}: query names {dup} repeat; each names its own results folder.")
    return specs


def query_name(obj: str) -> str:
    """A query (and results folder) name for an annotated object's name: other characters become ``_``."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", obj.strip())
    return name if QUERY_NAME.match(name) else f"object_{name}"


def annotation_queries(objects: list[str]) -> list[dict[str, str]]:
    """The default queries of a scene imported with annotations: one per object, on its own mask."""
    return [{"name": query_name(obj), "annotation": obj} for obj in objects]


def annotation_region(where: str, spec: QuerySpec, store: Any) -> tuple[int, np.ndarray]:
    """(frame, (H, W) bool region) of an annotation query: the object's mask in the query's frame, which
    defaults to the first frame of the query split (then of any annotated frame) that shows the object."""
    objects = list(store.object_names)
    if spec.annotation not in objects:
        raise N3FInputError(f"{where}.annotation: '{spec.annotation}' is not an object of this scene; its annotated "
                            f"objects are {objects or 'none (import masks or labels, docs/annotations.md)'}.")
    k = objects.index(spec.annotation)
    annotated = [int(f) for f in store.annotated_frames]
    if spec.frame is not None:
        frame = resolve_frame(where, spec, list(store.attrs["frame_names"]))
        if frame not in annotated or not store.masks(frame)[k].any():
            raise N3FInputError(f"{where}: object '{spec.annotation}' is not annotated in frame {spec.frame!r}; "
                                "choose a frame where it is visible, or leave frame out.")
        return frame, np.asarray(store.masks(frame)[k], bool)
    order = [int(f) for f in store.split("query")] + annotated
    for frame in order:
        if frame in annotated:
            mask = np.asarray(store.masks(frame)[k], bool)
            if mask.any():
                return frame, mask
    raise N3FInputError(f"{where}: object '{spec.annotation}' is empty in every annotated frame; nothing to query.")


def resolve_frame(where: str, spec: QuerySpec, frame_names: list[str]) -> int:
    """The store index of ``spec.frame`` (an index, a file name or a file stem)."""
    n = len(frame_names)
    if isinstance(spec.frame, int):
        if spec.frame >= n:
            raise N3FInputError(f"{where}.frame: {spec.frame} is not a frame of this scene (it has {n}, 0..{n - 1}).")
        return spec.frame
    for i, name in enumerate(frame_names):
        if spec.frame in (name, Path(name).name, Path(name).stem):
            return i
    raise N3FInputError(f"{where}.frame: '{spec.frame}' is not a frame of this scene; frames are named like "
                        f"{frame_names[:3]} (or give an index 0..{n - 1}).")


def region_mask(where: str, spec: QuerySpec, size_hw: tuple[int, int]) -> np.ndarray:
    """(H, W) bool region of the query in a stored frame of ``size_hw``."""
    h, w = size_hw
    out = np.zeros((h, w), bool)
    if spec.kind == "box":
        x0, y0, x1, y1 = spec.box
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            raise N3FInputError(f"{where}.box: {list(spec.box)} lies outside the {w}x{h} frame (pixels of the "
                                "stored frame: 0 <= x <= width, 0 <= y <= height).")
        out[int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))] = True
    elif spec.kind == "point":
        x, y = spec.point
        if not (0 <= x < w and 0 <= y < h):
            raise N3FInputError(f"{where}.point: {list(spec.point)} lies outside the {w}x{h} frame.")
        yy, xx = np.mgrid[0:h, 0:w]
        out = (xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= spec.radius ** 2
    else:
        import cv2

        path = Path(spec.mask)
        if not path.is_file():
            raise N3FInputError(f"{where}.mask: {path} not found; give the path of a binary mask of the frame.")
        img = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise N3FInputError(f"{where}.mask: cannot decode {path}; it must be a binary mask image (PNG).")
        mh, mw = img.shape
        if abs(mw / mh - w / h) * min(h, w) > 1.0:
            raise N3FInputError(f"{where}.mask: {path} is {mw}x{mh} but the frame is {w}x{h} (another aspect ratio); "
                                "draw the mask on this frame.")
        if (mh, mw) != (h, w):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
        out = img > 127 if img.max() > 1 else img > 0
    if not out.any():
        raise N3FInputError(f"{where}: the query region is empty; draw it over the object.")
    return out


@dataclass(frozen=True)
class QueryProducts:
    """How much of each product a query renders (CPU time grows with views x render pixels)."""

    max_side: int = 192
    """Longer side of every render in pixels (frames are rendered at 1/k of their size, k the smallest that fits)."""
    frames: int = 4
    """Stored frames segmented, besides the query frame (evenly spread over the capture)."""
    novel: int = 2
    """Novel views, each halfway between two consecutive evaluated frames' cameras."""
    video_frames: int = 24
    """Frames of removal.mp4 along a path through the capture's cameras (0: no video)."""
    video_side: int = 128
    """Longer side of the video's renders in pixels."""
    fps: int = 8
    locality: float | None = LOCALITY
    """Margin of the 3D region around the query's surface (normalised units; None: features only)."""
    enclose: bool = ENCLOSE
    """Also select the dense samples inside the matching ones (:mod:`n3f.tasks.volume`; needs ``locality``)."""
    density_threshold: float = DENSITY_THRESHOLD
    opacity_threshold: float = OPACITY_THRESHOLD
