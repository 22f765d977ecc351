"""Automatic vertebral ROIs: where the sacral alae begin along the lowest fused run.

The lowest run of marrow is often one piece with no disc seen in it, and
:mod:`RefractureRiskLib.roi.labelling` cuts it and takes its upper part for S1 over the fused
sacrum. If the L5/S1 disc was missed instead, the upper part is L5 and every label is one level
too high. The boxes beside each cut part (:mod:`RefractureRiskLib.roi.landmarks`) do not tell
the two apart when the cut does not fall on the real disc: each part then holds some of S1.

The alae do not depend on where the run was cut: they spread from S1's upper end plate down.
So beside the run, from its top, the marrow share of the boxes (in steps of
:data:`STEP_MM`) is near zero along L5 and jumps where S1 begins. A jump more than a body
below the run's top (:data:`L5_ABOVE_FRAC` of the median body above the run) puts L5 on top
of the run: the labels move down by one, with a reason (still warned). Anything else leaves
the labels as they are.
"""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.roi.detection import CentreLine, DetectionGrid, Segment
from RefractureRiskLib.roi.labelling import Labelling, counted_names
from RefractureRiskLib.roi.landmarks import ALA_DEPTH_MM, ALA_LATERAL_MM, side_box_shares

#: Length (mm) of each step of the profile along the run.
STEP_MM = 4.0
#: Marrow share (smaller side) at which the alae have begun, and below which every step above
#: that one must lie (a clear jump, not the slow rise of transverse processes or iliac crests).
ONSET_SHARE = 0.35
CLEAR_SHARE = 0.25
#: Steps of rise allowed between the two (the boxes straddle the ala's upper edge).
RAMP_STEPS = 2
#: Onset depth below the run's top, as a share of the median body above the run, from which
#: the run's top is L5: L5 and the missed disc (about 1.3-1.4 bodies) lie above the onset,
#: while S1's ala may begin a little below its end plate. On the development sets (245
#: studies) the onset lay 0-20 mm (0-1.1 bodies) below the top where S1 was on top and 28-40
#: mm (1.3-1.5 bodies) where L5 was; 1.0 named one S1-on-top run wrongly.
L5_ABOVE_FRAC = 1.2
#: The reason given when the alae put L5 on top of the lowest run.
L5_ON_TOP_REASON = "the sacral alae begin"


def ala_profile(grid: DetectionGrid, line: CentreLine, t0_mm: float, t1_mm: float) -> list:
    """Smaller side's marrow share of the ala boxes per :data:`STEP_MM` from ``t0_mm`` to
    ``t1_mm`` along the line (None where the boxes are not in view)."""
    out: list[float | None] = []
    for t in np.arange(t0_mm, t1_mm - 0.5 * STEP_MM, STEP_MM):
        step = Segment(float(t), float(t) + STEP_MM)
        shares = side_box_shares(grid, line, step, ALA_LATERAL_MM, ALA_DEPTH_MM, (0.0, 0.0), 2.5)
        out.append(None if shares is None else min(shares))
    return out


def onset_depth_mm(profile: list) -> float | None:
    """Depth (mm from the first step) of the first step at :data:`ONSET_SHARE` or more, when
    every step above it was seen and, but for a rise of up to :data:`RAMP_STEPS` steps just
    above it, below :data:`CLEAR_SHARE`; None otherwise."""
    for k, share in enumerate(profile):
        if share is None:
            return None
        if share >= ONSET_SHARE:
            flat = profile[: max(0, k - RAMP_STEPS)]
            return k * STEP_MM if all(v < CLEAR_SHARE for v in flat) else None
    return None


def check_fused_run(
    lab: Labelling,
    segs: list[Segment],
    gaps: list[tuple[float, float, str]],
    grid: DetectionGrid,
    line: CentreLine,
) -> Labelling:
    """The labels of a lowest fused run taken for S1 over the sacrum, checked against where
    the alae begin beside it (see the module docstring)."""
    n = len(segs)
    if n < 3 or len(gaps) < n - 1 or gaps[n - 2][2] != "fused" or lab.names[n - 2] != "S1":
        return lab
    top = segs[n - 2].t0_mm
    depth = onset_depth_mm(ala_profile(grid, line, top, segs[n - 1].t1_mm))
    body = float(np.median([s.length_mm for s in segs[max(0, n - 6) : n - 2]]))
    if depth is not None and body > 0 and depth >= L5_ABOVE_FRAC * body:
        reason = (
            f"{L5_ON_TOP_REASON} {depth:.0f} mm below the top of the lowest run (bodies "
            f"{body:.0f} mm): L5 above S1 across a missed L5/S1 disc; labels follow the alae"
        )
        names = counted_names(segs, gaps, n - 1, "S1")
        conf = tuple(min(c, 0.5) for c in lab.confidence)
        return Labelling(names, conf, (*lab.reasons, reason), lab.sacrum_found)
    return lab


__all__ = ["ala_profile", "check_fused_run", "onset_depth_mm"]
