"""Automatic vertebral ROIs, detection: discs blurred into their bodies, found as dips.

Part of step 4 of :mod:`RefractureRiskLib.roi.auto`: thick slices, a tilted column or a dry,
degenerated disc keep the marrow share above the body threshold across a disc, so two bodies
would hide in one run of marrow; the disc still shows as a dip of the share along the centre
line, and the run is split there.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.roi.detection import PROFILE_STEP_MM, Profile, Segment, _gap_kind

#: A disc that thick slices or a tilted column blur into its bodies still shows as a dip of the
#: marrow share: a local minimum at least this far below the peaks on both sides splits a
#: segment, so two bodies never hide in one run of marrow above :data:`BODY_MARROW_FRAC`.
DIP_PROMINENCE = 0.22
#: Each part of a segment split at a dip is at least this long (mm): the smallest lumbar and
#: low thoracic bodies are about 18 mm tall, so a dip closer to an end is texture or a lesion.
MIN_SPLIT_PART_MM = 13.0


def split_at_dips(
    segs: list[Segment], gaps: list[tuple[float, float, str]], prof: Profile
) -> tuple[list[Segment], list[tuple[float, float, str]]]:
    """Split segments at dips of the marrow share (discs blurred into their bodies).

    A dip is a local minimum with a prominence of at least :data:`DIP_PROMINENCE` over the
    peaks on both sides, leaving parts of at least :data:`MIN_SPLIT_PART_MM`. The new gap is
    the dip's half-depth width; it is a "disc" when it holds disc-like water, else a "gap" (a
    dry, degenerated disc), or "fused" for the lowest dry dip of the lowest segment (the sacral
    S1/S2 junction blurred by thick slices). Deepest dips first.
    """
    out_s: list[Segment] = []
    out_g: list[tuple[float, float, str]] = []
    for i, seg in enumerate(segs):
        if i > 0:
            out_g.append(gaps[i - 1])
        cuts = sorted(_cuts(seg, prof))
        start = seg.t0_mm
        for n_cut, (g0, g1) in enumerate(cuts):
            out_s.append(Segment(start, g0, seg.void_frac))
            kind = _gap_kind(prof, g0, g1)
            if kind == "gap" and i == len(segs) - 1 and n_cut == len(cuts) - 1:
                # a dry dip in the lowest segment: the fused sacral junction (a dry,
                # degenerated L5/S1 disc also holds no water: labelling weighs both)
                kind = "fused"
            out_g.append((g0, g1, kind))
            start = g1
        out_s.append(Segment(start, seg.t1_mm, seg.void_frac) if cuts else seg)
    return out_s, out_g


def _cuts(seg: Segment, prof: Profile) -> list[tuple[float, float]]:
    """The gaps (t0, t1 mm) to cut ``seg`` at: its dips, deepest first, each leaving parts of
    at least :data:`MIN_SPLIT_PART_MM`, as wide as the dip at half its depth."""
    idx = np.flatnonzero((prof.t_mm >= seg.t0_mm) & (prof.t_mm <= seg.t1_mm))
    if idx.size < 5 or seg.length_mm < 2 * MIN_SPLIT_PART_MM:
        return []
    dips, proms = _dips(prof.marrow[idx], DIP_PROMINENCE)
    cuts: list[tuple[float, float]] = []
    for o in np.argsort(-proms) if dips.size else []:
        k = idx[dips[o]]
        level = prof.marrow[k] + 0.5 * float(proms[o])
        a = k
        while a > idx[0] and prof.marrow[a - 1] < level:
            a -= 1
        b = k
        while b < idx[-1] and prof.marrow[b + 1] < level:
            b += 1
        g0 = float(prof.t_mm[a]) - PROFILE_STEP_MM / 2
        g1 = float(prof.t_mm[b]) + PROFILE_STEP_MM / 2
        bounds = sorted([seg.t0_mm, seg.t1_mm, *(c for cut in cuts for c in cut)])
        lo = max(x for x in bounds if x <= prof.t_mm[k])
        hi = min(x for x in bounds if x >= prof.t_mm[k])
        if g0 - lo >= MIN_SPLIT_PART_MM and hi - g1 >= MIN_SPLIT_PART_MM:
            cuts.append((g0, g1))
    return cuts


def _dips(m: npt.NDArray, min_prominence: float) -> tuple[npt.NDArray, npt.NDArray]:
    """Local minima of ``m`` and their prominences (as ``scipy.signal.find_peaks(-m)`` defines
    them: flat minima at their middle sample; the depth below the lower of the highest points
    on each side before a deeper minimum or the end), those with at least ``min_prominence``.
    Written out because importing ``scipy.signal`` costs about half a second at every start."""
    x = -np.asarray(m, float)
    n = len(x)
    peaks = []
    i = 1
    while i < n - 1:
        if x[i - 1] < x[i]:
            ahead = i + 1
            while ahead < n - 1 and x[ahead] == x[i]:
                ahead += 1
            if x[ahead] < x[i]:
                peaks.append((i + ahead - 1) // 2)
                i = ahead
        i += 1
    idx, prom = [], []
    for p in peaks:
        left = p
        left_min = x[p]
        while left > 0 and x[left - 1] <= x[p]:
            left -= 1
            left_min = min(left_min, x[left])
        right = p
        right_min = x[p]
        while right < n - 1 and x[right + 1] <= x[p]:
            right += 1
            right_min = min(right_min, x[right])
        pr = x[p] - max(left_min, right_min)
        if pr >= min_prominence:
            idx.append(p)
            prom.append(pr)
    return np.asarray(idx, int), np.asarray(prom, float)


__all__ = ["DIP_PROMINENCE", "MIN_SPLIT_PART_MM", "split_at_dips"]
