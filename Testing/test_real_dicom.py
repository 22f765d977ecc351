"""Real DICOM: the GE/Philips/Siemens field maps of dcm_qa_fmap (../shared/data/dicom) and
pydicom's bundled MR files. They are not fat-water maps: the loader must split them correctly,
agree with SimpleITK's geometry, classify them as not fat-water with a reason, and refuse them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file  # singular: the plural form hangs offline

from RefractureRiskLib.core import InputError, Volume
from RefractureRiskLib.io.dicom_classify import FAT_WATER_KINDS
from RefractureRiskLib.io.dicom_load import load_study
from RefractureRiskLib.io.dicom_series import ScanReport, SeriesInfo, scan_dicom
from RefractureRiskLib.io.dicom_volume import read_stack
from RefractureRiskLib.io.images import sitk_to_volume


@pytest.fixture(scope="module")
def fmap_report(fmap_root) -> ScanReport:
    return scan_dicom(fmap_root)


def _all_series(report: ScanReport) -> list[SeriesInfo]:
    return [s for st in report.studies for s in st.series]


def _by_folder(report: ScanReport, folder: str) -> list[SeriesInfo]:
    return [s for s in _all_series(report) if s.first_file.parent.name == folder]


def _same_voxels(ours: Volume, ref: Volume) -> None:
    """Same voxel centres in space and the same values there (k may run the other way)."""
    mapping = ref.ras_to_ijk @ ours.ijk_to_ras
    np.testing.assert_allclose(mapping, np.round(mapping), atol=1e-4)
    flip = np.round(mapping[:3, :3])
    assert np.allclose(np.abs(flip), np.eye(3)), f"axes differ: {flip}"
    arr = np.asarray(ours.array)
    for axis_ijk, arr_axis in ((0, 2), (1, 1), (2, 0)):
        if flip[axis_ijk, axis_ijk] < 0:
            arr = np.flip(arr, axis=arr_axis)
    np.testing.assert_allclose(arr, ref.array, rtol=1e-6, atol=1e-4)


def test_all_569_files_are_read_and_none_skipped(fmap_report):
    assert fmap_report.n_files_seen == 569
    assert fmap_report.skipped == ()
    assert len(fmap_report.studies) == 4


@pytest.mark.parametrize(
    ("folder", "n_parts", "shape"),
    [
        ("2_3db0maps", 2, (80, 128, 128)),
        ("3_3db0maps", 2, (80, 128, 128)),
        ("6_CV_Neuro", 2, (16, 128, 128)),
        ("2_gre_field_magph", 2, (36, 64, 64)),
        ("3_gre_field_magph", 1, (36, 64, 64)),
        ("4_gre_field_ph", 1, (36, 64, 64)),
        ("5_gre_field_mag", 2, (36, 64, 64)),
    ],
)
def test_classic_series_split_and_match_simpleitk(fmap_report, folder, n_parts, shape):
    parts = _by_folder(fmap_report, folder)
    assert len(parts) == n_parts
    for s in parts:
        assert s.geometry is not None, s.geometry_problem
        assert s.geometry.shape == shape
        ours = Volume(read_stack(s.geometry, s.label), s.geometry.ijk_to_ras)
        # SimpleITK on exactly this part's files, in GDCM's own order for the series.
        mine = {str(f.path) for f in s.frames}
        gdcm_order = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(
            str(s.first_file.parent), s.series_uid
        )
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames([f for f in gdcm_order if f in mine])
        ref = sitk_to_volume(reader.Execute())
        if np.linalg.det(ref.ijk_to_ras[:3, :3]) > 0:
            np.testing.assert_allclose(ours.ijk_to_ras, ref.ijk_to_ras, atol=1e-4)
        _same_voxels(ours, ref)


def test_ge_halves_are_field_map_then_magnitude(fmap_report):
    hz, magnitude = _by_folder(fmap_report, "2_3db0maps")
    assert "instances 1-80" in hz.part and "instances 81-160" in magnitude.part
    hz_values = read_stack(hz.geometry, hz.label)
    mag_values = read_stack(magnitude.geometry, magnitude.label)
    assert hz_values.min() == pytest.approx(-506, abs=1) and hz_values.max() <= 506
    assert mag_values.min() >= 0 and mag_values.max() == pytest.approx(2400, abs=1)


def test_naive_simpleitk_read_of_the_ge_series_is_the_documented_trap(fmap_root):
    folder = fmap_root / "GE" / "2_3db0maps"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    img = reader.Execute()
    assert img.GetSize()[2] == 160  # one stack of both volumes: why the loader splits


def test_philips_enhanced_per_frame_rescale_and_geometry(fmap_report):
    parts = _by_folder(fmap_report, "fmap")
    assert len(parts) == 2
    fieldmap = next(s for s in parts if "FIELD_MAP" in s.part)
    magnitude = next(s for s in parts if s is not fieldmap)
    hz = read_stack(fieldmap.geometry, fieldmap.label)
    assert hz.min() == pytest.approx(-495.6, abs=0.1)
    assert hz.max() == pytest.approx(497.3, abs=0.1)
    # Independent per-frame check with pydicom's decoded frames and per-frame rescale.
    ds = pydicom.dcmread(fieldmap.first_file)
    frames = ds.pixel_array
    for k, f in enumerate(fieldmap.geometry.frames[:5]):
        pvt = ds.PerFrameFunctionalGroupsSequence[f.frame_index].PixelValueTransformationSequence[0]
        want = frames[f.frame_index] * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)
        np.testing.assert_allclose(hz[k], want, rtol=1e-6, atol=1e-3)
    mag = read_stack(magnitude.geometry, magnitude.label)
    assert mag.min() >= 0
    # SimpleITK reads the file as one 64-frame stack on the same grid origin and axes.
    ref = sitk_to_volume(sitk.ReadImage(str(fieldmap.first_file)))
    np.testing.assert_allclose(fieldmap.geometry.ijk_to_ras, ref.ijk_to_ras, atol=1e-4)
    np.testing.assert_allclose(magnitude.geometry.ijk_to_ras, ref.ijk_to_ras, atol=1e-4)


def test_siemens_phase_rescale_matches_pydicom_modality_lut(fmap_report):
    (phase,) = _by_folder(fmap_report, "4_gre_field_ph")
    values = read_stack(phase.geometry, phase.label)
    assert -4096 <= values.min() < -4000 and 4000 < values.max() <= 4094  # slope 2, -4096
    for k, f in enumerate(phase.geometry.frames):
        ds = pydicom.dcmread(f.path)
        want = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)
        np.testing.assert_allclose(values[k], want)


def test_every_series_is_classified_as_not_fat_water_with_a_reason(fmap_report):
    series = _all_series(fmap_report)
    assert len(series) == 14
    for s in series:
        assert s.kind not in FAT_WATER_KINDS
        assert s.kind == "field_map"
        assert "not a fat-water map" in s.reason
    ge = _by_folder(fmap_report, "2_3db0maps")[0]
    assert "(0019,109C)" in ge.reason or "GE private" in ge.reason
    philips = _by_folder(fmap_report, "fmap")
    assert any("FrameType token FIELD_MAP" in s.reason for s in philips)


@pytest.mark.parametrize("vendor", ["GE/2_3db0maps", "Philips", "Siemens"])
def test_load_study_refuses_field_maps_with_the_reason(fmap_root, vendor):
    with pytest.raises(InputError) as err:
        load_study(fmap_root / vendor)
    msg = str(err.value)
    assert "no PDFF (fat fraction) series" in msg
    assert "field_map" in msg and "not a fat-water map" in msg


# -- pydicom's bundled MR files -------------------------------------------------------------------

LOSSLESS_MR = [
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_padded.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm",
]


@pytest.mark.parametrize("name", LOSSLESS_MR)
def test_pydicom_mr_files_decode_identically_and_are_refused_as_not_fat_water(name):
    path = get_testdata_file(name)
    assert path, f"pydicom test file {name} missing"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    report = scan_dicom(path)
    (study,) = report.studies
    (series,) = study.series
    assert series.kind == "unknown" and "no fat-water evidence" in series.reason
    assert series.geometry is not None and series.geometry.shape == (1, 64, 64)
    values = read_stack(series.geometry, series.label)
    np.testing.assert_array_equal(values[0], reference.pixel_array.astype(np.float32))
    with pytest.raises(InputError, match="no PDFF"):
        load_study(path)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("MR_truncated.dcm", "truncated or corrupt pixel data"),
        ("liver_1frame.dcm", "corrupt enhanced file"),
        ("rtplan.dcm", "without pixel data"),
        ("test-SR.dcm", "without pixel data"),
    ],
)
def test_pydicom_broken_or_non_image_files_are_skipped_with_the_reason(name, reason):
    path = Path(get_testdata_file(name))
    report = scan_dicom(path)
    assert not report.studies
    (skipped,) = report.skipped
    assert reason in skipped.reason
    with pytest.raises(InputError) as err:
        load_study(path)
    assert path.name in str(err.value) and reason in str(err.value)


def test_pydicom_ct_file_is_refused_as_not_mr():
    path = get_testdata_file("CT_small.dcm")
    (series,) = scan_dicom(path).studies[0].series
    assert series.kind == "not_mr" and "Modality CT" in series.reason
    with pytest.raises(InputError, match="Modality CT"):
        load_study(path)


def test_pydicom_dicomdir_folder_is_scanned_directly():
    root = Path(get_testdata_file("DICOMDIR")).parent
    report = scan_dicom(root)
    reasons = {s.path.name: s.reason for s in report.skipped}
    assert "DICOMDIR index" in reasons["DICOMDIR"]
    assert len(report.studies) >= 3
    kinds = {s.kind for st in report.studies for s in st.series}
    assert "not_mr" in kinds and "localizer" in kinds
    assert not kinds & set(FAT_WATER_KINDS)
    with pytest.raises(InputError, match="studies in this folder"):
        load_study(root)
    with pytest.raises(InputError, match="no PDFF"):
        load_study(root, study=0)
