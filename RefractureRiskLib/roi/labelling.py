"""Automatic vertebral ROIs, labelling: level names for the bodies found along the column.

Step 5 of :mod:`RefractureRiskLib.roi.auto` (see its docstring): over-long segments split (a
missed disc), the sacral S1/S2 junction found (a thin or fused lowest gap, or a dip of the
marrow share), levels counted up from S1, signs of lumbosacral transitional anatomy (a
sacralised L5 or lumbarised S1, which shift that count by one) and irregular spacing reported,
and one user-named :class:`Anchor` point overriding the count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS, level_index
from RefractureRiskLib.roi.detection import Segment

#: A gap shorter than this share of the median disc gap is a rudimentary disc (sacral fusion).
THIN_DISC_FRAC = 0.6
#: An anchor point farther than this from the centre line is refused, not snapped to a body.
ANCHOR_MAX_DISTANCE_MM = 60.0
#: S1 is about as tall as L5; a body above the sacral junction shorter than this share of the
#: median of the (up to four) bodies above it is more likely S2 below a lumbarised S1. In 90
#: random normal evaluation studies (seeds 0, 1) this ratio was 0.87-1.3 (0.75-0.84 only where
#: the lowest run was split evenly, not judged), in 30 lumbarised ones 0.73-0.83.
SHORT_S1_FRAC = 0.85
#: A lowest segment cut by the field of view and at least this multiple of the median body
#: above it holds S1 and the fused sacrum below.
SACRUM_SEGMENT_FACTOR = 1.15
#: Below the rudimentary S1/S2 disc only a sacral remnant smaller than a body is expected: a
#: body below a thin lowest disc at least this share of the bodies above is full-sized.
FULL_BODY_BELOW_FRAC = 0.9
#: A lowest run cut in equal parts with no disc seen at all may hold two bodies (L5 and S1
#: across a missed disc, the lower one cut by the field of view) from this multiple of the
#: median body above it on.
EVEN_RUN_TWO_BODIES = 1.5
#: Bodies whose centres lie at least this multiple of the column's median spacing apart have a
#: body missing between them (not found: fracture oedema, cement, noise): the count skips it.
MISSING_BODY_SPACING = 1.7
#: The spacing each one is judged against is the median of the spacings up to this many places
#: above and below it: thoracic bodies are smaller than lumbar ones, so a missed T10 (crushed)
#: left T9 and T11 1.9 local spacings apart but only 1.5 column medians (world-dev-170; on the
#: development sets one study more fully right, one anchored level more, none lost).
LOCAL_PITCH_REACH = 2
#: ... or at least this multiple when the gap between them also holds room for the missed body
#: (a fractured one: :data:`MISSED_BODY_FRAC` of the median body) between two discs.
ROOMY_SPACING = 1.45
MISSED_BODY_FRAC = 0.5
#: A gap also holds a missed body from this multiple of the median gap on, when the bodies
#: on both sides of it are whole (each at least :data:`WHOLE_BODY_FRAC` of the median length,
#: neither one part of a run split where no disc was seen): a body missed between two found
#: ones leaves a wide gap, and the neighbour that took part of it grows long, so the gap is
#: short of the room for a whole body (T11 missed between T10 and a 29-32 mm T12, gaps of
#: 19-20 mm against 8-9 mm, spacings 1.5-1.6 local ones). A wide gap beside a body found only
#: in part (fractured, 11-13 mm) or beside a split run is no sign. Development sets: world
#: levels right 1694 -> 1702 of 1863 (3 studies better, 2 of them now fully right, one of
#: those wrong without a warning before), one anchor at every third level 4873 -> 4892 of
#: 5021 with no anchored run worse, realct and phantom unchanged. At 1.8 median gaps 3 levels
#: more, but one anchored run lost 3 levels; a disc up to about 1.8 median gaps wide is seen.
WIDE_GAP_FACTOR = 2.0
WHOLE_BODY_FRAC = 0.7
#: Below the S1/S2 junction the field of view shows at most S2 and S3 (with S4 a sliver), up to
#: about 1.8 median bodies of fused sacrum; more than this multiple holds S1 as well: the
#: junction found may be a sacralised L5's rudimentary L5/S1 disc.
SACRALISED_BELOW_FACTOR = 1.9
#: The reason :func:`label_segments` gives for a lowest run split with no disc seen; the
#: sacral alae (:mod:`RefractureRiskLib.roi.landmarks`) settle it when they agree.
FUSED_LOWEST_REASON = "hold two bodies with no disc seen between them"
#: ... and for a long lowest segment cut by the field of view taken for S1 and the sacrum.
CUT_S1_REASON = "runs out of the field of view: taken for S1 with the sacrum, no junction seen"
#: The doubt raised by a thin gap just above the body taken for S1 (a sacralised L5's
#: rudimentary L5/S1 disc, or the true S1/S2 junction above the one found); the sacral alae
#: settle it when they confirm that body as S1 (:mod:`RefractureRiskLib.roi.landmarks`).
THIN_L5S1_REASON = "possible transitional anatomy: thin L5/S1 disc"
#: Reasons that doubt where the count from the sacrum starts (not the bodies between): a second
#: landmark that agrees settles them, and an anchor's count makes them moot.
COUNT_DOUBTS = (
    "sacrum not found",
    FUSED_LOWEST_REASON,
    CUT_S1_REASON,
    "possible transitional anatomy",
    "the thin lowest disc",
    "the two counting landmarks disagree",
)


def is_count_doubt(reason: str) -> bool:
    """Whether ``reason`` doubts where the count from the sacrum starts (:data:`COUNT_DOUBTS`)."""
    return any(key in reason for key in COUNT_DOUBTS)


# -- 5. labels --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Anchor:
    """A user-named point: ``level`` (e.g. "L3") at ``point_ras`` (RAS, mm) inside that body."""

    level: str
    point_ras: tuple[float, float, float]


@dataclass(frozen=True)
class Labelling:
    """Level names per segment (None = not a measured level), with reasons and confidences."""

    names: tuple[str | None, ...]
    confidence: tuple[float, ...]
    reasons: tuple[str, ...]
    sacrum_found: bool


def level_positions(segs: list[Segment], gaps: list[tuple[float, float, str]]) -> list[int]:
    """Position of each segment along the column in vertebral levels (0 for the top one).

    Neighbouring bodies are one level apart, unless their centres are
    :data:`MISSING_BODY_SPACING` spacings apart or more: then the bodies that fit between
    them were missed and the count steps over them. The spacing is the median of the
    neighbouring spacings (:data:`LOCAL_PITCH_REACH` each side; the column's median where there
    are fewer than two), over the mobile spine (the fused sacral junctions are shorter)."""
    pos = [0]
    if len(segs) < 2:
        return pos[: len(segs)]
    d = np.diff([sg.centre_mm for sg in segs])
    mobile = [k for k, g in enumerate(gaps[: len(d)]) if g[2] != "fused"]
    pitch = float(np.median(d[mobile])) if len(mobile) >= 2 else float(np.median(d))
    roomy = _roomy_gaps(segs, gaps, mobile)
    for k, dk in enumerate(d):
        step = 1
        near = [d[j] for j in mobile if 1 <= abs(j - k) <= LOCAL_PITCH_REACH]
        pk = float(np.median(near)) if len(near) >= 2 else pitch
        far = dk >= MISSING_BODY_SPACING * pk or (dk >= ROOMY_SPACING * pk and roomy[k])
        if len(segs) >= 4 and pk > 0 and far:
            step = max(2, round(float(dk) / pk))
        pos.append(pos[-1] + step)
    return pos


def _roomy_gaps(
    segs: list[Segment], gaps: list[tuple[float, float, str]], mobile: list[int]
) -> list[bool]:
    """For each gap between neighbouring segments: does it hold room for a missed body (two
    discs of the median gap and a body of :data:`MISSED_BODY_FRAC` of the median length), or
    is it wide (:data:`WIDE_GAP_FACTOR`) between two whole bodies?"""
    n = len(segs) - 1
    if len(gaps) < n or not mobile:
        return [False] * n
    med_gap = float(np.median([gaps[k][1] - gaps[k][0] for k in mobile]))
    med_len = float(np.median([sg.length_mm for sg in segs]))
    room = 2.0 * med_gap + MISSED_BODY_FRAC * med_len
    whole = [sg.length_mm >= WHOLE_BODY_FRAC * med_len for sg in segs]
    for k in range(n):
        if gaps[k][2] == "missed":  # the two parts of a run split with no disc seen
            whole[k] = whole[k + 1] = False
    out = []
    for k in range(n):
        width = gaps[k][1] - gaps[k][0]
        wide = width >= WIDE_GAP_FACTOR * med_gap and whole[k] and whole[k + 1]
        out.append(gaps[k][2] != "fused" and (width >= room or wide))
    return out


def counted_names(
    segs: list[Segment], gaps: list[tuple[float, float, str]], ref: int, ref_level: str
) -> tuple[str | None, ...]:
    """Level names with segment ``ref`` named ``ref_level``, the others counted from it."""
    pos = level_positions(segs, gaps)
    base = level_index(ref_level)
    names: list[str | None] = []
    for i in range(len(segs)):
        li = base - (pos[ref] - pos[i])
        names.append(VERTEBRAL_LEVELS[li] if 0 <= li < len(VERTEBRAL_LEVELS) else None)
    return tuple(names)


def label_segments(
    segs: list[Segment], gaps: list[tuple[float, float, str]], bottom_in_fov: bool
) -> Labelling:
    """Levels counted up from the sacrum (S1 is above the lowest rudimentary/fused junction)."""
    n = len(segs)
    if n == 0:
        return Labelling((), (), ("no vertebral bodies found",), False)
    glen = np.array([g[1] - g[0] for g in gaps]) if gaps else np.zeros(0)
    real = [i for i, g in enumerate(gaps) if g[2] in ("disc", "gap")]
    med_gap = float(np.median(glen[real])) if real else 10.0
    lengths = np.array([sg.length_mm for sg in segs])
    s1, reasons = _find_s1(gaps, lengths, med_gap, bottom_in_fov)
    if s1 is None:
        if bottom_in_fov:
            reasons.append(
                "sacrum not found: no rudimentary S1/S2 disc at the bottom of the column"
            )
        else:
            reasons.append("sacrum not found: the column leaves the field of view caudally")
        s1 = n - 1  # best guess: the lowest body is S1
    else:
        reasons += _lowest_junction_doubts(gaps, lengths, s1, bottom_in_fov)
        reasons += _transitional_reasons(segs, glen, med_gap, s1)
    names = counted_names(segs, gaps, s1, "S1")
    sacrum_found = not any(r.startswith("sacrum not found") for r in reasons)
    conf = [1.0 if sacrum_found else 0.3] * n
    return Labelling(names, tuple(conf), tuple(reasons), sacrum_found)


def _find_s1(
    gaps: list[tuple[float, float, str]],
    lengths: np.ndarray,
    med_gap: float,
    bottom_in_fov: bool,
) -> tuple[int | None, list[str]]:
    """The index of the S1 segment (None: not found), and the reasons to report about it.

    ``lengths``: the segments' lengths (mm), top to bottom; ``med_gap``: the median length (mm)
    of the real discs and gaps.
    """
    reasons: list[str] = []
    n = len(lengths)
    s1 = None
    # The rudimentary S1/S2 disc: the lowest gap, clearly thinner than the others, with only
    # the sacral remnant (one segment) below it.
    if gaps:
        last = len(gaps) - 1
        g = gaps[last]
        if g[2] == "fused" or (g[1] - g[0]) < THIN_DISC_FRAC * med_gap:
            s1 = last  # segment index above the last gap
    # The field of view cuts the lowest segment, and it is longer than the bodies above it:
    # S1 with the fused sacrum below it (no disc, so one segment). A lumbar body cut by the
    # field of view is shorter than itself, never longer.
    if (
        s1 is None
        and not bottom_in_fov
        and n >= 4
        and lengths[-1] >= SACRUM_SEGMENT_FACTOR * float(np.median(lengths[:-1]))
    ):
        s1 = n - 1
        reasons.append(f"the lowest segment ({lengths[-1]:.0f} mm) {CUT_S1_REASON}")
    return s1, reasons


def _lowest_junction_doubts(
    gaps: list[tuple[float, float, str]], lengths: np.ndarray, s1: int, bottom_in_fov: bool
) -> list[str]:
    """Reasons to doubt an S1 found at the lowest junction (``s1``: its segment index)."""
    reasons: list[str] = []
    if s1 == len(gaps) - 1 and gaps[-1][2] in ("disc", "gap"):
        # A thin lowest disc with a full-sized body below it: a thin (degenerated or
        # transitional) L5/S1 disc looks like the rudimentary S1/S2 one, but the sacral
        # remnant below S1/S2 is smaller than a body unless the field of view shows more.
        above = lengths[max(s1 - 3, 0) : s1 + 1]
        if len(above) >= 2 and lengths[-1] >= FULL_BODY_BELOW_FRAC * float(np.median(above)):
            reasons.append(
                f"the thin lowest disc ({gaps[-1][1] - gaps[-1][0]:.0f} mm) has a full-sized "
                f"body below it ({lengths[-1]:.0f} mm): it may be a thin L5/S1 disc rather than "
                "the sacral S1/S2 junction"
            )
    # a run cut in equal parts (no dip seen at all): its parts' lengths are not measured, so
    # the whole run is judged; it may hold two bodies from this length on
    even = gaps[-1][1] - gaps[-1][0] <= 1.01
    body = float(np.median(lengths[max(s1 - 3, 0) : s1])) if s1 >= 1 else 0.0
    two_bodies = (
        lengths[-1] + lengths[s1] >= EVEN_RUN_TWO_BODIES * body
        if even
        else lengths[-1] >= FULL_BODY_BELOW_FRAC * body
    )
    if (
        s1 == len(gaps) - 1
        and gaps[-1][2] == "fused"
        and (bottom_in_fov or even)
        and s1 >= 2
        and two_bodies
    ):
        # The lowest segment, ending inside the field of view (the sacrum does not go on out
        # of view below it) or cut in equal parts (no dip seen at all), was cut in two with no
        # disc seen between them: S1 above the fused sacrum, or L5 and S1 across a missed
        # L5/S1 disc (which shifts every label).
        reasons.append(
            f"the lowest {lengths[-1] + lengths[s1]:.0f} mm {FUSED_LOWEST_REASON}: taken as S1 "
            "over the fused sacrum; if an L5/S1 disc was missed, every label is one level too "
            "high"
        )
    return reasons


def _transitional_reasons(
    segs: list[Segment], glen: np.ndarray, med_gap: float, s1: int
) -> list[str]:
    """Signs that the count from the sacrum may be off by one (lumbosacral transitional
    anatomy), given the segment ``s1`` taken for S1 (above the lowest thin or fused gap).

    - a thin gap just above S1 as well (a sacralised L5: rudimentary L5/S1 disc);
    - a lowest segment too long for the sacral remnant below the junction: it holds S1 (or
      more) and the junction found may be a sacralised L5/S1 disc;
    - a body taken for S1 much shorter than the bodies above it: S1 is about as tall as L5,
      S2 is not, so S1 may be a lumbarised sixth mobile segment above it. Not judged when the
      lowest segments were cut evenly (a fused run split in equal parts: their lengths are not
      measured).
    """
    reasons = []
    if s1 >= 1 and glen[s1 - 1] < 0.75 * med_gap:
        reasons.append(THIN_L5S1_REASON)
    lengths = np.array([s.length_mm for s in segs])
    above = lengths[max(s1 - 4, 0) : s1]
    if len(above) < 2:
        return reasons
    med_len = float(np.median(above))
    below = lengths[s1 + 1 :]
    if len(below) and below.max() > SACRALISED_BELOW_FACTOR * med_len:
        reasons.append(
            f"possible transitional anatomy: {below.max():.0f} mm of vertebra below the S1/S2 "
            f"junction (median body {med_len:.0f} mm): it may be a sacralised L5/S1 disc"
        )
    even_split = len(below) > 0 and abs(lengths[s1] - below[0]) < 0.5
    if lengths[s1] < SHORT_S1_FRAC * med_len and not even_split:
        reasons.append(
            f"possible transitional anatomy: the body taken for S1 is {lengths[s1]:.0f} mm tall "
            f"(bodies above {med_len:.0f} mm), more like S2: S1 may be lumbarised"
        )
    return reasons


def spacing_reasons(
    segs: list[Segment],
    gaps: list[tuple[float, float, str]],
    sacrum_found: bool = False,
    top_cut: bool = False,
) -> list[str]:
    """Irregular disc spacing, missed discs or bodies (long gaps). With the sacrum found, the
    segment below S1 (S2, possibly cut by the field of view) is not judged, nor is a top
    segment cut by the field of view (its centre is not its body's centre)."""
    reasons = []
    if sacrum_found and len(segs) >= 2:
        segs, gaps = segs[:-1], gaps[:-1]
    if top_cut and len(segs) >= 2:
        segs, gaps = segs[1:], gaps[1:]
    if len(segs) >= 3:
        cents = np.array([s.centre_mm for s in segs])
        d = np.diff(cents)
        med = float(np.median(d))
        # the sacral junction is expected to be short: judge only the mobile spine
        mobile = [i for i, g in enumerate(gaps) if g[2] in ("disc", "gap")]
        for i in mobile:
            r = d[i] / med
            if r > 1.45 or r < 0.6:
                reasons.append(
                    f"irregular disc spacing: {d[i]:.0f} mm between bodies {i + 1} and {i + 2} "
                    f"(median {med:.0f} mm)"
                )
        glen = np.array([gaps[i][1] - gaps[i][0] for i in mobile])
        if len(glen):
            mg = float(np.median(glen))
            # a wide gap between bodies at the usual spacing is short bodies (end plate
            # changes), not a missed one
            for i, gl in zip(mobile, glen, strict=True):
                if gl > max(2.0 * mg, mg + 10.0) and d[i] > 1.3 * med:
                    reasons.append(f"gap of {gl:.0f} mm between bodies: a body may be missed")
    return reasons


def anchor_level(anchor: Anchor) -> str:
    """The anchor's level name in upper case; InputError when it names no vertebral level."""
    level = anchor.level.strip().upper()
    try:
        level_index(level)
    except ValueError as err:
        raise InputError(f"anchor {anchor.level!r}", str(err)) from None
    return level


__all__ = [
    "ANCHOR_MAX_DISTANCE_MM",
    "COUNT_DOUBTS",
    "Anchor",
    "Labelling",
    "counted_names",
    "is_count_doubt",
    "label_segments",
    "level_positions",
    "spacing_reasons",
]
