"""Volume <-> SimpleITK and NRRD/NIfTI files: geometry must round-trip exactly.

Reference: SimpleITK's own LPS geometry, computed independently from the RAS matrix here.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from RefractureRiskLib.core import InputError, Volume
from RefractureRiskLib.io.images import read_image, sitk_to_volume, volume_to_sitk, write_image

ROT = Rotation.from_euler("zyx", [25.0, -15.0, 40.0], degrees=True).as_matrix()
SPACING = [0.78125, 1.4, 3.3]
ORIGIN_RAS = [-120.5, 33.25, -250.0]


@pytest.fixture
def oblique() -> Volume:
    rng = np.random.default_rng(7)
    return Volume.from_geometry(rng.normal(size=(4, 9, 11)), SPACING, ORIGIN_RAS, ROT)


def test_to_sitk_matches_lps_convention(oblique):
    img = volume_to_sitk(oblique)
    np.testing.assert_allclose(img.GetSpacing(), SPACING, rtol=1e-12)
    np.testing.assert_allclose(img.GetOrigin(), [120.5, -33.25, -250.0], atol=1e-12)
    lps_dir = np.diag([-1.0, -1.0, 1.0]) @ ROT
    np.testing.assert_allclose(np.reshape(img.GetDirection(), (3, 3)), lps_dir, atol=1e-12)
    # SimpleITK's own index -> physical point (LPS) agrees with Volume's RAS mapping
    lps = img.TransformIndexToPhysicalPoint((3, 5, 2))
    ras = oblique.ijk_to_ras_points([3, 5, 2])[0]
    np.testing.assert_allclose(lps, ras * [-1, -1, 1], atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), oblique.array)


def test_sitk_round_trip_exact(oblique):
    back = sitk_to_volume(volume_to_sitk(oblique))
    np.testing.assert_allclose(back.ijk_to_ras, oblique.ijk_to_ras, atol=1e-12)
    np.testing.assert_array_equal(back.array, oblique.array)


@pytest.mark.parametrize(
    ("suffix", "atol_mm"),
    # NIfTI stores the affine as float32: exact to float32 precision, not float64.
    [(".nrrd", 1e-9), (".mha", 1e-9), (".nii.gz", 1e-4), (".nii", 1e-4)],
)
@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8])
def test_file_round_trip(tmp_path, oblique, suffix, atol_mm, dtype):
    vol = oblique.with_array((oblique.array * 10).astype(dtype))
    back = read_image(write_image(vol, tmp_path / f"img{suffix}"))
    np.testing.assert_allclose(back.ijk_to_ras, vol.ijk_to_ras, atol=atol_mm)
    assert back.array.dtype == vol.array.dtype
    np.testing.assert_array_equal(back.array, vol.array)


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match=r"missing\.nrrd: file not found"):
        read_image(tmp_path / "missing.nrrd")
    bad = tmp_path / "broken.nrrd"
    bad.write_bytes(b"NRRD0004\ntype: float\ndimension: 3\nsizes: 2 2 2\n\ngarbage")
    with pytest.raises(InputError, match=r"broken\.nrrd: cannot be read as an image"):
        read_image(bad)
    txt = tmp_path / "notes.txt"
    txt.write_text("x")
    with pytest.raises(InputError, match="not an image file"):
        read_image(txt)
