"""Level facts: a body cut by the field of view where its heights are measured is truncated;
heights are those of the body's bone (a disc the segmentation took in is left out)."""

from __future__ import annotations

import numpy as np
import pytest

from RefractureRiskLib.roi.body import BodyPlacement
from RefractureRiskLib.roi.geometry import body_frame, box_from_ijk
from RefractureRiskLib.roi.level_facts import (
    bone_heights_mm,
    cut_by_field_of_view,
    heights_cut_by_field_of_view,
)
from RefractureRiskLib.roi.tissue import StudyArrays


def _placement(shape_kji, spacing_ijk, i_range, j_range, k_range):
    """A block body (i: right, j: anterior, k: superior) on a grid whose box is the whole grid."""
    mat = np.diag([*spacing_ijk, 1.0])
    body = np.zeros(shape_kji, bool)
    body[slice(*k_range), slice(*j_range), slice(*i_range)] = True
    box = box_from_ijk(shape_kji, mat, (0, 0, 0), shape_kji[::-1])
    return BodyPlacement(box, body, body, body_frame(body, mat)), shape_kji


def test_a_body_whole_in_the_image_is_not_cut():
    pl, shape = _placement((30, 50, 50), (1.0, 1.0, 1.0), (10, 40), (10, 40), (5, 25))
    assert not cut_by_field_of_view(pl, shape)
    assert not heights_cut_by_field_of_view(pl, shape)


def test_a_slab_grazing_the_side_cuts_the_volume_not_the_heights():
    # 1 of 30 sagittal layers on the image's left face: 3% of the voxels
    pl, shape = _placement((30, 50, 50), (1.0, 1.0, 1.0), (0, 30), (10, 40), (5, 25))
    assert cut_by_field_of_view(pl, shape)
    assert not heights_cut_by_field_of_view(pl, shape)
    # a slab cutting a fifth of the body away at its side: truncated
    pl, shape = _placement((30, 50, 8), (4.0, 1.0, 1.0), (0, 6), (10, 40), (5, 25))
    assert heights_cut_by_field_of_view(pl, shape)


def test_a_face_across_the_height_truncates_even_with_fine_voxels():
    # 60 layers of 0.4 mm: the top layer is under 2% of the voxels but a whole cross-section
    pl, shape = _placement((60, 50, 50), (1.0, 1.0, 0.4), (10, 40), (5, 45), (0, 60))
    assert not cut_by_field_of_view(pl, shape)
    assert heights_cut_by_field_of_view(pl, shape)
    # a face merely touching a corner of the section is no cut
    pl, shape = _placement((60, 50, 50), (1.0, 1.0, 0.4), (10, 40), (5, 45), (1, 59))
    body = pl.body.copy()
    body[0, 5:7, 10:12] = True
    pl = BodyPlacement(pl.box, body, body, pl.frame)
    assert not heights_cut_by_field_of_view(pl, shape)


def _arrays(r2s, soft_r2s_per_s=30.0):
    shape = r2s.shape
    return StudyArrays(
        pdff_pct=np.full(shape, 40.0, np.float32), signal=np.ones(shape, np.float32),
        signal_min=0.1, ijk_to_ras=np.eye(4), r2s_per_s=r2s.astype(np.float32),
        r2s_soft_tissue_per_s=soft_r2s_per_s,
    )  # fmt: skip


def test_heights_leave_out_a_disc_the_segmentation_took_in():
    # a 20 mm tall bony block (R2* 80/s) whose segmentation took in 6 mm of disc above it
    shape = (50, 50, 50)
    r2s = np.full(shape, 30.0)
    r2s[10:30, 10:40, 10:40] = 80.0
    pl, _ = _placement(shape, (1.0, 1.0, 1.0), (10, 40), (10, 40), (10, 36))
    assert pl.frame.heights_mm[1] == pytest.approx(26.0, abs=0.5)  # the segmented heights
    heights = bone_heights_mm(pl, _arrays(r2s))
    assert heights[1] == pytest.approx(20.0, abs=0.5)
    assert heights[0] == pytest.approx(20.0, abs=0.5)
    # no R2* contrast between bone and soft tissue: the segmented heights stand
    assert bone_heights_mm(pl, _arrays(np.full(shape, 30.0)))[1] == pytest.approx(26.0, abs=0.5)
    # a body of bone throughout keeps its heights
    whole = np.full(shape, 30.0)
    whole[10:36, 10:40, 10:40] = 80.0
    assert bone_heights_mm(pl, _arrays(whole))[1] == pytest.approx(26.0, abs=0.5)
