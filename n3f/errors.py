"""One exception type for problems the user can fix.

The command line turns an :class:`N3FInputError` into a single readable line and
a non-zero exit, instead of a traceback, so every importer and stage raises it
with a message naming the file and the fix.
"""

from __future__ import annotations


class N3FInputError(Exception):
    """Bad input that the user can correct (missing file, NaN pose, typo...)."""
