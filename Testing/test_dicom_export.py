"""DICOM SEG and TID 1500 SR export: readable by highdicom/pydicom, frames on the right slices,
measurements equal to the statistics table, de-identification, and dciodvfy without errors."""

from __future__ import annotations

import shutil
import subprocess

import highdicom as hd
import numpy as np
import pydicom
import pytest
from scipy.spatial.transform import Rotation

from RefractureRiskLib.core import LevelRoi, RoiMethod, RoiSet, Study, Volume, level_label
from RefractureRiskLib.core.study import StudyProvenance
from RefractureRiskLib.export.dicom_export import export_seg, export_sr, read_source_series
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study
from RefractureRiskLib.stats import roi_statistics


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    rng = np.random.default_rng(0)
    shape = (6, 40, 32)
    rot = Rotation.from_euler("x", 8, degrees=True).as_matrix()
    grid = Volume.from_geometry(np.zeros(shape), [1.2, 1.1, 3.0], [-10.0, 20.0, 5.0], rot)
    pdff = rng.uniform(40, 60, size=shape)
    r2s = rng.uniform(50, 90, size=shape)
    study = Study(
        {"pdff": grid.with_array(pdff), "r2s": grid.with_array(r2s)},
        StudyProvenance(vendor="synthetic", field_strength_t=1.5),
    )
    labels = np.zeros(shape, np.int16)
    labels[1:4, 5:15, 8:20] = level_label("L1")
    labels[2:5, 22:34, 10:24] = level_label("L2")
    roiset = RoiSet(
        grid.with_array(labels),
        (LevelRoi("L1", level_label("L1")), LevelRoi("L2", level_label("L2"))),
        RoiMethod.AUTOMATIC,
        reader="auto",
    )
    out = tmp_path_factory.mktemp("export")
    ws = write_dicom_study(study, out / "dicom", vendor="GE", seed=3)
    pdff_series = next(s for s in ws.series if s.kind == "pdff")
    source = read_source_series(pdff_series.files)
    stats = roi_statistics(roiset, study)
    seg_path, seg = export_seg(roiset, source, out / "seg.dcm")
    sr_path = export_sr(seg, roiset, stats, source, out / "sr.dcm")
    anon_path, _ = export_seg(roiset, source, out / "seg_anon.dcm", deidentify=True)
    return {
        "roiset": roiset,
        "stats": stats,
        "source": source,
        "seg": seg_path,
        "sr": sr_path,
        "anon": anon_path,
    }


def test_seg_frames_match_label_map(written):
    seg = hd.seg.segread(written["seg"])
    roiset = written["roiset"]
    assert seg.number_of_segments == 2
    assert [seg.get_segment_description(n).SegmentLabel for n in (1, 2)] == [
        "L1 marrow ROI",
        "L2 marrow ROI",
    ]
    src_uids = [ds.SOPInstanceUID for ds in written["source"]]
    volume = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=src_uids, combine_segments=True, skip_overlap_checks=True
    )
    for ds, frame in zip(written["source"], volume, strict=True):
        k = int(ds.InstanceNumber) - 1  # the writer numbers slices along k
        expected = np.zeros_like(frame)
        expected[roiset.labelmap.array[k] == level_label("L1")] = 1
        expected[roiset.labelmap.array[k] == level_label("L2")] = 2
        np.testing.assert_array_equal(frame, expected)


def test_sr_measurements_equal_statistics(written):
    sr = hd.sr.srread(written["sr"])
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == 2
    stats = written["stats"].set_index(["level", "map"])
    for group, level in zip(groups, ("L1", "L2"), strict=True):
        values = {(m.name.meaning, m.derivation.meaning): m.value for m in group.get_measurements()}
        assert values[("Fat fraction", "Mean")] == pytest.approx(stats.loc[(level, "pdff"), "mean"])
        assert values[("R2*", "Median")] == pytest.approx(stats.loc[(level, "r2s"), "median"])
        assert group.referenced_segment.referenced_segment_numbers == [1 if level == "L1" else 2]


def test_deidentified_export_hides_patient(written):
    ds = pydicom.dcmread(written["anon"])
    assert str(ds.PatientName) == "ANONYMOUS" and ds.PatientID == "ANON"
    assert str(pydicom.dcmread(written["seg"]).PatientName) != "ANONYMOUS"


@pytest.mark.parametrize("kind", ["seg", "sr"])
def test_dciodvfy_reports_no_errors(written, kind):
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools)")
    out = subprocess.run([tool, str(written[kind])], capture_output=True, text=True)
    errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]
    assert not errors, "\n".join(errors)
