"""ROI ends unlike the rest of the body's marrow are left out (roi/unlike_ends.py): the rule
on its own, and on a development study whose T11 segmentation ran past the body."""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.roi.auto import automatic_rois
from RefractureRiskLib.roi.geometry import body_frame
from RefractureRiskLib.roi.unlike_ends import UNLIKE_PP, trim_unlike_ends
from Testing.world_cases import world_dev

# a box of 1 x 1 x 2 mm voxels (i = LR, j = AP, k = SI), RAS = identity scaled
IJK_TO_RAS = np.diag([1.0, 1.0, 2.0, 1.0])


def _roi_and_map(rng: np.random.Generator, noise_pp: float = 6.0):
    roi = np.zeros((16, 40, 60), bool)  # k, j, i: 30 mm high, 40 deep, 60 wide
    roi[2:14, 5:35, 5:55] = True
    pdff = 55.0 + rng.normal(0.0, noise_pp, roi.shape)
    return roi, pdff


def test_a_lateral_end_of_other_tissue_is_left_out() -> None:
    rng = np.random.default_rng(3)
    roi, pdff = _roi_and_map(rng)
    pdff[:, :, 45:] -= 25.0  # the last 10 mm on one side: disc or muscle, not this marrow
    frame = body_frame(roi, IJK_TO_RAS, si_hint=(0, 0, 1))
    out = trim_unlike_ends(roi, pdff, frame, IJK_TO_RAS)
    assert not out[:, :, 46:].any()  # the unlike slabs are gone
    assert out[:, :, 5:44].sum() == roi[:, :, 5:44].sum()  # the marrow is kept whole
    assert abs(pdff[out].mean() - 55.0) < 0.5 < abs(pdff[roi].mean() - 55.0)


def test_an_unlike_end_along_the_height_is_left_out() -> None:
    rng = np.random.default_rng(4)
    roi, pdff = _roi_and_map(rng)
    pdff[2:5] -= 20.0  # the lowest 6 mm: the S1/S2 remnant disc under a sacral ROI
    frame = body_frame(roi, IJK_TO_RAS, si_hint=(0, 0, 1))
    out = trim_unlike_ends(roi, pdff, frame, IJK_TO_RAS)
    assert not out[:4].any() and out[6:14].sum() == roi[6:14].sum()


def test_uniform_marrow_noise_and_small_or_inner_changes_keep_the_roi_whole() -> None:
    rng = np.random.default_rng(5)
    roi, pdff = _roi_and_map(rng, noise_pp=15.0)  # SNR ~5: noisy voxels, calm slab means
    frame = body_frame(roi, IJK_TO_RAS, si_hint=(0, 0, 1))
    assert np.array_equal(trim_unlike_ends(roi, pdff, frame, IJK_TO_RAS), roi)
    # a slab just inside the limit stays
    near = pdff.copy()
    near[:, :, 50:] += UNLIKE_PP - 2.0
    assert np.array_equal(trim_unlike_ends(roi, near, frame, IJK_TO_RAS), roi)
    # an unlike band in the middle is not an end: a reader's ROI is one block
    mid = pdff.copy()
    mid[:, :, 28:32] -= 30.0
    assert np.array_equal(trim_unlike_ends(roi, mid, frame, IJK_TO_RAS), roi)


def test_nothing_is_left_out_when_most_of_the_roi_would_go_or_it_is_tiny() -> None:
    rng = np.random.default_rng(6)
    roi, pdff = _roi_and_map(rng, noise_pp=2.0)
    pdff[:, :, 25:] += 30.0  # 60% of the width unlike the median of the rest? half and half
    frame = body_frame(roi, IJK_TO_RAS, si_hint=(0, 0, 1))
    out = trim_unlike_ends(roi, pdff, frame, IJK_TO_RAS)
    assert np.count_nonzero(out) >= 0.5 * np.count_nonzero(roi)
    tiny = np.zeros_like(roi)
    tiny[8, 20, 20:30] = True
    assert np.array_equal(trim_unlike_ends(tiny, pdff, frame, IJK_TO_RAS), tiny)


def test_a_roi_that_ran_past_the_body_is_brought_back_into_it() -> None:
    """world-dev-63 (sagittal, 6-8 mm slices, maps only, SNR 5-10): T11's segmentation ran
    two slices past the body to one side, and its ROI with it (30% of it outside the body,
    PDFF 24% there against 51% in the body): T11 read 10 points low, labels all right."""
    case = world_dev(63)
    res = automatic_rois(case.study)
    (t11,) = [lr for lr in res.roiset.levels if lr.level == "T11"]
    roi = res.roiset.labelmap.array == t11.label
    truth = {lv.level: lv for lv in case.truth.levels}["T11"]
    inside = case.truth.body_labels.array[roi] == truth.label
    assert inside.mean() >= 0.9, inside.mean()
    error = float(case.study.pdff.array[roi].mean()) - truth.marrow_pdff_pct
    assert abs(error) < 3.0, error
