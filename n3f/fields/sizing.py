"""The ``grid`` field's capacity sized from the scene, and the ``quality`` presets.

Why: one set of plane resolutions for every scene left real captures blurry. A
456 px photo of an object 0.8 normalised units away resolves about 0.0009 units
per pixel, while the default finest level (256 cells over the whole cube, half
of it the contracted background) had cells of 0.016 units: each cell covered
~18 pixels of the object. Here the finest level of the geometry planes is set
so that a cell covers about one pixel at the typical camera distance (capped
per quality level, because on a CPU every plane cell costs optimiser time at
every step). Separate background planes for the contracted shell of unbounded
scenes are off by default (measured, they did not pay: :data:`BACKGROUND_RESOLUTIONS`); a
config that asks for them (``bg_resolutions``) gets the split and the geometry planes sized for it.

Only settings the user did not give are filled in; saved models keep the
values they were trained with (``model.pt``'s ``field_config``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

QUALITIES = ("fast", "default", "best")
"""The ``quality`` presets of the training settings."""

FINEST_CAP = {"fast": 256, "default": 512, "best": 512}
"""Finest geometry plane level allowed per quality. A level of R cells costs 3 x channels x R^2
parameters, all of which Adam updates and grid_sample's backward zeroes at every step. 512 at
``default``: on fox (wants 1747 cells) held out 26.95 -> 28.19 dB and on toy_static (wants 554)
27.97 -> 29.78 dB, same steps, for 18-22% more time a step (2026-12-02, bench/NOTES.md "Session
12"); ``bench/results/sharpness.md`` shows why: 256 cells put 6.8 pixels of fox in a cell, whose
photos seen through such cells score 26.7 dB. 1024 made a goldcape step 2.5x slower and, at 4000
steps, gave no better held-out PSNR (16.6 vs 16.8 dB, bench/NOTES.md "Real captures"); on fox,
``best`` with 1024 cells and background planes held out 26.8 dB at 11138 RGB steps against
``default``'s 28.5 (session 16), and trailed ``default``'s planes by 0.8 dB on training batches at
4000 of 30000 steps (session 17), so ``best`` keeps 512 and buys its gain with rays
(n3f/train/config.py GRID_PIXEL_SHARE); ``fast`` keeps 256. Users with a GPU can still set
``geo_resolutions`` themselves."""

COARSEST = 32
BACKGROUND_RESOLUTIONS = [32, 64, 128, 256]
"""Background planes of unbounded scenes, when asked for (the contracted shell holds everything
beyond the linear region at coarsening resolution anyway). Off by default at every quality: on
goldcape they changed training PSNR by +0.05 dB over 8000 steps (noise) for 0.9M more parameters
(bench/NOTES.md "Real captures"); on fox, with the geometry planes' 512 cells over the central box
only, they held out 27.47 dB at 11138 RGB steps against 28.50 without (bench/NOTES.md "Session 17")."""


def pixel_footprint(c2w: np.ndarray, intrinsics: np.ndarray, centre: np.ndarray) -> float:
    """Median over frames of the normalised-world size of one pixel at the scene centre."""
    dist = np.linalg.norm(np.asarray(c2w)[:, :3, 3] - np.asarray(centre, float)[None], axis=1)
    focal = np.asarray(intrinsics)[:, 0, 0]
    return float(np.median(dist / np.maximum(focal, 1e-9)))


def finest_level(wanted: float, quality: str) -> int:
    """Power of two nearest to ``wanted`` cells, between 256 (the old fixed finest level) and the cap."""
    r = 2 ** int(round(math.log2(max(wanted, 1.0))))
    return int(min(FINEST_CAP[quality], max(256, r)))


def levels_up_to(finest: int) -> list[int]:
    """Resolutions doubling from :data:`COARSEST` to ``finest``."""
    out, r = [], COARSEST
    while r < finest:
        out.append(r)
        r *= 2
    return out + [finest]


def grid_defaults(space: Mapping[str, Any], c2w: np.ndarray, intrinsics: np.ndarray, image_size: tuple[int, int],
                  quality: str = "default", background: bool = False) -> dict[str, Any]:
    """Scene-sized defaults of the grid field's geometry planes, for a scene space (``SceneSpace.to_dict()``).

    * contract spaces: the linear region (radius ``radius``) fills the central box of
      half-width ``inner``; the finest level puts one cell per pixel footprint there.
      With ``background`` (asked for by the config), unbounded ones also get background
      planes for the shell, and the geometry planes span the central box only.
    * ndc (forward-facing): x and y are image coordinates of the reference camera, so
      one cell per pixel of the wider image side.
    """
    if space["kind"] == "ndc":
        return {"geo_resolutions": levels_up_to(finest_level(float(max(image_size)), quality))}
    radius = float(np.max(space["radius"]))
    footprint = pixel_footprint(c2w, intrinsics, np.asarray(space["centre"], float))
    wanted = 2.0 * radius / max(footprint, 1e-9)
    if space.get("unbounded") and background:  # the geometry planes span the central box only
        out: dict[str, Any] = {"bg_resolutions": list(BACKGROUND_RESOLUTIONS), "bg_split": float(space["inner"])}
    else:  # they span the whole cube, of which the linear region fills the central ``inner``
        out, wanted = {}, wanted / float(space["inner"])
    out["geo_resolutions"] = levels_up_to(finest_level(wanted, quality))
    return out


PHOTO_SOURCES = ("llff", "colmap", "transforms", "images", "idr")
"""Sources that are photo collections: each shot has its own exposure and white balance."""

APPEARANCE_DIM = 16
"""Width of the per-frame appearance code given to photo collections (NeRF-W used 48 for
internet photos; these are one camera's shots, so less: measured on goldcape, bench/NOTES.md)."""


def appearance_default(source: str | None) -> int:
    """Per-frame appearance code width for a scene's source: on for photo collections."""
    return APPEARANCE_DIM if source in PHOTO_SOURCES else 0


SFM_SOURCES = (*PHOTO_SOURCES, "video")
"""Sources whose near/far bounds come from structure-from-motion points (or a tool that used them)."""


def unbounded_default(layout: str, source: str | None) -> bool:
    """Sample rays to the far end of the contracted space (``SceneSpace.unbounded``): for 360-degree
    captures whose far bounds come from SfM points, which rarely reach the room behind the object
    (goldcape +1.0 dB held out). Not for scenes with exact bounds (synthetic: -0.5 dB on toy_static)."""
    return layout == "object" and source in SFM_SOURCES


BOUNDED_DISTORTION = 0.001
"""``distortion_lambda`` of the ``grid`` field in a bounded ``contract`` space. Tuned on three synthetic
static scenes (toy_static and seeds 2, 3 of the same generator; 512-cell planes, both stages; bench/NOTES.md
"Session 15"), means off -> 0.001 -> 0.01: 3D segmentation F1 0.781 -> 0.856 -> 0.889, amodal IoU
0.586 -> 0.640 -> 0.703, held out 29.71 -> 29.54 -> 29.01 dB, object-removal masked PSNR
16.45 -> 14.31 -> 12.00 dB. 0.001 keeps the held-out PSNR and most of the segmentation gain at half the
removal cost."""


def distortion_default(field: str, space: Mapping[str, Any]) -> float:
    """The distortion loss's weight when the user sets none (``TrainConfig.distortion_lambda``).

    Why: fine planes fitted to colour alone paint texture at a wrong depth (the shape-radiance
    ambiguity), which the 3D segment and amodal products inherit; the loss keeps each ray's
    weight compact (object removal loses by it: see :data:`BOUNDED_DISTORTION`). Only where
    measured to help: the ``grid`` field in a bounded ``contract`` space (scenes with exact bounds).
    Not for unbounded spaces, whose rays run to :data:`n3f.render.space.UNBOUNDED_FAR` radii: there
    0.01 pulled goldcape's weight into few samples, wrongly (-4.7 dB held out); not for ``ndc`` or
    the other fields, where it is unmeasured."""
    bounded = space.get("kind", "contract") == "contract" and not space.get("unbounded", False)
    return BOUNDED_DISTORTION if field == "grid" and bounded else 0.0
