"""Typed settings of one ``teachers:`` entry of config.yaml, checked without importing torch.

Why here and light: the workflow checks every entry when the Snakefile is
parsed, so a typo (unknown teacher, ``batch_size: "8"``) or an option the
teacher would silently ignore (``checkpoint:`` for the weight-free ``dsift``)
fails the dry run, not a job hours later after RGB training. ``n3f features``
applies the same checks to its flags. Only the registry is consulted, so this
module (like :mod:`n3f.teachers.registry`) never imports torch.

Which options each kind of teacher uses (and so which are refused):

* ViTs: ``checkpoint`` and ``layer`` are used; ``patch_size`` is refused, the
  patch of a pretrained ViT is fixed (:func:`n3f.teachers.load_teacher`).
* ``dsift``: ``patch_size`` is its grid stride; ``checkpoint`` and ``layer``
  are refused (it reads no weights and has no layers).
* all: ``input_size``, ``components``, ``batch_size``, ``fit_frames``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from n3f.errors import N3FInputError
from n3f.settings import parse, setting
from n3f.teachers.registry import DEFAULT_INPUT_SIZE, TEACHERS, TeacherSpec


@dataclass(frozen=True)
class TeacherSettings:
    """One entry of the ``teachers:`` list (``n3f features`` flags in brackets).

    ``None`` means "not given": :meth:`extract_kwargs` then uses the teacher's
    own default, and an option the teacher does not use may stay ``None`` only.
    """

    name: str = setting()
    """Registry name (:func:`n3f.teachers.known_teachers`, docs/teachers.md) [``--teacher``]."""

    checkpoint: str | None = None
    """Local weights file of a ViT (official release, timm or Hugging Face layout); without it
    the Hugging Face/torch hub caches, then a download are tried. Refused for ``dsift`` [``--checkpoint``]."""

    input_size: int | list[int] = DEFAULT_INPUT_SIZE
    """Teacher input: the longer side, or ``[H, W]``; rounded to the patch size, each >= the
    patch size [``--input-size``]."""

    layer: int | None = None
    """ViT block whose patch tokens are used, negative counting from the end (``None``: the
    last, -1). Refused for ``dsift`` [``--layer``]."""

    components: int = setting(64, min=1)
    """PCA channels kept per patch, at most the teacher's feature dimension [``--components``]."""

    batch_size: int = setting(8, min=1)
    """Frames per teacher forward pass [``--batch-size``]."""

    fit_frames: int = setting(256, min=1)
    """Frames, spread evenly over the video, on which the scene's PCA is fitted [``--fit-frames``]."""

    patch_size: int | None = setting(None, min=2)
    """Grid stride of ``dsift`` in pixels (``None``: 8). Refused for ViTs, whose patch is fixed
    [``--patch-size``]."""

    @property
    def spec(self) -> TeacherSpec:
        return TEACHERS[self.name]

    def extract_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`n3f.features.extract.extract_feature_store` (after ``teacher``)."""
        return {
            "checkpoint": self.checkpoint,
            "input_size": self.input_size,
            "layer": -1 if self.layer is None else self.layer,
            "n_components": self.components,
            "batch_size": self.batch_size,
            "fit_frames": self.fit_frames,
            "patch_size": self.patch_size,
        }


KNOWN_KEYS = tuple(f.name for f in dataclasses.fields(TeacherSettings))


def _check_name(entry: Mapping[str, Any], where: str) -> TeacherSpec:
    if "name" not in entry:
        raise N3FInputError(
            f"{where}.name: missing; every 'teachers:' entry needs a name, one of {', '.join(TEACHERS)}."
        )
    name = entry["name"]
    if not isinstance(name, str) or name not in TEACHERS:
        raise N3FInputError(
            f"{where}.name: unknown teacher {name!r}; known teachers: {', '.join(TEACHERS)} (docs/teachers.md)."
        )
    return TEACHERS[name]


def _check_input_size(value: int | list[int], patch: int, where: str) -> None:
    sizes = [value] if isinstance(value, int) else list(value)
    if isinstance(value, (list, tuple)) and len(sizes) != 2:
        raise N3FInputError(f"{where}.input_size: {value!r} must be one int (longer side) or [H, W].")
    for v in sizes:
        if not isinstance(v, int) or isinstance(v, bool):
            raise N3FInputError(f"{where}.input_size: {value!r} must hold integers, got {v!r}.")
        if v < patch:
            raise N3FInputError(
                f"{where}.input_size: {value!r} is smaller than the teacher's patch size {patch}; "
                f"use at least {patch} (the default is {DEFAULT_INPUT_SIZE})."
            )


def _check_options(s: TeacherSettings, where: str) -> None:
    """Refuse what this kind of teacher would ignore, and values outside its architecture."""
    spec = s.spec
    if spec.kind == "dsift":
        if s.checkpoint is not None:
            raise N3FInputError(
                f"{where}.checkpoint: teacher '{s.name}' is handcrafted and reads no weights, so "
                f"{s.checkpoint!r} would be ignored; remove 'checkpoint:' (--checkpoint)."
            )
        if s.layer is not None:
            raise N3FInputError(
                f"{where}.layer: teacher '{s.name}' is not a ViT and has no layers, so layer {s.layer} "
                "would be ignored; remove 'layer:' (--layer)."
            )
    else:
        if s.patch_size is not None:
            raise N3FInputError(
                f"{where}.patch_size: teacher '{s.name}' has a fixed patch size of {spec.patch_size}, so "
                f"{s.patch_size} would be ignored; patch_size only applies to 'dsift', remove it (--patch-size)."
            )
        if s.checkpoint is not None and not s.checkpoint.strip():
            raise N3FInputError(f"{where}.checkpoint: empty file name; give a weights file or remove 'checkpoint:'.")
        if s.layer is not None and spec.depth is not None and not -spec.depth <= s.layer < spec.depth:
            raise N3FInputError(
                f"{where}.layer: {s.layer} is out of range for the {spec.depth}-block '{s.name}'; "
                f"use -{spec.depth}..{spec.depth - 1} (-1: last block)."
            )
    if s.components > spec.dim:
        raise N3FInputError(
            f"{where}.components: {s.components} exceeds the {spec.dim} channels of teacher '{s.name}'; "
            f"choose 1..{spec.dim}."
        )
    _check_input_size(s.input_size, s.patch_size or spec.patch_size, where)


def parse_teacher_entry(entry: Mapping[str, Any], where: str) -> TeacherSettings:
    """The :class:`TeacherSettings` of one entry, or an :class:`N3FInputError` naming the key.

    ``where`` is the entry's path in the config, e.g. ``teachers[0]``; errors
    name ``teachers[0].batch_size`` and what is allowed.
    """
    if not isinstance(entry, Mapping):
        raise N3FInputError(
            f"{where}: expected a mapping such as {{name: {next(iter(TEACHERS))}}}, got {type(entry).__name__} {entry!r}."
        )
    _check_name(entry, where)
    settings = parse(TeacherSettings, entry, where)
    _check_options(settings, where)
    return settings


def check_teacher_entry(entry: dict, where: str) -> None:
    """Refuse a bad ``teachers:`` entry at config parse time (see :func:`parse_teacher_entry`).

    Refused: an unknown name (the known ones are listed), unknown keys, wrong
    types or ranges, and options the teacher does not use (``checkpoint``/
    ``layer`` for ``dsift``, ``patch_size`` for ViTs). Does no file I/O.
    """
    parse_teacher_entry(entry, where)
