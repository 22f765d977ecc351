"""Bodies the detector missed (roi/anchor.anchor_segment, roi/missing.fill_skipped_levels): a
click inside a found body names it; a clicked body the detector missed is put into the column,
so the count does not snap to a neighbour and shift every label; a level the count steps over
gets a body between its neighbours, and a level missed at the top of the column, with room
for it in the field of view, gets one a spacing above the top body."""

from __future__ import annotations

import itertools

import numpy as np

from RefractureRiskLib.roi.anchor import anchor_segment
from RefractureRiskLib.roi.auto import Anchor, automatic_rois
from RefractureRiskLib.roi.detection import CentreLine, Segment, fit_centre_line
from RefractureRiskLib.roi.labelling import Labelling, counted_names
from RefractureRiskLib.roi.missing import fill_skipped_levels, fill_top_level
from Testing.world_cases import right_levels, world_dev


def _line() -> CentreLine:
    """A straight vertical centre line from z = 0 down to z = -330 mm (arc length = -z)."""
    pts = np.array([[0.0, 0.0, -z] for z in np.arange(0.0, 331.0, 30.0)])
    return fit_centre_line(pts, (-330.0, 0.0))


def _at(line: CentreLine, t: float) -> np.ndarray:
    return line.at(t)[0]


def _assert_anchored_all_right(seed: int, level: str, min_levels: int) -> None:
    """World development study ``seed`` with one anchor at ``level``'s true centre: at least
    ``min_levels`` levels placed, every one in its true body."""
    case = world_dev(seed)
    click = next(t for t in case.truth.levels if t.level == level).centre_ras
    right = right_levels(case, automatic_rois(case.study, anchor=Anchor(level, click)))
    assert len(right) >= min_levels and all(right.values()), right


def _column() -> tuple[list[Segment], list[tuple[float, float, str]]]:
    # nine bodies 25 mm tall every 33 mm, the fifth (t 132-157) missed: one long gap there
    segs = [Segment(33.0 * i, 33.0 * i + 25.0) for i in range(9) if i != 4]
    gaps = [(a.t1_mm, b.t0_mm, "disc") for a, b in itertools.pairwise(segs)]
    return segs, gaps


def test_a_click_inside_a_found_body_names_it_even_if_its_segmented_centre_is_not() -> None:
    line = _line()
    segs, gaps = _column()
    click = _at(line, 70.0)  # inside the third body (66-91)
    centre = _at(line, 62.0)  # the body grown round the click reached up into the gap
    out_segs, out_gaps, at_body = anchor_segment(line, segs, gaps, Anchor("L1", click), centre)
    assert out_segs == segs and out_gaps == gaps
    assert np.allclose(at_body.point_ras, click)


def test_a_missed_body_at_the_click_is_put_into_the_column() -> None:
    line = _line()
    segs, gaps = _column()
    centre = _at(line, 144.0)
    out_segs, out_gaps, at_body = anchor_segment(line, segs, gaps, Anchor("l2", centre), centre)
    assert len(out_segs) == len(segs) + 1
    new = out_segs[4]
    assert new.t0_mm <= 144.0 <= new.t1_mm
    assert out_segs[3].t1_mm < new.t0_mm and new.t1_mm < out_segs[5].t0_mm
    assert len(out_gaps) == len(out_segs) - 1
    assert all(g0 <= g1 for g0, g1, _ in out_gaps)
    assert at_body.level == "L2"
    # counted from the inserted body, the body below it is the next level (no skipped name)
    names = counted_names(out_segs, out_gaps, 4, "L2")
    assert names[3] == "L1" and names[5] == "L3"


def test_no_room_for_a_body_leaves_the_column_as_found() -> None:
    line = _line()
    segs = [Segment(0.0, 25.0), Segment(31.0, 56.0), Segment(64.0, 89.0)]
    gaps = [(25.0, 31.0, "disc"), (56.0, 64.0, "disc")]
    centre = _at(line, 60.0)  # in an 8-mm disc: no body fits there
    out_segs, out_gaps, _ = anchor_segment(line, segs, gaps, Anchor("L3", centre), centre)
    assert out_segs == segs and out_gaps == gaps


