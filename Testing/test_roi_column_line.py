"""The column's chain and centre line (roi/column_line.py) on a marrow mask that noise has
punched full of pinholes (low SNR): the candidates' in-plane erosion leaves no body-sized
component there, so the chain is looked for again in the closed mask."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.roi.column import candidates
from RefractureRiskLib.roi.column_line import column_line
from RefractureRiskLib.roi.detection import DetectionGrid

SP = 2.0  # mm per voxel; RAS = ijk * 2 mm (S up with k)


def _grid(hole_share: float, seed: int = 3) -> tuple[DetectionGrid, list[float]]:
    """Six bodies 24 mm tall, 40 x 30 mm in cross-section, 8 mm discs apart; ``hole_share`` of
    the marrow voxels lost to noise. Returns the grid and the bodies' centre S (mm)."""
    nk, nj, ni = 110, 40, 40
    marrow = np.zeros((nk, nj, ni), bool)
    centres = []
    for b in range(6):
        k0 = 10 + b * 16
        marrow[k0 : k0 + 12, 12:27, 10:30] = True
        centres.append((k0 + 5.5) * SP)
    rng = np.random.default_rng(seed)
    marrow &= rng.random(marrow.shape) >= hole_share
    empty = np.zeros_like(marrow)
    grid = DetectionGrid(marrow, empty, empty, np.diag([SP, SP, SP, 1.0]), empty, None)
    return grid, centres


ARRAYS = SimpleNamespace(r2s_soft_tissue_per_s=float("nan"), r2s_fat_per_s=float("nan"))


def test_a_pinholed_marrow_mask_still_gives_the_column() -> None:
    grid, centres = _grid(hole_share=0.35)
    # the erosion of the candidates opens the pinholes: no body is left as a candidate
    assert len(candidates(grid.marrow, grid.mat)) < 2
    line = column_line(ARRAYS, grid, None)  # type: ignore[arg-type]
    for z in centres:
        _t, off = line.nearest(np.array([20 * SP, 19 * SP, z]))
        assert off < 4.0  # the line runs through every body's centre


def test_a_clean_mask_is_not_closed_and_no_marrow_is_still_refused() -> None:
    grid, _ = _grid(hole_share=0.0)
    assert len(candidates(grid.marrow, grid.mat)) == 6
    column_line(ARRAYS, grid, None)  # type: ignore[arg-type]
    empty = np.zeros_like(grid.marrow)
    nothing = DetectionGrid(empty, empty, empty, grid.mat, empty, None)
    with pytest.raises(InputError, match="no vertebral column found"):
        column_line(ARRAYS, nothing, None)  # type: ignore[arg-type]
