"""train and validate speak in the project's words: a perfect separation is named with its variable
and counts, and numpy / scikit-learn warnings become one counted line each, never raw source
lines on the terminal."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from RefractureRiskLib.commands.train import separation_warnings, warning_lines
from RefractureRiskLib.model.dev.candidates import DEFAULT_CANDIDATES
from RefractureRiskLib.model.dev.schema import read_cohort
from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort


def _cohort(separated: bool):
    data = generate_cohort(n=400, seed=3).data
    if separated:
        data.loc[data["sex"] == "M", ["refracture", "event"]] = 0
    return data


def test_separation_is_named_with_its_variable_and_counts() -> None:
    cohort = read_cohort(_cohort(separated=True))
    men = int(((cohort["sex"] == "M") & cohort["outcome_1y"].notna()).sum())
    lines = separation_warnings(cohort, DEFAULT_CANDIDATES)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"perfect separation by sex: 0 events in men (n = {men})")
    assert separation_warnings(read_cohort(_cohort(separated=False)), DEFAULT_CANDIDATES) == []


def test_library_warnings_become_one_counted_line_each() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            warnings.warn("invalid value encountered in divide", RuntimeWarning, stacklevel=1)
        warnings.warn("lbfgs failed to converge\nIncrease the number", UserWarning, stacklevel=1)
    lines = warning_lines(caught)
    assert len(lines) == 2
    assert "RuntimeWarning: invalid value encountered in divide; 3 times" in lines[0]
    assert "UserWarning: lbfgs failed to converge; 1 time)" in lines[1]
    assert all("\n" not in line for line in lines)


def test_train_on_a_separated_cohort_prints_no_raw_warning(tmp_path: Path) -> None:
    """In a process of its own: pytest would catch the raw warnings before they reach stderr."""
    csv = tmp_path / "cohort.csv"
    _cohort(separated=True).to_csv(csv, index=False)
    argv = ["train", str(csv), "--out", str(tmp_path / "m.json"), "--bootstrap", "5"]
    done = subprocess.run(
        [sys.executable, "-m", "RefractureRiskLib.cli", *argv],
        capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[1],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning: perfect separation by sex: 0 events in men (n = " in done.stdout
    both = done.stdout + done.stderr
    assert ".py:" not in both and "step /= det" not in both  # no raw "file.py:142: ..." lines


def test_validate_says_which_rows_were_scored_with_a_substitute(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cohort row without a model input is refused by default, naming the input and the
    count (its risk would rest on an input nobody gave); with --missing substitute it is scored
    with the model's value for the cohort figures: the command says so with the counts, and
    predictions.csv marks each such row."""
    import pandas as pd

    from RefractureRiskLib.cli import main
    from RefractureRiskLib.model.modelfile import bundled_model_path

    data = generate_cohort(200, 2, 0.0, seed=8).data
    data.loc[data.index[:7], "dxa_l1l4_tscore"] = float("nan")
    cohort = tmp_path / "clinic.csv"
    data.to_csv(cohort, index=False)
    out = tmp_path / "ext"
    argv = ["validate", str(bundled_model_path()), str(cohort), "--out", str(out)]
    assert main([*argv, "--bootstrap", "20"]) == 2
    err = capsys.readouterr().err
    assert "dxa_l1l4_tscore in 7 row(s)" in err and "--missing substitute" in err
    assert not out.exists()
    assert main([*argv, "--bootstrap", "20", "--missing", "substitute"]) == 0
    printed = capsys.readouterr().out
    predictions = pd.read_csv(out / "predictions.csv")
    marked = int(predictions["missing_inputs"].fillna("").str.contains("dxa_l1l4_tscore").sum())
    assert marked == 7
    assert f"note: {marked} row(s) scored with the model's substitute" in printed
    assert "dxa_l1l4_tscore 7" in printed
