"""One vertebral body around a seed point (a manual point, an anchor click): body, frame, ROI.

The body is segmented from the marrow around the seed (:mod:`RefractureRiskLib.roi.body`). At
T10-T12 the marrow can run on into neighbouring tissue that passes the marrow criteria (a fatty
liver, rib heads): the "body" found is then wider or deeper than any vertebral body, or centred
well away from the point the user put inside it. Such a body is segmented again inside the
largest vertebral cross-section about the point, and once more about the centre that gives (a
point need not be at the body's centre).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.roi.body import (
    BOX_HALF_MM,
    MIN_HALF_EXTENT_MM,
    BodyPlacement,
    StudyArrays,
    _nearest_in,
    body_from_marrow,
    clip_posterior_elements,
    local_marrow,
    measured_placement,
    refine_body,
)
from RefractureRiskLib.roi.detection import cross_section_mask
from RefractureRiskLib.roi.geometry import (
    DEFAULT_CORE,
    BodyFrame,
    Box,
    CoreRoiParams,
    body_axes,
    body_frame,
    box_around,
    grid_ras,
)
from RefractureRiskLib.roi.marrow import DEFAULT_CRITERIA, MarrowCriteria

#: Half sizes (mm: left-right, front-back) of the largest vertebral body cross-section, T10 to
#: S1: L5 is up to about 54 mm wide and 40 mm deep. A leaked body is searched again in it.
LARGEST_BODY_HALF_MM = (27.0, 21.0)
#: A body found wider or deeper than this (the largest body plus a few mm of partial volume and
#: osteophytes) ran into neighbouring tissue.
LEAK_HALF_MM = (30.0, 24.0)
#: A point inside a body lies at most about this far (mm, across the spine axis) from the body's
#: centre (half the depth of the smallest body, T10, plus a margin): a body centred farther away
#: is mostly something else.
SEED_OFF_CENTRE_MM = 12.0


def place_at_seed(
    arrays: StudyArrays,
    seed_ras: npt.ArrayLike,
    params: CoreRoiParams = DEFAULT_CORE,
    criteria: MarrowCriteria = DEFAULT_CRITERIA,
    si_hint: npt.ArrayLike | None = None,
    box_half_mm: tuple[float, float, float] = BOX_HALF_MM,
    neighbours: Sequence[npt.ArrayLike] = (),
) -> BodyPlacement:
    """Segment the body around ``seed_ras`` and place its safe-core ROI, all inside one box.

    ``neighbours``: points inside the bodies next to this one (the user's points of the levels
    above and below). A body that reaches past the plane halfway to one of them (merged with
    its neighbour through a thin or fatty disc) is segmented again on the seed's side of those
    planes, and ``cut_at_neighbours`` says so.
    """
    box = box_around(arrays.shape, arrays.ijk_to_ras, seed_ras, box_half_mm)
    empty = np.zeros(box.shape, bool)
    if min(box.shape) == 0:
        return BodyPlacement(box, empty, empty, None, "point outside the image")
    seed = np.asarray(seed_ras, float)
    local = local_marrow(arrays, box, criteria)
    placed = _place_in_box(arrays, box, local, seed, params, si_hint, None)
    if not len(neighbours) or not beyond_neighbours(placed.body, box, seed, neighbours):
        return placed
    own = nearer_than_neighbours(box, seed, neighbours)
    cut = _place_in_box(arrays, box, local, seed, params, si_hint, own)
    return replace(cut, cut_at_neighbours=True)


def _place_in_box(
    arrays: StudyArrays,
    box: Box,
    local: tuple[npt.NDArray, ...],
    seed: npt.NDArray,
    params: CoreRoiParams,
    si_hint: npt.ArrayLike | None,
    own: npt.NDArray[np.bool_] | None,
) -> BodyPlacement:
    """The body about ``seed`` in ``box`` (within ``own`` where given) and its ROI."""
    marrow, void, pdff, signal = local
    seed_ijk = (np.r_[seed, 1.0] @ np.linalg.inv(box.ijk_to_ras).T)[:3]
    si = (0.0, 0.0, 1.0) if si_hint is None else si_hint
    inside = np.ones(box.shape, bool) if own is None else own
    body, frame, why = _segment(box, marrow, void, pdff, signal, seed_ijk, si, si_hint, inside, own)
    centre = seed
    for _ in range(2):  # about the point, then about the centre that gives
        if frame is None or not _leaked(frame, seed):
            break
        sup = frame.axes_ras[:, 2]
        inside = cross_section_mask(box, centre, sup, LARGEST_BODY_HALF_MM)
        if own is not None:
            inside &= own
        body, frame, why = _segment(box, marrow, void, pdff, signal, seed_ijk, si, sup, inside, own)
        if frame is not None:
            centre = np.asarray(frame.centre_ras, float)
    if frame is None:
        empty = np.zeros(box.shape, bool)
        return BodyPlacement(box, empty, empty, None, why)
    parts = (box, body, marrow, void, pdff, frame)
    return measured_placement(arrays, *parts, params, "body too small for a safe-core ROI")


def beyond_neighbours(
    body: npt.NDArray[np.bool_],
    box: Box,
    seed_ras: npt.NDArray,
    neighbours: Sequence[npt.ArrayLike],
) -> bool:
    """Whether ``body`` (in ``box``) reaches past the plane halfway to a neighbouring point."""
    return bool((body & ~nearer_than_neighbours(box, seed_ras, neighbours)).any())


def nearer_than_neighbours(
    box: Box, seed_ras: npt.NDArray, neighbours: Sequence[npt.ArrayLike]
) -> npt.NDArray[np.bool_]:
    """Voxels of ``box`` on the seed's side of the plane halfway to each neighbouring point."""
    inside = np.ones(box.shape, bool)
    if not len(neighbours):
        return inside
    x, y, z = grid_ras(box.shape, box.ijk_to_ras)
    for q in neighbours:
        normal = np.asarray(q, float) - seed_ras
        length = float(np.linalg.norm(normal))
        if length < 1e-6:
            continue
        n = normal / length
        mid = seed_ras + 0.5 * normal
        inside &= (x - mid[0]) * n[0] + (y - mid[1]) * n[1] + (z - mid[2]) * n[2] <= 0.0
    return inside


