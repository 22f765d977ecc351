"""Automatic vertebral ROIs, step 4's runs tidied before they are named (step 5).

The profile's marrow runs are bodies, except where the profile could not see a disc: a run
several bodies long over missed (thin) discs is split; pieces of one body cut at a dip of its
marrow are joined; marrow-like tissue held to an end of the
column by a long gap with no disc is dropped; the lowest run is split at a dip of the marrow
share that is the blurred rudimentary S1/S2 disc, unless the tube's mean PDFF dips there as
deep as at the study's own discs (then it is a disc the marrow mask missed).
"""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.roi.detection import PROFILE_STEP_MM, Profile, Segment

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
#: A dip of the tube's mean PDFF at the lowest junction at least this share of the study's own
#: disc dips (median) is a disc, not the fused S1/S2 junction. On the world development set
#: (22 studies whose lowest run held two bodies with no disc seen) the S1/S2 junctions dipped
#: at most 0.42 of the discs, the missed L5/S1 discs that dipped at all 0.63-0.81.
DISC_DIP_SHARE = 0.5
#: ... and at least this share of their width at half depth: the S1/S2 remnant is thin. In the
#: project's phantom its dip is deep (0.64-0.86 of the discs) but 0.40-0.55 of their width;
#: the missed L5/S1 discs of the world set were 0.76-1.0 of it.
DISC_WIDTH_SHARE = 0.65
#: ... judged only when the study's discs dip at least this much (a share of the plateau).
MIN_DISC_DIP = 0.2
#: The dip is looked for this far inside the lowest run's ends (mm): not in an end plate.
DIP_END_MARGIN_MM = 8.0
#: Two neighbouring segments whose centres lie closer than this share of the column's median
#: spacing, across a gap of at most :data:`FRAGMENT_GAP_MM` (no room for a disc), and which
#: together span at most :data:`FRAGMENT_SPAN_FACTOR` median bodies are pieces of one body cut
#: at a dip of its marrow (a Schmorl node, a fracture line, a haemangioma's edge): two bodies
#: lie a body and a disc apart.
FRAGMENT_PITCH_FRAC = 0.6
FRAGMENT_GAP_MM = 4.0
FRAGMENT_SPAN_FACTOR = 1.3
#: ... and the joined body at most this multiple of the median spacing from either neighbour.
FRAGMENT_REGULAR_FRAC = 1.45


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


def merge_fragments(
    segs: list[Segment], gaps: list[tuple[float, float, str]]
) -> tuple[list[Segment], list[tuple[float, float, str]]]:
    """Join pieces of one body that a dip cut apart (see :data:`FRAGMENT_PITCH_FRAC`): not at
    the column's ends (a body cut by the field of view), and only where the joined body lies
    at a regular spacing from its neighbours (a crushed body next to its neighbour does not)."""
    if len(segs) < 5:
        return segs, gaps
    pitch = float(np.median(np.diff([s.centre_mm for s in segs])))
    body = float(np.median([s.length_mm for s in segs]))
    segs, gaps = list(segs), list(gaps)
    k = 1
    while k < len(segs) - 2:
        a, b, gap = segs[k], segs[k + 1], gaps[k]
        joined = Segment(a.t0_mm, b.t1_mm)
        regular = max(
            joined.centre_mm - segs[k - 1].centre_mm, segs[k + 2].centre_mm - joined.centre_mm
        )
        if (
            gap[2] in ("disc", "gap")
            and gap[1] - gap[0] <= FRAGMENT_GAP_MM
            and b.centre_mm - a.centre_mm < FRAGMENT_PITCH_FRAC * pitch
            and joined.length_mm <= FRAGMENT_SPAN_FACTOR * body
            and regular <= FRAGMENT_REGULAR_FRAC * pitch
        ):
            segs[k : k + 2] = [joined]
            del gaps[k]
        k += 1
    return segs, gaps


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


def fused_junction_as_disc(
    segs: list[Segment], gaps: list[tuple[float, float, str]], prof: Profile
) -> tuple[list[Segment], list[tuple[float, float, str]]]:
    """A lowest junction taken for the fused S1/S2 one (a dry dip, or a run cut evenly with no
    dip seen) is a disc when the tube's mean PDFF dips there about as deep and as wide as at
    the study's own discs (:data:`DISC_DIP_SHARE`, :data:`DISC_WIDTH_SHARE` of their medians):
    an L5/S1 disc the marrow mask did not see, degenerated or with its PDFF raised by noise
    bias. The rudimentary S1/S2 disc is a thin remnant inside one fused bone: its dip is
    shallow, or narrow where it is deep. The dip must also lie that deep below the column's own
    bodies (:func:`_below_bodies`). The run is cut at the dip, the disc as wide as the dip at
    half its depth."""
    if prof.pdff_pct is None or len(segs) < 4 or not gaps or gaps[-1][2] != "fused":
        return segs, gaps
    ref = _disc_dips(segs, gaps, prof)
    if len(ref) < 2:
        return segs, gaps
    ref_depth, ref_width = (float(v) for v in np.median(ref, axis=0))
    if ref_depth < MIN_DISC_DIP:
        return segs, gaps  # the study's discs barely show in the PDFF: nothing to go by
    a, b = segs[-2].t0_mm, segs[-1].t1_mm
    dip = _dip(prof, (a + DIP_END_MARGIN_MM, b - DIP_END_MARGIN_MM), _pdff_plateau(prof, a, b))
    if dip is None:
        return segs, gaps
    depth, g0, g1 = dip
    if depth < DISC_DIP_SHARE * ref_depth or g1 - g0 < DISC_WIDTH_SHARE * ref_width:
        return segs, gaps
    if not _below_bodies(prof, segs[:-2], (g0, g1), DISC_DIP_SHARE * ref_depth):
        return segs, gaps
    upper, lower = segs[-2], segs[-1]
    cut = [Segment(a, g0, upper.void_frac), Segment(g1, b, lower.void_frac)]
    return [*segs[:-2], *cut], [*gaps[:-1], (g0, g1, "disc")]


