"""Counting levels along the column: discs blurred into their bodies, missed bodies.

Synthetic tube profiles (marrow share along the centre line) built from known body and disc
positions, so each rule is checked on its own, without a generator's anatomy.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from RefractureRiskLib.roi import labelling
from RefractureRiskLib.roi.auto import automatic_rois
from RefractureRiskLib.roi.detection import PROFILE_STEP_MM, Profile, Segment, segment_profile
from RefractureRiskLib.roi.dips import DIP_PROMINENCE, split_at_dips
from RefractureRiskLib.roi.labelling import WIDE_GAP_FACTOR, label_segments, level_positions
from RefractureRiskLib.roi.runs import (
    SPLIT_DOUBT_REASON,
    drop_detached_ends,
    fused_junction_as_disc,
    split_long_segments,
)
from Testing.world_cases import right_levels, world_dev


def _profile(
    centres_mm: list[float], body_mm: float, disc_floor: float, disc_water: float, end_mm: float
) -> Profile:
    """Marrow share 1 inside bodies, falling to ``disc_floor`` at each disc (a blurred disc
    never reaches 0), with ``disc_water`` disc share there."""
    t = np.arange(0.0, end_mm, PROFILE_STEP_MM) + PROFILE_STEP_MM / 2
    marrow = np.full(t.shape, disc_floor)
    for c in centres_mm:
        # a smooth bump per body: 1 at its centre third, down to the floor at its end plates
        x = np.abs(t - c) / (0.5 * body_mm)
        bump = np.clip(1.0 - np.clip(x - 0.4, 0, None) / 0.6, 0, 1)
        bump = 0.5 - 0.5 * np.cos(np.pi * bump)
        marrow = np.maximum(marrow, disc_floor + (1 - disc_floor) * bump)
    disc = np.where(marrow < 0.8, disc_water * (1 - marrow), 0.0)
    return Profile(t, marrow, disc, np.zeros_like(t), np.ones(t.shape, bool))


def test_blurred_discs_split_every_body() -> None:
    """Discs that never drop the marrow share below the body threshold (thick slices) are still
    found as dips: one segment per body, centred on it."""
    centres = [20.0 + 32.0 * k for k in range(7)]
    prof = _profile(centres, body_mm=30.0, disc_floor=0.5, disc_water=0.8, end_mm=240.0)
    segs, gaps = segment_profile(prof)
    assert len(segs) < len(centres)  # the threshold alone merges bodies
    segs, gaps = split_at_dips(segs, gaps, prof)
    assert len(segs) == len(centres)
    # the end bodies run on to the profile's ends (the floor is above the threshold there)
    found = np.array([s.centre_mm for s in segs])[1:-1]
    assert np.max(np.abs(found - np.array(centres)[1:-1])) < 4.0
    assert all(kind == "disc" for *_, kind in gaps)


def test_shallow_texture_does_not_split() -> None:
    """A dip shallower than the prominence threshold (texture, a small lesion) keeps the body
    whole, and no part shorter than a body is cut off."""
    t = np.arange(0.0, 60.0) + 0.5
    marrow = np.ones_like(t)
    marrow[25:30] = 1.0 - 0.6 * DIP_PROMINENCE  # shallow
    marrow[3:5] = 0.3  # deep, but 4 mm from the end: no body fits above it
    prof = Profile(t, marrow, np.zeros_like(t), np.zeros_like(t), np.ones(t.shape, bool))
    segs, gaps = split_at_dips([Segment(0.0, 60.0)], [], prof)
    assert len(segs) == 1 and not gaps


def test_missed_body_is_stepped_over_in_the_count() -> None:
    """A body the detector did not find (two spacings between neighbours) shifts no label."""
    pitch = 33.0
    centres = [20.0 + pitch * k for k in range(9)]
    missing = 4
    segs = [Segment(c - 13.0, c + 13.0) for i, c in enumerate(centres) if i != missing]
    gaps = [(a.t1_mm, b.t0_mm, "disc") for a, b in itertools.pairwise(segs)]
    pos = level_positions(segs, gaps)
    assert pos == [0, 1, 2, 3, 5, 6, 7, 8]
    # the lowest one is S1 (thin S1/S2 junction below it: a sacral remnant segment added)
    sac = Segment(segs[-1].t1_mm + 2.0, segs[-1].t1_mm + 20.0)
    segs2 = [*segs, sac]
    gaps2 = [*gaps, (segs[-1].t1_mm, segs[-1].t1_mm + 2.0, "fused")]
    lab = label_segments(segs2, gaps2, bottom_in_fov=True)
    assert lab.names[: len(segs)] == ("T10", "T11", "T12", "L1", "L3", "L4", "L5", "S1")


@pytest.mark.parametrize("ratio", [1.2, 1.5])
def test_uneven_spacing_alone_is_no_missed_body(ratio: float) -> None:
    """Spacing up to 1.5 times the median (a long body below a wide disc) is one level: 24 mm
    bodies, 9 mm discs; the extra spacing lies half in the disc, half in the body's length."""
    extra = 33.0 * (ratio - 1.0)
    spans = [(8.0, 32.0), (41.0, 65.0), (74.0, 98.0)]
    top = spans[-1][1] + 9.0 + 0.5 * extra
    spans.append((top, top + 24.0 + extra))
    spans.append((spans[-1][1] + 9.0, spans[-1][1] + 33.0))
    segs = [Segment(a, b) for a, b in spans]
    gaps = [(a.t1_mm, b.t0_mm, "disc") for a, b in itertools.pairwise(segs)]
    assert segs[3].centre_mm - segs[2].centre_mm == pytest.approx(33.0 * ratio)
    assert level_positions(segs, gaps) == [0, 1, 2, 3, 4]


