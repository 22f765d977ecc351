"""roi.line_points.nearest_line_points gives cKDTree's answer exactly (issue 13).

The tube profile of the automatic ROIs needs, for each voxel near the centre line, the nearest
line point within the tube radius. numpy does it (scipy.spatial costs about 0.1 s to import); the
answer must be the k-d tree's, bit for bit, or the bodies found along the line could move.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

import RefractureRiskLib.roi.line_points as line_points
from RefractureRiskLib.roi.detection import TUBE_RADIUS_MM, fit_centre_line
from RefractureRiskLib.roi.line_points import nearest_line_points


def _kdtree(line: np.ndarray, pts: np.ndarray, radius: float):
    dist, idx = cKDTree(line).query(pts, distance_upper_bound=radius)
    return np.isfinite(dist), idx


def _grid(rng, spacing: float, dz: float, shift: float) -> np.ndarray:
    g = np.arange(-16.0, 16.0, spacing) + shift
    x, y, z = np.meshgrid(g, g, np.arange(-70.0, 70.0, dz), indexing="ij")
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)


@pytest.mark.parametrize("seed", range(12))
def test_same_answer_as_the_kdtree_on_centre_lines(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 7))
    centroids = np.c_[rng.normal(0, 8, n), rng.normal(0, 8, n), np.sort(rng.uniform(-60, 60, n))]
    if seed % 3 == 0:  # round numbers: exact ties between two line points are possible
        centroids = np.round(centroids)
    line = fit_centre_line(centroids, (-65.0, 65.0)).points_ras
    pts = _grid(
        rng,
        float(rng.choice([0.75, 1.25, 2.0])),
        float(rng.choice([0.5, 1.0, 3.3])),
        float(rng.choice([0.0, 0.37])),
    )
    inside, idx = nearest_line_points(line, pts, TUBE_RADIUS_MM)
    ref_inside, ref_idx = _kdtree(line, pts, TUBE_RADIUS_MM)
    assert 0 < inside.sum() < len(pts)
    np.testing.assert_array_equal(inside, ref_inside)
    np.testing.assert_array_equal(idx[inside], ref_idx[ref_inside])


def test_a_tie_goes_to_the_kdtree(monkeypatch) -> None:
    """A voxel half-way between two points of a straight line: the k-d tree's pick is kept."""
    line = fit_centre_line(np.array([[1.0, 2.0, 0.0]]), (-20.0, 20.0)).points_ras  # x, y fixed
    pts = np.array([[1.0, 2.0, 0.25], [1.0, 2.0, 0.1], [30.0, 2.0, 0.0]])
    calls = []
    kdtree = line_points._nearest_by_kdtree
    monkeypatch.setattr(line_points, "_nearest_by_kdtree", lambda *a: calls.append(1) or kdtree(*a))
    inside, idx = nearest_line_points(line, pts, TUBE_RADIUS_MM)
    assert calls
    ref_inside, ref_idx = _kdtree(line, pts, TUBE_RADIUS_MM)
    np.testing.assert_array_equal(inside, ref_inside)
    np.testing.assert_array_equal(idx, ref_idx)


def test_the_radius_is_strict_and_unmatched_points_get_the_kdtrees_index() -> None:
    line = np.array([[0.0, 0.0, 10.0], [0.0, 0.0, 0.0], [0.0, 0.0, -10.0]])
    pts = np.array([[8.0, 0.0, 0.0], [7.999, 0.0, 0.0], [0.0, 0.0, 18.0], [50.0, 0.0, 0.0]])
    inside, idx = nearest_line_points(line, pts, 8.0)
    ref_inside, ref_idx = _kdtree(line, pts, 8.0)
    assert inside.tolist() == [False, True, False, False]
    np.testing.assert_array_equal(inside, ref_inside)
    np.testing.assert_array_equal(idx, ref_idx)  # 3 (= len(line)) where none is within


def test_no_points() -> None:
    line = fit_centre_line(np.array([[0.0, 0.0, 0.0]]), (-5.0, 5.0)).points_ras
    inside, idx = nearest_line_points(line, np.zeros((0, 3)), TUBE_RADIUS_MM)
    assert inside.shape == idx.shape == (0,)
