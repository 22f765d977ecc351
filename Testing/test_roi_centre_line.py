"""The centre line's point and tangent at an arc length, and a body's axes from its tangent, are
computed without per-coordinate ``np.interp`` and ``np.cross`` calls (issue 13, start-up CPU):
the results stay those calls' own, bit for bit."""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.roi.detection import axes_from_tangent, fit_centre_line


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
