"""A corpus of bad inputs and faults across the commands (issue 11): each ends with exit code 2
and an error naming the file or option at fault; never a traceback, never an output left
behind (no --out folder, no staging), never a number computed from a value that was not given.

Cases marked "was:" failed before this corpus existed (traceback, misleading message, silent
acceptance); the others pin behaviour that was right. Inputs are built once per module: a small
phantom DICOM study, the demo patient's clinical file, a synthetic cohort table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from RefractureRiskLib.cli import main
from RefractureRiskLib.commands.demo import DEMO_CLINICAL
from Testing.fault_inputs import Env, write_env

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    return write_env(tmp_path_factory.mktemp("faults"), seed=0)


@dataclass(frozen=True)
class Case:
    """``make(env, tmp)`` returns the command line; ``expect``: fragments of the error;
    ``absent``: paths (relative to tmp) that must not exist afterwards."""

    make: Callable[[Env, Path], list[str]]
    expect: tuple[str, ...]
    absent: tuple[str, ...] = ("out",)
    stdin: str | None = None


def _write(path: Path, text: str | bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def _cohort(env: Env, tmp: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> str:
    path = tmp / "cohort.csv"
    change(pd.read_csv(env.cohort)).to_csv(path, index=False)
    return str(path)


def _analyze(env: Env, tmp: Path, *extra: str) -> list[str]:
    return ["analyze", str(env.dicom), "--out", str(tmp / "out"), *extra]


def _train(cohort: str, tmp: Path, *extra: str) -> list[str]:
    return ["train", cohort, "--out", str(tmp / "out" / "m.json"), *extra]


def _samplesize(*extra: str) -> list[str]:
    return ["samplesize", "--parameters", "5", *extra]


CASES: dict[str, Case] = {
    # -- analyze ------------------------------------------------------------------------------
    # was: ValueError traceback from the level table when clinical inputs were given
    "analyze: --index-levels names a cervical level": Case(
        lambda e, t: _analyze(e, t, "--clinical", str(e.clinical), "--index-levels", "C5"),
        ("--index-levels", "'C5'"),
    ),
    "analyze: --index-levels with an unknown level among good ones": Case(
        lambda e, t: _analyze(e, t, "--index-levels", "L1,X"), ("--index-levels", "'X'")
    ),
    "analyze: clinical file is a JSON array": Case(
        lambda e, t: _analyze(e, t, "--clinical", _write(t / "c.json", "[1, 2]")),
        ("c.json", "expected a JSON object"),
    ),
    "analyze: clinical file is empty": Case(
        lambda e, t: _analyze(e, t, "--clinical", _write(t / "c.json", "")),
        ("c.json", "not valid JSON"),
    ),
    "analyze: clinical age given as JSON true": Case(
        lambda e, t: _analyze(
            e,
            t,
            "--clinical",
            _write(t / "c.json", json.dumps(DEMO_CLINICAL | {"age_years": True})),
        ),
        ("c.json", "age_years"),
    ),
    # was: analysed and scored with a T-score of +1
    "analyze: clinical T-score given as JSON true": Case(
        lambda e, t: _analyze(
            e,
            t,
            "--clinical",
            _write(t / "c.json", json.dumps(DEMO_CLINICAL | {"dxa_l1l4_tscore": True})),
        ),
        ("c.json: dxa_l1l4_tscore", "expected a number"),
    ),
    "analyze: clinical file is a folder": Case(
        lambda e, t: _analyze(e, t, "--clinical", str((t / "folder.json").mkdir() or t)),
        ("clinical file",),
    ),
    "analyze: points file gives two coordinates": Case(
        lambda e, t: _analyze(e, t, "--roi", _write(t / "p.json", '{"L1": [0, 0]}')),
        ("L1", "3 finite RAS coordinates"),
    ),
    "analyze: points file is an empty object": Case(
        lambda e, t: _analyze(e, t, "--roi", _write(t / "p.json", "{}")), ("no points given",)
    ),
    "analyze: points file names an unknown level": Case(
        lambda e, t: _analyze(e, t, "--roi", _write(t / "p.json", '{"Q1": [0, 0, 0]}')),
        ("'Q1'", "unknown vertebral level"),
    ),
    "analyze: label map NRRD with absurd sizes": Case(
        lambda e, t: _analyze(
            e,
            t,
            "--roi",
            _write(
                t / "m.seg.nrrd",
                b"NRRD0004\ntype: short\ndimension: 3\nsizes: 1000000 1000000 1000000\n"
                b"encoding: raw\n\n",
            ),
        ),
        ("m.seg.nrrd", "cannot be read"),
    ),
    "analyze: --study index beyond the studies found": Case(
        lambda e, t: _analyze(e, t, "--study", "7"), ("study index 7 out of range",)
    ),
    "analyze: --pdff-series that matches no series": Case(
        lambda e, t: _analyze(e, t, "--pdff-series", "99"), ("no PDFF series matches '99'",)
    ),
    # was: the error named the hidden staging folder instead of --out
    "analyze: --out where no folder can be created": Case(
        lambda e, t: ["analyze", str(e.dicom), "--out", "/proc/refracture-out/x"],
        ("/proc/refracture-out/x", "cannot create"),
        absent=(),
    ),
    "analyze: clinical table without --patient": Case(
        lambda e, t: _analyze(e, t, "--clinical", str(e.cohort)),
        ("cohort.csv", "name the patient"),
    ),
    # -- score --------------------------------------------------------------------------------
    # was: "[...]: patient file not found" (inline JSON was recognised only as an object)
    "score: --patient is an inline JSON array": Case(
        lambda e, t: ["score", "--patient", '[{"age_years": 70}]'],
        ("--patient", "expected a JSON object"),
        absent=(),
    ),
    "score: --patient - with nothing on standard input": Case(
        lambda e, t: ["score", "--patient", "-"], ("standard input", "not valid JSON"), (), ""
    ),
    "score: --model is JSON but not a model file": Case(
        lambda e, t: ["score", "--model", _write(t / "m.json", '{"a": 1}'), "--patient", "{}"],
        ("m.json", "not a model file"),
        absent=(),
    ),
    "score: an input given as a list": Case(
        lambda e, t: ["score", "--patient", json.dumps(DEMO_CLINICAL | {"age_years": [74]})],
        ("age_years", "expected a number"),
        absent=(),
    ),
    # was: scored as a T-score of +1 (JSON true taken for 1), exit 0
    "score: a T-score given as JSON true": Case(
        lambda e, t: ["score", "--patient", json.dumps(DEMO_CLINICAL | {"dxa_l1l4_tscore": True})],
        ("dxa_l1l4_tscore", "expected a number", "True"),
        absent=(),
    ),
    # -- card ---------------------------------------------------------------------------------
    # was: "already exists ... add --overwrite", which then failed as well
    "card: --out is a folder": Case(
        lambda e, t: ["card", "--out", str((t / "out").mkdir() or t / "out")],
        ("is a folder", ".md"),
        absent=(),
    ),
    "card: --out names a .json file": Case(
        lambda e, t: ["card", "--out", str(t / "out.json")], ("Markdown",), ("out.json",)
    ),
    # -- train --------------------------------------------------------------------------------
    # was: MemoryError traceback (105 GB of bootstrap indices)
    "train: --bootstrap 100000000": Case(
        lambda e, t: _train(str(e.cohort), t, "--bootstrap", "100000000"),
        ("--bootstrap", "between 1 and"),
    ),
    # was: silently raised to 2 imputations (issue 11)
    "train: --imputations 0": Case(
        lambda e, t: _train(str(e.cohort), t, "--imputations", "0"), ("--imputations", "got 0")
    ),
    "train: --imputations 1": Case(
        lambda e, t: _train(str(e.cohort), t, "--imputations", "1"), ("--imputations", "got 1")
    ),
    "train: an .xlsx file that is CSV text": Case(
        lambda e, t: _train(_write(t / "c.xlsx", e.cohort.read_text()), t),
        ("c.xlsx", "cannot read the cohort table"),
    ),
    "train: a corrupt .parquet file": Case(
        lambda e, t: _train(_write(t / "c.parquet", b"PAR1 not really"), t),
        ("c.parquet", "cannot read the cohort table"),
    ),
    "train: a CSV separated by semicolons": Case(
        lambda e, t: _train(_write(t / "c.csv", pd.read_csv(e.cohort).to_csv(sep=";")), t),
        ("c.csv", "separated by ';'"),
    ),
    "train: --out is an existing folder named like a model file": Case(
        lambda e, t: (
            ["train", str(e.cohort), "--out", str(t / "d.json"), "--overwrite"]
            if (t / "d.json").mkdir() is None
            else []
        ),
        ("d.json", "is a folder"),
        absent=(),
    ),
    "train: --out where no folder can be created": Case(
        lambda e, t: ["train", str(e.cohort), "--out", "/proc/refracture-out/m.json"],
        ("/proc/refracture-out", "cannot create"),
    ),
    "train: an outcome coded 2": Case(
        lambda e, t: _train(_cohort(e, t, lambda d: d.assign(refracture=d["refracture"] * 2)), t),
        ("refracture", "expected 0 or 1"),
    ),
    # -- validate -----------------------------------------------------------------------------
    # was: MemoryError traceback (a terabyte of bootstrap indices)
    "validate: --bootstrap 1000000000": Case(
        lambda e, t: (
            [
                "validate",
                str(e.model),
                str(e.cohort),
                "--out",
                str(t / "out"),
                "--bootstrap",
                "1000000000",
            ]
        ),
        ("--bootstrap", "between 1 and"),
    ),
    "validate: --out is an existing file": Case(
        lambda e, t: ["validate", str(e.model), str(e.cohort), "--out", _write(t / "f", "x")],
        ("exists and is not a folder",),
        absent=(),
    ),
    "validate: the model argument is the cohort table": Case(
        lambda e, t: ["validate", str(e.cohort), str(e.cohort), "--out", str(t / "out")],
        ("cohort.csv", "not valid JSON"),
    ),
    # -- agreement ----------------------------------------------------------------------------
    "agreement: --store is a text file": Case(
        lambda e, t: (
            [
                "agreement",
                "--store",
                _write(t / "s.sqlite", "hello " * 200),
                "--out",
                str(t / "out"),
            ]
        ),
        ("s.sqlite", "cannot open the measurement store"),
    ),
    "agreement: --store is an empty file": Case(
        lambda e, t: ["agreement", "--store", _write(t / "s.sqlite", b""), "--out", str(t / "out")],
        ("s.sqlite", "is empty"),
    ),
    "agreement: --store does not exist (and is not created)": Case(
        lambda e, t: ["agreement", "--store", str(t / "s.sqlite"), "--out", str(t / "out")],
        ("s.sqlite", "not found"),
        absent=("out", "s.sqlite"),
    ),
    # -- describe -----------------------------------------------------------------------------
    # was: written, with blank means and an empty test table
    "describe: a cohort of one patient": Case(
        lambda e, t: ["describe", _cohort(e, t, lambda d: d.head(1)), "--out", str(t / "out")],
        ("1 patient row", "at least 2"),
    ),
    "describe: --out is an existing file": Case(
        lambda e, t: ["describe", str(e.cohort), "--out", _write(t / "f", "x")],
        ("exists and is not a folder",),
        absent=(),
    ),
    # -- samplesize ---------------------------------------------------------------------------
    # was: LinAlgError traceback
    "samplesize: outcome proportion 1e-9": Case(
        lambda e, t: _samplesize("--prevalence", "1e-9", "--c-statistic", "0.7"),
        ("outcome proportion 1e-09", "c statistic 0.7"),
        absent=(),
    ),
    # was: ValueError (math domain error) traceback
    "samplesize: outcome proportion 0.999999999": Case(
        lambda e, t: _samplesize("--prevalence", "0.999999999", "--c-statistic", "0.7"),
        ("0.999999999", "no sample size can be computed"),
        absent=(),
    ),
    # was: ZeroDivisionError traceback
    "samplesize: C-statistic 0.501": Case(
        lambda e, t: _samplesize("--prevalence", "0.1", "--c-statistic", "0.501"),
        ("c statistic 0.501", "no sample size can be computed"),
        absent=(),
    ),
    "samplesize: prevalence nan": Case(
        lambda e, t: _samplesize("--prevalence", "nan", "--c-statistic", "0.7"),
        ("prevalence", "got nan"),
        absent=(),
    ),
    "samplesize: --mape 5": Case(
        lambda e, t: _samplesize("--prevalence", "0.1", "--c-statistic", "0.7", "--mape", "5"),
        ("mape", "got 5"),
        absent=(),
    ),
    # -- batch --------------------------------------------------------------------------------
    "batch: --workers -2": Case(
        lambda e, t: (
            [
                "batch",
                str(e.dicom.parent),
                "--clinical",
                str(e.cohort),
                "--out",
                str(t / "out"),
                "--workers",
                "-2",
            ]
        ),
        ("--workers", "-2"),
    ),
    "batch: a manifest listing one patient twice": Case(
        lambda e, t: [
            "batch",
            _write(
                t / "manifest.csv", f"patient_id,study_path\nP1,{e.dicom}\nP1,{e.dicom.parent}\n"
            ),
            "--clinical",
            str(e.cohort),
            "--out",
            str(t / "out"),
        ],
        ("manifest.csv", "more than once", "P1"),
    ),
    "batch: the clinical table does not exist": Case(
        lambda e, t: (
            [
                "batch",
                str(e.dicom.parent),
                "--clinical",
                str(t / "nope.csv"),
                "--out",
                str(t / "out"),
            ]
        ),
        ("nope.csv", "not found"),
    ),
}


def test_the_corpus_has_at_least_30_distinct_cases():
    assert len(CASES) >= 30
    commands = {name.split(":")[0] for name in CASES}
    assert commands >= {"analyze", "score", "card", "train", "validate", "agreement"}
    assert commands >= {"describe", "samplesize", "batch"}  # inspect: the test at the end


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_ends_in_one_error_and_leaves_nothing(name, env, tmp_path, capsys, monkeypatch):
    case = CASES[name]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if case.stdin is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(case.stdin))
    argv = case.make(env, work)
    before = {p for p in work.rglob("*")}
    code = main(argv)  # any exception other than the handled ones fails the test
    captured = capsys.readouterr()
    assert code == 2, (code, captured.err[-800:])
    assert "Traceback" not in captured.err
    errors = [ln for ln in captured.err.splitlines() if ln.startswith("refracture-risk ")]
    assert len(errors) == 1, captured.err  # one error line (a cohort table may list its rows)
    for fragment in case.expect:
        assert fragment in captured.err, (fragment, captured.err)
    for rel in case.absent:
        assert not (work / rel).exists(), f"{rel} left behind"
    new = {p for p in work.rglob("*")} - before
    assert not [p for p in new if p.name.startswith(".")], "staging left behind"


def test_a_named_pipe_a_dangling_link_and_a_link_loop_in_the_study_do_not_hang(env, tmp_path):
    """A FIFO would block a reader forever; links must not be followed in circles."""
    study = tmp_path / "study"
    shutil.copytree(env.dicom, study)
    os.mkfifo(study / "pipe.dcm")
    os.symlink(tmp_path / "nowhere", study / "gone.dcm")
    os.symlink(study, study / "loop")
    proc = subprocess.run(
        [sys.executable, "-m", "RefractureRiskLib.cli", "inspect", str(study)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert "Traceback" not in proc.stderr
    assert "Usable PDFF map" in proc.stdout
