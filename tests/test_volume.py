"""The enclosed volume of an object (n3f.tasks.volume): which cells its matching samples surround.

Known answers on hand-made grids: a closed shell whose resting face is missing
(the face a real object stands on is never seen) sitting on a dense floor, and
the per-sample rule that takes an enclosed cell's dense samples whatever their
features say.
"""

from __future__ import annotations

import numpy as np
import torch

from n3f.tasks.selection import Region, feature_matches
from n3f.tasks.volume import MIN_SIDES, EnclosedVolume, enclosing_sides


def shell_on_floor() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matched, dense, interior) on a 12^3 grid: a box shell x, y in 3..8, z in 4..9 without its bottom face,
    on a floor slab z 0..3; the shell's inside (x, y 4..7, z 4..8) is dense, the floor dense, nothing else."""
    matched = np.zeros((12, 12, 12), bool)
    matched[3:9, 3:9, 4:10] = True
    matched[4:8, 4:8, 4:9] = False  # hollow, open at the bottom (z = 4 has no face)
    interior = np.zeros_like(matched)
    interior[4:8, 4:8, 4:9] = True
    dense = matched | interior
    dense[:, :, 0:4] = True
    return matched, dense, interior


def test_a_shell_open_at_its_resting_face_encloses_its_inside_and_not_the_floor():
    matched, dense, interior = shell_on_floor()
    sides = enclosing_sides(matched)
    assert (sides[interior] == 5).all()  # every side but the missing bottom
    enclosed = dense & (sides >= MIN_SIDES)
    assert enclosed[interior].all()
    assert not enclosed[:, :, :4].any()  # the floor, under the object and around it, is never enclosed
    assert (sides[:, :, :4] <= 1).all()  # at most from above
    outside = np.ones_like(matched)
    outside[3:9, 3:9, 4:10] = False
    assert (sides[outside] <= 2).all() and not (dense & outside & (sides >= MIN_SIDES)).any()
    # a closed shell: its inside is enclosed from all six sides
    closed = matched.copy()
    closed[3:9, 3:9, 4] = True
    assert (enclosing_sides(closed)[4:8, 4:8, 5:9] == 6).all()


def test_enclosed_cells_select_their_dense_samples_whatever_their_features():
    matched, dense, interior = shell_on_floor()
    cell = 0.1
    volume = EnclosedVolume(np.zeros(3, np.float32), cell, dense & (enclosing_sides(matched) >= MIN_SIDES))
    centre = lambda ijk: torch.tensor([[(i + 0.5) * cell for i in ijk]], dtype=torch.float32)  # noqa: E731
    inside, floor, outside = centre((5, 5, 6)), centre((5, 5, 2)), centre((1, 5, 6))
    world = torch.cat([inside, inside, floor, outside, centre((20, 5, 6))])
    desc = torch.tensor([1.0, 0.0])
    out = {"features": torch.tensor([[0.0, 1.0]] * 5),  # no sample's feature matches
           "density": torch.tensor([5.0, 0.01, 5.0, 5.0, 5.0])}
    assert volume.contains(world).tolist() == [True, True, False, False, False]  # the last lies beyond the grid
    sel = feature_matches(world, out, desc, 0.2, density_threshold=0.1, volume=volume)
    assert sel.tolist() == [True, False, False, False, False]  # dense and enclosed only; empty space never
    assert not feature_matches(world, out, desc, 0.2, density_threshold=0.1).any()  # without the volume: nothing
    # a region still bounds the selection: an enclosed cell outside it is left alone
    far = Region.around(np.array([[5.0, 5.0, 5.0]], np.float32), 0.15)
    assert not feature_matches(world, out, desc, 0.2, 0.1, region=far, volume=volume).any()
