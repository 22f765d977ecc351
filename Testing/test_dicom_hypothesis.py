"""Property-based tests of the DICOM reader (hypothesis): any geometry or pixel-description
values in a PDFF file, and any bytes in a file, end in a loaded study with a sane grid, a
skipped file, or the project's InputError naming the file; never another exception."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from RefractureRiskLib.core import InputError, PatientInfo, Study, StudyProvenance, Volume
from RefractureRiskLib.io.dicom_fastheader import read_fast_header
from RefractureRiskLib.io.dicom_load import load_study
from RefractureRiskLib.io.dicom_scan import scan_one_file
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study

SHAPE = (4, 8, 9)
AFFINE = np.array([[0, 0, 3.0, -9.0], [-1.5, 0, 0, 15.0], [0, -1.5, 0, 40.0], [0, 0, 0, 1]])
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -0.0, 1e-9, 1e30, -1.5, 1.0, 0.5]),
)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hyp") / "study"
    pdff = np.random.default_rng(0).uniform(0, 100, SHAPE)
    pdff.flat[0], pdff.flat[1] = 0.0, 100.0
    study = Study({"pdff": Volume(pdff, AFFINE)}, StudyProvenance(field_strength_t=3.0),
                  PatientInfo(age_years=70, sex="F"))  # fmt: skip
    files = write_dicom_study(study, folder, vendor="GE", kinds=["pdff"], seed=1)
    return folder, files.by_kind("pdff").files[1]


def _load_with(written, tmp_path: Path, edit) -> Study | None:
    folder, target = written
    work = tmp_path / "w"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(folder, work)
    path = work / target.relative_to(folder)
    ds = pydicom.dcmread(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edit(ds)
        ds.save_as(path)
    try:
        return load_study(work)
    except InputError as err:
        assert str(err).strip() and "\n" not in str(err)
        return None


@SETTINGS
@given(spacing=st.lists(numbers, min_size=0, max_size=3))
def test_any_pixel_spacing(written, tmp_path, spacing):
    def edit(ds):
        ds.PixelSpacing = [f"{v:.6g}" for v in spacing]

    study = _load_with(written, tmp_path, edit)
    if study is not None:
        assert np.all(np.isfinite(study.grid.spacing_mm)) and np.all(study.grid.spacing_mm > 0)


@SETTINGS
@given(
    orientation=st.lists(numbers, min_size=6, max_size=6),
    position=st.lists(numbers, min_size=3, max_size=3),
)
def test_any_orientation_and_position(written, tmp_path, orientation, position):
    def edit(ds):
        ds.ImageOrientationPatient = [f"{v:.6g}" for v in orientation]
        ds.ImagePositionPatient = [f"{v:.6g}" for v in position]

    study = _load_with(written, tmp_path, edit)
    if study is not None:
        assert np.all(np.isfinite(study.maps["pdff"].ijk_to_ras))


@SETTINGS
@given(
    rows=st.integers(0, 65535),
    bits=st.sampled_from([0, 1, 8, 12, 16, 17, 32, 64, 65535]),
    stored=st.integers(0, 70),
    cut=st.integers(0, 400),
)
def test_any_pixel_description(written, tmp_path, rows, bits, stored, cut):
    def edit(ds):
        ds.Rows = rows
        ds.BitsAllocated = bits
        ds.BitsStored = stored
        ds.PixelData = ds.PixelData[: max(0, len(ds.PixelData) - cut)]

    _load_with(written, tmp_path, edit)


@SETTINGS
@given(data=st.binary(min_size=0, max_size=600), keep=st.integers(0, 2000))
def test_any_bytes_are_skipped_or_read(written, tmp_path, data, keep):
    _, target = written
    original = target.read_bytes()
    path = tmp_path / "x.dcm"
    for content in (data, original[:keep] + data, data + original[keep:]):
        path.write_bytes(content)
        header = read_fast_header(path)
        assert header is None or len(header) == 3
        scan_one_file(path)  # a ScannedFile or a SkippedFile, never an exception


@SETTINGS
@given(
    n_frames=st.one_of(st.integers(-3, 5), st.integers(-(2**31), 2**31 - 1)),
    rows=st.sampled_from([None, 0]),
    empty_pixels=st.booleans(),
    empty_groups=st.booleans(),
)
def test_any_number_of_frames_in_an_enhanced_file(
    tmp_path_factory, n_frames, rows, empty_pixels, empty_groups
):
    """Found by bench/fuzz_dicom.py: a negative NumberOfFrames with an empty per-frame
    sequence gave a file without frames (IndexError)."""
    folder = tmp_path_factory.mktemp("enh")
    pdff = np.random.default_rng(0).uniform(0, 100, SHAPE)
    study = Study({"pdff": Volume(pdff, AFFINE)}, StudyProvenance(field_strength_t=3.0),
                  PatientInfo(age_years=70, sex="F"))  # fmt: skip
    written = write_dicom_study(study, folder / "s", vendor="Philips", kinds=["pdff"],
                                philips_enhanced=True, seed=1)  # fmt: skip
    path = written.by_kind("pdff").files[0]
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = n_frames
    if rows is not None:
        ds.Rows = rows
    if empty_pixels:
        ds.PixelData = b""
    if empty_groups:
        ds.PerFrameFunctionalGroupsSequence = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path)
    try:
        loaded = load_study(folder / "s")
    except InputError as err:
        assert "\n" not in str(err)
    else:
        assert loaded.maps["pdff"].array.shape == SHAPE
