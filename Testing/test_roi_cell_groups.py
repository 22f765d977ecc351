"""roi/geometry.cell_groups is np.unique's inverse and counts for small non-negative keys (issue
13: a body's height cells were grouped by sorting, in every body frame)."""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.roi.geometry import cell_groups


def test_cell_groups_are_uniques_inverse_and_counts() -> None:
    rng = np.random.default_rng(8)
    cases = [np.zeros(1, np.int64), np.array([5, 5, 5], np.int64), np.array([0, 9, 3, 9], np.int64)]
    for _ in range(300):
        n = int(rng.integers(1, 5000))
        cases.append(rng.integers(0, int(rng.integers(1, 2000)), n).astype(np.int64))
    for key in cases:
        inv, counts = cell_groups(key)
        _, want_inv, want_counts = np.unique(key, return_inverse=True, return_counts=True)
        assert inv.dtype == want_inv.dtype and counts.dtype == want_counts.dtype
        assert np.array_equal(inv, want_inv) and np.array_equal(counts, want_counts)
