# Shared helpers: config validation, scene lookup, output paths.
import json
from pathlib import Path

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results"]
INTERMEDIATE = config["intermediate"]
SCENES = {entry["name"]: entry for entry in config["scenes"]}
if len(SCENES) != len(config["scenes"]):
    raise ValueError("config: scene names must be unique")


wildcard_constraints:
    scene="|".join(map(str, SCENES)) or "NO_SCENES",


def scene_entry(wildcards):
    return SCENES[wildcards.scene]


def scene_store(scene):
    return f"{RESULTS}/{scene}/scene.zarr"


def all_targets():
    return [scene_store(name) for name in SCENES]


def sfm_images(wildcards):
    """Frames that SfM sees: extracted from a video, or a user's photo folder."""
    entry = scene_entry(wildcards)
    if entry["source"] == "video":
        return f"{INTERMEDIATE}/{wildcards.scene}/frames"
    return entry["path"]


def scene_inputs(wildcards):
    entry = scene_entry(wildcards)
    if entry["source"] in ("video", "images"):
        return {
            "model": f"{INTERMEDIATE}/{wildcards.scene}/sfm",
            "images": sfm_images(wildcards),
        }
    if entry["source"] == "synthetic":
        return {}
    return {"data": entry["path"]}


def sfm_flags(wildcards):
    entry = scene_entry(wildcards)
    if entry["source"] in ("video", "images"):
        return (
            f"--colmap-model {INTERMEDIATE}/{wildcards.scene}/sfm/model "
            f"--images {sfm_images(wildcards)}"
        )
    return ""


def sfm_options(wildcards):
    """Unordered photos need exhaustive matching; video frames are matched sequentially."""
    entry = scene_entry(wildcards)
    default = {"matcher": "exhaustive" if entry["source"] == "images" else "sequential"}
    return {**default, **entry.get("sfm", {})}
