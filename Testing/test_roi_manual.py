"""Manual ROIs from level points and from drawn label maps, checked against the phantom's truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import level_label
from RefractureRiskLib.core.roiset import RoiMethod
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.phantom.generate import generate_phantom
from RefractureRiskLib.phantom.spec import PhantomSpec
from RefractureRiskLib.phantom.truth import Tissue
from RefractureRiskLib.roi.geometry import CoreRoiParams, RoiShape
from RefractureRiskLib.roi.manual import rois_from_labelmap, rois_from_points, update_level
from RefractureRiskLib.roi.marrow import spacing_kji

LEVELS = ("T12", "L1", "L2", "L3", "L4")


@pytest.fixture(scope="module")
def phantom():
    # coarse (2 mm pixels) but noisy, with a bias field: fast and not trivial
    spec = PhantomSpec(seed=3, in_plane_spacing_mm=2.0, slice_thickness_mm=3.0, snr=25.0,
                       bias_field=0.2)  # fmt: skip
    return generate_phantom(spec)


@pytest.fixture(scope="module")
def points(phantom):
    # a user's clicks: near, not at, the true centres (3 mm off in R and S)
    return {
        lv: tuple(np.asarray(phantom.truth.level(lv).centre_ras) + np.array([3.0, 0.0, -3.0]))
        for lv in LEVELS
    }


@pytest.fixture(scope="module")
def result(phantom, points):
    return rois_from_points(phantom.study, points, reader="tester")


def test_rois_from_points_labels_and_values(phantom, result):
    assert result.roiset.method == RoiMethod.MANUAL_POINTS
    assert result.roiset.reader == "tester"
    assert result.roiset.level_names == LEVELS
    truth = phantom.truth.body_labels.array
    pdff = phantom.study.pdff.array
    for lv in LEVELS:
        mask = result.roiset.mask(lv)
        assert mask.sum() > 50
        # every ROI voxel lies in the body of the named level
        assert np.all(truth[mask] == level_label(lv))
        # mean PDFF within 1.5 points of the true core marrow value (noise SNR 25)
        assert abs(pdff[mask].mean() - phantom.truth.level(lv).marrow_pdff_pct) < 1.5


def test_roi_keeps_3mm_from_cortex_and_endplates(phantom, result):
    sp = spacing_kji(phantom.study.grid.ijk_to_ras)
    truth = phantom.truth.body_labels.array
    for lv in LEVELS:
        body = np.pad(truth == level_label(lv), 1)
        dist = ndimage.distance_transform_edt(body, sampling=sp)[1:-1, 1:-1, 1:-1]
        # distance of each ROI voxel centre to the nearest voxel outside the true body
        assert dist[result.roiset.mask(lv)].min() >= 3.0


def test_roi_avoids_basivertebral_vein(phantom, result):
    sp = spacing_kji(phantom.study.grid.ijk_to_ras)
    vein = phantom.truth.tissue.array == Tissue.VEIN
    assert vein.any()
    dist = ndimage.distance_transform_edt(~vein, sampling=sp)
    roi = result.roiset.labelmap.array > 0
    assert dist[roi].min() >= 3.0


def test_whole_body_volume_close_to_truth(phantom, result):
    for lv in LEVELS:
        true_ml = phantom.truth.level(lv).body_volume_ml
        measured = result.placement(lv).body_volume_ml
        assert abs(measured - true_ml) / true_ml < 0.12
        # the body label map holds the same body
        counted = np.count_nonzero(result.body_labels.array == level_label(lv))
        assert counted * result.body_labels.voxel_volume_ml == pytest.approx(measured)


def test_moving_one_point_equals_full_recompute(phantom, points, result):
    moved = dict(points)
    # the user drags the "L2" point a few mm within L2: the ROI is the same body's safe core
    nudged = tuple(np.asarray(points["L2"]) + np.array([-4.0, 3.0, 2.0]))
    same = update_level(result, phantom.study, "L2", nudged)
    assert np.array_equal(same.roiset.labelmap.array, result.roiset.labelmap.array)
    # ... or into another body (T11): only that level moves, as a full recomputation gives
    moved["L2"] = phantom.truth.level("T11").centre_ras
    updated = update_level(result, phantom.study, "L2", moved["L2"])
    full = rois_from_points(phantom.study, moved, reader="tester")
    assert np.array_equal(updated.roiset.labelmap.array, full.roiset.labelmap.array)
    assert np.array_equal(updated.body_labels.array, full.body_labels.array)
    # the other levels are untouched, L2 did change
    for lv in ("T12", "L1", "L3", "L4"):
        assert np.array_equal(updated.roiset.mask(lv), result.roiset.mask(lv))
    t11 = phantom.truth.body_labels.array == level_label("T11")
    assert np.all(t11[updated.roiset.mask("L2")])


def test_point_outside_the_spine_is_refused(phantom):
    centre = np.asarray(phantom.truth.level("L3").centre_ras)
    with pytest.raises(InputError, match="L1"):
        rois_from_points(phantom.study, {"L1": tuple(centre + np.array([0.0, 120.0, 0.0]))})
    with pytest.raises(InputError, match="L9"):
        rois_from_points(phantom.study, {"L9": tuple(centre)})


def test_mid_sagittal_ellipse_is_one_plane(phantom, points):
    params = CoreRoiParams(shape=RoiShape.SAGITTAL_ELLIPSE)
    res = rois_from_points(phantom.study, {"L3": points["L3"]}, params=params)
    mask = res.roiset.mask("L3")
    # sagittal grid: slices (k) run left-right, so the ROI is a single slice
    assert len(np.unique(np.nonzero(mask)[0])) == 1
    assert np.all(phantom.truth.body_labels.array[mask] == level_label("L3"))


def test_from_drawn_labelmap_with_level_table(phantom):
    truth = phantom.truth.body_labels.array
    drawn = np.zeros_like(truth)
    drawn[truth == level_label("L1")] = 10
    drawn[truth == level_label("L2")] = 20
    labelmap = Volume(drawn, phantom.study.grid.ijk_to_ras)
    res = rois_from_labelmap(labelmap, {10: "L1", 20: "l2"}, phantom.study, drawn="body")
    assert res.roiset.method == RoiMethod.IMPORTED_MASK
    assert res.roiset.level_names == ("L1", "L2")
    for lv in ("L1", "L2"):
        mask = res.roiset.mask(lv)
        assert mask.sum() > 50
        assert np.all(truth[mask] == level_label(lv))
    as_roi = rois_from_labelmap(labelmap, {10: "L1", 20: "L2"}, phantom.study, drawn="roi")
    assert np.array_equal(as_roi.roiset.mask("L1"), truth == level_label("L1"))
    with pytest.raises(InputError, match="no level"):
        rois_from_labelmap(labelmap, {10: "L1"}, phantom.study)


def test_manual_points_flag_fractures_like_the_automatic_method():
    """Heights are measured along the spine through the named points: on a lordotic spine no
    intact level looks fractured, and a real fracture is still flagged."""
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
    from RefractureRiskLib.roi.manual import rois_from_points

    phantom = generate_phantom(PhantomSpec(seed=0, lordosis_deg=35.0, fractured={"L3": 0.35}))
    truth = {lv.level: lv for lv in phantom.truth.levels if lv.level != "S1"}
    result = rois_from_points(phantom.study, {lv: t.centre_ras for lv, t in truth.items()})
    fractured = {lv.level for lv in result.roiset.levels if "fractured" in lv.flags}
    assert fractured == {"L3"}, fractured
