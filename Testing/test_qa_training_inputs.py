"""QA regressions: one centre is refused before fitting; problem values read plainly."""

from __future__ import annotations

from RefractureRiskLib.cli import main
from RefractureRiskLib.model.dev.schema import Problem
from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort


def test_single_centre_is_refused_before_any_fit(tmp_path, capsys) -> None:
    path = tmp_path / "one_centre.csv"
    generate_cohort(n=150, n_centres=1, seed=3).data.to_csv(path, index=False)
    code = main(["train", str(path), "--out", str(tmp_path / "m.json"), "--bootstrap", "20"])
    captured = capsys.readouterr()
    assert code == 2
    assert "centre_id" in captured.err and "--no-loco" in captured.err
    assert "fitted" not in captured.out and "C apparent" not in captured.out
    assert not (tmp_path / "m.json").exists()


def test_problem_values_are_plain_python() -> None:
    import numpy as np

    text = str(Problem(8, "refracture", np.float64(1.0), "disagrees with event=0"))
    assert "np.float64" not in text and "value 1.0" in text
