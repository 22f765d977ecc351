"""The second counting landmark: the sacral alae beside S1.

A synthetic detection grid (2 mm voxels, RAS = ijk * 2 mm) holds a straight column of marrow
blocks; the lowest-but-one body has marrow beside it (alae), the ones above have none. The
rules are checked on their own, without a generator's anatomy.
"""

from __future__ import annotations

import itertools

import numpy as np

from RefractureRiskLib.roi.detection import DetectionGrid, Segment, fit_centre_line
from RefractureRiskLib.roi.labelling import (
    CUT_S1_REASON,
    FUSED_LOWEST_REASON,
    THIN_L5S1_REASON,
    Labelling,
    label_segments,
)
from RefractureRiskLib.roi.landmarks import (
    ALA_CONFIRM_RATIO,
    ALA_CONFIRM_SHARE,
    has_no_alae,
    lateral_marrow_share,
    s1_from_alae,
    with_alae,
)

SP = 2.0  # mm per voxel


def _grid(n_lateral_voxels: int = 64, alae_at: int | None = 4) -> tuple[DetectionGrid, list]:
    """Six bodies 24 mm tall, 8 mm apart, top to bottom; ``alae_at``: which has alae."""
    nk, nj, ni = 110, 40, n_lateral_voxels
    marrow = np.zeros((nk, nj, ni), bool)
    ci, cj = ni // 2, nj // 2
    segs = []
    top_mm = (nk - 5) * SP
    for b in range(6):
        z1 = top_mm - b * 32.0
        z0 = z1 - 24.0
        k0, k1 = int(z0 / SP), int(z1 / SP)
        marrow[k0:k1, cj - 8 : cj + 8, max(ci - 11, 0) : ci + 11] = True
        if b == alae_at:
            marrow[k0:k1, cj - 6 : cj + 6, :] = True  # bone right across: the alae
        segs.append((z0, z1))
    mat = np.diag([SP, SP, SP, 1.0])
    z_range = (0.0, (nk - 1) * SP)
    cents = np.array([[ci * SP, cj * SP, 0.5 * (a + b)] for a, b in segs])
    line = fit_centre_line(cents, z_range)
    # arc length runs from the top: segment t ranges
    segments = [Segment(z_range[1] - b, z_range[1] - a) for a, b in segs]
    grid = DetectionGrid(
        marrow, np.zeros_like(marrow), np.zeros_like(marrow), mat, np.zeros_like(marrow), None
    )
    return grid, [line, segments]


def test_alae_mark_s1_and_lumbar_bodies_have_none() -> None:
    grid, (line, segs) = _grid()
    shares = [lateral_marrow_share(grid, line, s) for s in segs]
    assert all(s is not None for s in shares)
    assert s1_from_alae(shares) == 4
    assert has_no_alae(shares[3]) and not has_no_alae(shares[4])


def test_narrow_slab_says_nothing() -> None:
    """A sagittal slab too narrow to hold the boxes beside the body: no decision either way."""
    grid, (line, segs) = _grid(n_lateral_voxels=26)
    shares = [lateral_marrow_share(grid, line, s) for s in segs]
    assert all(s is None for s in shares)
    assert s1_from_alae(shares) is None and not has_no_alae(shares[-1])


def _gaps(segs: list[Segment]) -> list[tuple[float, float, str]]:
    return [(a.t1_mm, b.t0_mm, "disc") for a, b in itertools.pairwise(segs)]


def test_alae_name_the_levels_when_the_junction_is_not_found() -> None:
    _, (_, segs) = _grid()
    gaps = _gaps(segs)
    lab = label_segments(segs, gaps, bottom_in_fov=True)
    assert not lab.sacrum_found and lab.names[-1] == "S1"  # the junction rule guessed
    fixed = with_alae(lab, segs, gaps, ala_s1=4)
    assert fixed.sacrum_found
    assert fixed.names == ("L2", "L3", "L4", "L5", "S1", None)
    assert not any(r.startswith("sacrum not found") for r in fixed.reasons)


def test_no_alae_at_the_bottom_makes_the_lowest_body_l5_still_warned() -> None:
    _, (_, segs) = _grid()
    gaps = _gaps(segs)
    lab = label_segments(segs, gaps, bottom_in_fov=False)
    fixed = with_alae(lab, segs, gaps, ala_s1=None, lowest_without_alae=True)
    assert fixed.names[-1] == "L5" and fixed.names[0] == "T12"
    assert any("taken for L5" in r for r in fixed.reasons)
    assert not fixed.sacrum_found


def test_landmarks_that_disagree_are_reported() -> None:
    segs = [Segment(10.0 + 32 * k, 34.0 + 32 * k) for k in range(6)]
    gaps = _gaps(segs)
    lab = Labelling(("L1", "L2", "L3", "L4", "L5", "S1"), (1.0,) * 6, (), True)
    out = with_alae(lab, segs, gaps, ala_s1=4)
    assert out.names == lab.names  # labels follow the junction
    assert any("disagree" in r and "1 level higher" in r for r in out.reasons)
    assert max(out.confidence) <= 0.5


def _cut_at_bottom(grid: DetectionGrid, keep_from_k: int) -> DetectionGrid:
    """The same grid with the slices below ``keep_from_k`` outside the field of view."""
    mat = grid.mat.copy()
    mat[2, 3] += keep_from_k * SP
    marrow, disc, void, oedema = (
        a[keep_from_k:] for a in (grid.marrow, grid.disc, grid.void, grid.oedema)
    )
    return DetectionGrid(marrow, disc, void, mat, oedema, None)


