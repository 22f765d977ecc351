"""Automatic vertebral ROIs: find the column, the bodies and discs, label levels, place ROIs.

No deep learning (docs/architecture.md, ROIs and summaries). Steps:

1. Detection grid: the PDFF and signal maps block-averaged to about 2 mm voxels (fast, keeps the
   acquisition's axes, so sagittal, axial and oblique grids are handled alike in RAS mm).
2. Column: marrow (PDFF ~12-85% with signal) is eroded by 3 mm so pedicles and thin bridges
   break; the chain of body-sized components stacked cranio-caudally (each 15-60 mm below the
   previous, within a cone) with the largest total volume is the vertebral column.
3. Centre line: smooth polynomial x(z), y(z) (RAS mm) through the chain's centroids.
4. Profile: along the centre line, the share of marrow, disc (water-bright, PDFF ~0) and void
   (no signal: cement) in a tube of radius :data:`~.detection.TUBE_RADIUS_MM`. Bodies are the
   marrow runs; gaps holding water are discs; gaps holding void (cement) belong to the body.
5. Sacrum: the S1/S2 junction is a rudimentary (thin) disc or fused; the lowest thin disc at the
   bottom of the chain (or a fused, over-long lowest segment) marks S1. Levels are counted up
   from S1; one anchor point named by the user overrides the count.
6. Each body is segmented on the full grid between its two disc planes (whole body, volume in mL)
   and its safe-core ROI placed as for manual points (:mod:`RefractureRiskLib.roi.body`); voxels
   behind the body's midline posterior wall (pedicle bases that thick slices merge with the
   body) are cut off before its frame and ROI are computed.

Uncertainty (sacrum not found, irregular spacing, a missed disc or body, transitional anatomy,
fewer bodies than expected, anchor disagreement) is reported in ``reasons`` and ``roiset.notes``,
and ``uncertain`` is set, instead of guessing silently.

Steps 1-4 are in :mod:`RefractureRiskLib.roi.detection`, step 5 in
:mod:`RefractureRiskLib.roi.labelling`; this module places the ROIs and puts it all together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import level_index
from RefractureRiskLib.core.roiset import LevelRoi, RoiMethod, RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.roi.anchor import anchored_body
from RefractureRiskLib.roi.body import (
    BodyPlacement,
    StudyArrays,
    _nearest_in,
    body_from_marrow,
    bone_tissue,
    clip_posterior_elements,
    cut_by_field_of_view,
    focal_lesion_ml,
    level_placement,
    local_marrow,
    refine_body,
    study_arrays,
    void_fraction,
)
from RefractureRiskLib.roi.column import Candidate, candidates, find_column
from RefractureRiskLib.roi.detection import (
    CentreLine,
    Segment,
    axes_from_tangent,
    detection_grid,
    fit_centre_line,
    profile_along,
    rescue_gaps,
    segment_profile,
)
from RefractureRiskLib.roi.dips import split_at_dips
from RefractureRiskLib.roi.geometry import (
    DEFAULT_CORE,
    CoreRoiParams,
    body_frame,
    box_around,
    grid_ras,
    safe_core_roi,
)
from RefractureRiskLib.roi.labelling import (
    ANCHOR_MAX_DISTANCE_MM,
    SPLIT_DOUBT_REASON,
    Anchor,
    _anchor_labels,
    drop_detached_top,
    label_segments,
    spacing_reasons,
    split_long_segments,
    split_sacral_dip,
)
from RefractureRiskLib.roi.landmarks import check_count_with_alae
from RefractureRiskLib.roi.marrow import DEFAULT_CRITERIA, MarrowCriteria
from RefractureRiskLib.roi.qc import apply_qc
from RefractureRiskLib.roi.result import LevelPlacement, RoiResult

#: A reason about one level's body (it starts with the level's name), not about the count.
LEVEL_REASON = re.compile(r"^(T1[0-2]|L[1-5]|S1): ")
#: Larger half-sizes (mm) than any lumbar body (about 50 x 35 mm) mean the segmentation leaked.
MAX_HALF_WIDTH_MM = 32.0
MAX_HALF_DEPTH_MM = 25.0
#: A body this much wider than the column's median, or centred this far (mm) off the column's
#: line, has run into neighbouring bone: it is segmented again inside the column's cross-section.
LEAK_WIDTH_FACTOR = 1.3
LEAK_OFF_LINE_MM = 10.0


# -- 6. placement -----------------------------------------------------------------------------
def place_segment(
    arrays: StudyArrays,
    line: CentreLine,
    seg: Segment,
    upper_t: float,
    lower_t: float,
    params: CoreRoiParams,
    criteria: MarrowCriteria,
    cross_section_mm: tuple[float, float] | None = None,
) -> BodyPlacement:
    """Whole body and safe core of one segment, between the planes at ``upper_t``/``lower_t``.

    ``cross_section_mm`` (LR, AP half-sizes from the neighbouring bodies) switches to the
    fallback for bodies without marrow fat (fracture oedema): bone tissue (marrow or water-rich
    with high R2*) inside that elliptic cylinder about the centre line, between the planes.
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
        right, ant, _ = axes_from_tangent(tang)
        dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
        u = dx * right[0] + dy * right[1] + dz * right[2]
        v = dx * ant[0] + dy * ant[1] + dz * ant[2]
        a, b = cross_section_mm
        slab &= (u / (a + 1.0)) ** 2 + (v / (b + 1.0)) ** 2 <= 1.0
        marrow = bone_tissue(arrays, box, marrow, criteria)
    # signal voids (cement) count as body for its shape; the ROI keeps away from them
    body, why = body_from_marrow((marrow | void) & slab, box.ijk_to_ras, seed_ijk, -tang)
    if not body.any():
        return BodyPlacement(box, empty, empty, None, why)
    if cross_section_mm is None:
        body = refine_body(body, pdff, _nearest_in(body, seed_ijk), signal, void)
    # pedicle bases merged by thick slices: cut behind the posterior wall, then the frame
    body = clip_posterior_elements(
        body,
        box.ijk_to_ras,
        body_frame(body, box.ijk_to_ras, si_hint=-tang).axes_ras,
        _nearest_in(body, seed_ijk),
    )
    frame = body_frame(body, box.ijk_to_ras, si_hint=-tang)
    roi = safe_core_roi(body, marrow, box.ijk_to_ras, frame, params)
    msg = "" if roi.any() else "no safe-core ROI"
    lesion = focal_lesion_ml(body, marrow, void, frame, box.ijk_to_ras, pdff)
    r2 = None if arrays.r2s_per_s is None else arrays.r2s_per_s[box.slices]
    cement = void_fraction(body, void, r2, box.ijk_to_ras)
    return BodyPlacement(box, body, roi, frame, msg, cement, lesion)


