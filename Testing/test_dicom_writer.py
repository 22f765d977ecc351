"""Vendor-styled DICOM writer: read back with independent readers, validate with dciodvfy.

Classic series are read with SimpleITK's ImageSeriesReader (GDCM applies RescaleSlope/Intercept);
enhanced multi-frame files with pydicom, applying each frame's Pixel Value Transformation and
Real World Value Mapping here (SimpleITK would apply frame 1's rescale to every frame).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from RefractureRiskLib.core import InputError, Study, StudyProvenance, Volume
from RefractureRiskLib.core.volume import LPS_TO_RAS
from RefractureRiskLib.io.images import sitk_to_volume, volume_to_sitk
from RefractureRiskLib.phantom.dicom_writer import WrittenSeries, WrittenStudy, write_dicom_study

GEOMETRY_TOL_MM = 1e-4
SHAPE = (6, 48, 64)  # [k, j, i]

# Style name -> writer options; every style is written once per test session.
STYLES: dict[str, dict] = {
    "GE": {"vendor": "GE"},
    "Siemens": {"vendor": "Siemens"},
    "Philips": {"vendor": "Philips"},
    "Philips-mixed": {"vendor": "Philips", "philips_mixed_series": True},
    "Philips-T2star": {"vendor": "Philips", "r2s_as_t2star": True},
    "Philips-enhanced": {"vendor": "Philips", "philips_enhanced": True},
    "Philips-enhanced-mixed-T2star": {
        "vendor": "Philips",
        "philips_enhanced": True,
        "philips_mixed_series": True,
        "r2s_as_t2star": True,
    },
}
CLASSIC_STYLES = [s for s in STYLES if "enhanced" not in s]
ENHANCED_STYLES = [s for s in STYLES if "enhanced" in s]


def _oblique_study(seed: int = 3) -> Study:
    """Maps on an oblique, anisotropic grid with a non-zero origin; PDFF partly out of 0-100."""
    rng = np.random.default_rng(seed)
    rot = Rotation.from_euler("xyz", [12.0, -7.0, 20.0], degrees=True).as_matrix()
    grid = Volume.from_geometry(np.zeros(SHAPE), (0.9, 1.3, 3.0), (10.5, -20.25, 33.0), rot)
    water = rng.uniform(0.0, 800.0, SHAPE)
    fat = rng.uniform(0.0, 500.0, SHAPE)
    pdff = rng.uniform(-3.0, 103.0, SHAPE)  # noisy PDFF leaves 0-100: scanners clip
    pdff[0, 0, :5] = [0.0, 100.0, 0.04, 99.96, 33.333]
    r2s = rng.uniform(5.0, 400.0, SHAPE)
    maps = {
        "pdff": pdff,
        "r2s": r2s,
        "water": water,
        "fat": fat,
        "in_phase": water + fat,
        "out_phase": np.abs(water - fat),
    }
    prov = StudyProvenance(vendor="synthetic", field_strength_t=3.0, echo_times_ms=(1.1, 2.2))
    return Study({k: grid.with_array(v) for k, v in maps.items()}, prov)


@pytest.fixture(scope="module")
def study() -> Study:
    return _oblique_study()


@pytest.fixture(scope="module")
def written(study: Study, tmp_path_factory: pytest.TempPathFactory) -> dict[str, WrittenStudy]:
    root = tmp_path_factory.mktemp("dicom_styles")
    return {
        name: write_dicom_study(study, root / name, seed=7, **opts) for name, opts in STYLES.items()
    }


def _expected_library_values(study: Study, series: WrittenSeries) -> np.ndarray:
    """The study's values after the documented vendor clipping (PDFF 0-100 %, R2* >= 0)."""
    values = np.asarray(study.maps[series.kind].array, float)
    enc = series.encoding
    lo = -np.inf if enc.clip_low is None else enc.clip_low
    hi = np.inf if enc.clip_high is None else enc.clip_high
    return np.clip(values, lo, hi)


