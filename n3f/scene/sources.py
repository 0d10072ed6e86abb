"""Dispatch from a scene entry of ``config.yaml`` to the matching importer.

A scene entry is ``{name, source, path?, options?}``; ``options`` are passed
to the importer as keyword arguments. Every option is declared here with its
type, default and bounds (:data:`OPTIONS`, listed in ``docs/importers.md``), so
:func:`check_scene_entry` can refuse a typo, a string where a number belongs or
an out-of-range value with its config key (``scenes[fox].options.max_size``)
before any data is read, and without importing the importers (OpenCV,
pycolmap): the Snakefile calls it while it is parsed, so a dry run refuses it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from n3f.errors import N3FInputError
from n3f.scene_data import LAYOUTS, SceneData
from n3f.settings import check_value

SOURCES = ("synthetic", "llff", "transforms", "colmap", "epic", "video", "images")


@dataclass(frozen=True)
class Option:
    """One importer option: type (``nullable``: ``null`` allowed), default, bounds and meaning."""

    type: type
    default: Any
    help: str
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple[Any, ...] | None = None
    items: type | None = None  # element type of a list option

    def check(self, where: str, value: Any) -> None:
        """Raise :class:`N3FInputError` naming ``where`` unless ``value`` fits this option."""
        if value is None and self.nullable:
            return
        meta = {"min": self.min, "max": self.max, "min_exclusive": self.min_exclusive, "choices": self.choices}
        check_value(where, value, self.type, meta)
        if self.type is str and not value.strip():
            raise N3FInputError(f"{where}: an empty string is not a valid value; give a name or remove the option.")
        if self.items is not None:
            for i, item in enumerate(value):
                check_value(f"{where}[{i}]", item, self.items)


def _max_size(help_extra: str = "") -> Option:
    return Option(int, None, "longer side of the stored frames in pixels (area downscaling, intrinsics and masks "
                  f"scaled with them); null keeps the size on disk{help_extra}", nullable=True, min=8)


def _layout(default: str) -> Option:
    return Option(str, default, "camera arrangement, sets the normalisation: forward (LLFF-like), object "
                  "(walk-around), egocentric", choices=LAYOUTS)


# Options of each source, as the importer's keyword arguments (a test checks
# them against the signatures). ``video``/``images`` scenes are imported from
# the sfm stage's COLMAP model, which takes only these two.
OPTIONS: dict[str, dict[str, Option]] = {
    "llff": {
        "images": Option(str, "images", "image folder under path (images_4, images_8: LLFF's downsampled copies)"),
        "masks": Option(str, None, "folder of binary foreground masks under path, same file stems and size as the "
                        "images; imported as one object, 'foreground'", nullable=True),
        "max_size": _max_size(),
        "layout": _layout("forward"),
        "n_frames": Option(int, None, "keep this many frames, evenly spread over the capture", nullable=True, min=1),
    },
    "transforms": {
        "max_size": _max_size(),
        "layout": _layout("object"),
        "near": Option(float, None, "near depth bound of every frame (world units); default from the camera spread",
                       nullable=True, min=0, min_exclusive=True),
        "far": Option(float, None, "far depth bound of every frame (world units); default from the camera spread",
                      nullable=True, min=0, min_exclusive=True),
    },
    "colmap": {
        "model": Option(str, "sparse/0", "sparse model folder under path (cameras/images/points3D .bin or .txt, or a "
                        "sparse/ folder of numbered models: the largest is used)"),
        "images": Option(str, "images", "image folder under path that the model's image names are relative to"),
        "max_size": _max_size(),
        "layout": _layout("object"),
    },
    "epic": {
        "video": Option(str, None, "sequence folder under path (e.g. P01_01); null: path is the sequence itself",
                        nullable=True),
        "max_size": _max_size(),
        "annotations_dir": Option(str, "annotations", "folder of binary masks under the sequence, named like the "
                                  "frames; imported as one object, 'foreground'"),
    },
    "video": {"max_size": _max_size(), "layout": _layout("object")},
    "images": {"max_size": _max_size(), "layout": _layout("object")},
    "synthetic": {
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
}

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


def _entry_name(entry: Any) -> str:
    name = entry.get("name") if isinstance(entry, Mapping) else None
    return name if isinstance(name, str) and name else "?"


def check_options(where: str, options: Any, spec: Mapping[str, Option], what: str, hint: str = "") -> dict[str, Any]:
    """Check an options mapping against ``spec`` (unknown keys, types, ranges); return it as a dict.

    ``where`` is the mapping's config key path (``scenes[fox].options``).
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise N3FInputError(f"{where}: expected a mapping of option -> value, got {type(options).__name__} {options!r}.")
    unknown = sorted(set(options) - set(spec), key=str)
    if unknown:
        raise N3FInputError(
            f"{where}: option(s) {unknown} not understood by {what}; allowed: {sorted(spec)}.{hint}"
        )
    for key, value in options.items():
        spec[key].check(f"{where}.{key}", value)
    return dict(options)


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
    if source not in SOURCES:
        raise N3FInputError(f"{where}: unknown scene source '{source}'; use one of {SOURCES}.")
    if source != "synthetic":
        path = entry.get("path")
        if path is None:
            raise N3FInputError(f"{where}: source '{source}' needs a 'path' to the data.")
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise N3FInputError(f"{where}.path: {path!r} is not a valid value; expected a file or folder path.")
    hint = ""
    if source in ("video", "images"):
        hint = (" Frame extraction options go under 'frames:', structure-from-motion options under 'sfm:'."
                if source == "video" else " Structure-from-motion options go under 'sfm:'.")
    options = check_options(f"{where}.options", entry.get("options"), OPTIONS[source],
                            f"the '{source}' importer", hint)
    if source == "transforms" and options.get("near") is not None and options.get("far") is not None:
        if options["far"] <= options["near"]:
            raise N3FInputError(
                f"{where}.options.far: {options['far']!r} must be greater than near ({options['near']!r})."
            )
    if source == "synthetic" and options.get("layout") is not None:
        kind = options.get("kind", "static")
        if options["layout"] not in SYNTHETIC_LAYOUTS[kind]:
            raise N3FInputError(
                f"{where}.options.layout: {options['layout']!r} is not available for kind {kind!r}; "
                f"use one of {list(SYNTHETIC_LAYOUTS[kind])}."
            )
    if source == "video" and "frames" in entry:
        check_options(f"{where}.frames", entry["frames"], FRAME_OPTIONS, "frame extraction (n3f frames)")
        frames = entry["frames"] or {}
        if frames.get("every") is not None and frames.get("target_count") is not None:
            raise N3FInputError(f"{where}.frames: give either 'every' or 'target_count', not both.")
    if source in ("video", "images") and "sfm" in entry:
        check_options(f"{where}.sfm", entry["sfm"], SFM_OPTIONS, "structure from motion (n3f sfm)")


