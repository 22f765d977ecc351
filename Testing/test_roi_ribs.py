"""The third counting landmark, the last rib-bearing vertebra (roi/ribs.py): when the ribs
speak, and what they do to a count from the sacrum that agrees, is in doubt, or is clean."""

from __future__ import annotations

from RefractureRiskLib.roi.auto import automatic_rois
from RefractureRiskLib.roi.detection import Segment
from RefractureRiskLib.roi.labelling import FUSED_LOWEST_REASON, Labelling, counted_names
from RefractureRiskLib.roi.ribs import (
    LAST_RIB_LEVEL,
    NO_RIB_MAX_SHARE,
    RIB_MIN_SHARE,
    check_count_with_ribs,
    last_rib_index,
)
from Testing.world_cases import right_levels, world_dev

RIB, FREE = RIB_MIN_SHARE + 0.05, NO_RIB_MAX_SHARE / 2


def _column(n: int = 9) -> tuple[list[Segment], list[tuple[float, float, str]]]:
    """``n`` bodies 25 mm tall with 8-mm discs, top to bottom."""
    segs = [Segment(33.0 * i, 33.0 * i + 25.0) for i in range(n)]
    gaps = [(s.t1_mm, s.t1_mm + 8.0, "disc") for s in segs[:-1]]
    return segs, gaps


def test_the_last_rib_is_a_step_from_two_ribbed_bodies_to_two_free_ones() -> None:
    assert last_rib_index([RIB, RIB, RIB, FREE, FREE, FREE, FREE]) == 2
    # a single ribbed body above the step, or one free body below it, is no step
    assert last_rib_index([FREE, RIB, FREE, FREE, FREE]) is None
    assert last_rib_index([RIB, RIB, FREE]) is None
    # a box out of view inside the window says nothing
    assert last_rib_index([RIB, None, FREE, FREE, FREE]) is None
    # a share between the two thresholds (a long transverse process, a rib descending into
    # the box of the body below) is neither
    between = (RIB_MIN_SHARE + NO_RIB_MAX_SHARE) / 2
    assert last_rib_index([RIB, RIB, between, FREE, FREE]) is None
    # two steps along the column (a bright structure low down): ambiguous, nothing said
    assert last_rib_index([RIB, RIB, FREE, FREE, RIB, RIB, FREE, FREE]) is None


def test_agreeing_ribs_settle_the_doubt_of_the_lower_count() -> None:
    segs, gaps = _column()
    names = counted_names(segs, gaps, 8, "S1")  # T10 ... S1
    doubt = f"the lowest 60 mm {FUSED_LOWEST_REASON}: taken as S1 over the fused sacrum"
    other = "gap of 30 mm between bodies: a body may be missed"
    lab = Labelling(names, (1.0,) * 9, (doubt, other), True)
    out, notes = check_count_with_ribs(lab, segs, gaps, names.index(LAST_RIB_LEVEL))
    assert out.names == names
    assert out.reasons == (other,)  # only the doubt the ribs settle is dropped
    assert notes == []


def test_doubtful_count_follows_the_ribs_and_stays_uncertain() -> None:
    segs, gaps = _column()
    names = counted_names(segs, gaps, 8, "S1")  # the lowest body taken for S1 ...
    doubt = f"the lowest 60 mm {FUSED_LOWEST_REASON}: if an L5/S1 disc was missed ..."
    lab = Labelling(names, (1.0,) * 9, (doubt,), True)
    # ... but the ribs end one body lower than that count's T12: that body is T12, so every
    # label is one level higher (the lowest body L5, the top one above T10: unnamed)
    out, notes = check_count_with_ribs(lab, segs, gaps, names.index("L1"))
    assert out.names[1] == "T10" and out.names[-1] == "L5" and out.names[0] is None
    assert len(out.reasons) == 1 and "labels follow the ribs" in out.reasons[0]
    assert "L1" in out.reasons[0]
    assert max(out.confidence) < 1.0
    assert notes == []


def test_a_clean_count_is_kept_and_the_disagreement_noted() -> None:
    segs, gaps = _column()
    names = counted_names(segs, gaps, 8, "S1")
    lab = Labelling(names, (1.0,) * 9, (), True)
    out, notes = check_count_with_ribs(lab, segs, gaps, names.index("T11"))
    assert out == lab
    assert len(notes) == 1 and "T11" in notes[0] and "labels follow the sacrum" in notes[0]


def test_silent_ribs_change_nothing() -> None:
    segs, gaps = _column()
    names = counted_names(segs, gaps, 8, "S1")
    lab = Labelling(names, (0.3,) * 9, ("sacrum not found: ...",), False)
    assert check_count_with_ribs(lab, segs, gaps, None) == (lab, [])


def test_ribs_fix_a_count_that_had_no_sacrum_on_a_world_study() -> None:
    """World development study 119: the field of view ends at L5, no sacrum, and the lowest body
    was taken for S1, so every label was one level too low. The ribs end at its T12: every
    level is right, and the result still says the count was in doubt."""
    case = world_dev(119)
    res = automatic_rois(case.study)
    right = right_levels(case, res)
    assert len(right) >= 6 and all(right.values()), right
    assert res.uncertain and any("labels follow the ribs" in r for r in res.reasons)


def test_the_top_body_can_be_the_last_with_ribs() -> None:
    """A column that starts at T12 (T11 out of view): the top body with ribs above two without
    is the last rib-bearing one, unless a body below bears ribs too or the two are not seen."""
    assert last_rib_index([0.15, 0.0, 0.01, 0.0, 0.0]) == 0
    assert last_rib_index([0.15, 0.0, 0.01, 0.12, 0.0]) is None  # ribs further down: unclear
    assert last_rib_index([0.15, None, 0.01, 0.0]) is None
    assert last_rib_index([0.05, 0.0, 0.01, 0.0]) is None  # no clear rib on top
    assert last_rib_index([0.2, 0.15, 0.0, 0.0, 0.0]) == 1  # the two-above rule as before