def _rescaled_to_library(values: np.ndarray, meaning: str) -> np.ndarray:
    """Convert a rescaled value (what the Modality LUT gives) to library units."""
    factor = {"pct": 1.0, "permille": 0.1, "fraction": 100.0, "per_s": 1.0, "signal_au": 1.0}
    if meaning == "t2star_ms":
        return np.where(values > 0, 1000.0 / np.maximum(values, 1e-9), 0.0)
    return values * factor[meaning]


def _assert_same_geometry(image: sitk.Image, volume: Volume) -> None:
    ref = volume_to_sitk(volume)
    assert image.GetSize() == ref.GetSize()
    np.testing.assert_allclose(image.GetOrigin(), ref.GetOrigin(), atol=GEOMETRY_TOL_MM)
    np.testing.assert_allclose(image.GetSpacing(), ref.GetSpacing(), atol=GEOMETRY_TOL_MM)
    np.testing.assert_allclose(image.GetDirection(), ref.GetDirection(), atol=1e-6)


def _read_sitk(files: list[str]) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    return sitk.Cast(reader.Execute(), sitk.sitkFloat64)


# ---------------------------------------------------------------------------------------------
# Classic series: SimpleITK read-back


@pytest.mark.parametrize("style", CLASSIC_STYLES)
def test_classic_series_read_back_with_simpleitk(
    style: str, written: dict[str, WrittenStudy], study: Study
) -> None:
    ws = written[style]
    assert {s.kind for s in ws.series} == set(study.maps)
    for series in ws.series:
        folder = series.files[0].parent
        if series.mixed:
            # One series, several kinds at the same positions: GDCM would stack them all.
            all_files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(
                str(folder), series.series_instance_uid
            )
            assert len(all_files) > len(series.files)
            files = [str(f) for f in series.files]
        else:
            # GDCM finds and orders the files itself (independent of the writer's order).
            files = list(
                sitk.ImageSeriesReader.GetGDCMSeriesFileNames(
                    str(folder), series.series_instance_uid
                )
            )
            assert sorted(files) == sorted(str(f) for f in series.files)
        image = _read_sitk(files)
        _assert_same_geometry(image, study.maps[series.kind])
        got = _rescaled_to_library(sitk.GetArrayFromImage(image), series.encoding.meaning)
        expected = _expected_library_values(study, series)
        if series.encoding.reciprocal_ms:
            # Compare in the stored quantity (T2*, ms): the step is uniform there.
            t2s_got = 1000.0 / got
            t2s_expected = np.minimum(1000.0 / expected, 65535 * series.encoding.rescale_slope)
            np.testing.assert_allclose(t2s_got, t2s_expected, atol=0.005 + 1e-9)
        else:
            err = np.abs(got - expected).max()
            assert err <= series.encoding.library_step * (1 + 1e-6) + 1e-9, (style, series.kind)


def test_pdff_clipping_is_counted(written: dict[str, WrittenStudy], study: Study) -> None:
    pdff = np.asarray(study.pdff.array)
    n_outside = int(((pdff < 0) | (pdff > 100)).sum())
    assert n_outside > 0
    for ws in written.values():
        assert ws.by_kind("pdff").n_clipped == n_outside


# ---------------------------------------------------------------------------------------------
# Enhanced multi-frame: pydicom read-back with per-frame transformations


def _frame_item(ds: pydicom.Dataset, frame: int, keyword: str) -> pydicom.Dataset | None:
    """Functional group ``keyword`` of 1-based ``frame``: per-frame first, then shared."""
    per_frame = ds.PerFrameFunctionalGroupsSequence[frame - 1]
    if keyword in per_frame:
        return per_frame[keyword][0]
    shared = ds.SharedFunctionalGroupsSequence[0]
    return shared[keyword][0] if keyword in shared else None


