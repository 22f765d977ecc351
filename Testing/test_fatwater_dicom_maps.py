"""``fatwater --dicom``: the maps as DICOM Parametric Map series that reference the source echoes,
with the values, units and geometry of the NRRD maps, and dciodvfy without errors."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from RefractureRiskLib.cli import main
from RefractureRiskLib.core.volume import LPS_TO_RAS
from RefractureRiskLib.export.parametric_maps import MAP_QUANTITIES
from RefractureRiskLib.io.images import read_image
from RefractureRiskLib.phantom.echo_dicom import write_echo_dicom
from RefractureRiskLib.phantom.echoes import pattern_echoes

pytest.importorskip("highdicom")


def _slice_index(volume, position_lps) -> int:
    ras = LPS_TO_RAS @ np.array([*map(float, position_lps), 1.0])
    ijk = np.linalg.solve(volume.ijk_to_ras, ras)
    assert abs(ijk[0]) < 1e-3 and abs(ijk[1]) < 1e-3  # the frame's first voxel is (0, 0, k)
    return round(float(ijk[2]))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    ph = pattern_echoes((0, 40, 100), (50.0,), snr=100.0, max_field_hz=80.0, patch_px=8, seed=5)
    root = tmp_path_factory.mktemp("fatwater-dicom")
    dicom = write_echo_dicom(ph.echoes, root / "echoes", seed=5)
    rc = main(["fatwater", str(dicom), "--out", str(root / "out"), "--dicom"])
    return root, rc


def test_every_map_is_a_parametric_map_with_the_nrrd_values(written):
    root, rc = written
    assert rc == 0
    for name, (label, _expl, unit, _q) in MAP_QUANTITIES.items():
        ds = pydicom.dcmread(root / "out" / "dicom" / f"{name}.dcm")
        assert ds.SOPClassUID.name == "Parametric Map Storage"
        mapping = ds.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
        assert mapping.LUTLabel == label
        assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == unit.value
        nrrd = read_image(root / "out" / f"{name}.nrrd")
        # frames in the object's own order: each is matched to a slice by its position
        for frame, item in zip(ds.pixel_array, ds.PerFrameFunctionalGroupsSequence, strict=True):
            k = _slice_index(nrrd, item.PlanePositionSequence[0].ImagePositionPatient)
            np.testing.assert_allclose(frame, nrrd.array[k], rtol=1e-6, atol=1e-6)


def test_maps_reference_the_source_echoes_on_their_grid(written):
    root, _rc = written
    sources = {
        pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p
        for p in (root / "echoes").glob("e1_M_*.dcm")
    }
    ds = pydicom.dcmread(root / "out" / "dicom" / "pdff.dcm")
    referenced = {
        item.ReferencedSOPInstanceUID
        for series in ds.ReferencedSeriesSequence
        for item in series.ReferencedInstanceSequence
    }
    assert referenced == set(sources)
    src = [pydicom.dcmread(p, stop_before_pixels=True) for p in sources.values()]
    assert ds.FrameOfReferenceUID == src[0].FrameOfReferenceUID
    source_z = sorted(float(s.ImagePositionPatient[2]) for s in src)
    frames = ds.PerFrameFunctionalGroupsSequence
    map_z = sorted(float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in frames)
    np.testing.assert_allclose(map_z, source_z, atol=1e-3)


@pytest.mark.parametrize("name", ["pdff", "r2s", "fieldmap"])
def test_dciodvfy_reports_no_errors(written, name):
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools)")
    path = written[0] / "out" / "dicom" / f"{name}.dcm"
    out = subprocess.run([tool, str(path)], capture_output=True, text=True)
    errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]
    assert not errors, "\n".join(errors)


def test_dicom_request_for_mat_input_is_refused_before_any_work(tmp_path, capsys):
    mat = tmp_path / "x.mat"
    mat.write_bytes(b"not read")
    assert main(["fatwater", str(mat), "--out", str(tmp_path / "o"), "--dicom"]) == 2
    assert "not a DICOM folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
