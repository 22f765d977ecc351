"""The ``refracture-risk`` command: help, demo end to end, analyze, and bad input without a
traceback (exit code 2, one line naming the file and the reason)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from RefractureRiskLib.cli import COMMAND_MODULES, build_parser, main


def test_every_command_has_help(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in COMMAND_MODULES)
    for name in COMMAND_MODULES:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0


def test_demo_runs_the_whole_pipeline(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "FAT_FRACTION" in printed and "Probability:" in printed
    assert "NOT VALIDATED" in printed
    for name in ("report.pdf", "report.html", "statistics.csv", "rois.seg.nrrd", "results.json"):
        assert (out / "results" / name).is_file(), name
    doc = json.loads((out / "results" / "results.json").read_text())
    assert 0.0 < doc["risk"]["probability"] < 1.0
    # a second run into the same folder refuses instead of mixing studies
    assert main(["demo", "--out", str(out)]) == 2
    assert "already holds files" in capsys.readouterr().err

    # analyze the demo's DICOM again, with the clinical JSON it wrote, via the command line
    again = tmp_path / "again"
    code = main(
        [
            "analyze",
            str(out / "dicom"),
            "--clinical",
            str(out / "patient.json"),
            "--index-levels",
            "L1",
            "--out",
            str(again),
        ]
    )
    assert code == 0
    doc2 = json.loads((again / "results.json").read_text())
    assert doc2["risk"]["probability"] == pytest.approx(doc["risk"]["probability"])


def test_bad_input_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "RefractureRiskLib.cli",
            "analyze",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "nowhere" in proc.stderr