@pytest.mark.parametrize("style", ENHANCED_STYLES)
def test_enhanced_frames_read_back_with_pydicom(
    style: str, written: dict[str, WrittenStudy], study: Study
) -> None:
    ws = written[style]
    for series in ws.series:
        assert len(series.files) == 1
        ds = pydicom.dcmread(series.files[0])
        assert ds.SOPClassUID == pydicom.uid.EnhancedMRImageStorage
        stored = ds.pixel_array.astype(np.float64)
        assert stored.shape[0] == int(ds.NumberOfFrames)
        volume = study.maps[series.kind]
        expected = _expected_library_values(study, series)
        iop = np.array(_frame_item(ds, 1, "PlaneOrientationSequence").ImageOrientationPatient)
        measures = _frame_item(ds, 1, "PixelMeasuresSequence")
        row_mm, col_mm = (float(x) for x in measures.PixelSpacing)
        positions = []
        for k, frame in enumerate(series.frame_numbers):
            frame_type = _frame_item(ds, frame, "MRImageFrameTypeSequence").FrameType
            assert tuple(frame_type) == series.image_type
            pvt = _frame_item(ds, frame, "PixelValueTransformationSequence")
            rescaled = stored[frame - 1] * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)
            rwvm = _frame_item(ds, frame, "RealWorldValueMappingSequence")
            assert rwvm is not None  # Philips writes RWVM on every frame
            real = stored[frame - 1] * rwvm.RealWorldValueSlope + rwvm.RealWorldValueIntercept
            unit = rwvm.MeasurementUnitsCodeSequence[0].CodeValue
            got = {"%": real, "/s": real, "1": real, "ms": None}[unit]
            if unit == "ms":
                assert series.encoding.reciprocal_ms
                t2s_expected = np.minimum(1000.0 / expected[k], 655.35)
                np.testing.assert_allclose(real, t2s_expected, atol=0.005 + 1e-9)
                np.testing.assert_allclose(rescaled, real, atol=1e-9)
            else:
                err = np.abs(got - expected[k]).max()
                assert err <= series.encoding.library_step * (1 + 1e-6) + 1e-9, series.kind
                np.testing.assert_allclose(
                    _rescaled_to_library(rescaled, series.encoding.meaning), got, atol=1e-9
                )
            ipp = _frame_item(ds, frame, "PlanePositionSequence").ImagePositionPatient
            positions.append([float(x) for x in ipp])
        # Rebuild IJK->RAS from the frame geometry and compare with the Volume.
        positions_lps = np.array(positions)
        lps = np.eye(4)
        lps[:3, 0] = iop[:3] * col_mm
        lps[:3, 1] = iop[3:] * row_mm
        lps[:3, 2] = positions_lps[1] - positions_lps[0]
        lps[:3, 3] = positions_lps[0]
        np.testing.assert_allclose(LPS_TO_RAS @ lps, volume.ijk_to_ras, atol=GEOMETRY_TOL_MM)
        steps = np.diff(positions_lps, axis=0)
        np.testing.assert_allclose(steps, steps[:1].repeat(len(steps), 0), atol=GEOMETRY_TOL_MM)


def test_simpleitk_applies_first_frame_rescale_to_mixed_enhanced(
    written: dict[str, WrittenStudy],
) -> None:
    """The trap the loader must avoid: one rescale for every frame of a mixed file."""
    ws = written["Philips-enhanced-mixed-T2star"]
    pdff, water = ws.by_kind("pdff"), ws.by_kind("water")
    assert pdff.files == water.files and pdff.series_instance_uid == water.series_instance_uid
    ds = pydicom.dcmread(pdff.files[0])
    slopes = {
        float(_frame_item(ds, f, "PixelValueTransformationSequence").RescaleSlope)
        for f in (pdff.frame_numbers[0], water.frame_numbers[0])
    }
    assert len(slopes) == 2  # per-frame rescale really differs
    naive = sitk.GetArrayFromImage(sitk.ReadImage(str(pdff.files[0]))).astype(np.float64)
    stored = ds.pixel_array.astype(np.float64)
    frames = [f - 1 for f in water.frame_numbers]
    correct = stored[frames] * water.rescale_slope + water.rescale_intercept
    # SimpleITK used frame 1's (PDFF) rescale for the water frames: wrong by the slope ratio.
    assert np.abs(naive[frames] - correct).max() > 10 * water.encoding.library_step


