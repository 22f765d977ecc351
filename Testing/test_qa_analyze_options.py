"""QA regression: analyze offers the R2* unit override that inspect and load_study have."""

from __future__ import annotations

import pytest

import RefractureRiskLib.pipeline as pipeline
from RefractureRiskLib.cli import build_parser
from RefractureRiskLib.io.dicom_load import R2S_UNITS


class StopError(Exception):
    """Stops the command once it has built its options."""


@pytest.mark.parametrize("unit", R2S_UNITS)
def test_analyze_passes_the_r2s_unit_override(monkeypatch, tmp_path, unit) -> None:
    seen = {}

    def fake_analyze(source, clinical, out, options, **kwargs):
        seen["options"] = options
        raise StopError

    monkeypatch.setattr(pipeline, "analyze_study", fake_analyze)
    argv = ["analyze", str(tmp_path), "--out", str(tmp_path / "o"), "--r2s-unit", unit]
    args = build_parser().parse_args(argv)
    with pytest.raises(StopError):
        args._run(args)
    assert seen["options"].r2s_unit == unit
