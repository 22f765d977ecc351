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
   The tube's mean PDFF tells a disc the marrow share missed at the lowest junction (as deep
   and as wide a dip as the study's discs) from the thin rudimentary S1/S2 disc.
5. Sacrum: the S1/S2 junction is a rudimentary (thin) disc or fused; the lowest thin disc at the
   bottom of the chain (or a fused, over-long lowest segment) marks S1. Levels are counted up
   from S1, and checked where the alae begin beside a lowest fused run
   (:mod:`RefractureRiskLib.roi.ala_onset`), against the alae beside each body and the last
   rib; one anchor point named by the user overrides the count.
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
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import level_index
from RefractureRiskLib.core.roiset import LevelRoi, RoiMethod, RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.roi.ala_onset import check_fused_run
from RefractureRiskLib.roi.anchor import anchor_segment, anchored_body
from RefractureRiskLib.roi.anchor_count import anchor_labels, with_sacrum_count
from RefractureRiskLib.roi.body import (
    BodyPlacement,
    StudyArrays,
    cut_by_field_of_view,
    level_placement,
    study_arrays,
)
from RefractureRiskLib.roi.column_line import ANCHOR_SAME_BODY_MM, column_line
from RefractureRiskLib.roi.detection import (
    CentreLine,
    DetectionGrid,
    Profile,
    Segment,
    detection_grid,
    in_a_segment,
    profile_along,
    rescue_gaps,
    segment_profile,
)
from RefractureRiskLib.roi.dips import split_at_dips
from RefractureRiskLib.roi.geometry import (
    DEFAULT_CORE,
    CoreRoiParams,
)
from RefractureRiskLib.roi.labelling import (
    ANCHOR_MAX_DISTANCE_MM,
    Anchor,
    Labelling,
    label_segments,
    spacing_reasons,
)
from RefractureRiskLib.roi.landmarks import check_count_with_alae
from RefractureRiskLib.roi.marrow import DEFAULT_CRITERIA, MarrowCriteria
from RefractureRiskLib.roi.missing import fill_skipped_levels, fill_top_level
from RefractureRiskLib.roi.qc import apply_qc
from RefractureRiskLib.roi.result import LevelPlacement, RoiResult
from RefractureRiskLib.roi.ribs import check_count_with_ribs, last_rib_index, rib_shares
from RefractureRiskLib.roi.runs import (
    SPLIT_DOUBT_REASON,
    drop_detached_ends,
    fused_junction_as_disc,
    merge_fragments,
    split_long_segments,
    split_sacral_dip,
)
from RefractureRiskLib.roi.segment_bodies import MAX_HALF_DEPTH_MM, MAX_HALF_WIDTH_MM, place_bodies
from RefractureRiskLib.roi.top_run import unlike_marrow_at_top

#: Called with a short message as each step starts (it may raise to cancel).
Progress = Callable[[str], None]
#: A reason about one level's body (it starts with the level's name), not about the count.
LEVEL_REASON = re.compile(r"^(T1[0-2]|L[1-5]|S1): ")


