"""DICOM geometry and pixel-description checks at load: a file with an impossible PixelSpacing,
orientation, position or pixel description is refused with an InputError naming the file and the
tag; ``inspect`` does not call such a series usable; library warnings never reach the terminal.

Bad files are made by writing a small study with the project's phantom DICOM writer and
changing one tag of one PDFF file with pydicom.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from RefractureRiskLib.core import InputError, PatientInfo, Study, StudyProvenance, Volume
from RefractureRiskLib.io.dicom_load import load_study
from RefractureRiskLib.io.dicom_series import scan_dicom
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study

SHAPE = (5, 12, 14)  # [k, j, i]: small, each write/load takes a few hundredths of a second
AFFINE = np.array(
    [[0, 0, 3.0, -9.0], [-1.25, 0, 0, 15.0], [0, -1.25, 0, 40.0], [0, 0, 0, 1]], float
)


def _study() -> Study:
    rng = np.random.default_rng(0)
    pdff = rng.uniform(0, 100, SHAPE)
    pdff.flat[0], pdff.flat[1] = 0.0, 100.0
    return Study(
        {"pdff": Volume(pdff, AFFINE)},
        StudyProvenance(field_strength_t=3.0),
        PatientInfo(age_years=70, sex="F"),
    )


def _written(tmp_path: Path, slice_index: int = 2) -> tuple[Path, Path]:
    """(study folder, one PDFF file in it)."""
    folder = tmp_path / "dicom"
    written = write_dicom_study(_study(), folder, vendor="GE", kinds=["pdff"], seed=1)
    return folder, written.by_kind("pdff").files[slice_index]


def _mutate(path: Path, edit: Callable[[pydicom.Dataset], None]) -> None:
    ds = pydicom.dcmread(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on the invalid values we write
        edit(ds)
        ds.save_as(path)


def _set(keyword: str, value) -> Callable[[pydicom.Dataset], None]:
    def edit(ds: pydicom.Dataset) -> None:
        setattr(ds, keyword, value)

    return edit


def _eight_bit(ds: pydicom.Dataset) -> None:
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7


CASES = [
    ("zero spacing", _set("PixelSpacing", [0, 0]), "(0028,0030) PixelSpacing"),
    ("NaN spacing", _set("PixelSpacing", ["NaN", "1.25"]), "(0028,0030) PixelSpacing"),
    ("negative spacing", _set("PixelSpacing", [-1.25, 1.25]), "(0028,0030) PixelSpacing"),
    ("spacing 1e30", _set("PixelSpacing", ["1e30", "1e30"]), "(0028,0030) PixelSpacing"),
    ("spacing in metres", _set("PixelSpacing", [0.00125, 0.00125]), "(0028,0030) PixelSpacing"),
    ("NaN thickness", _set("SliceThickness", "NaN"), "(0018,0050) SliceThickness"),
    ("negative thickness", _set("SliceThickness", -3), "(0018,0050) SliceThickness"),
    (
        "NaN orientation",
        _set("ImageOrientationPatient", ["NaN", 1, 0, 0, 0, -1]),
        "(0020,0037) ImageOrientationPatient",
    ),
    (
        "orientation not unit",
        _set("ImageOrientationPatient", [0, 2, 0, 0, 0, -1]),
        "unit vectors",
    ),
    (
        "orientation not orthogonal",
        _set("ImageOrientationPatient", [0, 1, 0, 0, 0.6, -0.8]),
        "orthogonal",
    ),
    (
        "NaN position",
        _set("ImagePositionPatient", ["NaN", "NaN", "NaN"]),
        "(0020,0032) ImagePositionPatient",
    ),
    (
        "infinite position",
        _set("ImagePositionPatient", [0, "inf", 0]),
        "(0020,0032) ImagePositionPatient",
    ),
    ("8 bits over 16-bit data", _eight_bit, "(0028,0100) BitsAllocated 8"),
    ("BitsStored > BitsAllocated", _set("BitsStored", 24), "(0028,0101) BitsStored 24"),
    ("BitsAllocated 12", _set("BitsAllocated", 12), "(0028,0100) BitsAllocated is 12"),
    ("Rows halved", _set("Rows", 6), "(0028,0100) BitsAllocated 16 does not fit"),
]


def test_unmodified_study_loads(tmp_path: Path) -> None:
    folder, _ = _written(tmp_path)
    assert load_study(folder).maps["pdff"].shape == SHAPE


@pytest.mark.parametrize("name, edit, tag", CASES, ids=[c[0] for c in CASES])
def test_bad_tag_is_refused_naming_file_and_tag(tmp_path: Path, name: str, edit, tag: str):
    folder, bad = _written(tmp_path)
    _mutate(bad, edit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no library warning may escape the loader
        with pytest.raises(InputError) as err:
            load_study(folder)
    message = str(err.value)
    assert str(bad) in message, message
    assert tag in message, message
    # the scan report does not offer the series as a stack either
    (study,) = scan_dicom(folder).studies
    (series,) = [s for s in study.series if s.kind == "pdff"]
    assert series.geometry is None
    assert tag in str(series.geometry_problem)


def test_first_or_last_slice_is_not_silently_dropped(tmp_path: Path) -> None:
    """A bad pixel description on an end slice must not leave a shorter, 'usable' stack."""
    folder, bad = _written(tmp_path, slice_index=0)
    _mutate(bad, _eight_bit)
    with pytest.raises(InputError, match=r"BitsAllocated 8"):
        load_study(folder)


def test_enhanced_frame_geometry_names_file_frame_and_tag(tmp_path: Path) -> None:
    folder = tmp_path / "dicom"
    written = write_dicom_study(
        _study(), folder, vendor="Philips", philips_enhanced=True, kinds=["pdff"], seed=1
    )
    (path,) = written.by_kind("pdff").files

    def edit(ds: pydicom.Dataset) -> None:
        item = ds.PerFrameFunctionalGroupsSequence[1]
        if "PixelMeasuresSequence" in item:
            item.PixelMeasuresSequence[0].PixelSpacing = [0, 0]
        else:
            ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = [0, 0]

    _mutate(path, edit)
    with pytest.raises(InputError) as err:
        load_study(folder)
    message = str(err.value)
    assert str(path) in message and "frame " in message
    assert "(0028,0030) PixelSpacing (0, 0)" in message


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "RefractureRiskLib.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_inspect_does_not_call_a_bad_series_usable(tmp_path: Path) -> None:
    folder, bad = _written(tmp_path)
    _mutate(bad, _set("PixelSpacing", [-1.25, 1.25]))
    proc = _cli("inspect", str(folder))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Usable PDFF map" not in proc.stdout
    assert "No usable PDFF map" in proc.stdout and "(0028,0030) PixelSpacing" in proc.stdout
    assert "Warning" not in proc.stderr and "Traceback" not in proc.stderr


def test_analyze_bad_geometry_is_one_line_without_warnings(tmp_path: Path) -> None:
    folder, bad = _written(tmp_path)
    _mutate(bad, _set("ImageOrientationPatient", ["NaN", 1, 0, 0, 0, -1]))
    proc = _cli("analyze", str(folder), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("...")]
    assert len(lines) == 1, proc.stderr
    assert bad.name in lines[0] and "(0020,0037) ImageOrientationPatient" in lines[0]
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
