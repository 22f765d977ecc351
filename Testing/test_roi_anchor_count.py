"""An anchor click and a clean count from the sacrum that disagree by one level
(roi/anchor_count.py): the chain between them lost a body or holds one too many, and each
count keeps the bodies on its side of the most irregular step."""

from __future__ import annotations

import itertools

import numpy as np

from RefractureRiskLib.roi.anchor_count import with_sacrum_count
from RefractureRiskLib.roi.detection import CentreLine, Segment, fit_centre_line
from RefractureRiskLib.roi.labelling import Anchor, Labelling


def _line() -> CentreLine:
    """A straight vertical centre line from z = 0 down to z = -330 mm (arc length = -z)."""
    pts = np.array([[0.0, 0.0, -z] for z in np.arange(0.0, 331.0, 30.0)])
    return fit_centre_line(pts, (-330.0, 0.0))


def _segs(centres: list[float], lengths: list[float] | None = None) -> list[Segment]:
    lengths = lengths or [25.0] * len(centres)
    return [Segment(c - n / 2, c + n / 2) for c, n in zip(centres, lengths, strict=True)]


def _lab(names: tuple, reasons: tuple = ()) -> Labelling:
    return Labelling(names, (1.0,) * len(names), reasons, True)


DISAGREES = "anchor T10 disagrees with the count from the sacrum (T11): labels follow the anchor"
LOST = [12.5, 45.5, 78.5, 111.5, 161.5, 194.5, 227.5, 260.5]  # 50 mm where a body was lost


def test_a_body_lost_between_the_click_and_the_sacrum_keeps_both_counts() -> None:
    line, segs = _line(), _segs(LOST)
    base = _lab(("T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1"))
    anchored = _lab(("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"), (DISAGREES,))
    out = with_sacrum_count(anchored, base, segs, line, Anchor("T10", tuple(line.at(12.5)[0])))
    assert out.names == ("T10", "T11", "T12", "L1", "L3", "L4", "L5", "S1")  # L2 was lost
    assert len(out.reasons) == 1 and "a body lost between them" in out.reasons[0]


def test_an_extra_body_between_them_is_left_unnamed() -> None:
    line = _line()
    centres = [12.5, 45.5, 78.5, 111.5, 127.0, 144.5, 177.5, 210.5, 243.5]
    segs = _segs(centres, [25.0] * 4 + [10.0] + [25.0] * 4)
    base = _lab(("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1"))
    anchored = _lab(("T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1", None))
    out = with_sacrum_count(anchored, base, segs, line, Anchor("T11", tuple(line.at(12.5)[0])))
    assert out.names == ("T11", "T12", "L1", "L2", None, "L3", "L4", "L5", "S1")
    assert "a body split or one too many" in out.reasons[-1]


def test_the_anchor_alone_decides_when_the_sacrum_count_is_in_doubt_or_the_chain_is_regular():
    line, segs = _line(), _segs(LOST)
    anchored = _lab(("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"), (DISAGREES,))
    click = Anchor("T10", tuple(line.at(12.5)[0]))
    names = ("T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")
    for doubt in (
        "sacrum not found: the column leaves the field of view caudally",
        "x: labels follow the ribs",
    ):
        base = Labelling(names, (1.0,) * 8, (doubt,), True)
        assert with_sacrum_count(anchored, base, segs, line, click) == anchored
    regular = _segs([12.5 + 33.0 * i for i in range(8)])
    assert with_sacrum_count(anchored, _lab(names), regular, line, click) == anchored
    # counts that agree, or differ by two levels: the anchor's labels as they are
    agree = _lab(("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"))
    assert with_sacrum_count(agree, agree, segs, line, click) == agree
    two = _lab(("T12", "L1", "L2", "L3", "L4", "L5", "S1", None))
    assert with_sacrum_count(anchored, two, segs, line, click) == anchored


def test_a_body_lost_in_a_run_split_without_a_disc_is_put_there() -> None:
    """world-dev-111: a 63 mm run (T11, T12 and L1 with no disc seen) split in two; no spacing
    was irregular enough to say where the click at T10 and the count from the sacrum lost a
    body. The split run is where: the anchor names the bodies down to it, the sacrum beyond."""
    line = _line()
    regular = [12.5 + 33.0 * i for i in range(8)]
    segs = _segs(regular)
    gaps = [(a.t1_mm, b.t0_mm, "disc") for a, b in itertools.pairwise(segs)]
    gaps[1] = (segs[1].t1_mm, segs[2].t0_mm, "missed")  # segments 1 and 2: one split run
    base = _lab(("T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1"))
    anchored = _lab(("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5"), (DISAGREES,))
    click = Anchor("T10", tuple(line.at(12.5)[0]))
    out = with_sacrum_count(anchored, base, segs, line, click, gaps)
    assert out.names == ("T10", "T11", "L1", "L2", "L3", "L4", "L5", "S1")  # T12 lost in it
    assert "a body lost between them" in out.reasons[-1]
    # without a split run (or without the gaps) the regular chain leaves the anchor alone
    discs = [(g0, g1, "disc") for g0, g1, _ in gaps]
    assert with_sacrum_count(anchored, base, segs, line, click, discs) == anchored
    assert with_sacrum_count(anchored, base, segs, line, click) == anchored


def test_an_anchor_above_an_extra_body_names_every_level_on_a_world_study() -> None:
    """World development study 202: the count from the sacrum is right at the sacrum but calls
    the true T11 T10 (a body found in two parts 18 mm apart below it); an anchor at the true
    T11 used to rename every level below the extra part (3 of 9 right)."""
    from RefractureRiskLib.roi.auto import automatic_rois
    from Testing.world_cases import right_levels, world_dev

    case = world_dev(202)
    t11 = next(t for t in case.truth.levels if t.level == "T11")
    res = automatic_rois(case.study, anchor=Anchor("T11", t11.centre_ras))
    right = right_levels(case, res)
    wrong = [lv for lv, ok in right.items() if not ok]
    assert len(right) >= 8 and not wrong, right
    assert any("a body split or one too many" in r for r in res.reasons), res.reasons
