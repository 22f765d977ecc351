"""Core domain types: Volume geometry, Study grid checks, RoiSet flags and overrides."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from RefractureRiskLib.core import (
    LevelRoi,
    RoiFlag,
    RoiMethod,
    RoiSet,
    Study,
    Volume,
    level_index,
    level_label,
)
from RefractureRiskLib.core.levels import adjacent_levels, level_from_label


def oblique_volume(shape=(5, 6, 7), dtype=np.float32) -> Volume:
    rot = Rotation.from_euler("xyz", [12.0, -21.0, 33.0], degrees=True).as_matrix()
    rng = np.random.default_rng(3)
    return Volume.from_geometry(
        rng.random(shape).astype(dtype), [0.7, 1.3, 3.1], [12.5, -40.25, 101.125], rot
    )


def test_volume_geometry_properties():
    vol = oblique_volume()
    np.testing.assert_allclose(vol.spacing_mm, [0.7, 1.3, 3.1])
    np.testing.assert_allclose(vol.origin_ras, [12.5, -40.25, 101.125])
    d = vol.directions_ras
    np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-12)
    assert vol.voxel_volume_ml == pytest.approx(0.7 * 1.3 * 3.1 / 1000.0)
    # voxel (i, j, k) = (2, 3, 4) maps to origin + sum of scaled directions
    expected = vol.origin_ras + d @ (np.array([2, 3, 4]) * vol.spacing_mm)
    np.testing.assert_allclose(vol.ijk_to_ras_points([2, 3, 4])[0], expected)
    np.testing.assert_allclose(vol.ras_to_ijk_points(expected)[0], [2, 3, 4], atol=1e-9)


def test_volume_is_read_only_and_validates():
    vol = oblique_volume()
    with pytest.raises(ValueError):
        vol.array[0, 0, 0] = 1.0
    with pytest.raises(ValueError, match="3D"):
        Volume(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="singular"):
        Volume(np.zeros((2, 2, 2)), np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        vol.with_array(np.zeros((1, 2, 3)))


def test_same_grid_detects_small_shift():
    vol = oblique_volume()
    moved = np.array(vol.ijk_to_ras)
    moved[0, 3] += 0.01
    assert vol.same_grid(Volume(vol.array, vol.ijk_to_ras))
    assert not vol.same_grid(Volume(vol.array, moved))
    assert vol.same_grid(Volume(vol.array, moved), tol_mm=0.02)


def test_study_requires_one_grid_and_known_kinds():
    vol = oblique_volume()
    other = Volume.from_geometry(np.zeros(vol.shape), [1, 1, 1])
    with pytest.raises(ValueError, match="not on the grid"):
        Study({"pdff": vol, "r2s": other})
    with pytest.raises(ValueError, match="unknown map kind"):
        Study({"fatfrac": vol})
    study = Study({"pdff": vol, "r2s": vol.with_array(vol.array * 2), "echo_1": vol})
    assert study.grid is study.pdff
    with pytest.raises(KeyError, match="no 'water' map"):
        study._require("water")


def test_levels_table():
    assert level_label("T10") == 1 and level_label("s1") == 9
    assert level_from_label(4) == "L1"
    assert adjacent_levels("L1") == ("T12", "L2")
    assert adjacent_levels("T10") == ("T11",)
    with pytest.raises(ValueError, match="unknown vertebral level"):
        level_index("C7")


def test_roiset_flags_and_overrides():
    labels = np.zeros((3, 4, 5), np.int16)
    labels[0] = level_label("L1")
    labels[1] = level_label("L2")
    vol = Volume(labels)
    roi = RoiSet(
        vol,
        (LevelRoi("L2", level_label("L2")), LevelRoi("L1", level_label("L1"), {RoiFlag.FRACTURED})),
        RoiMethod.AUTOMATIC,
        reader="tester",
    )
    assert roi.level_names == ("L1", "L2")  # sorted cranio-caudally
    assert not roi.level("L1").included and roi.level("L2").included
    assert roi.mask("L2").sum() == 20
    re_included = roi.with_override("L1", True)
    assert re_included.level("L1").included and not roi.level("L1").included
    flagged = roi.with_flags("L2", ["index"])
    assert flagged.level("L2").flags == {RoiFlag.INDEX}
    with pytest.raises(ValueError, match="duplicate label"):
        RoiSet(vol, (LevelRoi("L1", 1), LevelRoi("L2", 1)), "manual_points")
    with pytest.raises(ValueError, match="integer"):
        RoiSet(Volume(labels.astype(float)), (), "manual_points")
