"""roi/landmarks.side_box_shares samples both sides and all positions at once (issue 13: the
point-set-by-point-set loop was ~14 ms of a cold ``analyze``); its shares are those of the loop,
exactly, on oblique grids, curved lines, partial coverage and patchy marrow."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from RefractureRiskLib.roi.detection import CentreLine, Segment, axes_from_tangent
from RefractureRiskLib.roi.landmarks import box_samples, side_box_shares


def _loop_shares(grid, line, seg, lateral_mm, depth_mm, along_mm, depth_step_mm, min_covered):
    """The shares as computed before (issue 13): one side, one position at a time."""
    inv = np.linalg.inv(grid.mat)
    shape = np.array(grid.marrow.shape)
    ts, uu, vv = box_samples(seg, lateral_mm, depth_mm, along_mm, depth_step_mm)
    shares = []
    for side in (-1.0, 1.0):
        hits = total = inside = 0
        for t in ts:
            p, tang = line.at(float(t))
            right, ant, _ = axes_from_tangent(tang)
            pts = p + side * uu * right + vv * ant
            ijk = np.rint((np.c_[pts, np.ones(len(pts))] @ inv.T)[:, :3]).astype(int)
            kji = ijk[:, ::-1]
            ok = np.all((kji >= 0) & (kji < shape), axis=1)
            total += len(pts)
            inside += int(ok.sum())
            if ok.any():
                k, j, i = kji[ok].T
                hits += int(grid.marrow[k, j, i].sum())
        if total == 0 or inside < min_covered * total:
            return None
        shares.append(hits / inside)
    return shares[0], shares[1]


def _grid(rng: np.random.Generator) -> SimpleNamespace:
    shape = (int(rng.integers(8, 30)), int(rng.integers(40, 90)), int(rng.integers(40, 90)))
    angle = rng.uniform(-0.4, 0.4)
    rot = np.array(
        [[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0, 0, 1]]
    )
    mat = np.eye(4)
    mat[:3, :3] = rot @ np.diag(rng.uniform(0.7, 4.0, 3))
    mat[:3, 3] = rng.uniform(-60.0, -20.0, 3)
    return SimpleNamespace(mat=mat, marrow=rng.random(shape) < rng.uniform(0.05, 0.9))


def _line(rng: np.random.Generator, grid: SimpleNamespace) -> CentreLine:
    n = 40
    t = np.linspace(0.0, 160.0, n)
    centre = grid.mat[:3, :3] @ (np.array(grid.marrow.shape[::-1]) / 2.0) + grid.mat[:3, 3]
    bend = rng.uniform(-15.0, 15.0, 2)
    pts = np.stack(
        [
            centre[0] + bend[0] * np.sin(t / 60.0),
            centre[1] + bend[1] * np.cos(t / 45.0),
            centre[2] + 70.0 - t,
        ],
        axis=1,
    )
    tang = np.gradient(pts, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    return CentreLine(points_ras=pts, tangents=tang, t_mm=t)


@pytest.mark.parametrize("seed", range(12))
def test_the_shares_are_the_loops_exactly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    grid = _grid(rng)
    line = _line(rng, grid)
    answered = 0
    for t0 in rng.uniform(5.0, 140.0, 6):
        seg = Segment(float(t0), float(t0 + rng.uniform(0.0, 30.0)))
        for args in (
            ((30.0, 50.0), (0.0, 12.0), (2.0, -1.0), 2.5, 0.6),  # the sacral alae
            ((5.0, 25.0), (-20.0, -5.0), (0.0, 0.0), 3.0, 0.3),
            ((8.0, 9.0), (0.0, 0.0), (3.0, -3.0), 1.0, 0.05),  # one row, no length
        ):
            want = _loop_shares(grid, line, seg, *args)
            got = side_box_shares(grid, line, seg, *args)
            assert got == want
            answered += got is not None
    assert answered > 0
