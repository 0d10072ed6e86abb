"""Typed, range-checked settings: one parser for every stage's settings dataclass.

A settings dataclass documents each attribute and states its bounds in the
field's metadata (``setting(default, min=1)``, ``choices=(...)``). :func:`parse`
turns a mapping from the config into that dataclass, refusing unknown keys with
the list of known ones and wrong types or out-of-range values with the key's
path in the config (``training.rgb.steps``) and what is allowed. YAML's
``"20"`` stays a string and is refused, never converted silently.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from n3f.errors import N3FInputError

T = TypeVar("T")


def setting(default: Any = dataclasses.MISSING, *, min: float | None = None, max: float | None = None,
            min_exclusive: bool = False, choices: tuple[Any, ...] | None = None, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with bounds that :func:`parse` checks."""
    meta = {"min": min, "max": max, "min_exclusive": min_exclusive, "choices": choices}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _matches(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(tp))
    if origin is not None:
        tp = origin
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:  # an integer is a fine float (lr: 1)
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp in (list, tuple):
        return isinstance(value, (list, tuple))
    if tp is dict:
        return isinstance(value, Mapping)
    return isinstance(value, tp)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return _type_name(origin or tp)


def check_value(where: str, value: Any, tp: Any, meta: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`N3FInputError` naming ``where`` if ``value`` is not a ``tp`` within ``meta``'s bounds."""
    if not _matches(value, tp):
        raise N3FInputError(f"{where}: {value!r} is not a valid value; expected {_describe(tp)}.")
    meta = meta or {}
    if value is None or isinstance(value, bool):
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise N3FInputError(f"{where}: {value!r} is not one of {list(choices)}.")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise N3FInputError(f"{where}: {value!r} is not a finite number.")
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and (value < lo or (meta.get("min_exclusive") and value == lo)):
            bound = f"> {lo}" if meta.get("min_exclusive") else f">= {lo}"
            raise N3FInputError(f"{where}: {value!r} is out of range; it must be {bound}" + (f" and <= {hi}." if hi is not None else "."))
        if hi is not None and value > hi:
            raise N3FInputError(f"{where}: {value!r} is out of range; it must be <= {hi}.")


def check_known(where: str, data: Mapping[str, Any], known: set[str] | list[str]) -> None:
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise N3FInputError(f"{where}: unknown setting(s) {unknown}; known: {sorted(known)}.")


def parse(cls: type[T], data: Mapping[str, Any] | None, where: str) -> T:
    """Build the settings dataclass ``cls`` from ``data``, checking keys, types and ranges."""
    if data is not None and not isinstance(data, Mapping):
        raise N3FInputError(f"{where}: expected a mapping of setting -> value, got {type(data).__name__}.")
    data = dict(data or {})
    check_known(where, data, {f.name for f in dataclasses.fields(cls)})
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in data:
            check_value(f"{where}.{f.name}" if where else f.name, data[f.name], hints[f.name], f.metadata)
    return cls(**data)


def validate(obj: Any, where: str) -> None:
    """Check every attribute of a settings dataclass instance (after defaults are filled in)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        check_value(f"{where}.{f.name}" if where else f.name, getattr(obj, f.name), hints[f.name], f.metadata)


def load_mapping(value: str | None, where: str) -> dict[str, Any]:
    """A stage's settings as given on its command line: an inline JSON object, or a JSON/YAML file."""
    import json
    from pathlib import Path

    import yaml

    if value is None:
        return {}
    if value.lstrip().startswith("{"):
        try:
            data = json.loads(value)
        except json.JSONDecodeError as err:
            raise N3FInputError(f"{where}: not valid JSON ({err}).") from err
    else:
        path = Path(value)
        if not path.is_file():
            raise N3FInputError(f"{where}: settings file {path} not found.")
        try:
            text = path.read_text()
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise N3FInputError(f"{path}: cannot parse settings ({err}).") from err
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise N3FInputError(f"{where}: settings must be a mapping of name -> value, got {type(data).__name__}.")
    return dict(data)
