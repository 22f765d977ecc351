"""A generated corpus of broken inputs: each must give a specific InputError naming the file or
series and the reason. Inputs are built from the phantom DICOM writer (small maps) and pydicom's
bundled test files, then damaged the way real exports are damaged."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import RLELossless, generate_uid

from RefractureRiskLib.core import InputError, PatientInfo, Study, StudyProvenance, Volume
from RefractureRiskLib.io.dicom_load import load_study
from RefractureRiskLib.io.dicom_series import scan_dicom
from RefractureRiskLib.io.images import write_image
from RefractureRiskLib.io.study_files import load_map_files
from RefractureRiskLib.phantom.dicom_writer import WrittenStudy, write_dicom_study

SHAPE = (5, 12, 16)
AFFINE = np.array([[0, 0, 3.0, 0], [-1.5, 0, 0, 10], [0, -1.5, 0, 30], [0, 0, 0, 1]], float)


def small_study(pdff_max: float = 95.0, seed: int = 0) -> Study:
    rng = np.random.default_rng(seed)
    pdff = rng.uniform(0, pdff_max, SHAPE)
    pdff.flat[0] = pdff_max
    water = rng.uniform(100, 900, SHAPE)
    maps = {"pdff": pdff, "r2s": rng.uniform(20, 150, SHAPE), "water": water}
    return Study(
        {k: Volume(v, AFFINE) for k, v in maps.items()},
        StudyProvenance(field_strength_t=1.5),
        PatientInfo(age_years=70, sex="M"),
    )


def write(
    root: Path, kinds=("pdff", "r2s", "water"), vendor="GE", study=None, **kw
) -> WrittenStudy:
    return write_dicom_study(study or small_study(), root, vendor=vendor, kinds=list(kinds), **kw)


def edit(path: Path, change: Callable[[pydicom.Dataset], None], dest: Path | None = None) -> Path:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(dest or path)
    return dest or path


def truncate(path: Path, n_bytes: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:n_bytes])


@dataclass
class Case:
    """A damaged input: where to load, how, and the message fragments expected."""

    path: Path
    expect: list[str]
    kwargs: dict = field(default_factory=dict)
    loader: Callable | None = None


# -- the corpus ------------------------------------------------------------------------------------


def empty_folder(tmp: Path) -> Case:
    (tmp / "empty" / "sub").mkdir(parents=True)
    return Case(tmp / "empty", ["empty", "folder is empty"])


def missing_folder(tmp: Path) -> Case:
    return Case(tmp / "nowhere", ["nowhere", "folder not found"])


def only_text_files(tmp: Path) -> Case:
    (tmp / "d").mkdir()
    (tmp / "d" / "notes.txt").write_text("exported from PACS")
    (tmp / "d" / "readme").write_bytes(b"\x00" * 300)
    return Case(tmp / "d", ["no readable DICOM image among 2 file(s)", "notes.txt: not a DICOM"])


def corrupt_header(tmp: Path) -> Case:
    (tmp / "d").mkdir()
    (tmp / "d" / "bad.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7f")
    return Case(tmp / "d", ["bad.dcm", "DICOM"])


def truncated_header(tmp: Path) -> Case:
    ws = write(tmp / "w", kinds=["pdff"])
    (tmp / "d").mkdir()
    target = tmp / "d" / "cut.dcm"
    shutil.copy(ws.by_kind("pdff").files[0], target)
    truncate(target, 700)
    return Case(tmp / "d", ["cut.dcm", "truncated"])


def truncated_pixels(tmp: Path) -> Case:
    ws = write(tmp / "w", kinds=["pdff"])
    (tmp / "d").mkdir()
    target = tmp / "d" / "short.dcm"
    shutil.copy(ws.by_kind("pdff").files[0], target)
    truncate(target, -100)
    return Case(tmp / "d", ["short.dcm", "truncated or corrupt pixel data", "bytes present"])


def zero_byte_file(tmp: Path) -> Case:
    (tmp / "d").mkdir()
    (tmp / "d" / "IM0001").write_bytes(b"")
    return Case(tmp / "d", ["IM0001", "empty file (0 bytes)"])


def truncated_slice_in_study(tmp: Path) -> Case:
    ws = write(tmp / "d")
    victim = ws.by_kind("pdff").files[2]
    truncate(victim, -50)
    return Case(tmp / "d", ["FatFrac", "missing slice(s)", victim.name, "truncated"])


def only_localizer(tmp: Path) -> Case:
    ws = write(tmp / "d", kinds=["water"])

    def to_localizer(ds):
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.SeriesDescription = "3-plane loc"

    for f in ws.files:
        edit(f, to_localizer)
    return Case(tmp / "d", ["only localizer images found", "3-plane loc", "LOCALIZER"])


def no_pdff(tmp: Path) -> Case:
    write(tmp / "d", kinds=["water", "r2s"])
    return Case(
        tmp / "d",
        ["no PDFF (fat fraction) series among 2", "WATER: IDEAL IQ SPINE", "R2*: IDEAL IQ SPINE"],
    )


def mixed_patients(tmp: Path) -> Case:
    ws = write(tmp / "d")

    def other_patient(ds):
        ds.PatientID = "OTHER-PATIENT-77"
        ds.PatientName = "DOE^JANE"

    for f in ws.by_kind("r2s").files:
        edit(f, other_patient)
    return Case(tmp / "d", ["mixed patients", "2 different patients", "separate the files"])


def missing_slice(tmp: Path) -> Case:
    ws = write(tmp / "d")
    files = ws.by_kind("pdff").files
    files[2].unlink()
    return Case(
        tmp / "d",
        [
            "series 3 'FatFrac: IDEAL IQ SPINE'",
            "missing slice(s)",
            "1 slice(s) missing",
            files[1].name,
            files[3].name,
        ],
    )


def two_missing_slices(tmp: Path) -> Case:
    ws = write(tmp / "d")
    files = ws.by_kind("pdff").files
    files[1].unlink()
    files[2].unlink()
    return Case(tmp / "d", ["missing slice(s)", "gap of 9.000 mm", "2 slice(s) missing"])


def duplicate_slice(tmp: Path) -> Case:
    ws = write(tmp / "d")
    src = ws.by_kind("pdff").files[1]

    def new_instance(ds):
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = 99

    edit(src, new_instance, src.with_name("extra.dcm"))
    return Case(tmp / "d", ["duplicate slice position", "extra.dcm", src.name])


def inconsistent_spacing(tmp: Path) -> Case:
    ws = write(tmp / "d")
    last = ws.by_kind("pdff").files[-1]

    def shift(ds):
        pos = [float(v) for v in ds.ImagePositionPatient]
        pos[0] += 1.0  # LPS x is the slice normal of this sagittal grid
        ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]

    edit(last, shift)
    return Case(tmp / "d", ["inconsistent slice spacing", "2.000 mm between", last.name, "FatFrac"])


def mixed_orientation(tmp: Path) -> Case:
    ws = write(tmp / "d")
    victim = ws.by_kind("pdff").files[3]

    def tilt(ds):
        a = np.radians(5)
        row = np.array([float(v) for v in ds.ImageOrientationPatient[:3]])
        col = np.array([float(v) for v in ds.ImageOrientationPatient[3:]])
        col2 = np.cos(a) * col + np.sin(a) * np.cross(row, col)
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col2)]

    edit(victim, tilt)
    return Case(tmp / "d", ["mixed slice orientations", victim.name])


def gantry_tilt(tmp: Path) -> Case:
    ws = write(tmp / "d")

    for k, f in enumerate(ws.by_kind("pdff").files):

        def shear(ds, k=k):
            pos = [float(v) for v in ds.ImagePositionPatient]
            pos[2] += 0.8 * k  # drift along S-I, in the image plane
            ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
            ds.GantryDetectorTilt = "15"

        edit(f, shear)
    return Case(tmp / "d", ["gantry tilt / sheared stack", "GantryDetectorTilt 15", "FatFrac"])


def mixed_sizes(tmp: Path) -> Case:
    ws = write(tmp / "d")
    victim = ws.by_kind("pdff").files[2]

    def shrink(ds):
        small = ds.pixel_array[:8, :10].copy()
        ds.Rows, ds.Columns = small.shape
        ds.PixelData = small.tobytes()

    edit(victim, shrink)
    return Case(tmp / "d", ["mixed image sizes", victim.name, "10x8", "16x12"])


def mixed_pixel_spacing(tmp: Path) -> Case:
    ws = write(tmp / "d")
    victim = ws.by_kind("pdff").files[4]
    edit(victim, lambda ds: setattr(ds, "PixelSpacing", ["1.4", "1.5"]))
    return Case(tmp / "d", ["mixed pixel spacings", victim.name])


def missing_position(tmp: Path) -> Case:
    ws = write(tmp / "d")
    victim = ws.by_kind("pdff").files[0]
    edit(victim, lambda ds: delattr(ds, "ImagePositionPatient"))
    return Case(tmp / "d", [victim.name, "has no ImagePositionPatient", "cannot place it"])


def ambiguous_pdff_range(tmp: Path) -> Case:
    write(tmp / "d", study=small_study(pdff_max=1.2), pdff_storage="permille")
    return Case(tmp / "d", ["FatFrac", "ambiguous PDFF unit", "pdff_unit", "values 0..12"])


def pdff_range_fits_no_unit(tmp: Path) -> Case:
    ws = write(tmp / "d", pdff_storage="permille")
    for f in ws.by_kind("pdff").files:
        edit(f, lambda ds: setattr(ds, "RescaleSlope", "10"))
    return Case(tmp / "d", ["FatFrac", "ambiguous PDFF unit", "fit none of"])


def header_unit_contradicts_values(tmp: Path) -> Case:
    ws = write(tmp / "d", vendor="Philips", kinds=["pdff"])

    def unit_slope_one(ds):
        ds.RealWorldValueMappingSequence[0].RealWorldValueSlope = 1.0

    for f in ws.by_kind("pdff").files:
        edit(f, unit_slope_one)
    return Case(tmp / "d", ["header says percent", "real-world value unit '%'", "FF"])


def wrong_explicit_unit(tmp: Path) -> Case:
    write(tmp / "d")
    return Case(
        tmp / "d",
        ["FatFrac", "after converting from fraction", "outside -10..110 %"],
        {"pdff_unit": "fraction"},
    )


def invalid_unit_argument(tmp: Path) -> Case:
    write(tmp / "d", kinds=["pdff"])
    return Case(tmp / "d", ["pdff_unit", "'pct'", "expected one of"], {"pdff_unit": "pct"})


def two_pdff_series(tmp: Path) -> Case:
    ws = write(tmp / "d")
    new_series = generate_uid()

    def copy_series(ds):
        ds.SeriesInstanceUID = new_series
        ds.SeriesNumber = 13
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID

    (tmp / "d" / "again").mkdir()
    for f in ws.by_kind("pdff").files:
        edit(f, copy_series, tmp / "d" / "again" / f.name)
    return Case(tmp / "d", ["2 PDFF series", "pdff_series=", "series 3 ", "series 13 "])


def pdff_series_not_found(tmp: Path) -> Case:
    write(tmp / "d")
    return Case(tmp / "d", ["no PDFF series matches '999'"], {"pdff_series": 999})


def several_studies(tmp: Path) -> Case:
    a = write(tmp / "d" / "a", seed=1)
    b = write(tmp / "d" / "b", seed=2)
    return Case(tmp / "d", ["2 studies in this folder", a.study_instance_uid, b.study_instance_uid])


def study_index_out_of_range(tmp: Path) -> Case:
    write(tmp / "d")
    return Case(tmp / "d", ["study index 5 out of range 0..0"], {"study": 5})


def unknown_study_uid(tmp: Path) -> Case:
    write(tmp / "d")
    return Case(tmp / "d", ["no study with StudyInstanceUID 1.2.3.4"], {"study": "1.2.3.4"})


def ct_image(tmp: Path) -> Case:
    (tmp / "d").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp / "d" / "ct1")
    return Case(tmp / "d", ["no PDFF", "Modality CT: not an MR image"])


def structured_report(tmp: Path) -> Case:
    (tmp / "d").mkdir()
    shutil.copy(get_testdata_file("test-SR.dcm"), tmp / "d" / "sr")
    return Case(tmp / "d", ["sr: DICOM object without pixel data"])


def truncated_pydicom_file(tmp: Path) -> Case:
    (tmp / "d").mkdir()
    shutil.copy(get_testdata_file("MR_truncated.dcm"), tmp / "d" / "mr")
    return Case(tmp / "d", ["mr: truncated or corrupt pixel data", "8130 bytes present"])


def corrupt_compressed_pixels(tmp: Path) -> Case:
    ws = write(tmp / "d")
    victim = ws.by_kind("pdff").files[2]

    def rle_then_break(ds):
        ds.compress(RLELossless)
        data = bytearray(ds.PixelData)
        # First fragment starts after the item tag/length (8) and the empty offset table (8):
        # claim 15 RLE segments with bogus offsets.
        start = 16
        data[start : start + 4] = (15).to_bytes(4, "little")
        data[start + 4 : start + 64] = b"\xff" * 60
        ds.PixelData = bytes(data)

    edit(victim, rle_then_break)
    return Case(tmp / "d", [victim.name, "cannot decode pixel data", "RLE Lossless"])


def rescale_overflow(tmp: Path) -> Case:
    ws = write(tmp / "d")
    victim = ws.by_kind("pdff").files[3]
    edit(victim, lambda ds: setattr(ds, "RescaleSlope", "1e300"))
    return Case(tmp / "d", [victim.name, "slope 1e+300", "corrupt rescale attributes"])


def t2star_without_unit_ambiguous(tmp: Path) -> Case:
    ws = write(tmp / "d", vendor="Philips", kinds=["pdff", "r2s"], r2s_as_t2star=True)

    def tiny(ds):
        del ds.RealWorldValueMappingSequence
        ds.RescaleSlope = "0.00001"

    for f in ws.by_kind("r2s").files:
        edit(f, tiny)
    return Case(tmp / "d", ["T2*", "ambiguous T2* unit", "r2s_unit"])


def r2s_values_too_small(tmp: Path) -> Case:
    ws = write(tmp / "d")
    for f in ws.by_kind("r2s").files:
        edit(f, lambda ds: setattr(ds, "RescaleSlope", "0.0001"))
    return Case(tmp / "d", ["R2*: IDEAL IQ SPINE", "ambiguous R2* unit", "'per_ms'"])


def t2star_with_rate_unit(tmp: Path) -> Case:
    ws = write(tmp / "d", vendor="Philips", kinds=["pdff", "r2s"], r2s_as_t2star=True)

    def rate_unit(ds):
        ds.RealWorldValueMappingSequence[0].MeasurementUnitsCodeSequence[0].CodeValue = "/s"

    for f in ws.by_kind("r2s").files:
        edit(f, rate_unit)
    return Case(tmp / "d", ["T2*", "real-world unit is '/s'", "r2s_unit"])


def enhanced_frame_count_mismatch(tmp: Path) -> Case:
    ws = write(tmp / "d", vendor="Philips", kinds=["pdff"], philips_enhanced=True)
    (f,) = ws.by_kind("pdff").files
    edit(f, lambda ds: setattr(ds, "NumberOfFrames", 3))
    return Case(tmp / "d", [f.name, "corrupt enhanced file", "per-frame items"])


def pixel_data_missing(tmp: Path) -> Case:
    ws = write(tmp / "d", kinds=["pdff"])
    (tmp / "e").mkdir()
    edit(ws.by_kind("pdff").files[0], lambda ds: delattr(ds, "PixelData"), tmp / "e" / "nopix")
    return Case(tmp / "e", ["nopix", "no Pixel Data element"])


def nifti_without_unit(tmp: Path) -> Case:
    path = write_image(small_study().pdff, tmp / "ff.nii.gz")
    return Case(
        path,
        ["ff.nii.gz", "unit of the pdff map must be given"],
        loader=lambda p, **kw: load_map_files({"pdff": p}, {}),
    )


def nifti_missing_file(tmp: Path) -> Case:
    return Case(
        tmp / "absent.nii",
        ["absent.nii", "file not found"],
        loader=lambda p, **kw: load_map_files({"pdff": p}, {"pdff": "percent"}),
    )


def nifti_unknown_kind(tmp: Path) -> Case:
    path = write_image(small_study().pdff, tmp / "ff.nrrd")
    return Case(
        path,
        ["unknown map kind", "t1"],
        loader=lambda p, **kw: load_map_files({"pdff": p, "t1": p}, {"pdff": "percent"}),
    )


def nifti_wrong_unit_for_kind(tmp: Path) -> Case:
    path = write_image(small_study().pdff, tmp / "ff.nrrd")
    return Case(
        path,
        ["ff.nrrd", "unit 'per_s' is not valid for pdff"],
        loader=lambda p, **kw: load_map_files({"pdff": p}, {"pdff": "per_s"}),
    )


CASES = [
    empty_folder,
    missing_folder,
    only_text_files,
    corrupt_header,
    truncated_header,
    truncated_pixels,
    zero_byte_file,
    truncated_slice_in_study,
    only_localizer,
    no_pdff,
    mixed_patients,
    missing_slice,
    two_missing_slices,
    duplicate_slice,
    inconsistent_spacing,
    mixed_orientation,
    gantry_tilt,
    mixed_sizes,
    mixed_pixel_spacing,
    missing_position,
    ambiguous_pdff_range,
    pdff_range_fits_no_unit,
    header_unit_contradicts_values,
    wrong_explicit_unit,
    invalid_unit_argument,
    two_pdff_series,
    pdff_series_not_found,
    several_studies,
    study_index_out_of_range,
    unknown_study_uid,
    ct_image,
    structured_report,
    truncated_pydicom_file,
    corrupt_compressed_pixels,
    rescale_overflow,
    t2star_without_unit_ambiguous,
    r2s_values_too_small,
    t2star_with_rate_unit,
    enhanced_frame_count_mismatch,
    pixel_data_missing,
    nifti_without_unit,
    nifti_missing_file,
    nifti_unknown_kind,
    nifti_wrong_unit_for_kind,
]


def test_the_corpus_has_at_least_30_cases():
    assert len(CASES) >= 30
    assert len({c.__name__ for c in CASES}) == len(CASES)


@pytest.mark.parametrize("make_case", CASES, ids=[c.__name__ for c in CASES])
def test_broken_input_gives_a_specific_message(tmp_path, make_case):
    case = make_case(tmp_path)
    loader = case.loader or load_study
    with pytest.raises(InputError) as err:
        loader(case.path, **case.kwargs)
    message = str(err.value)
    missing = [frag for frag in case.expect if frag not in message]
    assert not missing, f"message lacks {missing}: {message}"
    assert "OTHER-PATIENT-77" not in message and "DOE^JANE" not in message
    assert "SYNTHETIC^PHANTOM" not in message and "SYN-0" not in message


# -- what the errors are not -----------------------------------------------------------------------


def test_explicit_unit_resolves_the_ambiguous_range(tmp_path):
    study = small_study(pdff_max=1.2)
    write(tmp_path / "d", study=study, pdff_storage="permille")
    loaded = load_study(tmp_path / "d", pdff_unit="permille")
    np.testing.assert_allclose(loaded.pdff.array, study.pdff.array, atol=0.05 + 1e-5)
    assert "given explicitly" in " ".join(loaded.provenance.series["pdff"].scaling)


def test_pdff_series_choice_resolves_two_pdff_series(tmp_path):
    two_pdff_series(tmp_path)
    loaded = load_study(tmp_path / "d", pdff_series=13)
    assert loaded.provenance.series["pdff"].series_uid != ""
    assert loaded.pdff.shape == SHAPE


def test_unreadable_extra_files_are_reported_but_do_not_block(tmp_path):
    write(tmp_path / "d")
    (tmp_path / "d" / "junk.dcm").write_bytes(b"not really dicom")
    (tmp_path / "d" / "DICOMDIR").write_bytes(b"")
    loaded = load_study(tmp_path / "d")
    assert set(loaded.maps) == {"pdff", "r2s", "water"}
    reasons = {s.path.name: s.reason for s in scan_dicom(tmp_path / "d").skipped}
    assert "not a DICOM file" in reasons["junk.dcm"]
    assert "empty file" in reasons["DICOMDIR"]


def test_a_broken_r2s_series_does_not_block_the_pdff(tmp_path):
    ws = write(tmp_path / "d")
    ws.by_kind("r2s").files[2].unlink()
    loaded = load_study(tmp_path / "d")
    assert "r2s" not in loaded.maps and "pdff" in loaded.maps
    r2s = next(s for s in scan_dicom(tmp_path / "d").studies[0].series if s.kind == "r2s")
    assert r2s.geometry is None and "missing slice" in r2s.geometry_problem


@pytest.mark.parametrize("enhanced", [False, True])
def test_damaged_bytes_never_crash_the_loader(tmp_path, enhanced):
    """Truncation at many offsets and random byte damage: the scan never raises, and loading
    gives a Study or an InputError, nothing else."""
    import random

    if enhanced:
        ws = write(tmp_path / "w", vendor="Philips", kinds=["pdff"], philips_enhanced=True)
    else:
        ws = write(tmp_path / "w", kinds=["pdff"])
    data = ws.by_kind("pdff").files[0].read_bytes()
    rng = random.Random(1)
    variants = [data[:n] for n in range(0, len(data), max(1, len(data) // 40))]
    for _ in range(40):
        damaged = bytearray(data)
        for _ in range(6):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        variants.append(bytes(damaged))
    for n, blob in enumerate(variants):
        folder = tmp_path / f"v{n}"
        folder.mkdir()
        (folder / "f.dcm").write_bytes(blob)
        report = scan_dicom(folder)
        for skipped in report.skipped:
            assert skipped.reason
        try:
            load_study(folder, pdff_unit="percent")
        except InputError as err:
            assert str(err)
