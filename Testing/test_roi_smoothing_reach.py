"""Smoothing only around what is read: a box padded by :func:`smoothing_reach_vox` (or ending
where the array ends) gives the same smoothed values inside as the whole array (issue 13: a
body's bone heights smoothed its whole search box's R2*); bone_heights_mm gives what it gave
when it smoothed the whole box."""

from __future__ import annotations

import numpy as np
import pytest

from RefractureRiskLib.roi import level_facts
from RefractureRiskLib.roi.body import BodyPlacement
from RefractureRiskLib.roi.crop import bbox_slices
from RefractureRiskLib.roi.geometry import body_frame, box_from_ijk
from RefractureRiskLib.roi.marrow import smooth_pdff, smoothing_reach_vox
from RefractureRiskLib.roi.tissue import StudyArrays

SPACINGS = [(3.0, 1.25, 1.25), (1.0, 1.0, 1.0), (0.6, 2.2, 0.9), (4.0, 4.0, 0.5)]


@pytest.mark.parametrize("spacing_kji", SPACINGS)
@pytest.mark.parametrize("sigma_mm", [1.0, 0.4, 2.5])
def test_a_padded_box_smooths_its_inside_as_the_whole_array(spacing_kji, sigma_mm) -> None:
    rng = np.random.default_rng(int(10 * sum(spacing_kji) + 7 * sigma_mm))
    values = rng.normal(50.0, 20.0, (20, 33, 29)).astype(np.float32)
    whole = smooth_pdff(values, spacing_kji, sigma_mm)
    reach = smoothing_reach_vox(spacing_kji, sigma_mm)
    for _ in range(6):
        mask = np.zeros(values.shape, bool)
        lo = [int(rng.integers(0, n - 2)) for n in values.shape]
        hi = [int(rng.integers(a + 1, n + 1)) for a, n in zip(lo, values.shape, strict=True)]
        mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True  # boxes reaching the edges too
        around = bbox_slices(mask, reach)
        part = smooth_pdff(values[around], spacing_kji, sigma_mm)
        inner = tuple(
            slice(a - s.start, b - s.start) for a, b, s in zip(lo, hi, around, strict=True)
        )
        assert np.array_equal(part[inner], whole[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]])


def test_the_reach_is_how_far_an_impulse_spreads() -> None:
    for spacing in SPACINGS:
        for sigma_mm in (1.0, 0.4, 2.5):
            impulse = np.zeros((41, 41, 41), np.float32)
            impulse[20, 20, 20] = 1000.0
            spread = np.nonzero(smooth_pdff(impulse, spacing, sigma_mm))
            seen = tuple(int(20 - a.min()) for a in spread)
            assert smoothing_reach_vox(spacing, sigma_mm) == seen
    assert smoothing_reach_vox((1.0, 1.0, 1.0), 0.0) == (0, 0, 0)


def test_bone_heights_are_those_of_the_whole_box_smoothing(monkeypatch) -> None:
    rng = np.random.default_rng(4)
    shape = (24, 60, 56)
    mat = np.diag([1.25, 1.25, 3.0, 1.0])
    r2s = rng.normal(30.0, 4.0, shape).astype(np.float32)  # soft tissue
    body = np.zeros(shape, bool)
    body[4:14, 15:45, 12:44] = True
    r2s[5:13, 15:45, 12:44] += 60.0  # bone; the top and bottom layers disc-like
    r2s[4, 15:45, 12:44] += rng.normal(0.0, 3.0, (30, 32)).astype(np.float32)
    box = box_from_ijk(shape, mat, (0, 0, 0), shape[::-1])
    placement = BodyPlacement(box, body, body, body_frame(body, mat))
    arrays = StudyArrays(
        pdff_pct=np.full(shape, 40.0, np.float32),
        signal=np.ones(shape, np.float32),
        signal_min=0.5,
        ijk_to_ras=mat,
        r2s_per_s=r2s,
        r2s_soft_tissue_per_s=30.0,
    )
    cropped = level_facts.bone_heights_mm(placement, arrays)
    assert cropped != placement.frame.heights_mm  # the disc-like layers were trimmed
    whole = tuple(slice(0, n) for n in shape)
    monkeypatch.setattr(level_facts, "bbox_slices", lambda *_a, **_k: whole)
    assert level_facts.bone_heights_mm(placement, arrays) == cropped