def test_a_missed_fractured_body_in_a_roomy_gap_is_stepped_over() -> None:
    """Bodies 24 mm with 8 mm discs; between two of them a gap of 28 mm: a fractured body
    (12 mm) the detector missed, with its two discs. Their centres are only 1.6 pitches apart
    (under the plain spacing rule), but the gap holds the missed body: the count steps over it.
    Tall bodies with a wide disc as far apart are one level."""
    tops = [0.0, 32.0, 64.0, 116.0, 148.0]
    segs = [Segment(t, t + 24.0) for t in tops]
    gaps = [(a.t1_mm, b.t0_mm, "disc") for a, b in itertools.pairwise(segs)]
    assert level_positions(segs, gaps) == [0, 1, 2, 4, 5]
    # two tall bodies (38 mm) with a wide disc (14 mm, under WIDE_GAP_FACTOR median gaps)
    # between them: as far apart, no room
    spans = [(0, 24), (32, 56), (64, 88), (96, 134), (148, 186), (194, 218), (226, 250)]
    tall = [Segment(float(a), float(b)) for a, b in spans]
    gaps = [(a.t1_mm, b.t0_mm, "disc") for a, b in itertools.pairwise(tall)]
    d = np.diff([sg.centre_mm for sg in tall])
    assert d.max() / np.median(d) > 1.45
    assert level_positions(tall, gaps) == list(range(7))


def _spans(spans: list[tuple[float, float]], kinds: dict[int, str] | None = None):
    segs = [Segment(float(a), float(b)) for a, b in spans]
    gaps = [
        (a.t1_mm, b.t0_mm, (kinds or {}).get(k, "disc"))
        for k, (a, b) in enumerate(itertools.pairwise(segs))
    ]
    return segs, gaps


def test_a_wide_gap_between_whole_bodies_holds_a_missed_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """world-dev-158/212: T11 missed between T10 and a T12 that grew into part of it (29-32
    mm against 22-24), a gap of 19-20 mm where discs are 8-9: short of the room for a whole
    body, and the centres only ~1.5 local spacings apart, but too wide for one disc."""
    spans = [(0, 22), (30, 52), (72, 104), (112, 136), (144, 168), (176, 200), (208, 232)]
    segs, gaps = _spans(spans)
    assert gaps[1][1] - gaps[1][0] >= WIDE_GAP_FACTOR * 8.0  # discs 8 mm
    assert level_positions(segs, gaps) == [0, 1, 3, 4, 5, 6, 7]
    # the rule alone made the difference
    monkeypatch.setattr(labelling, "WIDE_GAP_FACTOR", float("inf"))
    assert level_positions(segs, gaps) == list(range(7))


def test_a_wide_gap_beside_a_part_of_a_body_or_a_split_run_is_no_sign() -> None:
    """world-dev-169: small thoracic bodies (18 mm, pitch 25), then a gap of 23 mm and L1
    found only in part (11 mm, at its far end), the centres 1.5 local spacings apart: the
    partial body explains the gap. Beside one part of a run split where no disc was seen, the
    split decides, not the gap."""
    part = [(0, 18), (25, 43), (50, 68), (91, 102), (109, 133), (141, 165), (173, 197)]
    segs, gaps = _spans(part)
    d = np.diff([sg.centre_mm for sg in segs])
    assert d[2] >= 1.45 * np.median(d[[0, 1, 3, 4]])
    assert level_positions(segs, gaps) == list(range(7))
    split = [(0, 22), (30, 52), (76, 96), (96, 116), (124, 148), (156, 180), (188, 212)]
    segs, gaps = _spans(split, {2: "missed"})
    assert level_positions(segs, gaps) == list(range(7))