def test_an_anchor_on_a_body_the_detector_missed_names_every_level_on_a_world_study() -> None:
    """World development study 25: L1 is missed (a 44-mm gap along the column); an anchor at the
    true L1 used to name the body below it L1, shifting every label."""
    _assert_anchored_all_right(25, "L1", 8)


def test_a_level_the_count_steps_over_is_put_in_between_its_neighbours() -> None:
    segs, gaps = _column()
    names = counted_names(segs, gaps, len(segs) - 1, "S1")
    assert "L2" not in names and names[3] == "L1" and names[4] == "L3"  # the count skips L2
    lab = Labelling(names, (1.0,) * len(segs), (), True)
    out_segs, out_gaps, out_lab, notes = fill_skipped_levels(segs, gaps, lab, _line())
    assert len(out_segs) == len(segs) + 1
    assert out_lab.names[4] == "L2" and out_lab.names[3] == "L1" and out_lab.names[5] == "L3"
    new = out_segs[4]
    assert out_segs[3].t1_mm < new.t0_mm <= 144.5 <= new.t1_mm < out_segs[5].t0_mm
    assert len(out_gaps) == len(out_segs) - 1 and len(out_lab.confidence) == len(out_segs)
    assert len(notes) == 1 and notes[0].startswith("L2:")


def test_a_column_with_no_level_skipped_is_left_as_it_is() -> None:
    segs = [Segment(33.0 * i, 33.0 * i + 25.0) for i in range(9)]
    gaps = [(a.t1_mm, b.t0_mm, "disc") for a, b in itertools.pairwise(segs)]
    lab = Labelling(counted_names(segs, gaps, 8, "S1"), (1.0,) * 9, (), True)
    assert fill_skipped_levels(segs, gaps, lab, _line()) == (segs, gaps, lab, [])


def _top_missed() -> tuple[list[Segment], list[tuple[float, float, str]], Labelling]:
    # eight bodies 25 mm tall every 33 mm from t = 66 (T11 down to S1): T10 (t 33-58) missed
    segs = [Segment(33.0 * i, 33.0 * i + 25.0) for i in range(2, 10)]
    gaps = [(a.t1_mm, b.t0_mm, "disc") for a, b in itertools.pairwise(segs)]
    return segs, gaps, Labelling(counted_names(segs, gaps, 7, "S1"), (1.0,) * 8, (), True)


def test_a_body_missed_at_the_top_is_put_in_a_spacing_above_and_warned() -> None:
    segs, gaps, lab = _top_missed()
    assert lab.names[0] == "T11"
    out_segs, out_gaps, out_lab, reasons = fill_top_level(segs, gaps, lab, _line(), True)
    assert out_lab.names[:2] == ("T10", "T11") and out_lab.names[1:] == lab.names
    assert out_segs[1:] == segs and len(out_gaps) == len(out_segs) - 1
    new = out_segs[0]
    assert 33.0 <= new.centre_mm <= 58.0 and new.t1_mm < segs[0].t0_mm
    assert len(out_lab.confidence) == len(out_segs)
    assert len(reasons) == 1 and reasons[0].startswith("T10: no body was found above T11")


def test_no_body_is_put_in_above_t10_or_without_room_in_the_field_of_view() -> None:
    segs, gaps, lab = _top_missed()
    # the field of view ends just above the top body: it is cut there, not missed
    assert fill_top_level(segs, gaps, lab, _line(), False) == (segs, gaps, lab, [])
    # the column starts at T10: nothing above it is labelled
    t10 = Labelling(("T10", *lab.names[1:]), lab.confidence, (), True)
    assert fill_top_level(segs, gaps, t10, _line(), True) == (segs, gaps, t10, [])
    # the line ends above the top body before a whole body fits: only the warning
    high = [Segment(s.t0_mm - 50.0, s.t1_mm - 50.0) for s in segs]
    high_gaps = [(a.t1_mm, b.t0_mm, "disc") for a, b in itertools.pairwise(high)]
    out = fill_top_level(high, high_gaps, lab, _line(), True)
    assert out[:3] == (high, high_gaps, lab)
    assert out[3] == ["fewer bodies than expected: the column ends at T11 inside the field of view"]