def _leaked(pl: BodyPlacement, line: CentreLine, halves: npt.NDArray) -> bool:
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


def automatic_rois(
    study: Study,
    *,
    anchor: Anchor | None = None,
    params: CoreRoiParams = DEFAULT_CORE,
    criteria: MarrowCriteria = DEFAULT_CRITERIA,
    reader: str = "automatic",
    index_levels: Sequence[str] = (),
) -> RoiResult:
    """Find, label and measure the vertebral bodies T10-S1 of ``study`` (see module docstring)."""
    arrays = study_arrays(study, criteria)
    anchored = None if anchor is None else anchored_body(arrays, anchor, params, criteria)
    grid = detection_grid(arrays, criteria)
    marrow, disc, void, mat, oedema = grid.marrow, grid.disc, grid.void, grid.mat, grid.oedema
    cands = candidates(marrow, mat, grid.r2s, arrays.r2s_soft_tissue_per_s)
    forced = None
    if anchored is not None:
        # the column must pass through the body the user clicked
        cands = [*cands, Candidate(anchored, 10.0, 25.0, float("nan"), 2.0)]
        forced = len(cands) - 1
    chain = find_column(cands, must_include=forced)
    if forced is not None and len(chain) < 2:
        # the clicked body links to no other candidate: the column as found without it, the
        # labels still counted from the clicked body (it lies on the column's line)
        chain = find_column(cands[:-1])
    if len(chain) < 2:
        raise InputError("study", "no vertebral column found (fewer than two marrow bodies)")
    cents = np.array([c.centre_ras for c in chain])
    zs = _fov_z_range(marrow.shape, mat)
    line = fit_centre_line(cents, zs)
    prof = profile_along(line, marrow, disc, void, mat)
    segs, gaps = segment_profile(prof)
    if oedema.any():
        # long gaps may hide a body without marrow fat (fracture oedema): look there with R2*
        wet = profile_along(line, marrow | oedema, disc & ~oedema, void, mat)
        segs, gaps = rescue_gaps(segs, gaps, wet)
    segs, gaps = split_at_dips(segs, gaps, prof)
    segs, gaps, split_notes = split_long_segments(segs, gaps)
    segs, gaps, top_notes = drop_detached_top(segs, gaps)
    split_notes += top_notes
    segs, gaps = split_sacral_dip(segs, gaps, prof)
    if not segs:
        raise InputError("study", "no vertebral bodies found along the column")
    covered_idx = np.flatnonzero(prof.covered)
    bottom_in_fov = bool(covered_idx.size) and (prof.t_mm[covered_idx[-1]] - segs[-1].t1_mm > 4.0)
    top_at_edge = bool(covered_idx.size) and (segs[0].t0_mm - prof.t_mm[covered_idx[0]] < 4.0)
    labelling = label_segments(segs, gaps, bottom_in_fov)
    labelling = check_count_with_alae(labelling, grid, line, segs, gaps)  # 2nd landmark
    # A split of an over-long segment is reported, but is no doubt about the labels by itself
    # (thick slices often merge two bodies across a thin disc): the spacing checks below judge
    # the result, and an irregular one is a reason.
    doubts = [n for n in split_notes if SPLIT_DOUBT_REASON in n]
    reasons = (
        list(labelling.reasons)
        + doubts
        + spacing_reasons(segs, gaps, labelling.sacrum_found, top_at_edge)
    )
    if anchor is not None and anchored is not None:
        labelling = _anchor_labels(
            line, segs, gaps, Anchor(anchor.level, tuple(anchored)), labelling
        )
        reasons = list(labelling.reasons)
    named = [n for n in labelling.names if n is not None]
    # room for a whole body (with its disc) between the top of the field of view and the first
    # body found: a body cut by the field of view there is not a missed one
    spacing = float(np.median(np.diff([s.centre_mm for s in segs]))) if len(segs) > 1 else 30.0
    room_above = bool(covered_idx.size) and (
        segs[0].t0_mm - prof.t_mm[covered_idx[0]] >= 0.8 * spacing
    )
    if named and named[0] != "T10" and room_above and anchor is None:
        reasons.append(
            f"fewer bodies than expected: the column ends at {named[0]} inside the field of view"
        )
    # place each named level
    shape = arrays.shape
    roi_arr = np.zeros(shape, np.int16)
    body_arr = np.zeros(shape, np.int16)
    entries: list[LevelPlacement] = []
    planes = []
    for i, seg in enumerate(segs):
        # The slab reaches across each gap to just short of the neighbouring body: the disc
        # itself separates the bodies, and a plane tilted by a centre-line error must not cut
        # off an endplate corner (split gaps inside fused/merged segments are exact cuts).
        upper, lower = seg.t0_mm - 4.0, seg.t1_mm + 4.0  # column ends: no neighbour known
        if i > 0:
            g0, g1, _ = gaps[i - 1]
            upper = g0 + min(1.0, 0.5 * (g1 - g0))
        if i < len(gaps):
            g0, g1, _ = gaps[i]
            lower = g1 - min(1.0, 0.5 * (g1 - g0))
        planes.append((upper, lower))
    named = [i for i, n in enumerate(labelling.names) if n is not None]
    placed = {i: place_segment(arrays, line, segs[i], *planes[i], params, criteria) for i in named}
    good = [
        i
        for i in named
        if placed[i].frame is not None
        and placed[i].frame.half_extent_mm[0] <= MAX_HALF_WIDTH_MM
        and placed[i].frame.half_extent_mm[1] <= MAX_HALF_DEPTH_MM
    ]
    if good:
        ml_per_mm = np.median([placed[i].frame.volume_ml / segs[i].length_mm for i in good])
        halves = np.array([placed[i].frame.half_extent_mm[:2] for i in good])
        for i in named:
            pl = placed[i]
            small = pl.frame is None or pl.frame.volume_ml < 0.5 * ml_per_mm * segs[i].length_mm
            leaked = pl.frame is not None and _leaked(pl, line, halves)
            if not (small or leaked):
                continue
            near = np.argsort([abs(g - i) for g in good])[:2]
            cross = tuple(float(h) for h in np.median(halves[near], axis=0))
            fb = place_segment(arrays, line, segs[i], *planes[i], params, criteria, cross)
            if fb.frame is not None and (
                pl.frame is None or leaked or fb.frame.volume_ml > pl.frame.volume_ml
            ):
                why = "leaked into neighbouring bone" if leaked else "no marrow fat (oedema?)"
                placed[i] = replace(fb, message=f"{why}: body from R2*, shape")
    for i in named:
        name = labelling.names[i]
        pl = placed[i]
        if pl.frame is None:
            reasons.append(f"{name}: body not segmented ({pl.message})")
            continue
        t_body, off = line.nearest(pl.frame.centre_ras)
        lr_half, ap_half, _ = pl.frame.half_extent_mm
        misplaced = abs(t_body - segs[i].centre_mm) > max(6.0, 0.4 * segs[i].length_mm)
        # Not judged: S1 (tilted and joined to the sacrum, its centre lies off the column's
        # line) and a body cut by the field of view (its centre is that of the part in view).
        cut = cut_by_field_of_view(pl, arrays.shape)
        if name != "S1" and not cut and (misplaced or off > 10.0):
            reasons.append(f"{name}: the body found is not where the profile put it")
        elif lr_half > MAX_HALF_WIDTH_MM or ap_half > MAX_HALF_DEPTH_MM:
            reasons.append(
                f"{name}: implausible body ({2 * lr_half:.0f} x {2 * ap_half:.0f} mm): "
                "not a vertebral body alone"
            )
        # A doubt about the count lowers every label's confidence (one wrong count shifts all);
        # a doubt about one body ("T12: ...") lowers that level's only.
        doubts = [r for r in reasons if not LEVEL_REASON.match(r) or r.startswith(f"{name}:")]
        conf = labelling.confidence[i] if not doubts else min(labelling.confidence[i], 0.5)
        entry = level_placement(name, pl, arrays, conf)
        view_b = body_arr[pl.box.slices]
        view_b[pl.body & (view_b == 0)] = entry.label
        view_r = roi_arr[pl.box.slices]
        view_r[pl.roi & (view_r == 0)] = entry.label
        entries.append(entry)
    if not entries:
        raise InputError("study", "no vertebral level could be placed")
    uncertain = bool(reasons)
    grid_vol = study.grid
    entries.sort(key=lambda e: level_index(e.level))
    notes = (*reasons, *(f"note: {n}" for n in split_notes if n not in doubts))
    roiset = RoiSet(
        labelmap=Volume(roi_arr, grid_vol.ijk_to_ras),
        levels=tuple(LevelRoi(e.level, e.label) for e in entries),
        method=RoiMethod.AUTOMATIC,
        reader=reader,
        notes=notes,
    )
    result = RoiResult(
        roiset=roiset,
        body_labels=Volume(body_arr, grid_vol.ijk_to_ras),
        levels=tuple(entries),
        uncertain=uncertain,
        reasons=tuple(reasons),
        signal_min=arrays.signal_min,
        extras={
            "centre_line_ras": line.points_ras,
            "segments_mm": [(s.t0_mm, s.t1_mm) for s in segs],
            "gaps_mm": gaps,
            "segment_names": labelling.names,
            "index_levels": tuple(index_levels),
            "anchor": anchor,
        },
    )
    return apply_qc(result, study, index_levels=index_levels)


def _fov_z_range(shape: tuple[int, int, int], mat: npt.NDArray) -> tuple[float, float]:
    nk, nj, ni = shape
    corners = np.array(
        [[i, j, k, 1.0] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)]
    )
    z = (corners @ mat.T)[:, 2]
    return float(z.min()), float(z.max())


__all__ = [
    "ANCHOR_MAX_DISTANCE_MM",
    "Anchor",
    "automatic_rois",
]
