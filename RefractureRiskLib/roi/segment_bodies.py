"""Automatic vertebral ROIs, step 6: each named body segmented between its two disc planes.

The whole body (volume in mL) is segmented on the full grid inside the slab between the planes
across its neighbouring gaps, and its safe-core ROI placed as for manual points
(:mod:`RefractureRiskLib.roi.body`); voxels behind the body's midline posterior wall (pedicle
bases that thick slices merge with the body) are cut off before its frame and ROI. A body with
no marrow fat (fracture oedema) is segmented again inside the column's cross-section from R2*;
one that ran into neighbouring bone, from its marrow inside that cross-section.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.roi.body import (
    BodyPlacement,
    StudyArrays,
    _nearest_in,
    body_from_marrow,
    bone_tissue,
    clip_posterior_elements,
    local_marrow,
    measured_placement,
    refine_body,
)
from RefractureRiskLib.roi.detection import CentreLine, Segment, cross_section_mask
from RefractureRiskLib.roi.geometry import (
    CoreRoiParams,
    body_frame,
    box_around,
    grid_ras,
)
from RefractureRiskLib.roi.marrow import MarrowCriteria
from RefractureRiskLib.roi.point_roi import core_at_point

#: Larger half-sizes (mm) than any lumbar body (about 50 x 35 mm) mean the segmentation leaked.
MAX_HALF_WIDTH_MM = 32.0
MAX_HALF_DEPTH_MM = 25.0
#: A body this much wider than the column's median, or centred this far (mm) off the column's
#: line, has run into neighbouring bone: it is segmented again inside the column's cross-section.
LEAK_WIDTH_FACTOR = 1.3
LEAK_OFF_LINE_MM = 10.0
#: How the message of a body segmented again after it leaked begins.
LEAKED = "leaked into neighbouring bone"


def place_segment(
    arrays: StudyArrays,
    line: CentreLine,
    seg: Segment,
    upper_t: float,
    lower_t: float,
    params: CoreRoiParams,
    criteria: MarrowCriteria,
    cross_section_mm: tuple[float, float] | None = None,
    wet_bone: bool = True,
) -> BodyPlacement:
    """Whole body and safe core of one segment, between the planes at ``upper_t``/``lower_t``.

    ``cross_section_mm`` (LR, AP half-sizes from the neighbouring bodies) switches to the
    fallback for bodies without marrow fat (fracture oedema): bone tissue (marrow or water-rich
    with high R2*) inside that elliptic cylinder about the centre line, between the planes.
    With ``wet_bone`` False (a body that leaked into neighbouring bone, but has marrow fat) it
    is the marrow alone inside the cylinder, trimmed of partial volume as any body.
    """
    centre, tang = line.at(seg.centre_mm)
    # the centre line passes within a few mm of the body centre: bodies are <= 50 x 35 mm
    half = (34.0, 28.0, max(20.0, 0.5 * (lower_t - upper_t) + 10.0))
    box = box_around(arrays.shape, arrays.ijk_to_ras, centre, half)
    empty = np.zeros(box.shape, bool)
    if min(box.shape) == 0:
        return BodyPlacement(box, empty, empty, None, "outside the image")
    marrow, void, pdff, signal = local_marrow(arrays, box, criteria)
    x, y, z = grid_ras(box.shape, box.ijk_to_ras)
    pu, nu = line.at(upper_t)
    pl, nl = line.at(lower_t)
    # tangents point caudally: below the upper plane and above the lower plane
    below_upper = (x - pu[0]) * nu[0] + (y - pu[1]) * nu[1] + (z - pu[2]) * nu[2] >= 0
    above_lower = (x - pl[0]) * nl[0] + (y - pl[1]) * nl[1] + (z - pl[2]) * nl[2] <= 0
    slab = below_upper & above_lower
    seed_ijk = (np.r_[centre, 1.0] @ np.linalg.inv(box.ijk_to_ras).T)[:3]
    if cross_section_mm is not None:
        a, b = cross_section_mm
        slab &= cross_section_mask(box, centre, -tang, (a + 1.0, b + 1.0))
        if wet_bone:
            marrow = bone_tissue(arrays, box, marrow, criteria)
    # signal voids (cement) count as body for its shape; the ROI keeps away from them
    body, why = body_from_marrow((marrow | void) & slab, box.ijk_to_ras, seed_ijk, -tang)
    if not body.any():
        return BodyPlacement(box, empty, empty, None, why)
    if cross_section_mm is None or not wet_bone:
        body = refine_body(body, pdff, _nearest_in(body, seed_ijk), signal, void)
    # pedicle bases merged by thick slices: cut behind the posterior wall, then the frame
    # (the same one when nothing was cut: clip_posterior_elements then returns ``body`` itself)
    frame = body_frame(body, box.ijk_to_ras, si_hint=-tang)
    clipped = clip_posterior_elements(
        body, box.ijk_to_ras, frame.axes_ras, _nearest_in(body, seed_ijk)
    )
    if clipped is not body:
        body = clipped
        frame = body_frame(body, box.ijk_to_ras, si_hint=-tang)
    parts = (box, body, marrow, void, pdff, frame)
    return measured_placement(arrays, *parts, params, "no safe-core ROI")


def ran_into_bone(pl: BodyPlacement, line: CentreLine, halves: npt.NDArray) -> bool:
    """A body segmentation that ran into neighbouring bone (rib heads, pedicles, the sacral
    alae): wider or deeper than any lumbar body, much wider than the column's other bodies
    (``halves``: their LR, AP half-sizes), or centred well off the column's line."""
    assert pl.frame is not None
    lr, ap, _ = pl.frame.half_extent_mm
    _, off = line.nearest(pl.frame.centre_ras)
    return (
        lr > MAX_HALF_WIDTH_MM
        or ap > MAX_HALF_DEPTH_MM
        or lr > LEAK_WIDTH_FACTOR * float(np.median(halves[:, 0]))
        or off > LEAK_OFF_LINE_MM
    )