def test_a_lowest_body_half_out_of_view_is_still_judged() -> None:
    """The lowest body at the lower edge of the field of view (about half of it, and of the
    boxes beside it, in view): no marrow beside it still makes it L5, and alae beside it still
    make it S1."""
    for alae_at, lowest in ((None, "L5"), (5, "S1")):
        grid, (line, segs) = _grid(alae_at=alae_at)
        low = segs[-1]
        k_mid = round((grid.marrow.shape[0] - 1) - low.centre_mm / SP)  # arc from the top
        cut = _cut_at_bottom(grid, k_mid)
        shares = [lateral_marrow_share(cut, line, s) for s in segs]
        assert shares[-1] is not None, "half the box in view is judged"
        if lowest == "L5":
            assert has_no_alae(shares[-1]) and s1_from_alae(shares) is None
        else:
            assert s1_from_alae(shares) == 5


def test_disagreeing_landmarks_follow_the_alae_when_the_junction_is_in_doubt() -> None:
    """A lowest run split with no disc seen may hide the L5/S1 disc: the junction's count is
    in doubt, so the alae (which do not depend on that disc) name the levels; still warned."""
    segs = [Segment(10.0 + 32 * k, 34.0 + 32 * k) for k in range(6)]
    gaps = _gaps(segs)
    doubt = f"the lowest 48 mm {FUSED_LOWEST_REASON}: taken as S1 over the fused sacrum"
    lab = Labelling(("L1", "L2", "L3", "L4", "L5", "S1"), (1.0,) * 6, (doubt,), True)
    out = with_alae(lab, segs, gaps, ala_s1=4)
    assert out.names == ("L2", "L3", "L4", "L5", "S1", None)
    assert any("labels follow the alae" in r for r in out.reasons)
    assert max(out.confidence) <= 0.5


def test_a_long_cut_lowest_segment_without_alae_is_l5_not_s1() -> None:
    """The lowest segment was taken for S1 with the sacrum only because it is long and cut by
    the field of view; with no alae beside it, it is a long L5 cut by the field of view."""
    _, (_, segs) = _grid()
    gaps = _gaps(segs)
    cut = f"the lowest segment (31 mm) {CUT_S1_REASON}"
    lab = Labelling(("L1", "L2", "L3", "L4", "L5", "S1"), (1.0,) * 6, (cut,), True)
    fixed = with_alae(lab, segs, gaps, ala_s1=None, lowest_without_alae=True)
    assert fixed.names == ("T12", "L1", "L2", "L3", "L4", "L5")
    assert any("taken for L5" in r for r in fixed.reasons) and not fixed.sacrum_found
    assert max(fixed.confidence) <= 0.3
    # alae not judged beside it (a narrow slab): the guess stands
    assert with_alae(lab, segs, gaps, ala_s1=None, lowest_without_alae=False) == lab


def test_a_weaker_step_beside_the_guessed_s1_confirms_it_without_relabelling() -> None:
    """Real alae fill a third to a half of the boxes: too little to name S1, enough to confirm
    the lowest body taken for S1 by default when the step from the body above is clear."""
    _, (_, segs) = _grid()
    gaps = _gaps(segs)
    lab = label_segments(segs, gaps, bottom_in_fov=True)
    assert not lab.sacrum_found and lab.names[-1] == "S1"
    shares = [(0.1, 0.12), (0.05, 0.08), (0.12, 0.1), (0.0, 0.02), (0.13, 0.16), (0.36, 0.41)]
    assert s1_from_alae(shares) is None  # not a step that names S1
    assert s1_from_alae(shares, ALA_CONFIRM_SHARE, ALA_CONFIRM_RATIO) == 5
    confirmed = with_alae(lab, segs, gaps, None, weak_s1=5)
    assert confirmed.names == lab.names
    assert confirmed.sacrum_found and min(confirmed.confidence) >= 0.9
    assert not any(r.startswith("sacrum not found") for r in confirmed.reasons)
    # the same step under a body with as much beside it, or none confirmed: still a guess
    assert s1_from_alae([*shares[:4], (0.2, 0.25), shares[5]], 0.3, 2.0) is None
    assert with_alae(lab, segs, gaps, None) == lab
    # a lowest body taken for L5 (no alae beside it) is never confirmed as S1
    l5 = label_segments(segs[:-1], gaps[:-1], bottom_in_fov=True)
    l5 = Labelling((*l5.names[:-1], "L5"), l5.confidence, l5.reasons, False)
    assert with_alae(l5, segs[:-1], gaps[:-1], None, weak_s1=4) == l5


def test_alae_beside_the_counted_s1_settle_a_thin_disc_above_it() -> None:
    """A thin L5/S1 disc (degeneration) raises a doubt about the count from the sacrum; the
    alae beside the body counted as S1, and not beside the body above, settle it. A step
    beside another body, or none at all, leaves the doubt."""
    segs = [Segment(10.0 + 32 * k, 34.0 + 32 * k) for k in range(6)]
    gaps = _gaps(segs)
    names = ("L1", "L2", "L3", "L4", "L5", "S1")
    lab = Labelling(names, (1.0,) * 6, (THIN_L5S1_REASON,), True)
    for settled in (
        with_alae(lab, segs, gaps, ala_s1=5),
        with_alae(lab, segs, gaps, None, weak_s1=5),
    ):
        assert settled.names == names and settled.reasons == ()
    # a weaker step beside the body counted as L5 does not confirm S1
    assert with_alae(lab, segs, gaps, None, weak_s1=4) == lab
    assert with_alae(lab, segs, gaps, None) == lab
    # the labels are never changed by the weaker step alone
    assert with_alae(lab, segs, gaps, None, weak_s1=5).names == names
