"""The demo without highdicom (the base install): it runs, writes no DICOM SEG/SR and says so in
exactly one line with the install command."""

from __future__ import annotations

import pytest

from RefractureRiskLib.cli import main
from RefractureRiskLib.core import extras


@pytest.mark.slow
def test_demo_without_highdicom_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    real = extras.available
    monkeypatch.setattr(extras, "available", lambda m: m != "highdicom" and real(m))
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    captured = capsys.readouterr()
    text = (captured.out + captured.err).replace(str(tmp_path), "<tmp>")
    lines = [ln for ln in text.splitlines() if "highdicom" in ln or "SEG" in ln]
    assert lines == [
        "Not written: DICOM SEG and SR (they need highdicom; add them with "
        "pip install 'refracture-risk[export]')"
    ]
    written = {p.name for p in (tmp_path / "demo" / "results").iterdir()}
    assert not any("seg.dcm" in n or "sr.dcm" in n for n in written), written
    assert "report.html" in written
