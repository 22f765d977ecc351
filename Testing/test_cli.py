"""The ``refracture-risk`` command: help, demo end to end, analyze, and bad input without a
traceback (exit code 2, one line naming the file and the reason)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from RefractureRiskLib.cli import COMMAND_MODULES, build_parser, main, named_command


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


def test_a_named_command_is_parsed_as_by_the_full_parser():
    """``main`` builds only the named subcommand's parser (start-up, issue 13): same result."""
    assert named_command(["-v", "analyze", "study", "--out", "o"]) == "analyze"
    assert named_command(["--help"]) is None
    assert named_command(["analyz", "x"]) is None  # a typo: the full parser names the choices
    assert named_command(["-v", "--", "analyze"]) == "analyze"
    assert named_command(["--", "-v"]) is None
    full = build_parser()
    for name in COMMAND_MODULES:
        module = __import__(f"RefractureRiskLib.commands.{name}", fromlist=["NAME"])
        assert name == module.NAME  # the parser is chosen by module name
    argv = ["-v", "analyze", "study", "--index-levels", "L1", "--out", "o"]
    alone, whole = build_parser("analyze").parse_args(argv), full.parse_args(argv)
    assert vars(alone) == vars(whole)


def test_top_level_help_lists_every_command_without_building_their_options(capsys):
    """``refracture-risk --help`` (no command named) reads each command's NAME and HELP only."""
    outputs = []
    for parser in (build_parser(), build_parser(arguments=False)):
        with pytest.raises(SystemExit):
            parser.parse_args(["--help"])
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    with pytest.raises(SystemExit) as exit_info:
        main(["analyz", "study"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'analyz'" in capsys.readouterr().err


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
    # results already there are not replaced unless asked
    argv = ["analyze", str(out / "dicom"), "--out", str(again)]
    assert main(argv) == 2
    assert "already holds results" in capsys.readouterr().err
    assert json.loads((again / "results.json").read_text()) == doc2
    assert main([*argv, "--overwrite"]) == 0
    assert json.loads((again / "results.json").read_text())["risk"] is None  # no clinical inputs


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


def test_bad_clinical_input_fails_before_the_images(tmp_path, capsys):
    clinical = tmp_path / "patient.json"
    clinical.write_text(json.dumps({"age_years": "seventy", "sex": "F"}))
    # the study folder does not even exist: the clinical file is judged first
    code = main(
        [
            "analyze",
            str(tmp_path / "no-study"),
            "--clinical",
            str(clinical),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "patient.json: age_years" in err and "expected a number" in err
    assert not (tmp_path / "o").exists()


def test_output_path_that_is_a_file_is_one_line(tmp_path, capsys):
    from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort

    cohort = tmp_path / "cohort.csv"
    generate_cohort(n=120, seed=1).data.to_csv(cohort, index=False)
    target = tmp_path / "taken"
    target.write_text("x")
    assert main(["describe", str(cohort), "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert "taken" in err
