"""DICOM SEG and TID 1500 SR export: readable by highdicom/pydicom, frames on the right slices,
measurements equal to the statistics table, de-identification, and dciodvfy without errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from dataclasses import replace

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
from scipy.spatial.transform import Rotation

from RefractureRiskLib.commands.demo import DEMO_CLINICAL
from RefractureRiskLib.core import LevelRoi, RoiMethod, RoiSet, Study, Volume, level_label
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.study import StudyProvenance
from RefractureRiskLib.export.dicom_export import export_seg, export_sr, read_source_series
from RefractureRiskLib.io.dicom_load import load_study_with_report
from RefractureRiskLib.io.dicom_series import scan_dicom
from RefractureRiskLib.io.dicom_volume import read_stack
from RefractureRiskLib.io.segmentation import read_roiset
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
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


# --- Enhanced MR (Philips mDIXON Quant) sources: one multi-frame file, frames in any order ----


def _permute_frames(path, seed):
    """Rewrite an enhanced file with its frames in a random order; returns the permutation
    (new frame i + 1 holds old frame ``perm[i] + 1``)."""
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array
    perm = np.random.default_rng(seed).permutation(int(ds.NumberOfFrames))
    items = list(ds.PerFrameFunctionalGroupsSequence)
    ds.PerFrameFunctionalGroupsSequence = pydicom.Sequence([items[i] for i in perm])
    ds.PixelData = np.ascontiguousarray(pixels[perm]).astype("<u2").tobytes()
    ds.save_as(path)
    return perm


@pytest.fixture(scope="module", params=["pure", "mixed"])
def enhanced(request, tmp_path_factory):
    """A Philips enhanced study (PDFF alone in its file, or with water and fat in one file),
    frames shuffled; SEG + SR exported with the PDFF frame numbers the loader finds."""
    style = request.param
    rng = np.random.default_rng(1)
    shape = (6, 40, 32)
    rot = Rotation.from_euler("x", -6, degrees=True).as_matrix()
    grid = Volume.from_geometry(np.zeros(shape), [1.1, 1.2, 3.5], [12.0, -30.0, 40.0], rot)
    maps = {
        "pdff": rng.uniform(30, 70, size=shape),
        "r2s": rng.uniform(40, 90, size=shape),
        "water": rng.uniform(200, 400, size=shape),
        "fat": rng.uniform(200, 400, size=shape),
    }
    study = Study(
        {kind: grid.with_array(a) for kind, a in maps.items()},
        StudyProvenance(vendor="synthetic", field_strength_t=3.0),
    )
    labels = np.zeros(shape, np.int16)
    labels[0:3, 4:16, 6:22] = level_label("L2")
    labels[3:6, 20:36, 8:26] = level_label("L3")
    roiset = RoiSet(
        grid.with_array(labels),
        (LevelRoi("L2", level_label("L2")), LevelRoi("L3", level_label("L3"))),
        RoiMethod.AUTOMATIC,
        reader="auto",
    )
    out = tmp_path_factory.mktemp(f"enhanced_{style}")
    ws = write_dicom_study(
        study,
        out / "dicom",
        vendor="Philips",
        philips_enhanced=True,
        philips_mixed_series=style == "mixed",
        seed=7,
    )
    pdff_series = ws.by_kind("pdff")
    assert pdff_series.enhanced and pdff_series.mixed == (style == "mixed")
    (path,) = pdff_series.files
    perm = _permute_frames(path, seed=11)
    # old frame number -> k: the writer stores each part's slices along k
    old_to_k = {old: k for k, old in enumerate(pdff_series.frame_numbers)}
    frame_to_k = {new + 1: old_to_k[old + 1] for new, old in enumerate(perm) if old + 1 in old_to_k}

    loaded = load_study_with_report(out / "dicom")
    frame_numbers = sorted(f.frame_index + 1 for f in loaded.chosen["pdff"].frames)
    source = read_source_series([path])
    stats = roi_statistics(roiset, study)
    seg_path, seg = export_seg(roiset, source, out / "seg.dcm", source_frame_numbers=frame_numbers)
    sr_path = export_sr(seg, roiset, stats, source, out / "sr.dcm")
    return {
        "style": style,
        "roiset": roiset,
        "stats": stats,
        "source": source,
        "path": path,
        "frame_to_k": frame_to_k,
        "frame_numbers": frame_numbers,
        "n_frames": len(perm),
        "seg": seg_path,
        "sr": sr_path,
    }


def test_loader_finds_the_shuffled_pdff_frames(enhanced):
    assert enhanced["frame_numbers"] == sorted(enhanced["frame_to_k"])
    if enhanced["style"] == "mixed":
        assert enhanced["n_frames"] == 3 * len(enhanced["frame_numbers"])
    # shuffled: file order is not slice order
    ks = [enhanced["frame_to_k"][f] for f in enhanced["frame_numbers"]]
    assert ks != sorted(ks)


def test_enhanced_seg_frames_match_label_map(enhanced):
    seg = hd.seg.segread(enhanced["seg"])
    labels = enhanced["roiset"].labelmap.array
    uid = enhanced["source"][0].SOPInstanceUID
    numbers = enhanced["frame_numbers"]
    pixels = seg.get_pixels_by_source_frame(
        uid, source_frame_numbers=numbers, combine_segments=True, skip_overlap_checks=True
    )
    assert pixels.shape[0] == len(numbers)
    for number, frame in zip(numbers, pixels, strict=True):
        k = enhanced["frame_to_k"][number]
        expected = np.zeros_like(frame)
        expected[labels[k] == level_label("L2")] = 1
        expected[labels[k] == level_label("L3")] = 2
        np.testing.assert_array_equal(frame, expected, err_msg=f"source frame {number}, k {k}")
    # every SEG frame references exactly one source frame, a PDFF frame (never water or fat)
    for item in pydicom.dcmread(enhanced["seg"]).PerFrameFunctionalGroupsSequence:
        refs = item.DerivationImageSequence[0].SourceImageSequence
        assert len(refs) == 1 and refs[0].ReferencedSOPInstanceUID == uid
        assert int(refs[0].ReferencedFrameNumber) in enhanced["frame_to_k"]


def test_enhanced_sr_measurements_and_frame_references(enhanced):
    sr = hd.sr.srread(enhanced["sr"])
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == 2
    stats = enhanced["stats"].set_index(["level", "map"])
    labels = enhanced["roiset"].labelmap.array
    uid = enhanced["source"][0].SOPInstanceUID
    for number, (group, level) in enumerate(zip(groups, ("L2", "L3"), strict=True), start=1):
        values = {(m.name.meaning, m.derivation.meaning): m.value for m in group.get_measurements()}
        for (map_kind, name), key in {
            ("pdff", "Fat fraction"): "mean",
            ("r2s", "R2*"): "sd",
        }.items():
            derivation = "Mean" if key == "mean" else "Standard Deviation"
            assert values[(name, derivation)] == pytest.approx(stats.loc[(level, map_kind), key])
        segment = group.referenced_segment
        assert segment.referenced_segment_numbers == [number]
        sources = [item for item in segment if item.name.meaning == "Source Image for Segmentation"]
        assert len(sources) == 1
        ref = sources[0].ReferencedSOPSequence[0]
        assert ref.ReferencedSOPInstanceUID == uid
        expected = sorted(
            f for f, k in enhanced["frame_to_k"].items() if (labels[k] == level_label(level)).any()
        )
        got = ref.ReferencedFrameNumber
        got = [got] if isinstance(got, int | str) else list(got)
        assert sorted(int(v) for v in got) == expected


@pytest.mark.parametrize("kind", ["seg", "sr"])
def test_enhanced_dciodvfy_reports_no_errors(enhanced, kind):
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools)")
    out = subprocess.run([tool, str(enhanced[kind])], capture_output=True, text=True)
    errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]
    assert not errors, "\n".join(errors)


def test_enhanced_refusals_name_the_file_and_reason(enhanced, written, tmp_path):
    source, roiset = enhanced["source"], enhanced["roiset"]
    unused = tmp_path / "unused.dcm"
    n = enhanced["n_frames"]
    with pytest.raises(InputError, match=r"frame numbers .*1\.\." + str(n)):
        export_seg(roiset, source, unused, source_frame_numbers=[1, n + 1])
    # a grid half a voxel off along i: no frame lies on a slice of the ROI grid
    shifted = roiset.labelmap.ijk_to_ras.copy()
    shifted[:3, 3] += shifted[:3, :3] @ [0.5, 0.0, 0.0]
    moved = replace(roiset, labelmap=Volume(roiset.labelmap.array, shifted))
    with pytest.raises(
        InputError, match=r"frame \d+: PDFF frame is not on a slice of the ROI grid"
    ) as err:
        export_seg(moved, source, unused, source_frame_numbers=enhanced["frame_numbers"])
    assert str(enhanced["path"]) in str(err.value)
    # a labelled slice without its PDFF frame
    k1 = [f for f, k in enhanced["frame_to_k"].items() if k == 1]
    fewer = [f for f in enhanced["frame_numbers"] if f not in k1]
    with pytest.raises(InputError, match=r"no PDFF frame on ROI slices k = \[1\]"):
        export_seg(roiset, source, unused, source_frame_numbers=fewer)
    if enhanced["style"] == "mixed":  # water/fat frames lie on the PDFF slices
        with pytest.raises(InputError, match=r"frames \[.*\] lie on the same slice k = 0.*mixed"):
            export_seg(roiset, source, unused)
    # PDFF frames must all be in one enhanced file
    with pytest.raises(InputError, match="one enhanced file") as err:
        read_source_series([enhanced["path"], written["source"][0].filename])
    assert str(enhanced["path"]) in str(err.value)
    # frame numbers only make sense for a multi-frame source
    with pytest.raises(InputError, match="not multi-frame"):
        export_seg(written["roiset"], written["source"], unused, source_frame_numbers=[1])
    assert not unused.exists()  # nothing is written by a refused export


@pytest.fixture(scope="module")
def analyzed_enhanced(tmp_path_factory):
    """``refracture-risk analyze --export-dicom`` on a Philips mDIXON Quant enhanced phantom
    study whose PDFF frames share one file with the water and fat frames."""
    phantom = generate_phantom(PhantomSpec(seed=5, fractured={"L1": 0.3}, snr=60.0))
    root = tmp_path_factory.mktemp("analyze_enhanced")
    ws = write_dicom_study(
        phantom.study,
        root / "dicom",
        vendor="Philips",
        philips_enhanced=True,
        philips_mixed_series=True,
        seed=5,
    )
    (root / "patient.json").write_text(json.dumps(DEMO_CLINICAL))
    argv = ["analyze", str(root / "dicom"), "--clinical", str(root / "patient.json")]
    argv += ["--index-levels", "L1", "--export-dicom", "--out", str(root / "out")]
    run = subprocess.run(
        [sys.executable, "-m", "RefractureRiskLib.cli", *argv], capture_output=True, text=True
    )
    return ws, run, root / "out"


def test_analyze_exports_enhanced_source(analyzed_enhanced):
    ws, run, out = analyzed_enhanced
    assert run.returncode == 0, run.stderr
    pdff = ws.by_kind("pdff")
    assert pdff.enhanced and pdff.mixed
    (source_path,) = pdff.files
    source_uid = pydicom.dcmread(source_path, stop_before_pixels=True).SOPInstanceUID
    roiset = read_roiset(out / "rois.seg.nrrd")
    labels = roiset.labelmap.array
    seg = hd.seg.segread(out / "dicom" / "seg.dcm")
    segment_label = {
        n: level_label(seg.get_segment_description(n).SegmentLabel.split()[0])
        for n in seg.segment_numbers
    }
    assert sorted(segment_label.values()) == sorted(lv.label for lv in roiset.levels)
    # the writer stores the PDFF part's slices along k; not shuffled here
    pixels = seg.get_pixels_by_source_frame(
        source_uid,
        source_frame_numbers=list(pdff.frame_numbers),
        combine_segments=True,
        skip_overlap_checks=True,
        assert_missing_frames_are_empty=True,  # slices without ROI have no SEG frame
    )
    assert labels.shape[0] == len(pdff.frame_numbers)
    for k, frame in enumerate(pixels):
        expected = np.zeros_like(frame)
        for number, label in segment_label.items():
            expected[labels[k] == label] = number
        np.testing.assert_array_equal(frame, expected, err_msg=f"slice {k}")

    stats = pd.read_csv(out / "statistics.csv").set_index(["level", "map"])
    sr = hd.sr.srread(out / "dicom" / "sr.dcm")
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(roiset.levels)
    for group in groups:
        (number,) = group.referenced_segment.referenced_segment_numbers
        level = seg.get_segment_description(number).SegmentLabel.split()[0]
        values = {(m.name.meaning, m.derivation.meaning): m.value for m in group.get_measurements()}
        assert values[("Fat fraction", "Median")] == pytest.approx(
            stats.loc[(level, "pdff"), "median"]
        )
        assert values[("R2*", "Mean")] == pytest.approx(stats.loc[(level, "r2s"), "mean"])

    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools)")
    for name in ("seg.dcm", "sr.dcm"):
        check = subprocess.run([tool, str(out / "dicom" / name)], capture_output=True, text=True)
        errors = [ln for ln in (check.stdout + check.stderr).splitlines() if ln.startswith("Error")]
        assert not errors, name + "\n" + "\n".join(errors)


def test_enhanced_deidentified_export(enhanced, tmp_path):
    source = enhanced["source"]
    name = str(source[0].PatientName)
    path, seg = export_seg(
        enhanced["roiset"],
        source,
        tmp_path / "seg.dcm",
        deidentify=True,
        source_frame_numbers=enhanced["frame_numbers"],
    )
    sr_path = export_sr(
        seg, enhanced["roiset"], enhanced["stats"], source, tmp_path / "sr.dcm", deidentify=True
    )
    for p in (path, sr_path):
        ds = pydicom.dcmread(p)
        assert str(ds.PatientName) == "ANONYMOUS" and ds.PatientID == "ANON"
        assert ds.PatientIdentityRemoved == "YES"
    assert str(source[0].PatientName) == name != "ANONYMOUS"  # source left as it was


def test_real_philips_enhanced_file_with_per_frame_geometry(shared_data, tmp_path):
    """A real Philips enhanced file (dcm_qa_fmap: field map and magnitude frames in one file,
    orientation and pixel spacing per frame): the field-map frames stand in for PDFF frames."""
    folder = shared_data / "dicom" / "dcm_qa_fmap" / "In" / "Philips"
    parts = [s for study in scan_dicom(folder).studies for s in study.series]
    part = next(s for s in parts if "FIELD_MAP" in s.part)
    geometry = part.geometry
    numbers = [f.frame_index + 1 for f in geometry.frames]  # k order
    assert len(numbers) < part.frames[0].n_frames_in_file  # a subset of the file's frames
    shape = geometry.shape
    labels = np.zeros(shape, np.int16)
    labels[8:20, 20:40, 24:44] = level_label("L4")
    labels[22:30, 10:30, 10:30] = level_label("L5")
    roiset = RoiSet(
        Volume(labels, geometry.ijk_to_ras),
        (LevelRoi("L4", level_label("L4")), LevelRoi("L5", level_label("L5"))),
        RoiMethod.AUTOMATIC,
        reader="auto",
    )
    source = read_source_series([part.first_file])
    before = pydicom.dcmread(part.first_file, stop_before_pixels=True)
    assert "PlaneOrientationSequence" not in before.SharedFunctionalGroupsSequence[0]
    values = Volume(np.asarray(read_stack(geometry, part.label), float), geometry.ijk_to_ras)
    study = Study({"pdff": values}, StudyProvenance(vendor="Philips"))
    stats = roi_statistics(roiset, study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the file's one-component patient name
        seg_path, seg = export_seg(
            roiset, source, tmp_path / "seg.dcm", source_frame_numbers=numbers
        )
        sr_path = export_sr(seg, roiset, stats, source, tmp_path / "sr.dcm")
    assert "PlaneOrientationSequence" not in source[0].SharedFunctionalGroupsSequence[0]
    uid = source[0].SOPInstanceUID
    pixels = hd.seg.segread(seg_path).get_pixels_by_source_frame(
        uid,
        source_frame_numbers=numbers,
        combine_segments=True,
        skip_overlap_checks=True,
        assert_missing_frames_are_empty=True,
    )
    for k, frame in enumerate(pixels):
        expected = np.zeros_like(frame)
        expected[labels[k] == level_label("L4")] = 1
        expected[labels[k] == level_label("L5")] = 2
        np.testing.assert_array_equal(frame, expected, err_msg=f"slice {k}")
    for item in pydicom.dcmread(seg_path).PerFrameFunctionalGroupsSequence:
        (ref,) = item.DerivationImageSequence[0].SourceImageSequence
        assert int(ref.ReferencedFrameNumber) in numbers  # never a magnitude frame
    groups = hd.sr.srread(sr_path).content.get_volumetric_roi_measurement_groups()
    for group, level in zip(groups, ("L4", "L5"), strict=True):
        segment = group.referenced_segment
        (source_item,) = [i for i in segment if i.name.meaning == "Source Image for Segmentation"]
        got = source_item.ReferencedSOPSequence[0].ReferencedFrameNumber
        got = [got] if isinstance(got, int | str) else list(got)
        expected = [numbers[k] for k in range(shape[0]) if (labels[k] == level_label(level)).any()]
        assert sorted(int(v) for v in got) == sorted(expected)
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools)")
    for path in (seg_path, sr_path):
        check = subprocess.run([tool, str(path)], capture_output=True, text=True)
        errors = [ln for ln in (check.stdout + check.stderr).splitlines() if ln.startswith("Error")]
        assert not errors, "\n".join(errors)
