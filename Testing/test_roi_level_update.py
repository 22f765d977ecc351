"""A live point move (roi/level_update.py) against a full recomputation from all points.

The one-level update recomputes the moved level in its box, paints the label maps again in the
level's old and new boxes only, and re-measures only the levels whose spine direction or body
voxels changed: every value must equal what ``rois_from_points`` gives with the moved point.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from RefractureRiskLib.core.levels import level_label
from RefractureRiskLib.phantom.generate import generate_phantom
from RefractureRiskLib.phantom.spec import PhantomSpec
from RefractureRiskLib.roi.distance import boundary_distance_mm
from RefractureRiskLib.roi.level_update import update_level
from RefractureRiskLib.roi.manual import rois_from_points
from RefractureRiskLib.roi.marrow import spacing_kji

LEVELS = ("T12", "L1", "L2", "L3", "L4")


@pytest.fixture(scope="module")
def phantom():
    spec = PhantomSpec(seed=5, in_plane_spacing_mm=2.0, slice_thickness_mm=3.0, snr=25.0,
                       bias_field=0.2)  # fmt: skip
    return generate_phantom(spec)


@pytest.fixture(scope="module")
def points(phantom):
    return {
        lv: tuple(np.asarray(phantom.truth.level(lv).centre_ras) + np.array([2.0, 1.0, -2.0]))
        for lv in LEVELS
    }


@pytest.fixture(scope="module")
def result(phantom, points):
    return rois_from_points(phantom.study, points, reader="tester", index_levels=("L1",))


def assert_same_result(fast, full):
    """Label maps, every level's measurements and flags, notes and points are equal."""
    assert np.array_equal(fast.roiset.labelmap.array, full.roiset.labelmap.array)
    assert np.array_equal(fast.body_labels.array, full.body_labels.array)
    assert [e.level for e in fast.levels] == [e.level for e in full.levels]
    for a, b in zip(fast.levels, full.levels, strict=True):
        for field in dataclasses.fields(a):
            x, y = getattr(a, field.name), getattr(b, field.name)
            if field.name == "box":
                assert x.slices == y.slices
                assert np.array_equal(x.ijk_to_ras, y.ijk_to_ras)
            elif isinstance(x, float | tuple) and field.name != "notes":
                assert np.allclose(x, y, rtol=1e-12, atol=1e-12, equal_nan=True), (a.level, field)
            else:
                assert x == y, (a.level, field.name)
    assert [(lv.level, lv.flags) for lv in fast.roiset.levels] == [
        (lv.level, lv.flags) for lv in full.roiset.levels
    ]
    assert fast.roiset.notes == full.roiset.notes
    assert fast.extras["qc_reasons"] == full.extras["qc_reasons"]
    assert fast.extras["index_levels"] == full.extras["index_levels"]
    assert set(fast.extras["points_ras"]) == set(full.extras["points_ras"])
    for level, (roi, body) in full.extras["level_masks"].items():
        kept_roi, kept_body = fast.extras["level_masks"][level]
        assert np.array_equal(roi, kept_roi) and np.array_equal(body, kept_body)


@pytest.mark.parametrize(
    ("level", "shift_mm"),
    [
        ("L2", (-4.0, 3.0, 2.0)),  # a drag within the body
        ("L2", (0.0, 2.0, 0.0)),  # the bench's 2 mm step
        ("T12", (3.0, -2.0, 4.0)),  # the top level: one neighbour
        ("L4", (0.0, 0.0, -3.0)),  # the bottom level
    ],
)
def test_one_level_update_equals_full_recompute(phantom, points, result, level, shift_mm):
    moved = dict(points)
    moved[level] = tuple(np.asarray(points[level]) + np.asarray(shift_mm))
    fast = update_level(result, phantom.study, level, moved[level])
    full = rois_from_points(phantom.study, moved, reader="tester", index_levels=("L1",))
    assert_same_result(fast, full)


def test_a_new_level_and_a_jump_into_another_body(phantom, points, result):
    moved = {**points, "L5": phantom.truth.level("L5").centre_ras}
    fast = update_level(result, phantom.study, "L5", moved["L5"])
    assert_same_result(fast, rois_from_points(phantom.study, moved, reader="tester",
                                              index_levels=("L1",)))  # fmt: skip
    moved["L2"] = phantom.truth.level("T11").centre_ras  # into another body, twice in a row
    fast = update_level(fast, phantom.study, "L2", moved["L2"])
    full = rois_from_points(phantom.study, moved, reader="tester", index_levels=("L1",))
    assert_same_result(fast, full)