def _slab_planes(
    segs: list[Segment], gaps: list[tuple[float, float, str]]
) -> list[tuple[float, float]]:
    """(upper, lower) positions (mm along the line) of the planes bounding each body's slab.

    The slab reaches across each gap to just short of the neighbouring body: the disc itself
    separates the bodies, and a plane tilted by a centre-line error must not cut off an endplate
    corner (split gaps inside fused/merged segments are exact cuts).
    """
    planes = []
    for i, seg in enumerate(segs):
        upper, lower = seg.t0_mm - 4.0, seg.t1_mm + 4.0  # column ends: no neighbour known
        if i > 0:
            g0, g1, _ = gaps[i - 1]
            upper = g0 + min(1.0, 0.5 * (g1 - g0))
        if i < len(gaps):
            g0, g1, _ = gaps[i]
            lower = g1 - min(1.0, 0.5 * (g1 - g0))
        planes.append((upper, lower))
    return planes


def place_bodies(
    arrays: StudyArrays,
    line: CentreLine,
    segs: list[Segment],
    gaps: list[tuple[float, float, str]],
    names: Sequence[str | None],
    params: CoreRoiParams,
    criteria: MarrowCriteria,
) -> dict[int, BodyPlacement]:
    """Step 6: each named segment's body and safe core; a body too small (no marrow fat:
    oedema) or leaked into neighbouring bone is segmented again inside the column's
    cross-section (the neighbours' shape; from R2* for oedema, from the marrow for a leak)."""
    planes = _slab_planes(segs, gaps)
    named = [i for i, n in enumerate(names) if n is not None]
    placed = {i: place_segment(arrays, line, segs[i], *planes[i], params, criteria) for i in named}
    good = [
        i
        for i in named
        if placed[i].frame is not None
        and placed[i].frame.half_extent_mm[0] <= MAX_HALF_WIDTH_MM
        and placed[i].frame.half_extent_mm[1] <= MAX_HALF_DEPTH_MM
    ]
    refit = _refit_from_r2s(arrays, line, segs, planes, named, good, placed, params, criteria)
    return {
        i: pl if i in refit else _core_at_centre(arrays, pl, criteria) for i, pl in placed.items()
    }


def _refit_from_r2s(arrays, line, segs, planes, named, good, placed, params, criteria) -> set[int]:
    """Segment again inside the column's cross-section (the shape of the ``good`` neighbours)
    each body too small (no marrow fat: oedema; from R2*) or leaked into neighbouring bone
    (from its marrow; from R2* when that leaves no core); ``placed`` is updated where that
    gives a body; returns those indices."""
    refit: set[int] = set()
    if not good:
        return refit
    ml_per_mm = np.median([placed[i].frame.volume_ml / segs[i].length_mm for i in good])
    halves = np.array([placed[i].frame.half_extent_mm[:2] for i in good])
    for i in named:
        pl = placed[i]
        small = pl.frame is None or pl.frame.volume_ml < 0.5 * ml_per_mm * segs[i].length_mm
        leaked = pl.frame is not None and ran_into_bone(pl, line, halves)
        if not (small or leaked):
            continue
        near = np.argsort([abs(g - i) for g in good])[:2]
        cross = tuple(float(h) for h in np.median(halves[near], axis=0))
        # a leaked body has marrow fat: its marrow inside the cross-section, trimmed of
        # partial volume as any body, unless that leaves no core (then as for oedema)
        wet = small
        fb = place_segment(arrays, line, segs[i], *planes[i], params, criteria, cross, wet)
        if not fb.ok and not wet:
            wet = True
            fb = place_segment(arrays, line, segs[i], *planes[i], params, criteria, cross, wet)
        if fb.frame is not None and (
            pl.frame is None or leaked or fb.frame.volume_ml > pl.frame.volume_ml
        ):
            why = LEAKED if leaked else "no marrow fat (oedema?)"
            how = "body from R2*, shape" if wet else "body from its marrow within the shape"
            placed[i] = replace(fb, message=f"{why}: {how}", leaked=leaked)
            refit.add(i)
    return refit


def _core_at_centre(
    arrays: StudyArrays, pl: BodyPlacement, criteria: MarrowCriteria
) -> BodyPlacement:
    """A body segmented from its marrow but too small or thin for a safe core (a fracture,
    cement) gets the ROI a user's point at its centre would get (the body's marrow near it,
    voids left out), so the level is measured inside its body rather than not at all; its
    message says so. Not for a body segmented from R2* and its neighbours' shape (no marrow fat
    or leaked): there the centre is less sure (development sets: 3 of 4 such ROIs lay outside
    every vertebral body)."""
    if pl.frame is None or pl.roi.any():
        return pl
    return core_at_point(arrays, pl, pl.frame.centre_ras, criteria, "its centre")


__all__ = [
    "LEAKED",
    "MAX_HALF_DEPTH_MM",
    "MAX_HALF_WIDTH_MM",
    "place_bodies",
    "place_segment",
    "ran_into_bone",
]