# ---------------------------------------------------------------------------------------------
# Attributes


@pytest.mark.parametrize("style", list(STYLES))
def test_shared_and_distinct_uids_and_fake_patient(
    style: str, written: dict[str, WrittenStudy]
) -> None:
    ws = written[style]
    series_uids = set()
    for series in ws.series:
        ds = pydicom.dcmread(series.files[0], stop_before_pixels=True)
        assert ds.StudyInstanceUID == ws.study_instance_uid
        assert ds.FrameOfReferenceUID == ws.frame_of_reference_uid
        assert ds.SeriesInstanceUID == series.series_instance_uid
        assert ds.PatientName == "SYNTHETIC^PHANTOM"
        assert ds.PatientID == "SYN-7"
        assert len(ds.PatientBirthDate) == 8 and ds.PatientSex in ("F", "M", "O")
        assert ds.Modality == "MR"
        assert float(ds.MagneticFieldStrength) == 3.0
        series_uids.add(series.series_instance_uid)
    n_series = len({(s.series_instance_uid, s.kind) for s in ws.series})
    mixed_parts = sum(1 for s in ws.series if s.mixed)
    assert len(series_uids) == n_series - max(mixed_parts - 1, 0)


def test_vendor_tokens(written: dict[str, WrittenStudy]) -> None:
    ge = written["GE"]
    ff = pydicom.dcmread(ge.by_kind("pdff").files[0], stop_before_pixels=True)
    assert "FAT_FRACTION" in ff.ImageType and ff.SeriesDescription.startswith("FatFrac:")
    assert "IDEAL" in ff[0x0019, 0x109C].value.upper()
    assert ff[0x0019, 0x0010].value == "GEMS_ACQU_01"
    water = pydicom.dcmread(ge.by_kind("water").files[0], stop_before_pixels=True)
    assert water.SeriesDescription.startswith("WATER:")
    assert float(ff.RescaleSlope) == pytest.approx(0.1)

    siemens = pydicom.dcmread(written["Siemens"].by_kind("pdff").files[0])
    assert "FAT_FRAC" in siemens.ImageType and siemens.ImageType[0] == "DERIVED"
    assert siemens.Manufacturer == "SIEMENS"
    assert int(siemens.pixel_array.max()) <= 1000 and float(siemens.RescaleSlope) == 1.0

    ph = written["Philips-T2star"]
    r2s = pydicom.dcmread(ph.by_kind("r2s").files[0], stop_before_pixels=True)
    assert "T2_STAR" in r2s.ImageType and r2s[0x2005, 0x1011].value == "T2_STAR"
    ff = pydicom.dcmread(ph.by_kind("pdff").files[0], stop_before_pixels=True)
    assert "FF" in ff.ImageType and ff[0x2005, 0x1011].value == "FF"
    rwvm = ff.RealWorldValueMappingSequence[0]
    assert rwvm.MeasurementUnitsCodeSequence[0].CodeValue == "%"
    assert rwvm.RealWorldValueSlope == pytest.approx(0.1) and float(ff.RescaleSlope) == 1.0


