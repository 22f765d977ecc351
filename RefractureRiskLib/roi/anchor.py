"""Automatic vertebral ROIs, the anchor: the body around the user's click, found on its own.

Step 5's override (:mod:`RefractureRiskLib.roi.auto`): the click is segmented like a manual
point, so a body the detector missed can still be named; a click outside bone is refused.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.roi.body import (
    BONE_RADIUS_MM,
    StudyArrays,
    in_vertebral_bone,
)
from RefractureRiskLib.roi.column_line import ANCHOR_SAME_BODY_MM
from RefractureRiskLib.roi.detection import CentreLine, Segment, in_a_segment
from RefractureRiskLib.roi.geometry import CoreRoiParams
from RefractureRiskLib.roi.labelling import Anchor, anchor_level
from RefractureRiskLib.roi.marrow import MarrowCriteria
from RefractureRiskLib.roi.missing import insert_segment
from RefractureRiskLib.roi.seeded import place_at_seed


def anchored_body(
    arrays: StudyArrays, anchor: Anchor, params: CoreRoiParams, criteria: MarrowCriteria
) -> npt.NDArray[np.float64]:
    """Centre (RAS mm) of the vertebral body around the user's anchor click.

    The body is segmented around the click itself (as for a manual point), not snapped to a
    body found earlier, so a body the detector missed can still be named. A click in an
    oedematous or cemented body (no marrow fat to segment) is accepted at the click when the
    tissue around it is bone; a click outside bone is refused.
    """
    level = anchor_level(anchor)
    p = np.asarray(anchor.point_ras, float)
    where = f"anchor {level} at ({', '.join(f'{v:g}' for v in p)}) RAS mm"
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        raise InputError(where, "x, y and z must be finite numbers (RAS mm)")
    ijk = (np.r_[p, 1.0] @ np.linalg.inv(arrays.ijk_to_ras).T)[:3]
    if np.any(ijk < -0.5) or np.any(ijk > np.asarray(arrays.shape[::-1]) - 0.5):
        raise InputError(where, "lies outside the image (RAS, not LPS?)")
    placed = place_at_seed(arrays, p, params, criteria)
    if placed.frame is not None:
        return np.asarray(placed.frame.centre_ras, float)
    inside, pdff_here = in_vertebral_bone(arrays, p, criteria)
    if inside:
        return p
    raise InputError(
        where,
        f"is not inside bone (no vertebral marrow within {BONE_RADIUS_MM:g} mm; PDFF "
        f"there {pdff_here:.0f}%): click inside the {level} vertebral body",
    )


def anchor_segment(
    line: CentreLine,
    segs: list[Segment],
    gaps: list[tuple[float, float, str]],
    anchor: Anchor,
    body_centre: npt.NDArray,
) -> tuple[list[Segment], list[tuple[float, float, str]], Anchor]:
    """The bodies along the column with the clicked one among them, and the point to count from.

    A click inside a body found along the column names that body (the click, not the centre of
    the body segmented around it, which may reach into a neighbour). Otherwise the body
    segmented around the click names the body it lies in; if it lies in none (the detector
    missed it: oedema, cement, a thick slice over a degenerated disc), it is put into the
    column there, so the count from it does not snap to a neighbour and shift every label.
    When that body's centre lies more than :data:`ANCHOR_SAME_BODY_MM` along the column from
    a click in no body found, it grew into a neighbour: the missed body is put in at the click
    (development: world-dev-216, a click in a missed L1 whose grown body's centre lay 14 mm
    away, inside L2, named L2 "L1" and shifted every label). When there is no room to put it
    in, the click names the body nearest to it (world-dev-172: a click in S1 that lay in the
    gap between a long L5 and the sacrum, its grown body's centre 3 mm nearer L5, named L5
    "S1" and shifted every label).
    """
    level = anchor_level(anchor)
    click = np.asarray(anchor.point_ras, float)
    centre = np.asarray(body_centre, float)
    t_click, t_body = line.nearest(click)[0], line.nearest(centre)[0]
    if in_a_segment(segs, t_click):
        return segs, gaps, Anchor(level, tuple(click))
    half = 0.5 * float(np.median([sg.length_mm for sg in segs])) if segs else 0.0
    if segs and abs(t_body - t_click) > ANCHOR_SAME_BODY_MM:
        # the body grown around a click in no body found reached into a neighbour (its centre
        # lies more than half a small body's height from the click): the click marks the
        # missed body, put in there when there is room
        out_segs, out_gaps, k = insert_segment(segs, gaps, t_click, half, line)
        if k is not None:
            return out_segs, out_gaps, Anchor(level, tuple(click))
    at_body = Anchor(level, tuple(centre))
    if in_a_segment(segs, t_body) or not segs:
        return segs, gaps, at_body
    out_segs, out_gaps, k = insert_segment(segs, gaps, t_body, half, line)
    if k is None:
        # no room for it between the bodies found: the click, not the grown body's centre
        # (which may lean towards a neighbour), names the body nearest to it
        return segs, gaps, Anchor(level, tuple(click))
    return out_segs, out_gaps, at_body


__all__ = ["anchor_segment", "anchored_body"]
