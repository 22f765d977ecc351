"""Automatic vertebral ROIs, a second counting landmark: the sacral alae.

S1 is the only body in the lumbosacral column with bone at its sides: the sacral alae spread
laterally from the S1 body, in line with it (not behind it, where the transverse processes and
ribs are), to the sacroiliac joints. Beside a lumbar body, at the same depth, lies the psoas
(muscle, not marrow). So the share of marrow in two boxes lateral to a body, one each side,
tells S1 from L5 without counting discs, and is checked against the count from the sacral
junction (:mod:`RefractureRiskLib.roi.labelling`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.roi.detection import CentreLine, DetectionGrid, Segment, axes_from_tangent
from RefractureRiskLib.roi.labelling import (
    CUT_S1_REASON,
    FUSED_LOWEST_REASON,
    THIN_L5S1_REASON,
    Labelling,
    counted_names,
    is_count_doubt,
    level_positions,
)
from RefractureRiskLib.roi.line_points import values_at

#: The boxes beside a body, in the body's frame (mm from the centre line): lateral, beyond the
#: widest lumbar body's half-width (about 25 mm) and short of the iliac wings; and within the
#: body's depth, so the transverse processes and ribs behind the body do not count.
ALA_LATERAL_MM = (30.0, 50.0)
ALA_DEPTH_MM = (0.0, 12.0)
#: A box counts when at least this share of it lies inside the field of view: the share of
#: marrow is taken over the part in view. The lowest body often lies at the lower edge of the
#: field of view, and a slightly tilted or rotated column takes one of its boxes partly below
#: that edge (36-58% in view seen); the alae fill their box from side to side, so a quarter in
#: view shows them, and a narrow sagittal slab that misses the boxes still says nothing. On
#: the development sets (220 world studies), from 0.6 to 0.25: 3 more studies fully right (25
#: more levels), 7 right ones fewer warned; 0.1 judged boxes too small to be sure (worse).
MIN_COVERED = 0.25
#: Marrow share (of the smaller side) above which a body has alae, and the least ratio to the
#: share beside the body above it. Beside a lumbar body lies the psoas (share near 0), but on
#: real anatomy L5's transverse processes and the iliac crests reach into the boxes (shares
#: up to about 0.4 seen), so only a clear jump decides; otherwise the alae say nothing.
ALA_MIN_SHARE = 0.45
ALA_MIN_RATIO = 1.5
#: A weaker step that only confirms a guess: when no sacral junction was found and the lowest
#: body was taken for S1 by default, a share of at least this much beside it and this many
#: times the share beside the body above it confirms that guess (the labels are not changed,
#: the doubt is settled). Real alae lie partly behind the boxes and fill a third to a half of
#: them (0.34-0.44 seen beside the real S1 of realct, 0.07-0.19 beside its L5); on the
#: development sets this settled 19 of 41 right realct studies warned only for that and no
#: wrong one (0.25-0.3 and 2.0-2.5 gave the same); the world studies were unchanged.
ALA_CONFIRM_SHARE = 0.3
ALA_CONFIRM_RATIO = 2.0
#: Below this share on both sides a body has no alae: it is not S1 (lumbar bodies only).
NO_ALA_MAX_SHARE = 0.1


def lateral_marrow_share(
    grid: DetectionGrid, line: CentreLine, seg: Segment
) -> tuple[float, float] | None:
    """Marrow share (0-1) of the left and right boxes beside ``seg`` where the sacral alae
    lie; None when less than :data:`MIN_COVERED` of either box lies in the field of view (a
    narrow sagittal slab)."""
    return side_box_shares(grid, line, seg, ALA_LATERAL_MM, ALA_DEPTH_MM, (2.0, -1.0), 2.5)


def box_samples(
    seg: Segment,
    lateral_mm: tuple[float, float],
    depth_mm: tuple[float, float],
    along_mm: tuple[float, float],
    depth_step_mm: float,
) -> tuple[npt.NDArray, npt.NDArray, npt.NDArray]:
    """Where :func:`side_box_shares` samples a box: arc lengths (mm, every 2 mm; the segment's
    centre when the range is empty), and the lateral and depth offsets (mm) of each sample in a
    cross-section, as columns."""
    ts = np.arange(seg.t0_mm + along_mm[0], seg.t1_mm + along_mm[1], 2.0)
    if ts.size == 0:
        ts = np.array([seg.centre_mm])
    us = np.arange(lateral_mm[0], lateral_mm[1] + 0.1, 2.0)
    vs = np.arange(depth_mm[0], depth_mm[1] + 0.1, depth_step_mm)
    uu, vv = (a.reshape(-1, 1) for a in np.meshgrid(us, vs, indexing="ij"))
    return ts, uu, vv


def side_box_shares(
    grid: DetectionGrid,
    line: CentreLine,
    seg: Segment,
    lateral_mm: tuple[float, float],
    depth_mm: tuple[float, float],
    along_mm: tuple[float, float],
    depth_step_mm: float,
    min_covered: float = MIN_COVERED,
) -> tuple[float, float] | None:
    """Marrow share (0-1) of two boxes at either side of ``seg``, in the body's frame: from
    ``lateral_mm[0]`` to ``lateral_mm[1]`` right and left of the centre line, ``depth_mm``
    anterior (negative: posterior), and along the line from ``seg.t0_mm + along_mm[0]`` to
    ``seg.t1_mm + along_mm[1]``. None when less than ``min_covered`` of either box lies in the
    field of view."""
    ts, uu, vv = box_samples(seg, lateral_mm, depth_mm, along_mm, depth_step_mm)
    # Every position's frame once, both sides and all positions at once: the same elementwise
    # products and sums as point set by point set, and one (points x 4) @ (4 x 4) product per
    # position and side as before (a stacked matmul multiplies each block on its own).
    frames = [line.at(float(t)) for t in ts]
    axes = [axes_from_tangent(tang) for _, tang in frames]
    p = np.array([f[0] for f in frames], float)[:, None, None, :]
    right = np.array([a[0] for a in axes], float)[:, None, None, :]
    ant = np.array([a[1] for a in axes], float)[:, None, None, :]
    side = np.array([-1.0, 1.0])[None, :, None, None]
    points = np.ones((len(ts), 2, len(uu), 4))
    points[..., :3] = p + side * uu * right + vv * ant
    found, ok = values_at(grid.marrow, grid.mat, points)
    total = len(ts) * len(uu)
    inside = ok.sum(axis=(0, 2))
    if total == 0 or inside.min() < min_covered * total:
        return None
    hits = found.sum(axis=(0, 2), dtype=np.int64)
    return int(hits[0]) / int(inside[0]), int(hits[1]) / int(inside[1])


def s1_from_alae(
    shares: list[tuple[float, float] | None],
    min_share: float = ALA_MIN_SHARE,
    min_ratio: float = ALA_MIN_RATIO,
) -> int | None:
    """Index of the segment taken for S1 by its alae: the highest segment with alae (the
    smaller side's share at least ``min_share`` and ``min_ratio`` times the share beside the
    body above it). None when no segment decides (alae not in view, or no clear jump)."""
    side = [None if s is None else min(s) for s in shares]
    for i in range(1, len(side)):
        cur, above = side[i], side[i - 1]
        if cur is None or above is None:
            continue
        if cur >= min_share and cur >= min_ratio * above:
            return i
    return None


def check_count_with_alae(
    lab: Labelling,
    grid: DetectionGrid,
    line: CentreLine,
    segs: list[Segment],
    gaps: list[tuple[float, float, str]],
) -> Labelling:
    """The labels counted from the sacral junction, checked against the alae beside the lowest
    six bodies (:func:`with_alae`)."""
    low = max(0, len(segs) - 6)
    shares = [None] * low + [lateral_marrow_share(grid, line, s) for s in segs[low:]]
    if not shares:
        return lab
    weak = s1_from_alae(shares, ALA_CONFIRM_SHARE, ALA_CONFIRM_RATIO)
    return with_alae(lab, segs, gaps, s1_from_alae(shares), has_no_alae(shares[-1]), weak)


def has_no_alae(share: tuple[float, float] | None) -> bool:
    """Whether a body clearly has no alae (both boxes seen, both nearly free of marrow)."""
    return share is not None and max(share) < NO_ALA_MAX_SHARE


def with_alae(
    lab: Labelling,
    segs: list[Segment],
    gaps: list[tuple[float, float, str]],
    ala_s1: int | None,
    lowest_without_alae: bool = False,
    weak_s1: int | None = None,
) -> Labelling:
    """The count checked against the second landmark, the sacral alae (``ala_s1``: index of
    the segment with alae, or None when they say nothing; ``lowest_without_alae``: the lowest
    body clearly has none; ``weak_s1``: index of the segment a weaker step confirms,
    :data:`ALA_CONFIRM_SHARE`).

    - Sacrum not found from the junction, or the lowest segment taken for S1 only because it
      is long and cut by the field of view: levels counted up from the alae instead; with no
      alae anywhere and none beside the lowest body, that body is taken for L5, not S1 (the
      field of view ends above the sacrum; a long L5 is cut), still with the warning. With no
      junction found and the lowest body taken for S1 by default, a weaker step beside that
      body (``weak_s1``) confirms the guess: the doubt is settled, the labels stay.
    - Both found and agreeing (or, with no clear step anywhere, a weaker one beside the body
      counted as S1): the doubts about a lowest run split without a disc and about a thin
      disc above S1 are settled. A thin L5/S1 disc is common (degeneration); on the
      development sets that doubt was raised on 19 right studies and 4 wrong ones; the alae
      settled it on 9 right ones and on one wrong one, whose wrong labels lie at the top of
      the column (a count from the sacrum it did not doubt rightly).
    - Both found and disagreeing: both landmarks are named in a reason, and the labels stay
      as counted from the junction, unless the labelling already doubts where that count
      starts (:data:`COUNT_DOUBTS`: a lowest run split with no disc seen, a thin lowest disc
      above a full-sized body, signs of transitional anatomy): then they follow the alae,
      which do not depend on the disc that is in doubt. On the development sets (245 studies)
      that gave 5 such studies right and lost 1 (S1's alae seen on one side only).
    """
    if not segs:
        return lab
    s1 = lab.names.index("S1") if "S1" in lab.names else None
    if ala_s1 is None:
        confirmed = weak_s1 == len(segs) - 1
        checked = _lowest_body_checked(lab, segs, gaps, lowest_without_alae, confirmed)
        if checked is lab and lab.sacrum_found and s1 is not None and weak_s1 == s1:
            return _settled(lab, (THIN_L5S1_REASON,))
        return checked
    if not lab.sacrum_found or s1 is None:
        names = counted_names(segs, gaps, ala_s1, "S1")
        reasons = tuple(r for r in lab.reasons if not r.startswith("sacrum not found"))
        return Labelling(names, tuple(0.9 for _ in segs), reasons, True)
    if s1 == ala_s1:
        return _settled(lab, (FUSED_LOWEST_REASON, CUT_S1_REASON, THIN_L5S1_REASON))
    pos = level_positions(segs, gaps)
    shift = pos[ala_s1] - pos[s1]
    doubted = any(is_count_doubt(r) for r in lab.reasons)
    reasons = (
        *lab.reasons,
        f"the two counting landmarks disagree: the sacral alae put S1 {abs(shift)} level"
        f"{'s' if abs(shift) != 1 else ''} {'lower' if shift > 0 else 'higher'} than the "
        f"sacral junction does (labels follow the {'alae' if doubted else 'junction'})",
    )
    names = counted_names(segs, gaps, ala_s1, "S1") if doubted else lab.names
    return Labelling(names, tuple(min(c, 0.5) for c in lab.confidence), reasons, True)


def _settled(lab: Labelling, doubts: tuple[str, ...]) -> Labelling:
    """``lab`` without the reasons that hold any of ``doubts`` (settled by the alae)."""
    reasons = tuple(r for r in lab.reasons if not any(d in r for d in doubts))
    return Labelling(lab.names, lab.confidence, reasons, lab.sacrum_found)


def _lowest_body_checked(
    lab: Labelling,
    segs: list[Segment],
    gaps: list[tuple[float, float, str]],
    without_alae: bool,
    confirmed: bool,
) -> Labelling:
    """:func:`with_alae` where the alae name no body: a lowest body taken for S1 by default
    is confirmed by a weaker step beside it (``confirmed``), or taken for L5 when it clearly
    has no alae (``without_alae``); otherwise the labels stay."""
    if confirmed and not lab.sacrum_found and lab.names[-1] == "S1":
        reasons = tuple(r for r in lab.reasons if not r.startswith("sacrum not found"))
        return Labelling(lab.names, tuple(0.9 for _ in segs), reasons, True)
    guessed = [r for r in lab.reasons if r.startswith("sacrum not found") or CUT_S1_REASON in r]
    if not guessed or not without_alae:
        return lab
    names = counted_names(segs, gaps, len(segs) - 1, "L5")
    reasons = tuple(
        f"{r}; the lowest body has no sacral alae beside it: taken for L5" if r in guessed else r
        for r in lab.reasons
    )
    return Labelling(names, tuple(min(c, 0.3) for c in lab.confidence), reasons, False)


__all__ = [
    "box_samples",
    "check_count_with_alae",
    "has_no_alae",
    "lateral_marrow_share",
    "s1_from_alae",
    "side_box_shares",
    "with_alae",
]
