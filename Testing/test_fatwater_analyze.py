"""An echo study through ``analyze`` to a report (maps computed first, provenance says so), and
the library call the Slicer panel can make (:func:`compute_maps`) with progress and cancel."""

from __future__ import annotations

import json

import numpy as np
import pytest

from RefractureRiskLib.cli import main
from RefractureRiskLib.maps.fatwater.compute import SeparationCancelledError, compute_maps
from RefractureRiskLib.maps.fatwater.study import COMPUTED_FROM_ECHOES, STUDY_MAPS
from RefractureRiskLib.phantom import PhantomSpec
from RefractureRiskLib.phantom.echo_dicom import write_echo_dicom
from RefractureRiskLib.phantom.echoes import lumbar_echoes, pattern_echoes

CLINICAL = {
    "age_years": 74,
    "sex": "F",
    "dxa_l1l4_tscore": -2.9,
    "cement_leak_disc": 0,
    "antiop_post": 1,
    "glucocorticoid_use": 0,
    "n_prevalent_vertebral_fractures": 1,
}


@pytest.fixture(scope="module")
def analysed_echoes(tmp_path_factory):
    """The spine phantom's echoes as Siemens-style magnitude/phase DICOM, analysed."""
    ph = lumbar_echoes(PhantomSpec(seed=5, in_plane_spacing_mm=1.6), snr=40.0, seed=5)
    root = tmp_path_factory.mktemp("echo-analyze")
    dicom = write_echo_dicom(ph.echoes, root / "dicom", seed=5)
    (root / "patient.json").write_text(json.dumps(CLINICAL), encoding="utf-8")
    args = ["analyze", str(dicom), "--echoes", "--clinical", str(root / "patient.json")]
    rc = main([*args, "--index-levels", "L1", "--out", str(root / "out")])
    return ph, root / "out", rc


def test_echo_study_runs_to_a_full_report(analysed_echoes):
    _ph, out, rc = analysed_echoes
    assert rc == 0
    for name in ("report.pdf", "report.png", "report.html", "statistics.csv", "results.json"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["risk"] is not None
    lumbar = [lv for lv in results["levels"] if str(lv.get("level", "")).startswith("L")]
    assert len(lumbar) >= 4


def test_results_provenance_says_maps_came_from_the_echoes(analysed_echoes):
    ph, out, _rc = analysed_echoes
    prov = json.loads((out / "results.json").read_text(encoding="utf-8"))["provenance"]
    assert prov["field_strength_t"] == 1.5
    for kind in STUDY_MAPS:
        series = prov["series"][kind]
        assert series["classified_by"] == COMPUTED_FROM_ECHOES
        facts = " | ".join(series["scaling"])
        assert "method: RefractureRisk fat-water separation" in facts
        assert "fat spectrum: ismrm-6peak" in facts
        te = ", ".join(f"{t * 1e3:g}" for t in ph.echoes.te_s)
        assert f"echoes: 6 at TE {te} ms" in facts
    fw = json.loads((out / "fatwater" / "provenance.json").read_text(encoding="utf-8"))
    assert fw["fat_spectrum"] == "ismrm-6peak" and fw["input_conjugated"] is False
    assert (out / "fatwater" / "pdff.nrrd").is_file()


def test_echo_study_pdff_matches_the_phantom_truth(analysed_echoes):
    ph, out, _rc = analysed_echoes
    from RefractureRiskLib.io.images import read_image

    pdff = read_image(out / "fatwater" / "pdff.nrrd").array
    inside = ph.tissue & (np.abs(ph.echoes.signal[..., 0]) > 0.3)
    diff = pdff[inside] - ph.pdff_pct[inside]
    assert abs(float(diff.mean())) < 1.0
    assert float(np.mean(np.abs(diff) > 30)) < 0.001


def test_echo_study_with_export_dicom_is_refused_before_any_work(tmp_path, capsys):
    args = ["analyze", str(tmp_path), "--echoes", "--export-dicom"]
    rc = main([*args, "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "fatwater --dicom" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def small_echoes():
    return pattern_echoes((0, 50, 100), (40.0,), snr=50.0, patch_px=8, seed=7).echoes


def test_compute_maps_reports_progress_and_returns_maps(small_echoes):
    messages: list[str] = []
    result = compute_maps(small_echoes, "hamilton-liver-9peak", progress=messages.append)
    assert result.provenance["fat_spectrum"] == "hamilton-liver-9peak"
    assert result.pdff.shape == small_echoes.shape
    assert any("voxel fit" in m for m in messages) and "separation done" in messages[-1]


def test_compute_maps_cancel_by_callback_or_by_raising_progress(small_echoes):
    with pytest.raises(SeparationCancelledError):
        compute_maps(small_echoes, cancelled=lambda: True)
    calls: list[str] = []

    class StopError(Exception):
        pass

    def progress(msg: str) -> None:
        calls.append(msg)
        if "voxel fit" in msg:
            raise StopError

    with pytest.raises(StopError):
        compute_maps(small_echoes, progress=progress)
    assert not any("separation done" in m for m in calls)


def test_reading_echo_dicom_reports_the_header_scan(analysed_echoes):
    """Reading a DICOM echo folder reports the header scan with its counts (what the Slicer
    panel turns into its progress bar), before the separation starts."""
    from RefractureRiskLib.maps.fatwater.compute import load_echoes

    _ph, out, _rc = analysed_echoes
    messages: list[str] = []
    echoes = load_echoes(out.parent / "dicom", progress=messages.append)
    scans = [m for m in messages if m.startswith("scanned")]
    assert len(scans) >= 2 and scans[-1].startswith(f"scanned {scans[-1].split()[3]} of")
    assert echoes.n_echoes >= 3
