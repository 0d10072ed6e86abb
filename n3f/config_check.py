"""Checks of a whole pipeline config that the JSON schema cannot express.

The Snakefile calls :func:`check_config` while it is parsed, so a dry run
already refuses an unknown teacher, an option a teacher or importer does not
use, or a training setting of the wrong type or range, each named by its path
in the config (``training.grid.rgb.steps``). The stages run the same checks at
their start. Nothing heavy is imported here (no torch): ``snakemake -n`` stays fast.
"""

from __future__ import annotations

from typing import Any

from n3f.errors import N3FInputError
from n3f.scene.sources import check_scene_entry
from n3f.tasks.query_spec import parse_queries
from n3f.teachers.settings import check_teacher_entry
from n3f.train.config import FIELD_DEFAULTS, TrainConfig

STAGES = ("rgb", "distill")


def _check_training(block: Any, where: str, *, per_field: bool) -> None:
    """A ``training:`` mapping: per stage (and, at the top level, per field) settings."""
    if block is None:
        return
    if not isinstance(block, dict):
        raise N3FInputError(f"{where}: expected a mapping of stage -> settings.")
    allowed = set(STAGES) | (set(FIELD_DEFAULTS) if per_field else set())
    unknown = sorted(set(block) - allowed)
    if unknown:
        raise N3FInputError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}.")
    for key, value in block.items():
        if key in STAGES:
            TrainConfig.from_dict(value or {}, f"{where}.{key}")
        else:
            _check_training(value, f"{where}.{key}", per_field=False)


def check_config(config: dict[str, Any]) -> None:
    """Raise :class:`N3FInputError` naming the config key of the first problem found."""
    for i, entry in enumerate(config.get("scenes") or []):
        where = f"scenes[{entry.get('name', i)}]"
        check_scene_entry(entry)
        parse_queries(f"{where}.queries", entry.get("queries"))
        _check_training(entry.get("training"), f"{where}.training", per_field=False)
    for i, entry in enumerate(config.get("teachers") or []):
        check_teacher_entry(entry, f"teachers[{i}]")
    _check_training(config.get("training"), "training", per_field=True)
    from n3f.fusion.fuse import FuseConfig
    from n3f.settings import parse

    fusion = config.get("fusion")
    if fusion is not None and not isinstance(fusion, dict):
        raise N3FInputError("fusion: expected a mapping of settings (n3f.fusion.fuse.FuseConfig), e.g. {stride: 8}.")
    parse(FuseConfig, fusion or {}, "fusion")
