"""roi/geometry.fill_holes is ndimage.binary_fill_holes (face connectivity), on random masks,
masks touching the array's faces, empty and full arrays."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from RefractureRiskLib.roi.geometry import fill_holes


def test_fill_holes_is_scipys_binary_fill_holes() -> None:
    rng = np.random.default_rng(17)
    cases = [np.zeros((3, 4, 5), bool), np.ones((3, 4, 5), bool)]
    shell = np.ones((7, 8, 9), bool)
    shell[2:5, 2:6, 3:6] = False  # one enclosed hole
    cases.append(shell)
    for _ in range(300):
        shape = tuple(int(n) for n in rng.integers(1, 25, 3))
        noise = ndimage.gaussian_filter(rng.normal(size=shape), rng.uniform(0.5, 2.0))
        cases.append(noise > rng.uniform(-0.3, 0.3))
    filled_some = 0
    for mask in cases:
        got = fill_holes(mask)
        assert got.dtype == bool
        assert np.array_equal(got, ndimage.binary_fill_holes(mask))
        filled_some += int(np.count_nonzero(got) > np.count_nonzero(mask))
    assert filled_some > 10