@pytest.mark.parametrize(
    ("vendor", "storage", "meaning", "max_rescaled"),
    [
        ("GE", "percent_rescaled", "pct", 100.0),
        ("GE", "permille", "permille", 1000.0),
        ("Siemens", "percent", "pct", 100.0),
        ("GE", "fraction", "fraction", 1.0),
        ("Philips", "rwvm", "permille", 1000.0),
    ],
)
def test_pdff_storage_variants(
    vendor: str, storage: str, meaning: str, max_rescaled: float, study: Study, tmp_path: Path
) -> None:
    ws = write_dicom_study(study, tmp_path, vendor=vendor, pdff_storage=storage, kinds=["pdff"])
    series = ws.by_kind("pdff")
    assert series.encoding.meaning == meaning
    image = _read_sitk([str(f) for f in series.files])
    rescaled = sitk.GetArrayFromImage(image)
    assert rescaled.max() == pytest.approx(max_rescaled)  # the study reaches PDFF 100 %
    expected = _expected_library_values(study, series)
    got = _rescaled_to_library(rescaled, meaning)
    assert np.abs(got - expected).max() <= series.encoding.library_step + 1e-9
    if storage == "percent":  # whole-percent quantisation, documented
        assert np.allclose(rescaled, np.round(rescaled))


def test_deterministic_for_seed(study: Study, tmp_path: Path) -> None:
    a = write_dicom_study(study, tmp_path / "a", vendor="Siemens", seed=11, kinds=["pdff"])
    b = write_dicom_study(study, tmp_path / "b", vendor="Siemens", seed=11, kinds=["pdff"])
    c = write_dicom_study(study, tmp_path / "c", vendor="Siemens", seed=12, kinds=["pdff"])
    assert a.study_instance_uid == b.study_instance_uid != c.study_instance_uid
    for fa, fb in zip(a.files, b.files, strict=True):
        assert fa.read_bytes() == fb.read_bytes()


def test_refuses_bad_options(study: Study, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="Philips"):
        write_dicom_study(study, tmp_path, vendor="GE", philips_enhanced=True)
    with pytest.raises(InputError, match="rwvm"):
        write_dicom_study(study, tmp_path, vendor="Siemens", pdff_storage="rwvm")
    with pytest.raises(InputError, match="pdff_storage"):
        write_dicom_study(study, tmp_path, pdff_storage="percentage")
    with pytest.raises(InputError, match="kinds"):
        write_dicom_study(study, tmp_path, kinds=["echo_9"])
    with pytest.raises(ValueError, match="vendor"):
        write_dicom_study(study, tmp_path, vendor="Canon")
    bad = Study({"pdff": study.pdff.with_array(np.full(SHAPE, np.nan))})
    with pytest.raises(InputError, match="pdff"):
        write_dicom_study(bad, tmp_path)
    write_dicom_study(study, tmp_path / "once", kinds=["r2s"])
    with pytest.raises(InputError, match="not empty"):
        write_dicom_study(study, tmp_path / "once", kinds=["r2s"])


def test_summary_rows_describe_every_series(written: dict[str, WrittenStudy]) -> None:
    rows = written["Philips-enhanced-mixed-T2star"].summary_rows()
    by_kind = {r["kind"]: r for r in rows}
    assert set(by_kind) == {"pdff", "r2s", "water", "fat", "in_phase", "out_phase"}
    assert by_kind["pdff"]["rwvm_units"] == "%" and by_kind["pdff"]["mixed"] is True
    assert by_kind["r2s"]["stored_meaning"] == "t2star_ms" and by_kind["r2s"]["n_frames"] == 6


# ---------------------------------------------------------------------------------------------
# dciodvfy


@pytest.mark.parametrize("style", list(STYLES))
def test_dciodvfy_reports_no_errors(style: str, written: dict[str, WrittenStudy]) -> None:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy not found (Debian package dicom3tools)")
    checked = set()
    for series in written[style].series:
        path = series.files[0]
        if path in checked:
            continue
        checked.add(path)
        run = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
        lines = (run.stdout + run.stderr).splitlines()
        errors = [line for line in lines if line.startswith("Error")]
        assert not errors, f"{style} {series.kind} {path}:\n" + "\n".join(errors)


# ---------------------------------------------------------------------------------------------
# Other grids


