"""Detection shortcuts taken for start-up CPU (issue 13) give the results of the plain way, bit
for bit: the centre line's point and tangent at an arc length without per-coordinate
``np.interp`` calls, a body's axes without ``np.cross``, the tube profile's coordinates on an
index box around the line instead of the whole grid, and the detection grid's block means."""

from __future__ import annotations

import itertools

import numpy as np

from RefractureRiskLib.roi.detection import (
    _block_mean,
    axes_from_tangent,
    fit_centre_line,
)
from RefractureRiskLib.roi.geometry import grid_ras
from RefractureRiskLib.roi.line_points import box_ras, index_box


def _interp_at(line, t):
    p = np.array([np.interp(t, line.t_mm, line.points_ras[:, c]) for c in range(3)])
    d = np.array([np.interp(t, line.t_mm, line.tangents[:, c]) for c in range(3)])
    return p, d / np.linalg.norm(d)


def test_at_is_np_interp_bit_for_bit():
    rng = np.random.default_rng(7)
    for _ in range(40):
        k = int(rng.integers(1, 8))
        centroids = np.c_[
            rng.normal(0, 10, k), rng.normal(0, 10, k), np.sort(rng.uniform(-150, 150, k))
        ]
        line = fit_centre_line(centroids, (-200.0, 200.0), step_mm=float(rng.choice([0.37, 0.5])))
        # between samples, on samples, at and beyond both ends
        ts = [*rng.uniform(-5.0, line.t_mm[-1] + 5.0, 60), *line.t_mm[::25], 0.0, line.t_mm[-1]]
        for t in ts:
            for value in (float(t), np.float64(t)):
                p, d = line.at(value)
                p0, d0 = _interp_at(line, value)
                assert p.tobytes() == p0.tobytes()
                assert d.tobytes() == d0.tobytes()


def test_axes_from_tangent_is_np_cross_bit_for_bit():
    rng = np.random.default_rng(8)
    for _ in range(2000):
        tang = rng.normal(size=3) * rng.choice([1e-3, 1.0, 1e3])
        right, ant, sup = axes_from_tangent(tang)
        assert ant.tobytes() == np.cross(sup, right).tobytes()


def _oblique_matrix(rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    mat = np.eye(4)
    mat[:3, :3] = q * np.array([2.5, 2.5, 3.0])
    mat[:3, 3] = rng.normal(0, 50, 3)
    return mat


def test_the_profile_grid_is_the_whole_grid_cut_to_the_box():
    """profile_along computes RAS only in an index box around the line: the box holds every
    voxel centred in the RAS box, and its coordinates are grid_ras's, bit for bit."""
    rng = np.random.default_rng(9)
    shape = (20, 40, 30)
    for _ in range(30):
        mat = _oblique_matrix(rng)
        x, y, z = grid_ras(shape, mat)
        centre = (mat @ np.r_[rng.uniform(-10, 50, 3), 1.0])[:3]
        lo, hi = centre - rng.uniform(5, 40, 3), centre + rng.uniform(5, 40, 3)
        box = index_box(mat, lo, hi, shape)
        for full, cut in zip((x, y, z), box_ras(box, mat), strict=True):
            assert full[box].tobytes() == cut.tobytes()
        inside = (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1])
        inside &= (z >= lo[2]) & (z <= hi[2])
        outside = np.ones(shape, bool)
        outside[box] = False
        assert not (inside & outside).any()


def test_block_mean_sums_in_the_same_order():
    rng = np.random.default_rng(10)
    for dtype in (np.float32, np.float64, np.int16):
        arr = (rng.normal(50, 30, (9, 21, 17)) * 7).astype(dtype)
        for f in ((1, 1, 1), (1, 2, 2), (2, 2, 2), (3, 1, 2)):
            nk, nj, ni = (s // ff * ff for s, ff in zip(arr.shape, f, strict=True))
            out = None
            for a, b, c in itertools.product(*(range(n) for n in f)):
                part = np.asarray(arr[a : nk : f[0], b : nj : f[1], c : ni : f[2]], np.float32)
                out = part.copy() if out is None else out + part
            assert (out / float(np.prod(f))).tobytes() == _block_mean(arr, f).tobytes()
