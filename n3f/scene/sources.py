"""Dispatch from a scene entry of ``config.yaml`` to the matching importer.

A scene entry is ``{name, source, path?, options?}``; ``options`` are passed
to the importer as keyword arguments, so a typo there fails with the list of
options that importer accepts instead of being silently ignored.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

from n3f.errors import N3FInputError
from n3f.scene.data import SceneData

SOURCES = ("synthetic", "llff", "transforms", "colmap", "epic", "video", "images")


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

    ``colmap_model``/``images_dir`` are the sfm stage's outputs for ``video``
    and ``images`` sources.
    """
    name, source = entry["name"], entry["source"]
    options = dict(entry.get("options") or {})
    fn = _importer(source)
    if source == "synthetic":
        return _call(fn, name, {"name": name, **options})
    if source in ("video", "images"):
        if colmap_model is None or images_dir is None:
            raise N3FInputError(f"scene '{name}': source '{source}' needs the sfm stage's model; run the pipeline.")
        options = {k: v for k, v in options.items() if k in ("max_size", "layout")}
        scene = _call(fn, name, {"model_dir": colmap_model, "images_dir": images_dir, "name": name, **options})
        scene.source = source
        return scene
    if "path" not in entry:
        raise N3FInputError(f"scene '{name}': source '{source}' needs a 'path' to the data.")
    path = Path(entry["path"])
    if not path.exists():
        raise N3FInputError(f"scene '{name}': path {path} does not exist; fix 'path' in your config.")
    if source == "colmap":
        model = path / options.pop("model", "sparse/0")
        images = path / options.pop("images", "images")
        return _call(fn, name, {"model_dir": model, "images_dir": images, "name": name, **options})
    path_arg = "path" if source == "transforms" else "root"
    return _call(fn, name, {"name": name, path_arg: path, **options})
