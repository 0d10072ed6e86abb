"""The registry of scene sources: from a ``scenes:`` entry of the config to a :class:`SceneData`.

:data:`SOURCES` maps each ``source:`` name to a :class:`Source`: its importer
as a ``"module:function"`` string (imported only when a scene is built), its
typed options and what the pipeline hands it. Every importer has one
signature, ``importer(path, *, name, **options) -> SceneData``. Checking an
entry (:func:`check_scene_entry`) needs only the registry, so the Snakefile
refuses a bad entry while it is parsed without importing OpenCV, pycolmap or
the renderer.

Adding a source is one entry here plus its module (options listed in
``docs/importers.md``; a test checks them against the importer's signature).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from n3f.errors import N3FInputError
from n3f.scene.options import Option, check_options
from n3f.scene_data import LAYOUTS

if TYPE_CHECKING:
    from n3f.scene_data import SceneData

# A check across the options of one mapping: rule(config key of the mapping, its options).
Rule = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Block:
    """A further mapping of a scene entry (``frames:``, ``sfm:``): options of a stage run before the import."""

    options: Mapping[str, Option]
    what: str  # the stage, as error messages name it
    rule: Rule | None = None


@dataclass(frozen=True)
class Source:
    """One scene source: where its importer is, what it accepts, and what the pipeline hands it."""

    importer: str  # "module:function", signature (path, *, name, **options) -> SceneData
    options: Mapping[str, Option]
    needs_path: bool = True  # the entry must give 'path' (false: nothing is read)
    # Imported from the sfm stage's COLMAP model (path) and the frames it posed
    # (images=), not from the entry's path; the store records the source's name.
    posed_by_sfm: bool = False
    blocks: Mapping[str, Block] = field(default_factory=dict)
    hint: str = ""  # added to an "option(s) not understood" error
    rule: Rule | None = None  # checks across options

    def load(self) -> Callable[..., SceneData]:
        """The importer function (imports its module)."""
        module, _, function = self.importer.partition(":")
        return getattr(importlib.import_module(module), function)


def _max_size() -> Option:
    return Option(int, None, "longer side of the stored frames in pixels (area downscaling, intrinsics and masks "
                  "scaled with them); null keeps the size on disk", nullable=True, min=8)


# Object annotations of real captures (n3f.io.annotations; layouts in docs/annotations.md). Relative
# paths are under the scene's data folder: path (llff, colmap), the folder of transforms.json, or the
# folder holding the photo folder / video file (images, video).
ANNOTATION_OPTIONS: dict[str, Option] = {
    "masks": Option(str, None, "binary masks named like the frames: <masks>/<stem>.png (one object, 'foreground') "
                    "or <masks>/<object>/<stem>.png (one folder per object)", nullable=True),
    "labels": Option(str, None, "instance-label images <labels>/<stem>.png: 0 background, k object k (grey 8/16-bit "
                     "or palette PNG)", nullable=True),
    "objects": Option(str, None, "JSON/YAML file naming label ids ({1: cape, 2: stand}); default objects.json/.yaml "
                      "in the labels folder", nullable=True),
    "amodal_masks": Option(str, None, "full-extent masks, layout as 'masks'", nullable=True),
    "amodal_labels": Option(str, None, "full-extent label images, layout as 'labels'", nullable=True),
}


def _layout(default: str) -> Option:
    return Option(str, default, "camera arrangement, sets the normalisation: forward (LLFF-like), object "
                  "(walk-around), egocentric", choices=LAYOUTS)


# Layouts each synthetic kind can render (n3f.synthetic.scene_spec.KINDS).
SYNTHETIC_LAYOUTS = {"static": ("object", "forward"), "dynamic": ("egocentric",)}

# Options of the capture stages (``n3f frames --options``, ``n3f sfm --options``),
# i.e. a video scene's ``frames:`` and a video/images scene's ``sfm:`` entries.
FRAME_OPTIONS: dict[str, Option] = {
    "every": Option(int, None, "keep every k-th frame of the video", nullable=True, min=1),
    "target_count": Option(int, None, "keep this many frames, evenly spread", nullable=True, min=1),
    "max_size": Option(int, None, "longer side of the extracted frames in pixels", nullable=True, min=8),
    "image_format": Option(str, "png", "file format of the frames", choices=("png", "jpg", "jpeg")),
    "jpeg_quality": Option(int, 95, "JPEG quality of jpg frames", min=1, max=100),
}
SFM_OPTIONS: dict[str, Option] = {
    "matcher": Option(str, "sequential", "sequential (video frames) or exhaustive (unordered photos)",
                      choices=("sequential", "exhaustive")),
    "camera_model": Option(str, "SIMPLE_RADIAL", "COLMAP camera model to self-calibrate"),
    "camera_params": Option(list, None, "known intrinsics in camera_model's parameter order", nullable=True,
                            items=float),
    "single_camera": Option(bool, True, "one camera shared by all images"),
    "max_image_size": Option(int, 1024, "longer side of the images SIFT sees", min=64),
    "max_num_features": Option(int, 4096, "SIFT features per image", min=16),
    "overlap": Option(int, 10, "sequential matcher: images matched with each image", min=1),
    "min_registered_fraction": Option(float, 0.5, "fail unless this share of the images registers", min=0, max=1),
    "seed": Option(int, 0, "random seed of the reconstruction"),
    "verbose": Option(bool, False, "show COLMAP's own log"),
}


def _near_before_far(where: str, options: dict[str, Any]) -> None:
    near, far = options.get("near"), options.get("far")
    if near is not None and far is not None and far <= near:
        raise N3FInputError(f"{where}.far: {far!r} must be greater than near ({near!r}).")


def _layout_of_kind(where: str, options: dict[str, Any]) -> None:
    layout, kind = options.get("layout"), options.get("kind", "static")
    allowed = SYNTHETIC_LAYOUTS[kind]
    if layout is not None and layout not in allowed:
        raise N3FInputError(f"{where}.layout: {layout!r} is not available for kind {kind!r}; use one of {list(allowed)}.")


def _one_frame_selection(where: str, frames: dict[str, Any]) -> None:
    if frames.get("every") is not None and frames.get("target_count") is not None:
        raise N3FInputError(f"{where}: give either 'every' or 'target_count', not both.")


_SFM = Block(SFM_OPTIONS, "structure from motion (n3f sfm)")

SOURCES: dict[str, Source] = {
    "synthetic": Source(
        "n3f.synthetic.make:import_synthetic",
        {
            "kind": Option(str, "static", "static (orbit or forward cameras) or dynamic (egocentric, objects move)",
                           choices=("static", "dynamic")),
            "n_frames": Option(int, None, "frames to render; null: 60 static, 80 dynamic", nullable=True, min=1),
            "width": Option(int, 160, "image width in pixels", min=8),
            "height": Option(int, 120, "image height in pixels", min=8),
            "seed": Option(int, 0, "random seed of objects, textures and camera path"),
            "layout": Option(str, None, "object or forward (static), egocentric (dynamic); null: the kind's first",
                             nullable=True, choices=LAYOUTS),
            "annotate_every": Option(int, 1, "keep masks of every k-th frame", min=1),
            "n_objects": Option(int, 6, "objects on the table, the last a distractor twin of the first", min=2),
            "fov_deg": Option(float, 60.0, "horizontal field of view in degrees", min=0, min_exclusive=True, max=179),
            "supersample": Option(int, 2, "anti-aliasing factor of the colour rendering", min=1),
            "shadows": Option(bool, True, "render shadows"),
            "n_moving": Option(int, 2, "objects that move (dynamic scenes; at most 2 are used)", min=0),
            "actor": Option(bool, True, "render the arm fixed to the camera (dynamic scenes)"),
            "table_half": Option(float, 2.0, "half the side of the table, world units", min=0, min_exclusive=True),
        },
        needs_path=False,
        rule=_layout_of_kind,
    ),
    "llff": Source(
        "n3f.io.llff:load_llff",
        {
            "images": Option(str, "images", "image folder under path (images_4, images_8: LLFF's downsampled copies)"),
            **ANNOTATION_OPTIONS,
            "max_size": _max_size(),
            "layout": _layout("forward"),
            "n_frames": Option(int, None, "keep this many frames, evenly spread over the capture", nullable=True,
                               min=1),
        },
    ),
    "transforms": Source(
        "n3f.io.transforms:load_transforms",
        {
            "max_size": _max_size(),
            "layout": _layout("object"),
            "near": Option(float, None, "near depth bound of every frame (world units); default from the camera "
                           "spread", nullable=True, min=0, min_exclusive=True),
            "far": Option(float, None, "far depth bound of every frame (world units); default from the camera "
                          "spread", nullable=True, min=0, min_exclusive=True),
            **ANNOTATION_OPTIONS,
        },
        rule=_near_before_far,
    ),
    "colmap": Source(
        "n3f.io.colmap:import_colmap",
        {
            "model": Option(str, "sparse/0", "sparse model folder under path (cameras/images/points3D .bin or .txt, "
                            "or a sparse/ folder of numbered models: the largest is used)"),
            "images": Option(str, "images", "image folder under path that the model's image names are relative to"),
            "max_size": _max_size(),
            "layout": _layout("object"),
            **ANNOTATION_OPTIONS,
        },
    ),
    "idr": Source(
        "n3f.io.idr:load_idr",
        {
            "images": Option(str, "image", "image folder under path (IDR/NeuS: image/)"),
            "cameras": Option(str, None, "camera file under path; null: cameras_sphere.npz, else cameras.npz",
                              nullable=True),
            "max_size": _max_size(),
            **ANNOTATION_OPTIONS,
        },
    ),
    "epic": Source(
        "n3f.io.epic:load_epic",
        {
            "video": Option(str, None, "sequence folder under path (e.g. P01_01); null: path is the sequence itself",
                            nullable=True),
            "max_size": _max_size(),
            "annotations_dir": Option(str, "annotations", "EPIC-Diff's mask folder under the sequence, named like "
                                      "the frames (one object, 'foreground', or a folder per object); read when "
                                      "present and no 'masks'/'labels' is given"),
            **ANNOTATION_OPTIONS,
        },
    ),
    "video": Source(
        "n3f.io.colmap:import_sfm_model",
        {"max_size": _max_size(), "layout": _layout("object"), **ANNOTATION_OPTIONS},
        posed_by_sfm=True,
        blocks={"frames": Block(FRAME_OPTIONS, "frame extraction (n3f frames)", _one_frame_selection), "sfm": _SFM},
        hint=" Frame extraction options go under 'frames:', structure-from-motion options under 'sfm:'.",
    ),
    "images": Source(
        "n3f.io.colmap:import_sfm_model",
        {"max_size": _max_size(), "layout": _layout("object"), **ANNOTATION_OPTIONS},
        posed_by_sfm=True,
        blocks={"sfm": _SFM},
        hint=" Structure-from-motion options go under 'sfm:'.",
    ),
}


def source_names() -> tuple[str, ...]:
    """The ``source:`` values a scene entry may name, in registry order."""
    return tuple(SOURCES)


def _entry_name(entry: Any) -> str:
    name = entry.get("name") if isinstance(entry, Mapping) else None
    return name if isinstance(name, str) and name else "?"


def check_scene_entry(entry: dict[str, Any]) -> None:
    """Validate one scene entry's name, source, path and options without reading any data.

    Raises :class:`N3FInputError` naming the config key (``scenes[goldcape].options.max_size``).
    Cheap: imports no importer, no torch; the Snakefile calls it at parse time.
    """
    name = _entry_name(entry)
    where = f"scenes[{name}]"
    if not isinstance(entry, Mapping):
        raise N3FInputError(f"{where}: a scene entry must be a mapping with 'name' and 'source', got {entry!r}.")
    if name == "?":
        raise N3FInputError(f"{where}: 'name' must be a non-empty string, got {entry.get('name')!r}.")
    source = entry.get("source")
    src = SOURCES.get(source) if isinstance(source, str) else None
    if src is None:
        raise N3FInputError(f"{where}: unknown scene source '{source}'; use one of {source_names()}.")
    if src.needs_path:
        path = entry.get("path")
        if path is None:
            raise N3FInputError(f"{where}: source '{source}' needs a 'path' to the data.")
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise N3FInputError(f"{where}.path: {path!r} is not a valid value; expected a file or folder path.")
    options = check_options(f"{where}.options", entry.get("options"), src.options, f"the '{source}' importer", src.hint)
    if src.rule is not None:
        src.rule(f"{where}.options", options)
    for key, block in src.blocks.items():
        if key in entry:
            values = check_options(f"{where}.{key}", entry[key], block.options, block.what)
            if block.rule is not None:
                block.rule(f"{where}.{key}", values)


def build_scene(
    entry: dict[str, Any], *, colmap_model: str | Path | None = None, images_dir: str | Path | None = None
) -> SceneData:
    """Import the scene described by one config entry.

    The entry is checked first (:func:`check_scene_entry`), so bad options fail
    before any data is read. ``colmap_model``/``images_dir`` are the sfm
    stage's outputs for sources it poses (``video``, ``images``).
    """
    check_scene_entry(entry)
    name, source = entry["name"], entry["source"]
    src = SOURCES[source]
    options = dict(entry.get("options") or {})
    path: Path | None = None
    if src.posed_by_sfm:
        if colmap_model is None or images_dir is None:
            raise N3FInputError(f"scene '{name}': source '{source}' needs the sfm stage's model; run the pipeline.")
        path, options["images"] = Path(colmap_model), images_dir
        for key in ANNOTATION_OPTIONS:  # relative to the capture, not to the pipeline's sfm workspace
            if options.get(key):
                options[key] = str(Path(entry["path"]).parent / options[key])
    elif src.needs_path:
        path = Path(entry["path"])
        if not path.exists():
            raise N3FInputError(f"scene '{name}': path {path} does not exist; fix 'path' in your config.")
    scene = src.load()(path, name=name, **options)
    if src.posed_by_sfm:  # the model is an intermediate of the pipeline; the store names the capture
        scene.source = source
    return scene
