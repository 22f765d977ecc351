"""QA regression: de-identified SEG/SR carry none of the source's patient/study identifiers."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from RefractureRiskLib.core import LevelRoi, RoiMethod, RoiSet, Study, Volume, level_label
from RefractureRiskLib.core.study import StudyProvenance
from RefractureRiskLib.export.dicom_export import export_seg, export_sr, read_source_series
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study
from RefractureRiskLib.stats import roi_statistics

IDENTIFYING = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "AccessionNumber",
    "StudyDescription",
    "StudyID",
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    shape = (4, 24, 20)
    grid = Volume.from_geometry(np.zeros(shape), [1.2, 1.2, 3.0], [0.0, 0.0, 0.0], np.eye(3))
    rng = np.random.default_rng(1)
    study = Study(
        {
            "pdff": grid.with_array(rng.uniform(40, 60, shape)),
            "r2s": grid.with_array(rng.uniform(50, 90, shape)),
        },
        StudyProvenance(vendor="synthetic", field_strength_t=1.5),
    )
    labels = np.zeros(shape, np.int16)
    labels[1:3, 5:15, 5:15] = level_label("L1")
    roiset = RoiSet(grid.with_array(labels), (LevelRoi("L1", 4),), RoiMethod.AUTOMATIC, "qa")
    out = tmp_path_factory.mktemp("deid")
    ws = write_dicom_study(study, out / "dicom", vendor="Siemens", seed=11)
    files = next(s for s in ws.series if s.kind == "pdff").files
    source = read_source_series(files)
    stats = roi_statistics(roiset, study)
    seg_path, seg = export_seg(roiset, source, out / "seg.dcm", deidentify=True)
    sr_path = export_sr(seg, roiset, stats, source, out / "sr.dcm", deidentify=True)
    return source[0], {"seg": seg_path, "sr": sr_path}


def _strings(ds: pydicom.Dataset) -> list[str]:
    return [str(e.value) for e in ds.iterall() if e.VR not in ("SQ", "OB", "OW", "UN")]


@pytest.mark.parametrize("kind", ["seg", "sr"])
def test_no_source_identifier_survives_deidentification(exported, kind) -> None:
    src, paths = exported
    ds = pydicom.dcmread(paths[kind])
    secrets = {k: str(src.get(k, "")) for k in IDENTIFYING}
    secrets = {k: v for k, v in secrets.items() if len(v) >= 3}
    assert {"PatientName", "PatientID", "AccessionNumber", "StudyDescription"} <= set(secrets)
    text = "\n".join(_strings(ds))
    leaked = [k for k, v in secrets.items() if v in text]
    assert not leaked, f"{kind} still carries {leaked}"
    assert ds.PatientIdentityRemoved == "YES"


@pytest.mark.parametrize("kind", ["seg", "sr"])
def test_deidentified_objects_stay_valid(exported, kind) -> None:
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools)")
    out = subprocess.run([tool, str(exported[1][kind])], capture_output=True, text=True)
    errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]
    assert not errors, "\n".join(errors)


def test_deidentified_export_leaves_the_source_datasets_alone(tmp_path) -> None:
    shape = (4, 24, 20)
    grid = Volume.from_geometry(np.zeros(shape), [1.2, 1.2, 3.0], [0.0, 0.0, 0.0], np.eye(3))
    study = Study({"pdff": grid.with_array(np.full(shape, 50.0))})
    ws = write_dicom_study(study, tmp_path / "dicom", vendor="GE", seed=5)
    source = read_source_series(next(s for s in ws.series if s.kind == "pdff").files)
    before = {k: str(source[0].get(k, "")) for k in IDENTIFYING}
    labels = np.zeros(shape, np.int16)
    labels[1:3, 5:15, 5:15] = level_label("L1")
    roiset = RoiSet(grid.with_array(labels), (LevelRoi("L1", 4),), RoiMethod.AUTOMATIC, "qa")
    export_seg(roiset, source, tmp_path / "seg.dcm", deidentify=True)
    assert {k: str(source[0].get(k, "")) for k in IDENTIFYING} == before
    # A later identified export of the same source still carries the patient.
    _, seg = export_seg(roiset, source, tmp_path / "seg_named.dcm")
    assert str(seg.PatientID) == before["PatientID"]


def test_deidentified_sr_export_is_quiet(tmp_path) -> None:
    import warnings

    shape = (4, 24, 20)
    grid = Volume.from_geometry(np.zeros(shape), [1.2, 1.2, 3.0], [0.0, 0.0, 0.0], np.eye(3))
    study = Study({"pdff": grid.with_array(np.full(shape, 50.0))})
    ws = write_dicom_study(study, tmp_path / "dicom", vendor="GE", seed=6)
    source = read_source_series(next(s for s in ws.series if s.kind == "pdff").files)
    labels = np.zeros(shape, np.int16)
    labels[1:3, 5:15, 5:15] = level_label("L1")
    roiset = RoiSet(grid.with_array(labels), (LevelRoi("L1", 4),), RoiMethod.AUTOMATIC, "qa")
    stats = roi_statistics(roiset, study)
    _, seg = export_seg(roiset, source, tmp_path / "seg.dcm", deidentify=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning printed at the user would fail here
        export_sr(seg, roiset, stats, source, tmp_path / "sr.dcm", deidentify=True)
