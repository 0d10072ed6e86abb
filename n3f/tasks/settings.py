"""Settings of the 3D tasks' sample selection, without torch (``n3f --help`` builds the task parsers from them).

:class:`SelectionSettings` is how :func:`n3f.tasks.selection.object_queries`
picks an object's samples, and so how each of the three 3D tasks
(``evaluate_segment3d``, ``evaluate_editing``, ``evaluate_amodal``) does: one
object of these, built once from a task command's flags
(:mod:`n3f.commands.tasks`). Its defaults are the constants of
:mod:`n3f.tasks.defaults`; task-specific settings (opacity threshold,
tolerance, frames) stay the drivers' own arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from n3f.settings import setting
from n3f.tasks.defaults import DENSITY_THRESHOLD, DESCRIPTOR, DESCRIPTORS, ENCLOSE, FEATURE_THRESHOLD, LOCALITY

AUTO = "calibrated per object on field features at the query frame's surface points"


@dataclass(frozen=True)
class SelectionSettings:
    """How an object's 3D samples are selected (the rule is in :mod:`n3f.tasks.selection`)."""

    objects: list[str] | None = None
    """Objects to query and score (None or empty: every annotated object but camera-anchored actors)."""
    feature_threshold: float | None = FEATURE_THRESHOLD
    """Cosine distance to the descriptor below which a feature matches (None: calibrated per object on its query frame)."""
    density_threshold: float = setting(DENSITY_THRESHOLD, min=0)
    """Samples at most this dense never match (their features are unsupervised); per normalised unit."""
    locality: float | None = setting(LOCALITY, min=0, min_exclusive=True)
    """Only samples within this of the query frame's object surface match (normalised; None: the paper's, features only)."""
    enclose: bool = ENCLOSE
    """Also select the dense samples inside the object's matching ones (its unseen inside; needs ``locality``)."""
    descriptor: str = setting(DESCRIPTOR, choices=DESCRIPTORS)
    """Features the query descriptor is averaged from in the query-frame mask: rendered N3F, or the teacher's."""

    def thresholds(self) -> dict[str, Any]:
        """The ``thresholds`` entries every task JSON starts with (feature distance, density)."""
        return {"feature_distance": AUTO if self.feature_threshold is None else self.feature_threshold,
                "density": self.density_threshold}
