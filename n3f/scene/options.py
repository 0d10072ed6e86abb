"""Typed option tables: what a scene source or capture stage accepts, checked before any data is read.

An :class:`Option` states a keyword's type, default, bounds and meaning;
:func:`check_options` refuses an unknown key, a string where a number belongs
or an out-of-range value, naming its config key (``scenes[fox].options.max_size``).
Nothing heavy is imported here: the Snakefile runs these checks while it is parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from n3f.errors import N3FInputError
from n3f.settings import check_value


@dataclass(frozen=True)
class Option:
    """One option: type (``nullable``: ``null`` allowed), default, bounds and meaning."""

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


def check_options(where: str, options: Any, spec: Mapping[str, Option], what: str, hint: str = "") -> dict[str, Any]:
    """Check an options mapping against ``spec`` (unknown keys, types, ranges); return it as a dict.

    ``where`` is the mapping's config key path (``scenes[fox].options``), ``what``
    names its consumer in the error (``the 'llff' importer``).
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
