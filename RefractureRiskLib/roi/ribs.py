"""Automatic vertebral ROIs, a third counting landmark: the last rib-bearing vertebra.

A rib leaves its vertebra behind the body and runs laterally round the trunk; a lumbar
transverse process ends about 20 mm beside the body. So bone marrow in boxes well lateral of
the body and behind it (:data:`RIB_LATERAL_MM`, :data:`RIB_DEPTH_MM`) marks a rib-bearing
(thoracic) vertebra, and the step from two such vertebrae to two without marks the last rib
(or from the top body, when the column starts there, to two without and none below).
That vertebra is T12 in about 90% of people (T11 or L1 otherwise), so the ribs check the count
from the sacrum rather than replace it:

- the two counts agree: the doubts of the lower count (a lowest run split without a disc, a
  sacrum out of view, signs of transitional anatomy) are settled;
- the count from the sacrum is in doubt and the ribs disagree: the labels follow the ribs, and
  the result stays uncertain with both landmarks named;
- a clean count from the sacrum and the ribs disagree: the labels stay, and a note says so (a
  rib variant or transitional anatomy).

The ribs say nothing when the boxes lie mostly outside the field of view (a narrow sagittal
slab) or no clear step is seen once along the column.
"""

from __future__ import annotations

from collections.abc import Sequence

from RefractureRiskLib.roi.detection import CentreLine, DetectionGrid, Segment
from RefractureRiskLib.roi.labelling import Labelling, counted_names, is_count_doubt
from RefractureRiskLib.roi.landmarks import side_box_shares

#: The boxes beside each body where a rib runs and a transverse process does not (mm from the
#: centre line, in the body's frame): lateral beyond the longest lumbar transverse process,
#: behind the body's centre, and along the line from the body's centre to a little below its
#: lower end plate (a rib descends as it runs out from its head at the body, so beside the
#: upper half of the body below it a rib of the body above may pass).
RIB_LATERAL_MM = (50.0, 64.0)
RIB_DEPTH_MM = (-46.0, -15.0)
RIB_BELOW_MM = 4.0
#: A box counts when at least this share of it lies in the field of view (a rib crosses the
#: box, so a narrow sagittal slab that shows part of it shows the rib).
RIB_MIN_COVERED = 0.6
#: Marrow share (smaller side) at or above which a body bears ribs, and at or below which it
#: clearly bears none. Chosen on the world generator's development set (120 studies; 0.10
#: found fewer last ribs, and the box over the whole body took the descending rib of the body
#: above for a rib of its own): every disagreement with a clean count from the sacrum there was
#: a true rib variant (T11 or L1 as the last rib-bearing vertebra).
RIB_MIN_SHARE = 0.07
NO_RIB_MAX_SHARE = 0.04
#: The level the last rib-bearing vertebra is taken for.
LAST_RIB_LEVEL = "T12"


def rib_shares(grid: DetectionGrid, line: CentreLine, segs: Sequence[Segment]) -> list:
    """Per body, the smaller side's marrow share of the rib boxes (None: boxes not in view)."""
    out: list[float | None] = []
    for seg in segs:
        lower = Segment(seg.centre_mm, seg.t1_mm)
        along = (0.0, RIB_BELOW_MM)
        shares = side_box_shares(
            grid, line, lower, RIB_LATERAL_MM, RIB_DEPTH_MM, along, 2.5, RIB_MIN_COVERED
        )
        out.append(None if shares is None else min(shares))
    return out


def last_rib_index(shares: Sequence[float | None]) -> int | None:
    """The index of the last rib-bearing body: two bodies with ribs above two without, seen
    exactly once along the column; or, when the column starts there (the body above out of
    view), the top body with ribs above two without and no rib below; None when the ribs say
    nothing."""
    found = []
    for i in range(1, len(shares) - 2):
        window = shares[i - 1 : i + 3]
        if any(s is None for s in window):
            continue
        above, below = window[:2], window[2:]
        if min(above) >= RIB_MIN_SHARE and max(below) <= NO_RIB_MAX_SHARE:  # type: ignore[type-var]
            found.append(i)
    if len(found) == 1:
        return found[0]
    first = [float(s) for s in shares[:3] if s is not None]
    if found or len(first) < 3:
        return None
    ribs_below = any(s is not None and s >= RIB_MIN_SHARE for s in shares[1:])
    if first[0] >= RIB_MIN_SHARE and max(first[1:]) <= NO_RIB_MAX_SHARE and not ribs_below:
        return 0
    return None


def check_count_with_ribs(
    lab: Labelling,
    segs: list[Segment],
    gaps: list[tuple[float, float, str]],
    last_rib: int | None,
) -> tuple[Labelling, list[str]]:
    """The count from the sacrum (and alae) checked against the last rib-bearing body
    ``last_rib`` (see the module docstring); returns the labelling and notes."""
    if last_rib is None or not lab.names:
        return lab, []
    by_ribs = counted_names(segs, gaps, last_rib, LAST_RIB_LEVEL)
    kept = tuple(r for r in lab.reasons if not is_count_doubt(r))
    if tuple(by_ribs) == tuple(lab.names):
        conf = tuple(max(c, 0.9) for c in lab.confidence)
        return Labelling(lab.names, conf, kept, lab.sacrum_found), []
    said = lab.names[last_rib] or "unlabelled"
    if len(kept) < len(lab.reasons):
        reason = (
            f"the count from the sacrum was in doubt and puts the last rib-bearing vertebra at "
            f"{said}: labels follow the ribs ({LAST_RIB_LEVEL}; ribs can also end at T11 or L1)"
        )
        conf = tuple(0.7 for _ in segs)
        return Labelling(by_ribs, conf, (*kept, reason), lab.sacrum_found), []
    note = (
        f"the last rib-bearing vertebra is {said} by the count from the sacrum, not "
        f"{LAST_RIB_LEVEL}: a rib variant or transitional anatomy (labels follow the sacrum)"
    )
    return lab, [note]


__all__ = [
    "LAST_RIB_LEVEL",
    "check_count_with_ribs",
    "last_rib_index",
    "rib_shares",
]
