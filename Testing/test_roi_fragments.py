"""roi/runs.merge_fragments: pieces of one body cut at a dip of its marrow are joined; bodies
a disc apart, a crushed body beside its neighbour and a body cut at the column's end are not.

Segments are (t0, t1) in mm along the column's line, top first; bodies 24 mm, discs 8 mm.
"""

from __future__ import annotations

import itertools

from RefractureRiskLib.roi.detection import Segment
from RefractureRiskLib.roi.runs import merge_fragments


def _column(spans: list[tuple[float, float]]) -> tuple[list[Segment], list]:
    segs = [Segment(a, b) for a, b in spans]
    gaps = [(a.t1_mm, b.t0_mm, "disc") for a, b in itertools.pairwise(segs)]
    return segs, gaps


def _regular(n: int, start: float = 0.0) -> list[tuple[float, float]]:
    return [(start + 32.0 * k, start + 32.0 * k + 24.0) for k in range(n)]


def test_a_body_cut_in_two_at_a_dip_is_joined() -> None:
    spans = _regular(6)
    a, b = spans[3]
    spans[3:4] = [(a, a + 9.0), (a + 12.0, b)]  # 9 mm, 3 mm dip, 12 mm
    segs, gaps = _column(spans)
    out_s, out_g = merge_fragments(segs, gaps)
    assert [(s.t0_mm, s.t1_mm) for s in out_s] == _regular(6)
    assert len(out_g) == len(out_s) - 1
    assert out_g[3] == gaps[4]  # the disc below the joined body is kept


def test_regular_bodies_and_a_real_disc_stay_apart() -> None:
    segs, gaps = _column(_regular(7))
    assert merge_fragments(segs, gaps) == (segs, gaps)


def test_a_crushed_body_beside_its_neighbour_is_not_joined() -> None:
    """A 4 mm sliver (a crushed body) 2 mm above the next body, with a wide gap above it: the
    joined body would sit 1.5 spacings below the one above; they stay apart."""
    spans = _regular(6)
    spans[2] = (spans[2][0], spans[2][0] + 10.0)
    spans[3] = (spans[4][0] - 6.0, spans[4][0] - 2.0)
    segs, gaps = _column(spans)
    assert merge_fragments(segs, gaps)[0] == segs


def test_pieces_at_the_ends_of_the_column_stay() -> None:
    spans = _regular(6, start=20.0)
    spans[0:1] = [(16.0, 22.0), (24.0, 44.0)]  # the top body cut in two at the edge of the view
    segs, gaps = _column(spans)
    assert merge_fragments(segs, gaps)[0] == segs
