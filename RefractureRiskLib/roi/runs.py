"""Automatic vertebral ROIs, step 4's runs tidied before they are named (step 5).

The profile's marrow runs are bodies, except where the profile could not see a disc: a run
several bodies long over missed (thin) discs is split; marrow-like tissue held to an end of the
column by a long gap with no disc is dropped; the lowest run is split at a dip of the marrow
share that is the blurred rudimentary S1/S2 disc.
"""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.roi.detection import Profile, Segment

#: A segment longer than this multiple of the median body length holds two bodies.
LONG_SEGMENT_FACTOR = 1.55
#: Transitional anatomy. Below the S1/S2 junction only the sacral remnant the field of view
#: cuts is expected: a lowest segment longer than this multiple of the median body holds
#: another body (a sacralised L5's thin L5/S1 disc taken for the S1/S2 junction).
SACRAL_REMNANT_MAX_FACTOR = 1.3
#: A disc missed inside a long segment adds this share of a disc's length to it (thin).
MISSED_DISC_FRAC = 0.3
#: A long segment split in n (bodies plus missed discs) that is longer than n + this many
#: bodies may hold n + 1: the split is then a doubt about the labels, not only a note.
SPLIT_DOUBT_EXCESS = 0.3
SPLIT_DOUBT_REASON = "may hold one body more"
#: An end segment shorter than this share of the median body is a sliver, not a body.
SLIVER_FRAC = 0.5


def split_long_segments(
    segs: list[Segment], gaps: list[tuple[float, float, str]]
) -> tuple[list[Segment], list[tuple[float, float, str]], list[str]]:
    """Split segments much longer than the median body (a missed disc) into equal parts."""
    if len(segs) < 3:
        return segs, gaps, []
    med = float(np.median([s.length_mm for s in segs]))
    med_gap = float(np.median([g[1] - g[0] for g in gaps])) if gaps else 8.0
    out_s: list[Segment] = []
    out_g: list[tuple[float, float, str]] = []
    notes = []
    for i, s in enumerate(segs):
        if i > 0:
            out_g.append(gaps[i - 1])
        is_last = i == len(segs) - 1
        # A disc the profile missed inside the column is a thin one (degenerated, or blurred
        # by thick slices): it adds little length. At the bottom, S1 and the sacral remnant
        # meet at the rudimentary disc (about a disc's length, blurred).
        g = med_gap if is_last else MISSED_DISC_FRAC * med_gap
        x = (s.length_mm + g) / (med + g)
        n = round(x)
        if s.length_mm > LONG_SEGMENT_FACTOR * med and n >= 2:
            step = s.length_mm / n
            for p in range(n):
                out_s.append(Segment(s.t0_mm + p * step, s.t0_mm + (p + 1) * step, s.void_frac))
                if p < n - 1:
                    c = s.t0_mm + (p + 1) * step
                    out_g.append((c - 0.5, c + 0.5, "fused" if is_last else "missed"))
            if not is_last:
                doubt = f"; it {SPLIT_DOUBT_REASON}" if x - n > SPLIT_DOUBT_EXCESS else ""
                notes.append(
                    f"a body {s.length_mm:.0f} mm long (median {med:.0f} mm) was split in {n}: "
                    f"a disc may have been missed{doubt}"
                )
        else:
            out_s.append(s)
    return out_s, out_g, notes


def drop_detached_ends(
    segs: list[Segment], gaps: list[tuple[float, float, str]]
) -> tuple[list[Segment], list[tuple[float, float, str]], list[str]]:
    """Drop an end segment held to the column by a long gap with no disc in it: neighbouring
    bodies are joined by a disc. Marrow-like tissue 2 discs' height above the column (a rib
    head, a fat-infiltrated muscle belly, the edge of the field of view) is not a body, nor is a
    sliver below the column (less than half a body long: where the sacrum curves back across
    the column's line, or pelvic bone)."""
    real = [g[1] - g[0] for g in gaps if g[2] == "disc"]
    if len(segs) < 4 or not real:
        return segs, gaps, []
    med = float(np.median(real))
    notes = []
    g0, g1, kind = gaps[0]
    if kind == "gap" and g1 - g0 > max(1.6 * med, med + 6.0):
        segs, gaps = segs[1:], gaps[1:]
        notes.append(
            f"a marrow-like region {g1 - g0:.0f} mm above the column without a disc between "
            "was not taken for a vertebra"
        )
    g0, g1, kind = gaps[-1]
    med_len = float(np.median([s.length_mm for s in segs]))
    sliver = segs[-1].length_mm < SLIVER_FRAC * med_len
    if kind == "gap" and g1 - g0 > max(1.6 * med, med + 6.0) and sliver:
        notes.append(
            f"a {segs[-1].length_mm:.0f} mm sliver of marrow {g1 - g0:.0f} mm below the column "
            "without a disc between was not taken for a vertebra"
        )
        segs, gaps = segs[:-1], gaps[:-1]
    return segs, gaps, notes


def split_sacral_dip(
    segs: list[Segment], gaps: list[tuple[float, float, str]], prof: Profile
) -> tuple[list[Segment], list[tuple[float, float, str]]]:
    """Split the lowest segment at a partial-volume dip of the marrow share: a rudimentary
    S1/S2 disc (about 3 mm) blurred by thick slices shows as a dip, not a gap. The dip must lie
    at least 0.6 median body lengths below the segment's top and drop below 75% of the
    segment's typical marrow share.

    After a thin or fused lowest gap (normally the S1/S2 junction itself) the lowest segment is
    searched only when it is longer than :data:`SACRAL_REMNANT_MAX_FACTOR` median bodies: then
    the thin gap may be a sacralised L5/S1 disc with S1 and S2 merged below it."""
    if len(segs) < 3:
        return segs, gaps
    last = segs[-1]
    med_len = float(np.median([s.length_mm for s in segs[:-1]]))
    thin_last = gaps and (gaps[-1][2] == "fused" or gaps[-1][1] - gaps[-1][0] < 4.0)
    if thin_last and last.length_mm <= SACRAL_REMNANT_MAX_FACTOR * med_len:
        return segs, gaps
    t = prof.t_mm
    inside = (t >= last.t0_mm) & (t <= last.t1_mm)
    search = (t >= last.t0_mm + 0.6 * med_len) & (t <= last.t1_mm - 4.0)
    if not search.any() or not inside.any():
        return segs, gaps
    plateau = float(np.median(prof.marrow[inside]))
    k = np.flatnonzero(search)[int(np.argmin(prof.marrow[search]))]
    if prof.marrow[k] >= 0.75 * plateau:
        return segs, gaps
    cut = float(t[k])
    head = Segment(last.t0_mm, cut - 0.5, last.void_frac)
    tail = Segment(cut + 0.5, last.t1_mm, last.void_frac)
    return [*segs[:-1], head, tail], [*gaps, (cut - 0.5, cut + 0.5, "fused")]


__all__ = [
    "LONG_SEGMENT_FACTOR",
    "SACRAL_REMNANT_MAX_FACTOR",
    "SPLIT_DOUBT_REASON",
    "drop_detached_ends",
    "split_long_segments",
    "split_sacral_dip",
]