def test_dips_match_scipy_find_peaks() -> None:
    """The written-out dip finder gives scipy.signal.find_peaks' minima and prominences."""
    from scipy.signal import find_peaks

    from RefractureRiskLib.roi.dips import _dips

    rng = np.random.default_rng(7)
    for trial in range(300):
        n = int(rng.integers(3, 120))
        m = rng.random(n)
        if trial % 3 == 0:
            m = np.round(m * 4) / 4  # plateaus
        if trial % 5 == 0:
            m = np.convolve(m, np.ones(5) / 5, mode="same")
        ref, props = find_peaks(-m, prominence=0.1)
        got, prom = _dips(m, 0.1)
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_allclose(prom, props["prominences"], atol=1e-12)


def _column(lengths: list[float], disc_mm: float = 9.0) -> tuple[list[Segment], list]:
    segs, gaps, t = [], [], 0.0
    for n, length in enumerate(lengths):
        if n:
            gaps.append((t, t + disc_mm, "disc"))
            t += disc_mm
        segs.append(Segment(t, t + length))
        t += length
    return segs, gaps


@pytest.mark.parametrize(
    ("long_mm", "parts", "doubt"),
    [(52.0, 2, False), (58.0, 2, False), (66.0, 2, True), (76.0, 3, False)],
)
def test_missed_discs_are_thin(long_mm: float, parts: int, doubt: bool) -> None:
    """Inside the column, a run over missed (thin) discs is about n bodies long: 76 mm over
    25-mm bodies holds 3, not 2; a run well beyond n bodies (66 mm) is split in n and the split
    is a doubt about the labels, not only a note."""
    segs, gaps = _column([25.0, 25.0, long_mm, 25.0, 25.0, 25.0])
    out, out_gaps, notes = split_long_segments(segs, gaps)
    assert len(out) == 5 + parts
    assert sum(g[2] == "missed" for g in out_gaps) == parts - 1
    assert len(notes) == 1 and (SPLIT_DOUBT_REASON in notes[0]) == doubt, notes


def test_sliver_below_the_column_is_no_body() -> None:
    """A 3 mm run of marrow 33 mm below the column with no disc between (the sacrum curving
    back across the line) is dropped; the same sliver across a disc (a body cut by the field
    of view) and a full body across a long gap (a missed body) are kept."""
    segs, gaps = _column([25.0] * 6)
    sliver = Segment(segs[-1].t1_mm + 33.0, segs[-1].t1_mm + 36.0)
    kept, _, notes = drop_detached_ends(
        [*segs, sliver], [*gaps, (segs[-1].t1_mm, sliver.t0_mm, "gap")]
    )
    assert kept == segs and len(notes) == 1 and "sliver" in notes[0]
    across_disc = [*gaps, (segs[-1].t1_mm, sliver.t0_mm, "disc")]
    assert drop_detached_ends([*segs, sliver], across_disc)[0][-1] == sliver
    body = Segment(sliver.t0_mm, sliver.t0_mm + 25.0)
    long_gap = [*gaps, (segs[-1].t1_mm, body.t0_mm, "gap")]
    assert drop_detached_ends([*segs, body], long_gap)[0][-1] == body


def _pdff_column(junction_depth: float, junction_mm: float) -> tuple[list, list, Profile]:
    """Six bodies 26 mm tall at 60% PDFF with 8 mm discs at 10%, the lowest two bodies run
    together (taken for S1 over the fused sacrum) across a junction ``junction_mm`` wide that
    dips by ``junction_depth`` of the plateau."""
    t = np.arange(0.0, 220.0, PROFILE_STEP_MM) + PROFILE_STEP_MM / 2
    pdff = np.full(t.shape, 60.0)
    segs, gaps, top = [], [], 5.0
    for k in range(6):
        segs.append(Segment(top, top + 26.0))
        if k < 5:
            g0, g1 = top + 26.0, top + 34.0
            if k < 4:
                pdff[(t >= g0) & (t < g1)] = 10.0
                gaps.append((g0, g1, "disc"))
            else:  # the lowest junction: no disc seen, the run cut in equal parts
                mid = 0.5 * (g0 + g1)
                pdff[np.abs(t - mid) < 0.5 * junction_mm] = 60.0 * (1.0 - junction_depth)
                gaps.append((mid - 0.5, mid + 0.5, "fused"))
                segs[-1] = Segment(segs[-1].t0_mm, mid - 0.5)
                top = mid + 0.5 - 34.0
        top += 34.0
    zeros = np.zeros_like(t)
    prof = Profile(t, np.ones_like(t), zeros, zeros, np.ones(t.shape, bool), pdff)
    return segs, gaps, prof


