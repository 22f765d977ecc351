"""roi/geometry.grid_ras on open index grids gives the full-grid formula's values bit for bit
(issue 13: building three full index arrays cost about half of each call)."""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.roi.geometry import grid_ras


def _full_grid(shape_kji, ijk_to_ras):
    k, j, i = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape_kji), indexing="ij")
    m = np.asarray(ijk_to_ras, np.float32)
    return tuple(m[r, 0] * i + m[r, 1] * j + m[r, 2] * k + m[r, 3] for r in range(3))


def test_coordinates_are_the_full_grid_formulas_bit_for_bit() -> None:
    rng = np.random.default_rng(21)
    for _ in range(200):
        shape = tuple(int(n) for n in rng.integers(0, 30, 3))
        mat = np.eye(4)
        mat[:3, :3] = rng.normal(size=(3, 3)) * rng.uniform(0.3, 5.0)
        mat[:3, 3] = rng.uniform(-300.0, 300.0, 3)
        for got, want in zip(grid_ras(shape, mat), _full_grid(shape, mat), strict=True):
            assert got.dtype == np.float32 and got.shape == shape
            assert got.flags.c_contiguous
            assert np.array_equal(got, want)