def _segment(
    box: Box,
    marrow: npt.NDArray[np.bool_],
    void: npt.NDArray[np.bool_],
    pdff: npt.NDArray,
    signal: npt.NDArray,
    seed_ijk: npt.NDArray,
    si: npt.ArrayLike,
    si_hint: npt.ArrayLike | None,
    inside: npt.NDArray[np.bool_],
    own: npt.NDArray[np.bool_] | None = None,
) -> tuple[npt.NDArray[np.bool_], BodyFrame | None, str]:
    """The body (marrow and voids within ``inside``) around the seed, its frame, or the reason
    there is none; with ``own``, the refined body is kept within it too."""
    # signal voids (cement) count as body for its shape; the ROI keeps away from them
    body, why = body_from_marrow((marrow | void) & inside, box.ijk_to_ras, seed_ijk, si)
    if not body.any():
        return body, None, why
    body = refine_body(body, pdff, _nearest_in(body, seed_ijk), signal, void)
    if own is not None:
        body &= own
        if not body.any():
            return body, None, "no vertebral body on the point's side of its neighbours"
    # pedicle bases merged by thick slices: cut behind the posterior wall, then the frame
    axes = body_axes(body, box.ijk_to_ras, si_hint)
    body = clip_posterior_elements(body, box.ijk_to_ras, axes, _nearest_in(body, seed_ijk))
    frame = body_frame(body, box.ijk_to_ras, si_hint)
    if min(frame.half_extent_mm) < MIN_HALF_EXTENT_MM:
        size = " x ".join(f"{2 * h:.0f}" for h in frame.half_extent_mm)
        return body, None, f"no vertebral body ({size} mm)"
    return body, frame, ""


def _leaked(frame: BodyFrame, seed_ras: npt.NDArray) -> bool:
    """Wider or deeper than any vertebral body, or centred well away from the seed (across the
    spine axis)."""
    lr, ap, _ = frame.half_extent_mm
    d = np.asarray(frame.centre_ras, float) - seed_ras
    sup = frame.axes_ras[:, 2]
    across = float(np.linalg.norm(d - (d @ sup) * sup))
    big_lr, big_ap = LEAK_HALF_MM
    return lr > big_lr or ap > big_ap or across > SEED_OFF_CENTRE_MM


__all__ = [
    "LARGEST_BODY_HALF_MM",
    "LEAK_HALF_MM",
    "SEED_OFF_CENTRE_MM",
    "beyond_neighbours",
    "nearer_than_neighbours",
    "place_at_seed",
]