@pytest.mark.parametrize(
    ("depth", "width_mm", "is_disc"),
    [(0.8, 8.0, True), (0.8, 3.0, False), (0.2, 8.0, False)],
    ids=["deep-and-wide-disc", "deep-but-thin-remnant", "shallow-fused"],
)
def test_a_fused_lowest_junction_is_a_disc_only_where_the_pdff_dips_like_one(
    depth: float, width_mm: float, is_disc: bool
) -> None:
    """The lowest junction (taken for the fused S1/S2 one) becomes a disc when the tube's mean
    PDFF dips there about as deep and as wide as at the study's own discs; the thin S1/S2
    remnant (deep but narrow) and a shallow dip stay fused."""
    segs, gaps, prof = _pdff_column(depth, width_mm)
    new_segs, new_gaps = fused_junction_as_disc(segs, gaps, prof)
    assert len(new_segs) == len(segs) and new_gaps[:-1] == gaps[:-1]
    g0, g1, kind = new_gaps[-1]
    if is_disc:
        assert kind == "disc"
        mid = 0.5 * (gaps[-1][0] + gaps[-1][1])
        assert abs(0.5 * (g0 + g1) - mid) <= 1.0 and g1 - g0 == pytest.approx(width_mm, abs=1.0)
        assert new_segs[-2].t1_mm == g0 and new_segs[-1].t0_mm == g1
    else:
        assert (new_segs, new_gaps) == (segs, gaps)


def test_a_fused_junction_is_kept_without_a_pdff_profile() -> None:
    segs, gaps, prof = _pdff_column(0.8, 8.0)
    bare = Profile(prof.t_mm, prof.marrow, prof.disc, prof.void, prof.covered)
    assert fused_junction_as_disc(segs, gaps, bare) == (segs, gaps)


def test_a_body_missed_among_small_thoracic_ones_is_counted_by_the_local_spacing() -> None:
    """Thoracic bodies are smaller than lumbar ones: T9 and T11 around a missed (crushed) T10
    lie two local spacings apart, though less than 1.7 of the column's median spacing."""
    centres = [0.0, 22.0, 44.0, 90.0, 120.0, 152.0, 184.0, 216.0]
    half = [9.0, 9.0, 9.0, 10.0, 12.0, 12.0, 12.0, 12.0]
    segs = [Segment(c - h, c + h) for c, h in zip(centres, half, strict=True)]
    gaps = [(a.t1_mm, b.t0_mm, "disc") for a, b in itertools.pairwise(segs)]
    pos = level_positions(segs, gaps)
    assert pos == [0, 1, 2, 4, 5, 6, 7, 8]  # one level stepped over between 44 and 90 mm
    # evenly spaced bodies are counted one by one, small or large
    even = [Segment(c - 9.0, c + 9.0) for c in (0.0, 22.0, 44.0, 66.0, 96.0, 126.0, 156.0)]
    assert level_positions(
        even, [(a.t1_mm, b.t0_mm, "disc") for a, b in itertools.pairwise(even)]
    ) == list(range(7))


def test_a_missed_t11_beside_a_long_t12_is_counted_on_a_development_study() -> None:
    """world-dev-158: T11 was missed and T12 grew into part of it; the true T10 was named T11
    and tissue above it T10, with no warning. The wide gap now holds the missed body."""
    case = world_dev(158)
    right = right_levels(case, automatic_rois(case.study))
    assert right and all(right.values()), right


def test_s1_marrow_above_a_fatty_sacrum_is_no_disc() -> None:
    """S1's marrow is no fattier than the bodies above it (30%), the sacrum below it is (80%):
    the lowest run's plateau made S1 itself look like a 21 mm "dip" (realct-dev-54). A dip
    that does not reach below the column's bodies is not a disc; the same run with a real disc
    between the two parts is still cut."""
    segs, gaps, prof = _pdff_column(0.0, 0.0)
    assert prof.pdff_pct is not None
    segs[-1] = Segment(segs[-1].t0_mm, 215.0)  # the sacrum runs on to the field of view's end
    junction = 0.5 * (gaps[-1][0] + gaps[-1][1])
    pdff = np.where(prof.pdff_pct > 50.0, 30.0, prof.pdff_pct)  # bodies 30%, discs 10%
    pdff[prof.t_mm > junction] = 80.0
    fatty = Profile(prof.t_mm, prof.marrow, prof.disc, prof.void, prof.covered, pdff)
    assert fused_junction_as_disc(segs, gaps, fatty) == (segs, gaps)
    disc = pdff.copy()
    disc[np.abs(prof.t_mm - junction) < 4.0] = 5.0  # an L5/S1 disc at the junction
    wet = Profile(prof.t_mm, prof.marrow, prof.disc, prof.void, prof.covered, disc)
    assert fused_junction_as_disc(segs, gaps, wet)[1][-1][2] == "disc"
