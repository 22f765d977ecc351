"""Where the sacral alae begin along the lowest fused run (roi/ala_onset).

A synthetic detection grid (2 mm voxels) holds a straight column: four bodies 24 mm tall with
8 mm discs, then one run of 48 mm with no disc seen in it, cut in two as the labelling does.
Marrow beside the run (the alae) begins either at its top (S1 on top: the labels stand) or
halfway down after a clear stretch (L5 on top, the L5/S1 disc missed: labels move down one).
"""

from __future__ import annotations

import itertools

import numpy as np

from RefractureRiskLib.roi.ala_onset import check_fused_run, onset_depth_mm
from RefractureRiskLib.roi.detection import DetectionGrid, Segment, fit_centre_line
from RefractureRiskLib.roi.labelling import Labelling

SP = 2.0


def _column(alae_from_mm: float) -> tuple[DetectionGrid, object, list[Segment], list]:
    """Bodies top to bottom; alae beside the fused run from ``alae_from_mm`` below its top."""
    nk, nj, ni = 120, 40, 64
    marrow = np.zeros((nk, nj, ni), bool)
    ci, cj = ni // 2, nj // 2
    top_mm = (nk - 4) * SP
    spans = [(top_mm - b * 32.0 - 24.0, top_mm - b * 32.0) for b in range(4)]
    run = (spans[-1][0] - 8.0 - 48.0, spans[-1][0] - 8.0)
    for z0, z1 in [*spans, run]:
        marrow[int(z0 / SP) : int(z1 / SP), cj - 8 : cj + 8, ci - 11 : ci + 11] = True
    alae_top = run[1] - alae_from_mm
    marrow[int(run[0] / SP) : int(alae_top / SP), cj - 6 : cj + 6, :] = True
    z_max = (nk - 1) * SP
    cents = np.array([[ci * SP, cj * SP, z] for z in np.linspace(run[0], spans[0][1], 6)])
    line = fit_centre_line(cents, (0.0, z_max))
    halves = [(run[0] + 24.0, run[1]), (run[0], run[0] + 24.0)]
    segs = [Segment(z_max - b, z_max - a) for a, b in [*spans, *halves]]
    gaps = [(a.t1_mm, b.t0_mm, "disc") for a, b in itertools.pairwise(segs)]
    gaps[-1] = (segs[-2].t1_mm, segs[-1].t0_mm, "fused")
    empty = np.zeros_like(marrow)
    grid = DetectionGrid(marrow, empty, empty, np.diag([SP, SP, SP, 1.0]), empty, None)
    return grid, line, segs, gaps


def _labelled() -> Labelling:
    return Labelling(("L2", "L3", "L4", "L5", "S1", None), (1.0,) * 6, ("doubt",), True)


def test_alae_halfway_down_the_run_put_l5_on_top() -> None:
    grid, line, segs, gaps = _column(alae_from_mm=34.0)
    out = check_fused_run(_labelled(), segs, gaps, grid, line)
    assert out.names == ("L1", "L2", "L3", "L4", "L5", "S1")
    assert any("the sacral alae begin" in r for r in out.reasons)
    assert max(out.confidence) <= 0.5


def test_alae_from_the_top_of_the_run_leave_s1_on_top() -> None:
    grid, line, segs, gaps = _column(alae_from_mm=2.0)
    lab = _labelled()
    assert check_fused_run(lab, segs, gaps, grid, line) == lab


def test_a_run_with_a_disc_seen_is_not_judged() -> None:
    grid, line, segs, gaps = _column(alae_from_mm=34.0)
    gaps[-1] = (gaps[-1][0], gaps[-1][1], "disc")
    lab = _labelled()
    assert check_fused_run(lab, segs, gaps, grid, line) == lab


def test_onset_needs_a_clear_stretch_above_it() -> None:
    assert onset_depth_mm([0.0, 0.0, 0.1, 0.3, 0.5]) == 16.0  # a two-step rise is allowed
    assert onset_depth_mm([0.0, 0.3, 0.0, 0.0, 0.0, 0.6]) is None  # marrow well above it
    assert onset_depth_mm([0.0, None, 0.6]) is None  # a step not seen
    assert onset_depth_mm([0.0, 0.1, 0.2]) is None  # no alae at all
