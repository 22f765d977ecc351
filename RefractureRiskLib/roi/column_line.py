"""Automatic vertebral ROIs, steps 2-3: the column's chain of body candidates and the centre
line through it (:mod:`RefractureRiskLib.roi.column` finds and links the candidates; this
module chooses the marrow they are found in and forces an anchored body into the chain)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.roi.body import StudyArrays
from RefractureRiskLib.roi.column import (
    HIDDEN_SHARE,
    Candidate,
    bone_reference_r2s,
    candidates,
    find_column,
    hidden_share,
)
from RefractureRiskLib.roi.detection import CentreLine, DetectionGrid, fit_centre_line

#: A body candidate whose centre lies this close to the centre of the body around an anchor
#: click is that body (half a small body's height: a neighbour's centre is a body and a disc
#: away).
ANCHOR_SAME_BODY_MM = 10.0


def column_line(
    arrays: StudyArrays, grid: DetectionGrid, anchored: npt.NDArray | None
) -> CentreLine:
    """Steps 2-3: the chain of body candidates (through the anchored body, if any) and the
    centre line fitted through it. When the marrow mask yields no chain, it is tried once more
    closed: at low SNR (5-10) noise punches pinholes into the marrow that the candidates'
    in-plane erosion opens into gaps, leaving no body-sized component (development sets: 3
    studies refused so; closed, 2 of them found with every level right)."""
    chain = _chain(arrays, grid, anchored, grid.marrow)
    if len(chain) < 2:
        chain = _chain(arrays, grid, anchored, ndimage.binary_closing(grid.marrow))
    if len(chain) < 2:
        raise InputError("study", "no vertebral column found (fewer than two marrow bodies)")
    cents = np.array([c.centre_ras for c in chain])
    return fit_centre_line(cents, fov_z_range(grid.marrow.shape, grid.mat))


def _chain(
    arrays: StudyArrays,
    grid: DetectionGrid,
    anchored: npt.NDArray | None,
    marrow: npt.NDArray[np.bool_],
) -> list[Candidate]:
    """The chain of body candidates found in ``marrow`` (through the anchored body, if any)."""
    reference = bone_reference_r2s(arrays.r2s_soft_tissue_per_s, arrays.r2s_fat_per_s)
    cands = candidates(marrow, grid.mat, grid.r2s, reference)
    forced, added = None, False
    if anchored is not None:
        # the column must pass through the body the user clicked: the candidate found there,
        # or, when none was, one added at the body around the click (a second point for the
        # same body would bend the line, and the profile along it, away from the automatic one)
        near = [float(np.linalg.norm(c.centre_ras - anchored)) for c in cands]
        if near and min(near) <= ANCHOR_SAME_BODY_MM:
            forced = int(np.argmin(near))
        else:
            cands = [*cands, Candidate(anchored, 10.0, 25.0, float("nan"), 2.0)]
            forced, added = len(cands) - 1, True
    hides = grid.void | grid.oedema

    def hidden(p: npt.NDArray, q: npt.NDArray) -> bool:
        """Whether the way from p to q runs through cement or oedema (bodies without marrow)."""
        return hidden_share(hides, grid.mat, p, q) >= HIDDEN_SHARE

    chain = find_column(cands, must_include=forced, hidden=hidden)
    if forced is not None and len(chain) < 2:
        # the clicked body links to no other candidate: the column as found without it, the
        # labels still counted from the clicked body (it lies on the column's line)
        chain = find_column(cands[:-1] if added else cands, hidden=hidden)
    return chain


def fov_z_range(shape: tuple[int, int, int], mat: npt.NDArray) -> tuple[float, float]:
    """The S-coordinate range (mm) of a grid of ``shape`` (k, j, i) with IJK-to-RAS ``mat``."""
    nk, nj, ni = shape
    corners = np.array(
        [[i, j, k, 1.0] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)]
    )
    z = (corners @ mat.T)[:, 2]
    return float(z.min()), float(z.max())


__all__ = ["ANCHOR_SAME_BODY_MM", "column_line", "fov_z_range"]
