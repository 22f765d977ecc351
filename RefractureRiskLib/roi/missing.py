"""Automatic vertebral ROIs, bodies the detector missed: put into the column where the count
says they are, so each level still gets its ROI.

A body with oedema, cement or a degenerated end plate can leave no body on the profile along
the column. The count then steps over it (:func:`RefractureRiskLib.roi.labelling.level_positions`:
bodies about two spacings apart have one missed between them), and an anchor click may land on
it. Here such a body is put between its neighbours (clear of them), so it is segmented and
measured like the others; when it cannot be segmented there, the level says so. A body missed
at the top of the column, where the field of view has room for it, is put in a spacing above
the top body found (:func:`fill_top_level`).
"""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.roi.detection import CentreLine, Segment, in_a_segment
from RefractureRiskLib.roi.labelling import Labelling, counted_names, level_positions

#: A missed body is put in only where the gap holds at least this share of the column's median
#: body length (clear of the bodies beside it).
MIN_INSERTED_FRAC = 0.5
#: Clearance (mm) kept between an inserted body and the bodies found beside it.
INSERT_CLEARANCE_MM = 2.0

Gaps = list[tuple[float, float, str]]


def insert_segment(
    segs: list[Segment], gaps: Gaps, t: float, half: float, line: CentreLine
) -> tuple[list[Segment], Gaps, int | None]:
    """``segs`` and ``gaps`` with a body of half-length ``half`` (mm) centred at arc length
    ``t`` of ``line``, trimmed clear of its neighbours and of the line's ends, and its index;
    the input unchanged and None when the room is too short for a body."""
    above = max((sg.t1_mm for sg in segs if sg.t1_mm < t), default=float(line.t_mm[0]))
    below = min((sg.t0_mm for sg in segs if sg.t0_mm > t), default=float(line.t_mm[-1]))
    t0 = max(t - half, above + INSERT_CLEARANCE_MM)
    t1 = min(t + half, below - INSERT_CLEARANCE_MM)
    if t1 - t0 < MIN_INSERTED_FRAC * 2 * half or in_a_segment(segs, t):
        return segs, gaps, None
    k = sum(sg.t1_mm < t for sg in segs)
    out_gaps = [g for g in gaps if g[1] <= above or g[0] >= below]
    if k > 0:
        out_gaps.append((above, t0, "gap"))
    if k < len(segs):
        out_gaps.append((t1, below, "gap"))
    out_gaps.sort(key=lambda g: g[0])
    return [*segs[:k], Segment(t0, t1), *segs[k:]], out_gaps, k


def fill_skipped_levels(
    segs: list[Segment], gaps: Gaps, lab: Labelling, line: CentreLine
) -> tuple[list[Segment], Gaps, Labelling, list[str]]:
    """Each level the count steps over between two named bodies put in as a body, evenly
    spaced between them; the labelling recounted from a named body; notes naming them."""
    named = [i for i, n in enumerate(lab.names) if n is not None]
    if len(segs) < 4 or not named:
        return segs, gaps, lab, []
    pos = level_positions(segs, gaps)
    half = 0.5 * float(np.median([sg.length_mm for sg in segs]))
    out_segs, out_gaps, added = segs, gaps, []
    for i in range(len(segs) - 1):
        step = pos[i + 1] - pos[i]
        c0, c1 = segs[i].centre_mm, segs[i + 1].centre_mm
        for j in range(1, step):
            t = c0 + j * (c1 - c0) / step
            out_segs, out_gaps, k = insert_segment(out_segs, out_gaps, t, half, line)
            if k is not None:
                added.append(t)
    if not added:
        return segs, gaps, lab, []
    ref = named[0]
    new_ref = out_segs.index(segs[ref])
    names = counted_names(out_segs, out_gaps, new_ref, str(lab.names[ref]))
    old_conf = dict(zip(map(id, segs), lab.confidence, strict=True))
    conf = tuple(old_conf.get(id(sg), min(lab.confidence)) for sg in out_segs)
    notes = [
        f"{names[out_segs.index(sg)]}: no body was found along the column where the count puts "
        "it; one was placed between its neighbours"
        for sg in out_segs
        if id(sg) not in old_conf and names[out_segs.index(sg)] is not None
    ]
    return out_segs, out_gaps, Labelling(names, conf, lab.reasons, lab.sacrum_found), notes


def fill_top_level(
    segs: list[Segment], gaps: Gaps, lab: Labelling, line: CentreLine, room_above: bool
) -> tuple[list[Segment], Gaps, Labelling, list[str]]:
    """A body put in one spacing above the top body when the count names that body below T10
    and the field of view has room for one above it (``room_above``): a vertebra lies there
    in every spine (a crushed or oedematous body, or a thin thoracic one, leaves no marrow run
    on the profile). Returns the segments, gaps and labelling (recounted from the named body
    below) and the reason to report: that the top level was put in, or, when there is no room
    along the line, that the column ends inside the field of view. Either way the study is
    warned: the body put in lies on the line's extrapolation, which at the top can drift off
    the column (development sets: 9 such levels put in on the world set, 6 in their body,
    3 outside every body, those studies warned)."""
    top = lab.names[0] if lab.names else None
    if top is None or top == "T10" or not room_above:
        return segs, gaps, lab, []
    ended = [f"fewer bodies than expected: the column ends at {top} inside the field of view"]
    if len(segs) < 4:
        return segs, gaps, lab, ended
    pitch = float(np.median(np.diff([sg.centre_mm for sg in segs[:4]])))
    half = 0.5 * float(np.median([sg.length_mm for sg in segs[:3]]))
    t = segs[0].centre_mm - pitch
    if t - half < float(line.t_mm[0]):
        return segs, gaps, lab, ended
    out_segs, out_gaps, k = insert_segment(segs, gaps, t, half, line)
    if k is None:
        return segs, gaps, lab, ended
    names = counted_names(out_segs, out_gaps, 1, top)
    conf = (min(lab.confidence), *lab.confidence)
    reason = (
        f"{names[0]}: no body was found above {top} where the field of view has room for one; "
        "one was placed a spacing above it"
    )
    return out_segs, out_gaps, Labelling(names, conf, lab.reasons, lab.sacrum_found), [reason]


__all__ = ["fill_skipped_levels", "fill_top_level", "insert_segment"]