def test_a_top_body_the_detector_missed_is_measured_on_a_world_study() -> None:
    """World development study 173: T10 left no marrow run on the profile (the column was
    found from T11 down, all labels right, T10 unmeasured); it is now put in and its ROI lies
    in T10."""
    case = world_dev(173)
    res = automatic_rois(case.study)
    right = right_levels(case, res)
    assert right.get("T10") and all(right.values()), right
    assert any(r.startswith("T10: no body was found above T11") for r in res.reasons)


def test_a_click_in_a_missed_body_whose_grown_body_reached_a_neighbour_is_put_in_at_the_click():
    """The body grown around a click in a body the detector missed ran on into the next body:
    its centre lies 16 mm from the click, inside that neighbour. The click, not that centre,
    marks the body to name; a centre within 10 mm of the click is the clicked body."""
    line = _line()
    segs, gaps = _column()  # the fifth body (t 132-157) missed
    click = _at(line, 140.0)
    grown = _at(line, 156.0 + 10.0)  # inside the sixth body (165-190)
    out_segs, _, at_body = anchor_segment(line, segs, gaps, Anchor("L2", click), grown)
    assert len(out_segs) == len(segs) + 1
    assert out_segs[4].t0_mm <= 140.0 <= out_segs[4].t1_mm
    assert np.allclose(at_body.point_ras, click)
    # a grown body centred near the click: that body is the one put in, as before
    near = _at(line, 146.0)
    out_segs, _, at_body = anchor_segment(line, segs, gaps, Anchor("L2", click), near)
    assert out_segs[4].t0_mm <= 146.0 <= out_segs[4].t1_mm and np.allclose(at_body.point_ras, near)


def test_an_anchor_in_a_missed_top_body_names_every_level_on_a_world_study() -> None:
    """World development study 216: L1 was not found along the column and the body grown
    around a click at its true centre reached into L2 (its centre 14 mm from the click), so
    L2 was named L1 and every label was one level too high (0 of 5 right)."""
    _assert_anchored_all_right(216, "L1", 5)


def test_a_click_in_a_gap_with_no_room_names_the_body_nearest_the_click() -> None:
    """The body grown round a click in a narrow gap leans towards one neighbour; the click,
    nearer the other, names that one (the count starts from the body the user meant)."""
    line = _line()
    segs = [Segment(0.0, 25.0), Segment(31.0, 64.0), Segment(76.0, 99.0)]
    gaps = [(25.0, 31.0, "disc"), (64.0, 76.0, "fused")]
    click = _at(line, 71.0)  # 5 mm above the lower body, 7 mm below the upper one
    centre = _at(line, 67.0)  # the grown body reached up into the long body above
    out_segs, out_gaps, at = anchor_segment(line, segs, gaps, Anchor("S1", click), centre)
    assert out_segs == segs and out_gaps == gaps
    assert np.allclose(at.point_ras, click)


def test_an_anchor_in_s1_between_a_long_l5_and_the_sacrum_names_every_level() -> None:
    """world-dev-172: the click at S1's centre lay in the gap between a 33 mm L5 and the
    sacral run, and the body grown round it had its centre 3 mm nearer L5: L5 was named S1
    and every label shifted (0/8)."""
    _assert_anchored_all_right(172, "S1", 8)


def test_an_anchor_on_the_column_found_without_it_does_not_bend_the_line() -> None:
    # world-dev-78: the line bent through a click at T10 merged T11 and T12 into one body,
    # and every level below T11 was named one too high; the line found without the click
    # already runs through T10
    _assert_anchored_all_right(78, "T10", 9)
