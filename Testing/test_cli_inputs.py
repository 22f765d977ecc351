"""The command line takes a patient the three ways ``--help`` says (file, inline JSON, standard
input) with the same result, and ``demo --overwrite`` re-runs into the same folder."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from RefractureRiskLib.cli import main
from RefractureRiskLib.commands.demo import DEMO_CLINICAL
from RefractureRiskLib.model.modelfile import bundled_model_path, load_model
from RefractureRiskLib.model.scoring import score

PATIENT = {**DEMO_CLINICAL, "pdff_global_L1L4": 52.5, "r2s_global_L1L4": 71.0}


def _scored(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(["score", *argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_score_patient_from_a_file_inline_and_standard_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = score(load_model(bundled_model_path()), PATIENT).probability
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(PATIENT))
    from_file = _scored(capsys, ["--patient", str(path)])
    inline = _scored(capsys, ["--patient", json.dumps(PATIENT)])
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(PATIENT)))
    piped = _scored(capsys, ["--patient", "-"])
    for doc in (from_file, inline, piped):
        assert doc["probability"] == pytest.approx(expected, abs=1e-12)
        assert doc["kind"] == "point estimate"
    # a different patient gives a different risk (the input is really read each way)
    other = {**PATIENT, "age_years": 90}
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(other)))
    assert _scored(capsys, ["--patient", "-"])["probability"] != pytest.approx(expected)


def test_demo_overwrite_replaces_an_earlier_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seed", "3"]) == 0
    first = json.loads((out / "results" / "results.json").read_text())
    assert main(["demo", "--out", str(out), "--seed", "3"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["demo", "--out", str(out), "--seed", "4", "--overwrite"]) == 0
    second = json.loads((out / "results" / "results.json").read_text())
    assert second["provenance"]["created_utc"] >= first["provenance"]["created_utc"]
    assert second["summary"] != first["summary"]  # another phantom: the new run's results
    assert (out / "results" / "report.html").is_file()
