"""QA regression: the demo report is labelled as synthetic, not with the DICOM PatientID."""

from __future__ import annotations

import pydicom
import pytest

import RefractureRiskLib.pipeline as pipeline
from RefractureRiskLib.cli import build_parser


class StopError(Exception):
    """Stops the demo once it has asked for the analysis."""


def test_demo_report_label_is_not_the_dicom_patient_id(monkeypatch, tmp_path) -> None:
    seen = {}

    def fake_analyze(source, clinical, out, options, **kwargs):
        # Read the DICOM now: a failed demo removes its (staged) output folder.
        first = next(p for p in sorted(source.rglob("*")) if p.is_file())
        seen.update(kwargs, dicom=pydicom.dcmread(first, stop_before_pixels=True))
        raise StopError

    monkeypatch.setattr(pipeline, "analyze_study", fake_analyze)
    args = build_parser().parse_args(["demo", "--out", str(tmp_path / "demo"), "--seed", "3"])
    with pytest.raises(StopError):
        args._run(args)
    ds = seen["dicom"]
    label = seen["patient_label"]
    assert "synthetic" in label
    assert str(ds.PatientID) not in label and str(ds.PatientName) not in label
    assert not (tmp_path / "demo").exists()  # the failed demo left nothing behind