def test_other_levels_are_untouched(phantom, points, result):
    moved = tuple(np.asarray(points["L2"]) + np.array([0.0, 2.0, 0.0]))
    fast = update_level(result, phantom.study, "L2", moved)
    before = {e.level: e for e in result.levels}
    after = {e.level: e for e in fast.levels}
    # only L2 was placed again; its neighbours' heights follow the spine through the moved point
    # (their measurement only: box, volumes, ROI and label voxels are as before); the levels
    # further away are the very same objects, and every other level's masks too
    assert fast.extras["updated_levels"] == ("L2",)
    for lv in ("T12", "L4"):
        assert after[lv] is before[lv]
    for lv in ("L1", "L3"):
        assert after[lv] is not before[lv]  # measured again (equal here: 2 mm cells)
        assert dataclasses.replace(after[lv], heights_mm=before[lv].heights_mm) == before[lv]
    for lv in ("T12", "L1", "L3", "L4"):
        assert fast.extras["level_masks"][lv] is result.extras["level_masks"][lv]
        assert np.array_equal(fast.roiset.mask(lv), result.roiset.mask(lv))
        label = level_label(lv)
        assert np.array_equal(fast.body_labels.array == label, result.body_labels.array == label)
    # the previous result is not changed (its label maps are read-only and not written)
    assert not result.roiset.labelmap.array.flags.writeable
    assert after["L2"] is not before["L2"]


def test_overlapping_bodies_are_painted_as_a_full_recompute(phantom):
    # two points in one body: each level keeps its side of the plane halfway between them;
    # when L2 moves away, L3 gets the whole body, as a full recomputation with the moved point
    # gives
    centre = np.asarray(phantom.truth.level("L3").centre_ras)
    pts = {"L2": tuple(centre), "L3": tuple(centre + np.array([0.0, 2.0, 0.0]))}
    both = rois_from_points(phantom.study, pts)
    # both levels found the one body and were cut at the plane halfway between the points
    assert both.extras["cut_at_neighbours"] == {"L2", "L3"}
    assert not (both.body_labels.array == 0).all()
    l3_before = int((both.body_labels.array == level_label("L3")).sum())
    pts["L2"] = phantom.truth.level("L2").centre_ras
    fast = update_level(both, phantom.study, "L2", pts["L2"])
    assert_same_result(fast, rois_from_points(phantom.study, pts))
    # L3 (cut before) was placed again with the moved plane: the whole body is its own now
    assert "L3" not in fast.extras["cut_at_neighbours"]
    assert int((fast.body_labels.array == level_label("L3")).sum()) > 1.5 * l3_before
    assert fast.extras["updated_levels"] == ("L2", "L3")


def _boundary_distance_whole_box(inside, ijk_to_ras, in_plane_of=None):
    """The distance as computed before, the reference: on the whole box, and in-plane as one
    3D transform with a huge spacing along the normal axis (now one 2D transform per plane)."""
    sp = spacing_kji(ijk_to_ras).copy()
    padded = np.pad(inside, 1, constant_values=False)
    core = (slice(1, -1),) * 3
    if in_plane_of is not None:
        sp[in_plane_of] = 1.0e4
        dist = ndimage.distance_transform_edt(padded, sampling=sp)[core]
        out = dist - 0.5 * float(np.delete(sp, in_plane_of).max())
    else:
        dist, idx = ndimage.distance_transform_edt(padded, sampling=sp, return_indices=True)
        grid = np.indices(inside.shape) + 1
        disp = (idx[(slice(None), *core)] - grid).astype(np.float32) * sp[:, None, None, None]
        norm = np.maximum(np.sqrt((disp**2).sum(axis=0)), 1e-6)
        out = dist[core] - 0.5 * (np.abs(disp) * sp[:, None, None, None]).sum(axis=0) / norm
    out[~inside] = 0.0
    return out


def test_boundary_distance_in_the_bounding_box_equals_the_whole_box():
    # anisotropic voxels make ties between nearest outside voxels common; the bounding box (and
    # the 2D transforms) must pick the same ones (the half extent depends on the direction) and
    # give the same distances, bit for bit
    rng = np.random.default_rng(7)
    for trial in range(120):
        shape = tuple(int(n) for n in rng.integers(6, 30, 3))
        spacing = rng.choice([0.7, 0.8, 1.0, 2.0, 3.0], 3)
        matrix = np.diag([*spacing[::-1], 1.0])
        inside = rng.random(shape) < rng.uniform(0.3, 0.95)
        if trial % 2:
            inside = ndimage.binary_opening(inside)
        lo = rng.integers(0, 5, 3)
        inside[: lo[0]], inside[:, : lo[1]], inside[:, :, : lo[2]] = False, False, False
        if trial % 5 == 0:
            inside[-2:] = False
        for axis in (None, 0, 1, 2):
            fast = boundary_distance_mm(inside, matrix, axis)
            assert np.array_equal(fast, _boundary_distance_whole_box(inside, matrix, axis))
    assert not boundary_distance_mm(np.zeros((4, 5, 6), bool), np.eye(4)).any()