# -- 6. placement -----------------------------------------------------------------------------
def automatic_rois(
    study: Study,
    *,
    anchor: Anchor | None = None,
    params: CoreRoiParams = DEFAULT_CORE,
    criteria: MarrowCriteria = DEFAULT_CRITERIA,
    reader: str = "automatic",
    index_levels: Sequence[str] = (),
    progress: Progress | None = None,
) -> RoiResult:
    """Find, label and measure the vertebral bodies T10-S1 of ``study`` (see module docstring).

    ``progress`` is called with a short message as each step starts (it may raise to cancel).
    """
    say = progress or (lambda _msg: None)
    say("finding the vertebral column")
    arrays = study_arrays(study, criteria)
    anchored = None if anchor is None else anchored_body(arrays, anchor, params, criteria)
    grid = detection_grid(arrays, criteria)
    say("finding the bodies and discs along the column")
    line, found = _column_and_bodies(arrays, grid, anchored)
    split_notes = found[3]
    say("naming the levels")
    segs, gaps, labelling, reasons, count_notes = _name_levels(found, grid, line, anchor, anchored)
    say("segmenting the bodies")
    placed = place_bodies(arrays, line, segs, gaps, labelling.names, params, criteria)
    say("placing the ROIs")
    entries, roi_arr, body_arr = _levels(arrays, line, segs, labelling, placed, reasons)
    notes = (*reasons, *(f"note: {n}" for n in split_notes if SPLIT_DOUBT_REASON not in n))
    notes += tuple(f"note: {n}" for n in count_notes)
    roiset = RoiSet(
        labelmap=Volume(roi_arr, study.grid.ijk_to_ras),
        levels=tuple(LevelRoi(e.level, e.label) for e in entries),
        method=RoiMethod.AUTOMATIC,
        reader=reader,
        notes=notes,
    )
    result = RoiResult(
        roiset=roiset,
        body_labels=Volume(body_arr, study.grid.ijk_to_ras),
        levels=tuple(entries),
        uncertain=bool(reasons),
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


def _column_and_bodies(
    arrays: StudyArrays, grid: DetectionGrid, anchored: npt.NDArray | None
) -> tuple[CentreLine, tuple[Profile, list[Segment], list[tuple[float, float, str]], list[str]]]:
    """Steps 2-4: the column's line and the bodies along it. With an anchored body, the line
    found without it is kept when it runs through that body (within
    :data:`ANCHOR_SAME_BODY_MM` of its centre) and a body was found there on its profile: the
    click names a body the column already holds, and a line bent through one more point
    changes the profile at the other levels too (world-dev-78: T11 and T12, found apart
    without the click, merged into one body on the line bent through a click at T10).
    Otherwise the line is made to pass through the clicked body."""
    if anchored is not None:
        try:
            free = column_line(arrays, grid, None)
        except InputError:
            free = None
        if free is not None:
            t, off = free.nearest(anchored)
            found = _bodies_along(free, grid)
            if off <= ANCHOR_SAME_BODY_MM and in_a_segment(found[1], t):
                return free, found
    line = column_line(arrays, grid, anchored)
    return line, _bodies_along(line, grid)


def _bodies_along(
    line: CentreLine, grid: DetectionGrid
) -> tuple[Profile, list[Segment], list[tuple[float, float, str]], list[str]]:
    """Step 4: the profile along the line, its bodies (segments) and gaps, with runs split at
    dips and missed discs, a detached top dropped, the sacral dip split and a lowest junction
    where the PDFF dips like a disc taken for one; notes on splits."""
    marrow, disc, void, mat, oedema = grid.marrow, grid.disc, grid.void, grid.mat, grid.oedema
    prof = profile_along(line, marrow, disc, void, mat, grid.pdff_pct)
    segs, gaps = segment_profile(prof)
    if oedema.any():
        # long gaps may hide a body without marrow fat (fracture oedema): look there with R2*
        wet = profile_along(line, marrow | oedema, disc & ~oedema, void, mat)
        segs, gaps = rescue_gaps(segs, gaps, wet)
    segs, gaps = split_at_dips(segs, gaps, prof)
    segs, gaps = merge_fragments(segs, gaps)
    segs, gaps, split_notes = split_long_segments(segs, gaps)
    segs, gaps, top_notes = drop_detached_ends(segs, gaps)
    segs, gaps = split_sacral_dip(segs, gaps, prof)
    segs, gaps = fused_junction_as_disc(segs, gaps, prof)
    if not segs:
        raise InputError("study", "no vertebral bodies found along the column")
    return prof, segs, gaps, split_notes + top_notes


def _name_levels(
    found: tuple[Profile, list[Segment], list[tuple[float, float, str]], list[str]],
    grid: DetectionGrid,
    line: CentreLine,
    anchor: Anchor | None,
    anchored: npt.NDArray | None,
) -> tuple[list[Segment], list[tuple[float, float, str]], Labelling, list[str], list[str]]:
    """Step 5 on step 4's result (``found``: profile, bodies, gaps, split notes) with the
    bodies it finds missing: the clicked body among those found (an anchor), the count
    (:func:`_count_levels`), then a body put in where the count steps over a level or a level
    is missing at the top. Returns the segments, gaps, labelling, the reasons to doubt it and
    notes."""
    prof, segs, gaps, split_notes = found
    at_body = None
    if anchor is not None and anchored is not None:  # the clicked body among those found
        segs, gaps, at_body = anchor_segment(line, segs, gaps, anchor, anchored)
    labelling, reasons, notes = _count_levels(prof, segs, gaps, grid, line, at_body, split_notes)
    segs, gaps, labelling, filled = fill_skipped_levels(segs, gaps, labelling, line)
    room = _room_above(prof, segs)
    segs, gaps, labelling, top = fill_top_level(segs, gaps, labelling, line, room)
    reasons += [r for r in top if anchor is None or LEVEL_REASON.match(r)]  # anchor: counted
    return segs, gaps, labelling, reasons, [*notes, *filled]


def _room_mm(prof: Profile, segs: list[Segment]) -> tuple[float, float]:
    """Room (mm along the line) in the field of view above the first body and below the last
    (NaN when the profile covers nothing)."""
    covered_idx = np.flatnonzero(prof.covered)
    if not covered_idx.size or not segs:
        return float("nan"), float("nan")
    above = segs[0].t0_mm - float(prof.t_mm[covered_idx[0]])
    return above, float(prof.t_mm[covered_idx[-1]]) - segs[-1].t1_mm


def _spacing_mm(segs: list[Segment]) -> float:
    """The column's median spacing of body centres (mm; 30 with fewer than two bodies)."""
    return float(np.median(np.diff([s.centre_mm for s in segs]))) if len(segs) > 1 else 30.0


def _room_above(prof: Profile, segs: list[Segment]) -> bool:
    """Room for a whole body (with its disc) between the top of the field of view and the
    first body found: a body cut by the field of view there is not a missed one."""
    return bool(_room_mm(prof, segs)[0] >= 0.8 * _spacing_mm(segs))


def _count_levels(
    prof: Profile,
    segs: list[Segment],
    gaps: list[tuple[float, float, str]],
    grid: DetectionGrid,
    line: CentreLine,
    anchor: Anchor | None,
    split_notes: Sequence[str],
) -> tuple[Labelling, list[str], list[str]]:
    """Step 5: levels counted from the sacrum, checked with the alae and the last rib, or from
    the anchor (at the centre of the body the user clicked); the reasons to doubt the count,
    and notes. ``split_notes``: how long runs were split; those into fewer bodies than they may
    hold are doubts. An anchor's count replaces every doubt about where the count starts."""
    split_doubts = [n for n in split_notes if SPLIT_DOUBT_REASON in n]
    above_mm, below_mm = _room_mm(prof, segs)  # NaN compares False: nothing covered
    bottom_in_fov = below_mm > 4.0
    top_at_edge = above_mm < 4.0
    labelling = label_segments(segs, gaps, bottom_in_fov)
    labelling = check_fused_run(labelling, segs, gaps, grid, line)  # where the alae begin
    labelling = check_count_with_alae(labelling, grid, line, segs, gaps)  # 2nd landmark
    last_rib = last_rib_index(rib_shares(grid, line, segs))  # 3rd landmark
    labelling, notes = check_count_with_ribs(labelling, segs, gaps, last_rib)
    # A split of an over-long segment is only a note (thick slices often merge two bodies
    # across a thin disc) unless the run may hold one body more; the spacing checks judge the
    # result, and an irregular one is a reason.
    spacing_doubts = spacing_reasons(segs, gaps, labelling.sacrum_found, top_at_edge)
    reasons = [*labelling.reasons, *split_doubts, *spacing_doubts]
    if anchor is not None:
        # the anchor settles where the count starts, not whether a body between it and a
        # level was missed or split: those doubts stay
        counted = anchor_labels(line, segs, gaps, anchor, labelling)
        labelling = with_sacrum_count(counted, labelling, segs, line, anchor, gaps)
        reasons, notes = [*labelling.reasons, *split_doubts, *spacing_doubts], []
    named = [n for n in labelling.names if n is not None]
    # below the last body, room for a whole body (with its disc): the sacrum cannot lie out
    # of view there (room above the first body: see _room_above)
    if named and "S1" not in named and below_mm >= 0.8 * _spacing_mm(segs) and anchor is None:
        reasons.append(
            f"S1 not found: the column ends at {named[-1]} inside the field of view, with room "
            "below it for the sacrum"
        )
    return labelling, reasons, notes


def _levels(
    arrays: StudyArrays,
    line: CentreLine,
    segs: list[Segment],
    labelling: Labelling,
    placed: dict[int, BodyPlacement],
    reasons: list[str],
) -> tuple[list[LevelPlacement], npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """Each placed body as a level, in level order (confidence lowered by the doubts that
    concern it), painted into the ROI and body label maps; a body not where the profile put
    it, or implausibly large, adds a reason (``reasons`` is extended in place)."""
    roi_arr = np.zeros(arrays.shape, np.int16)
    body_arr = np.zeros(arrays.shape, np.int16)
    entries: list[LevelPlacement] = []
    for i in sorted(placed):
        name = labelling.names[i]
        assert name is not None
        pl = placed[i]
        if pl.frame is None:
            reasons.append(f"{name}: body not segmented ({pl.message})")
            continue
        reasons += _body_doubts(name, pl, line, segs[i], arrays.shape)
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
    entries.sort(key=lambda e: level_index(e.level))
    unlike = unlike_marrow_at_top(entries)
    reasons += unlike.values()
    entries = [
        replace(e, confidence=min(e.confidence, 0.5)) if e.level in unlike else e for e in entries
    ]
    return entries, roi_arr, body_arr


def _body_doubts(
    name: str, pl: BodyPlacement, line: CentreLine, seg: Segment, shape: tuple[int, int, int]
) -> list[str]:
    """A reason when the body found holds no ROI, is off the profile's segment or is
    implausibly large."""
    assert pl.frame is not None
    t_body, off = line.nearest(pl.frame.centre_ras)
    lr_half, ap_half, _ = pl.frame.half_extent_mm
    misplaced = abs(t_body - seg.centre_mm) > max(6.0, 0.4 * seg.length_mm)
    # Not judged: S1 (tilted and joined to the sacrum, its centre lies off the column's line),
    # a body cut by the field of view (its centre is that of the part in view) and a body
    # segmented again inside the column's cross-section after it leaked (found where the
    # profile put it by construction; its marrow may still lie to one side).
    cut = cut_by_field_of_view(pl, shape)
    judged = name != "S1" and not cut and not pl.leaked
    if not pl.roi.any():
        # a body too small or thin for a safe core, segmented from R2* (no core at its centre:
        # see segment_bodies._core_at_centre): the level is not measured, and says so
        return [
            f"{name}: no ROI could be placed in the body found ({pl.message}): place it by hand"
        ]
    if judged and (misplaced or off > 10.0):
        return [f"{name}: the body found is not where the profile put it"]
    if lr_half > MAX_HALF_WIDTH_MM or ap_half > MAX_HALF_DEPTH_MM:
        return [
            f"{name}: implausible body ({2 * lr_half:.0f} x {2 * ap_half:.0f} mm): "
            "not a vertebral body alone"
        ]
    return []


__all__ = [
    "ANCHOR_MAX_DISTANCE_MM",
    "Anchor",
    "automatic_rois",
]
