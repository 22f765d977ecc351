"""The column as a chain of body candidates (roi/column.py): the chain follows anatomy (body
spacing and how far the spine turns from one level to the next), and the candidates' per
component measures equal scipy.ndimage's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from RefractureRiskLib.roi.column import (
    MAX_TURN_DEG,
    MIN_FAT_VOXELS,
    Candidate,
    body_score,
    bone_reference_r2s,
    candidates,
    fat_r2s,
    find_column,
    hidden_share,
    soft_tissue_r2s,
)


def _cand(x: float, y: float, z: float, score: float = 2.0) -> Candidate:
    return Candidate(np.array([x, y, z], float), 15.0, 25.0, 1.8, score)


def _column(n: int = 6, step: float = 32.0) -> list[Candidate]:
    """A straight column, top first: bodies ``step`` mm apart along S-I."""
    return [_cand(0.0, 0.0, -i * step) for i in range(n)]


def _after(last: Candidate, tilt_deg: float, step: float = 32.0) -> Candidate:
    """A candidate ``step`` mm below ``last``, the step tilted ``tilt_deg`` towards anterior."""
    t = np.radians(tilt_deg)
    x, y, z = last.centre_ras
    return _cand(x, y + step * np.sin(t), z - step * np.cos(t))


def _same(chain: list[Candidate], expected: list[Candidate]) -> bool:
    return len(chain) == len(expected) and all(a is b for a, b in zip(chain, expected, strict=True))


def _holds(chain: list[Candidate], c: Candidate) -> bool:
    return any(a is c for a in chain)


def test_a_straight_column_is_one_chain():
    col = _column()
    assert _same(find_column(col[::-1]), col)  # input order does not matter


def test_a_bony_blob_that_turns_the_column_forward_is_left_out():
    col = _column()
    # an anterior turn beyond the thoracic kyphosis (bowel, iliac bone): not the next level
    blob = _after(col[-1], MAX_TURN_DEG["anterior"] + 15.0)
    chain = find_column([*col, blob])
    assert _same(chain, col)


def test_the_lumbosacral_turn_backwards_is_kept():
    col = _column()
    s1 = _after(col[-1], -30.0)  # L5 -> S1 in real spines: up to about 30 degrees
    assert _same(find_column([*col, s1]), [*col, s1])


def test_a_sideways_jump_is_left_out_but_a_scoliotic_curve_is_kept():
    col = _column()
    x, y, z = col[-1].centre_ras
    side = _cand(x + 32.0 * np.sin(np.radians(45.0)), y, z - 32.0 * np.cos(np.radians(45.0)))
    assert not _holds(find_column([*col, side]), side)
    # 8 degrees more per level: a curve, not a jump
    curve, tilt = list(col[:3]), 0.0
    for _ in range(3):
        tilt += 8.0
        x, y, z = curve[-1].centre_ras
        t = np.radians(tilt)
        curve.append(_cand(x + 32.0 * np.sin(t), y, z - 32.0 * np.cos(t)))
    assert _same(find_column(curve), curve)


def test_the_column_goes_on_below_missing_bodies():
    """A body without marrow is spanned; two adjacent ones (cemented levels show no marrow)
    only where the way between runs through void or oedema; three never."""
    full = _column(9, step=36.0)
    one = [*full[:4], *full[5:]]
    assert _same(find_column(one), one)
    two = [*full[:4], *full[6:]]
    assert _same(find_column(two, hidden=lambda p, q: True), two)
    assert _same(find_column(two, hidden=lambda p, q: False), full[:4])
    assert _same(find_column(two), full[:4])
    three = [*full[:4], *full[7:]]  # 4 x 36 mm apart
    assert _same(find_column(three, hidden=lambda p, q: True), full[:4])


def test_hidden_share_is_the_share_of_the_way_in_the_mask():
    mask = np.zeros((1, 1, 100), bool)
    mask[0, 0, 30:60] = True
    mat = np.eye(4)  # i = x (mm)
    share = hidden_share(mask, mat, np.array([0.0, 0, 0]), np.array([99.0, 0, 0]))
    assert share == pytest.approx(30 / 98, abs=0.02)
    assert hidden_share(mask, mat, np.array([0.0, 0, 0]), np.array([20.0, 0, 0])) == 0.0


def test_the_forced_candidate_is_in_the_chain():
    col = _column()
    blob = _after(col[-1], 60.0)
    chain = find_column([*col, blob], must_include=len(col))
    assert _holds(chain, blob)


def test_one_candidate_alone_is_a_chain():
    c = _cand(0.0, 0.0, 0.0)
    assert _same(find_column([c]), [c])
    assert find_column([]) == []


@pytest.mark.parametrize("seed", [0, 1])
def test_candidate_measures_equal_scipy_ndimage(seed):
    rng = np.random.default_rng(seed)
    shape = (30, 40, 40)
    kk, jj, ii = np.indices(shape)
    marrow = np.zeros(shape, bool)
    for _ in range(6):  # blobs of several sizes, some too small to count after erosion
        c = rng.uniform((5, 5, 5), (25, 35, 35))
        r = rng.uniform(4.0, 12.0)
        marrow |= (kk - c[0]) ** 2 + (jj - c[1]) ** 2 + (ii - c[2]) ** 2 <= r**2
    r2s = rng.uniform(20.0, 120.0, shape).astype(np.float32)
    mat = np.diag([1.5, 1.5, 2.0, 1.0])
    mat[:3, 3] = (-30.0, -30.0, -30.0)
    mat[:, [1, 2]] = mat[:, [2, 1]]  # i -> R, j -> S (sagittal-like), k -> A
    got = candidates(marrow, mat, r2s, 40.0)
    # the reference: scipy's per-label functions over the whole volume
    from RefractureRiskLib.roi.column import ERODE_MM, MIN_COMPONENT_ML
    from RefractureRiskLib.roi.distance import boundary_distance_mm
    from RefractureRiskLib.roi.geometry import axis_along

    core = boundary_distance_mm(marrow, mat, in_plane_of=axis_along(mat, (0, 0, 1))) >= ERODE_MM
    lab, n = ndimage.label(core)
    idx = np.arange(1, n + 1)
    voxel_ml = abs(np.linalg.det(mat[:3, :3])) / 1000.0
    counts = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    keep = counts * voxel_ml >= MIN_COMPONENT_ML
    assert keep.sum() == len(got) >= 1
    cents = np.array(ndimage.center_of_mass(core, lab, idx))[keep]
    med = np.array(ndimage.median(r2s, lab, idx))[keep] / 40.0
    kk, jj, ii = (a.astype(np.float32) for a in (kk, jj, ii))
    z = mat[2, 0] * ii + mat[2, 1] * jj + mat[2, 2] * kk + mat[2, 3]
    span = (np.array(ndimage.maximum(z, lab, idx)) - np.array(ndimage.minimum(z, lab, idx)))[keep]
    for c, cent, m, sp, cnt in zip(got, cents, med, span, counts[keep], strict=True):
        np.testing.assert_allclose(c.centre_ras, mat[:3, :3] @ cent[::-1] + mat[:3, 3], atol=1e-6)
        assert c.volume_ml == pytest.approx(cnt * voxel_ml)
        assert c.r2s_ratio == pytest.approx(m, rel=1e-6)
        assert c.span_mm == pytest.approx(sp, abs=1e-4)


def test_bone_is_judged_against_the_higher_of_soft_tissue_and_fat_r2s():
    """realct-dev-12: water-rich tissue at 16 1/s, fat at 26, marrow near 95. Against the soft
    tissue alone a fat blob (ratio 1.6) scored as bone like S1 and took its place below L5;
    against the fat it does not, and the marrow still does."""
    rng = np.random.default_rng(0)
    n = 4000
    pdff = np.concatenate([rng.uniform(0, 15, n), rng.uniform(88, 97, n), rng.uniform(30, 60, n)])
    r2s = np.concatenate([rng.normal(16, 2, n), rng.normal(26, 2, n), rng.normal(95, 8, n)])
    tissue = np.ones(pdff.shape, bool)
    soft, fat = soft_tissue_r2s(r2s, pdff, tissue), fat_r2s(r2s, pdff, tissue)
    assert soft == pytest.approx(16, abs=0.5) and fat == pytest.approx(26, abs=0.5)
    ref = bone_reference_r2s(soft, fat)
    assert ref == fat
    blob, body = body_score(6.0, 12.0, 26.0 / soft), body_score(15.0, 28.0, 95.0 / soft)
    assert blob == body == 2.0  # the old judgement: both bone
    assert body_score(6.0, 12.0, 26.0 / ref) < 0.0 < 1.5 < body_score(15.0, 28.0, 95.0 / ref)
    # too little fat to go by, or no soft tissue: as before
    few = np.zeros(pdff.shape, bool)
    few[:n] = True
    few[n : n + MIN_FAT_VOXELS - 1] = True
    assert np.isnan(fat_r2s(r2s, pdff, few))
    assert bone_reference_r2s(soft, float("nan")) == soft
    assert np.isnan(bone_reference_r2s(float("nan"), fat))