def test_left_handed_grid_keeps_voxel_positions(tmp_path: Path) -> None:
    """k opposite to the slice normal: GDCM sorts slices along the normal, positions still agree."""
    rng = np.random.default_rng(5)
    directions = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # det = -1
    assert np.linalg.det(directions) < 0
    grid = Volume.from_geometry(rng.uniform(0, 100, SHAPE), (1.1, 1.2, 4.0), (-5, 7, 9), directions)
    ws = write_dicom_study(Study({"pdff": grid}), tmp_path, vendor="GE", kinds=["pdff"])
    series = ws.by_kind("pdff")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(
        str(series.files[0].parent), series.series_instance_uid
    )
    back = sitk_to_volume(_read_sitk(list(files)))
    flipped_matrix = grid.ijk_to_ras.copy()
    flipped_matrix[:3, 3] = grid.ijk_to_ras_points([[0, 0, SHAPE[0] - 1]])[0]
    flipped_matrix[:3, 2] *= -1
    np.testing.assert_allclose(back.ijk_to_ras, flipped_matrix, atol=GEOMETRY_TOL_MM)
    np.testing.assert_allclose(back.array, grid.array[::-1], atol=0.05 + 1e-9)


def test_phantom_study_round_trip(tmp_path: Path) -> None:
    """The project's phantom, written GE-style, reads back on its own grid."""
    from RefractureRiskLib import phantom

    spec = phantom.PhantomSpec(seed=2, matrix_size=(48, 64), n_slices=6, snr=30.0, oblique_deg=8)
    study = phantom.generate_phantom(spec).study
    for vendor in ("GE", "Philips"):
        ws = write_dicom_study(study, tmp_path / vendor, vendor=vendor, seed=2)
        for series in ws.series:
            image = _read_sitk([str(f) for f in series.files])
            _assert_same_geometry(image, study.maps[series.kind])
            got = _rescaled_to_library(sitk.GetArrayFromImage(image), series.encoding.meaning)
            err = np.abs(got - _expected_library_values(study, series)).max()
            assert err <= series.encoding.library_step * (1 + 1e-6) + 1e-9, (vendor, series.kind)


def test_dcm2niix_reads_mixed_enhanced_with_per_frame_scaling(
    written: dict[str, WrittenStudy], study: Study, tmp_path: Path
) -> None:
    """A second independent reader: dcm2niix splits the mixed file and scales each frame."""
    exe = shutil.which("dcm2niix") or str(Path(sys.executable).parent / "dcm2niix")
    if not Path(exe).is_file():
        pytest.skip("dcm2niix not found (pip package dcm2niix)")
    ws = written["Philips-enhanced-mixed-T2star"]
    parts = [s for s in ws.series if s.mixed]
    assert [s.kind for s in parts] == ["pdff", "water", "fat"]
    run = subprocess.run(
        [exe, "-z", "n", "-f", "mixed", "-o", str(tmp_path), str(parts[0].files[0].parent)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    image = sitk.ReadImage(str(tmp_path / "mixed.nii"))
    assert image.GetSize()[3] == len(parts)
    for t, series in enumerate(parts):
        got = sitk.DICOMOrient(image[:, :, :, t], "LPS")
        ref = sitk.DICOMOrient(volume_to_sitk(study.maps[series.kind]), "LPS")
        np.testing.assert_allclose(got.GetOrigin(), ref.GetOrigin(), atol=GEOMETRY_TOL_MM)
        np.testing.assert_allclose(got.GetSpacing(), ref.GetSpacing(), atol=GEOMETRY_TOL_MM)
        np.testing.assert_allclose(got.GetDirection(), ref.GetDirection(), atol=1e-5)
        expected = sitk.GetArrayFromImage(
            sitk.DICOMOrient(
                volume_to_sitk(
                    study.maps[series.kind].with_array(_expected_library_values(study, series))
                ),
                "LPS",
            )
        )
        err = np.abs(sitk.GetArrayFromImage(got) - expected).max()
        assert err <= series.encoding.library_step + 1e-3, series.kind  # float32 NIfTI