def _importer(source: str) -> Callable[..., SceneData]:
    if source == "synthetic":
        from n3f.synthetic import make_scene

        return make_scene
    if source == "llff":
        from n3f.io.llff import load_llff

        return load_llff
    if source == "transforms":
        from n3f.io.transforms import load_transforms

        return load_transforms
    if source in ("colmap", "video", "images"):
        # video/images scenes reach this stage as a COLMAP model made by the sfm stage
        from n3f.io.colmap import load_colmap

        return load_colmap
    if source == "epic":
        from n3f.io.epic import load_epic

        return load_epic
    raise N3FInputError(f"unknown scene source '{source}'; use one of {SOURCES}.")


def _call(fn: Callable[..., SceneData], scene_name: str, kwargs: dict[str, Any]) -> SceneData:
    params = inspect.signature(fn).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        allowed = sorted(p for p in params if p not in ("name",) and params[p].kind is not inspect.Parameter.VAR_KEYWORD)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            raise N3FInputError(
                f"scene '{scene_name}': option(s) {unknown} not understood by {fn.__module__}.{fn.__name__}; "
                f"allowed: {allowed}."
            )
    return fn(**kwargs)


def build_scene(entry: dict[str, Any], *, colmap_model: str | Path | None = None, images_dir: str | Path | None = None) -> SceneData:
    """Import the scene described by one config entry.

    The entry is checked first (:func:`check_scene_entry`), so bad options fail
    before any data is read. ``colmap_model``/``images_dir`` are the sfm
    stage's outputs for ``video`` and ``images`` sources.
    """
    check_scene_entry(entry)
    name, source = entry["name"], entry["source"]
    options = dict(entry.get("options") or {})
    fn = _importer(source)
    if source == "synthetic":
        return _call(fn, name, {"name": name, **options})
    if source in ("video", "images"):
        if colmap_model is None or images_dir is None:
            raise N3FInputError(f"scene '{name}': source '{source}' needs the sfm stage's model; run the pipeline.")
        scene = _call(fn, name, {"model_dir": colmap_model, "images_dir": images_dir, "name": name, **options})
        scene.source = source
        return scene
    path = Path(entry["path"])
    if not path.exists():
        raise N3FInputError(f"scene '{name}': path {path} does not exist; fix 'path' in your config.")
    if source == "colmap":
        model = path / options.pop("model", "sparse/0")
        images = path / options.pop("images", "images")
        return _call(fn, name, {"model_dir": model, "images_dir": images, "name": name, **options})
    path_arg = "path" if source == "transforms" else "root"
    return _call(fn, name, {"name": name, path_arg: path, **options})