def _below_bodies(
    prof: Profile, bodies: list[Segment], span: tuple[float, float], share: float
) -> bool:
    """Whether the tube's PDFF in ``span`` (mm) drops at least ``share`` below the median
    plateau of ``bodies`` (the column's bodies above the lowest run); True without bodies to
    go by. A disc's PDFF is below the marrow of any body; S1's marrow under the fattier sacrum
    below it is not (realct-dev-54: S1 at 35% like the lumbar bodies, the sacrum at 80%: the
    run's plateau made the whole S1 body a "dip" 21 mm wide, taken for the L5/S1 disc)."""
    assert prof.pdff_pct is not None
    plateaus = [_pdff_plateau(prof, s.t0_mm, s.t1_mm) for s in bodies]
    plateaus = [v for v in plateaus if np.isfinite(v)]
    inner = (prof.t_mm >= span[0]) & (prof.t_mm <= span[1]) & prof.covered
    if not plateaus or not inner.any():
        return True
    column = float(np.median(plateaus))
    return column - float(np.min(prof.pdff_pct[inner])) >= share * column


def _pdff_plateau(prof: Profile, t0: float, t1: float) -> float:
    """The tube's median PDFF (%) over ``t0``..``t1`` (mm) without 3 mm at each end."""
    assert prof.pdff_pct is not None
    inner = (prof.t_mm >= t0 + 3.0) & (prof.t_mm <= t1 - 3.0) & prof.covered
    return float(np.median(prof.pdff_pct[inner])) if inner.any() else float("nan")


def _dip(
    prof: Profile, window: tuple[float, float], plateau: float, reach_mm: float = 0.0
) -> tuple[float, float, float] | None:
    """The deepest PDFF dip in ``window`` (mm): its depth as a share below ``plateau``, and the
    arc lengths (mm) where it is below half that depth (followed up to ``reach_mm`` beyond the
    window); None without a plateau or samples."""
    assert prof.pdff_pct is not None
    t, pdff = prof.t_mm, prof.pdff_pct
    idx = np.flatnonzero((t >= window[0]) & (t <= window[1]) & prof.covered)
    if idx.size == 0 or not plateau > 0:
        return None
    k = int(idx[np.argmin(pdff[idx])])
    depth = float((plateau - pdff[k]) / plateau)
    half = plateau - 0.5 * depth * plateau
    lo, hi = k, k
    while lo > 0 and t[lo - 1] >= window[0] - reach_mm and pdff[lo - 1] < half:
        lo -= 1
    while hi < len(t) - 1 and t[hi + 1] <= window[1] + reach_mm and pdff[hi + 1] < half:
        hi += 1
    step = 0.5 * PROFILE_STEP_MM
    return depth, float(t[lo]) - step, float(t[hi]) + step


def _disc_dips(
    segs: list[Segment], gaps: list[tuple[float, float, str]], prof: Profile
) -> list[tuple[float, float]]:
    """How deep (a share below its bodies' plateau) and how wide at half depth (mm) the tube's
    mean PDFF dips at each disc and gap between bodies above the lowest junction."""
    out = []
    for i, (g0, g1, kind) in enumerate(gaps[:-1]):
        if kind not in ("disc", "gap"):
            continue
        above, below = segs[i], segs[i + 1]
        plateau = 0.5 * (
            _pdff_plateau(prof, above.t0_mm, above.t1_mm)
            + _pdff_plateau(prof, below.t0_mm, below.t1_mm)
        )
        dip = _dip(prof, (g0 - 3.0, g1 + 3.0), plateau, reach_mm=12.0)
        if dip is not None:
            out.append((dip[0], dip[2] - dip[1]))
    return out


__all__ = [
    "LONG_SEGMENT_FACTOR",
    "SACRAL_REMNANT_MAX_FACTOR",
    "SPLIT_DOUBT_REASON",
    "drop_detached_ends",
    "fused_junction_as_disc",
    "split_long_segments",
    "split_sacral_dip",
]
