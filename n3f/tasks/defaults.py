"""Default thresholds of the task commands, in a module without torch so that ``n3f --help`` stays light.

The selection defaults feed :class:`n3f.tasks.settings.SelectionSettings`.

Where each comes from (fixed in advance, or tuned on which scene) is in
``bench/NOTES.md`` ("Task selection defaults").
"""

from __future__ import annotations

# The 3D tasks, each run as ``n3f <command>`` on scenes with analytic ground truth
# (the config's ``tasks:`` picks among them; tests/test_registries.py holds the schema equal).
TASKS: dict[str, str] = {"segment3d": "eval-segment3d", "edit": "eval-edit", "amodal": "eval-amodal"}

OPACITY_THRESHOLD = 0.5  # a pixel is back-projected / counted as covered at this rendered opacity
FEATURE_THRESHOLD = None  # None: calibrated per object (n3f.tasks.selection.calibrate_on_query)
DENSITY_THRESHOLD = 0.1  # per normalised unit: <1% opacity over 0.1 units; sparser samples never match
LOCALITY = 0.15  # normalised units: region margin around the query's surface points (None: features only)
ENCLOSE = True  # also select the dense cells the matching samples enclose (n3f.tasks.volume); needs LOCALITY
DESCRIPTORS = ("n3f", "teacher")  # where a query descriptor's features come from (rendered N3F / teacher)
DESCRIPTOR = "n3f"
TOLERANCE = 0.03  # normalised units: 3D segmentation distance tolerance (~1.5 pixels at 64 x 48)

# Retrieval and one-view segmentation (n3f.tasks.retrieval): patch queries, as in the paper's Fig. 7, fixed
# in advance (not tuned): a 3 x 3 block of teacher patches, three per object and query frame
PATCH_CELLS = 3
PATCHES = 3
