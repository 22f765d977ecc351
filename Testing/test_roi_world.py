"""Automatic and manual ROIs on studies from the independent world generator (not the phantom the
ROI code grew up on): fat-infiltrated muscle, fatty bowel, maps-only exports, oedema, truncation.

The seeds are development-set seeds (``world_set("dev")``); the frozen test set is only used by
``evaluation/evaluate_auto_roi.py --set test``.
"""

from __future__ import annotations

import numpy as np
import pytest

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.roiset import RoiFlag
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.roi.auto import LEVEL_REASON, Anchor, automatic_rois
from RefractureRiskLib.roi.body import study_arrays
from RefractureRiskLib.roi.manual import rois_from_points
from Testing.world_cases import right_levels, world_dev


@pytest.fixture(scope="module")
def axial_world():
    # axial 3 T study, T10-S3, scoliosis 10-20 degrees, bowel and fat-mixed blobs in front
    return world_dev(10)


def test_column_is_found_among_bowel_and_fatty_muscle(axial_world):
    res = automatic_rois(axial_world.study)
    right = right_levels(axial_world, res)
    truth_levels = [lv.level for lv in axial_world.truth.levels]
    assert all(right.get(lv) for lv in truth_levels), right
    assert not res.uncertain, res.reasons


def test_marrow_needs_bony_r2s(axial_world):
    """Fat-infiltrated paraspinal muscle shares the marrow PDFF window; its R2* is that of soft
    tissue, so the marrow threshold lies between it and the vertebral marrow."""
    arrays = study_arrays(axial_world.study)
    tissue = axial_world.truth.tissue.array
    r2 = axial_world.study.r2s.array
    muscle = float(np.median(r2[tissue == 3]))
    core = axial_world.truth.core.array > 0
    marrow = float(np.median(r2[core]))
    assert muscle < arrays.r2s_marrow_min_per_s < marrow


def test_maps_only_export_finds_the_same_levels(axial_world):
    study = axial_world.study
    maps_only = Study(maps={k: study.maps[k] for k in ("pdff", "r2s")}, provenance=study.provenance)
    full = automatic_rois(study)
    alone = automatic_rois(maps_only)
    assert [lv.level for lv in alone.levels] == [lv.level for lv in full.levels]
    assert all(right_levels(axial_world, alone).values())


def test_anchor_names_its_body_when_no_sacrum_is_in_view():
    case = world_dev(9)  # coverage ends at L5: no sacrum to count from
    lv = case.truth.level("L3")
    res = automatic_rois(case.study, anchor=Anchor("L3", lv.centre_ras))
    right = right_levels(case, res)
    assert right.get("L3"), right
    assert sum(right.values()) >= len(case.truth.levels) - 2


def test_manual_point_in_an_oedematous_body_gets_a_sphere():
    case = world_dev(11)  # T10 fractured with oedema: PDFF 14%, R2* like soft tissue
    t10 = case.truth.level("T10")
    assert t10.fractured and t10.marrow_pdff_pct < 20
    points = {lv.level: lv.centre_ras for lv in case.truth.levels if not lv.truncated}
    res = rois_from_points(case.study, points)
    right = right_levels(case, res)
    assert all(right.values()), right
    placed = res.placement("T10")
    assert any("sphere" in n for n in placed.notes)
    assert RoiFlag.FRACTURED not in res.roiset.level("T10").flags  # no heights: not judged
    # a point in the abdomen is still refused, not given a sphere
    front = np.asarray(t10.centre_ras) + 80.0 * np.asarray(t10.anterior_ras)
    with pytest.raises(InputError, match="T10"):
        rois_from_points(case.study, {"T10": tuple(front)})


def test_truncated_body_is_flagged_not_fractured():
    hits = 0
    for seed in (1, 3, 6, 15):
        case = world_dev(seed)
        res = automatic_rois(case.study)
        for lr in res.roiset.levels:
            if RoiFlag.TRUNCATED in lr.flags:
                hits += 1
                assert RoiFlag.FRACTURED not in lr.flags
                assert res.placement(lr.level).truncated
    assert hits >= 1


def test_confidence_is_per_level_for_a_doubt_about_one_body_and_global_for_the_count():
    one_body = automatic_rois(world_dev(253).study)
    assert one_body.uncertain and all(r.startswith("T11: ") for r in one_body.reasons)
    low = {lv.level for lv in one_body.levels if lv.confidence < 0.75}
    assert low == {"T11"}
    count = automatic_rois(world_dev(14).study)  # a doubt about the count: every level
    assert count.uncertain and not any(LEVEL_REASON.match(r) for r in count.reasons)
    assert all(lv.confidence < 0.75 for lv in count.levels)


def test_body_that_leaked_into_the_alae_is_measured_in_its_own_marrow():
    """S1's marrow runs on into the sacral alae, so its first segmentation leaks and it is
    segmented again inside the column's cross-section. There the body is its marrow, trimmed
    of partial volume like any body (not all bony tissue with a high R2*, which takes in the
    cortex and the disc's rim): the ROI's PDFF is that of S1's marrow (this study's S1 read
    27 points low before)."""
    case = world_dev(75)  # sagittal 3 T, 6-8 mm slices, T11-S3
    res = automatic_rois(case.study)
    s1 = res.placement("S1")
    assert "leaked into neighbouring bone: body from its marrow within the shape" in s1.notes
    assert right_levels(case, res)["S1"]
    roi = res.roiset.labelmap.array == s1.label
    truth = case.truth.level("S1").marrow_pdff_pct
    assert abs(float(case.study.pdff.array[roi].mean()) - truth) < 3.0


def test_a_level_whose_body_holds_no_roi_is_warned():
    """world-dev-157: T10 is found (3 mm from its true centre) but, segmented from R2* after
    it leaked, is too small for a safe core and gets no ROI; the level is not measured, and
    the study says so rather than reporting a level without a value and no warning."""
    case = world_dev(157)
    res = automatic_rois(case.study)
    t10 = next(lv for lv in res.levels if lv.level == "T10")
    assert t10.roi_volume_ml == 0.0 and np.isnan(t10.roi_pdff_median_pct)
    assert res.uncertain
    assert any(r.startswith("T10: no ROI could be placed") for r in res.reasons), res.reasons
    assert t10.confidence <= 0.5
