"""External validation of a trained model file on a new cohort (validate_external, the command).

A model is trained once (ridge, one imputation, few bootstrap replicates: seconds) on one
synthetic cohort and checked on independent cohorts from the same generator (other seeds) and
on cohorts whose event rate was shifted, where the direction of miscalibration is known.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.metrics import roc_auc_score

from RefractureRiskLib.cli import main
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.dev.external import validate_external
from RefractureRiskLib.model.dev.schema import read_cohort
from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort
from RefractureRiskLib.model.dev.training import train_model
from RefractureRiskLib.model.dev.validation import FitSpec


def quiet(_: str) -> None:
    pass


def cohort(n: int, seed: int, event_rate: float = 0.12, missing: float = 0.0) -> pd.DataFrame:
    return read_cohort(generate_cohort(n, 3, missing, seed=seed, event_rate=event_rate).data)


@pytest.fixture(scope="module")
def trained():
    data = cohort(560, seed=101, missing=0.03)
    return train_model(
        data,
        spec=FitSpec("l2"),
        n_imputations=1,
        n_bootstrap=30,
        loco=False,
        cox=False,
        log=quiet,
    )


@pytest.fixture(scope="module")
def same_population(trained):
    """An independent cohort from the same generator: the model should transport."""
    return validate_external(trained.model, cohort(2000, seed=202), n_bootstrap=400, log=quiet)


def test_independent_cohort_from_the_same_population(trained, same_population):
    v = same_population
    corrected_c = trained.validation["corrected"]["c_statistic"]
    # Tolerance: the external C of 2000 patients (~230 events) has SE ~0.02 and the
    # optimism-corrected C of a 560-patient training cohort ~0.035 (bootstrap estimate of the
    # same quantity, itself noisy); their difference has SE ~0.04, and 0.08 is two of them.
    assert abs(v.metrics["c_statistic"] - corrected_c) < 0.08
    lo, hi = v.ci["cal_slope"]
    assert lo < 1.0 < hi
    lo, hi = v.ci["citl"]
    assert lo < 0.0 < hi
    for name, (lo, hi) in v.ci.items():
        assert lo <= v.metrics[name] <= hi, name
    assert v.n_bootstrap + v.n_bootstrap_failed == 400
    # Unknown 1-year outcomes are scored but never counted as non-events.
    assert v.n_unknown_outcome > 0
    assert v.n + v.n_unknown_outcome == v.n_scored == v.n_rows == 2000
    unknown = v.predictions["outcome_1y"].isna()
    assert unknown.sum() == v.n_unknown_outcome
    assert set(v.predictions.loc[unknown, "outcome_1y_status"]) <= {
        "censored_before_horizon",
        "died_before_horizon",
    }
    # Observed vs predicted per centre adds up to the whole.
    assert sum(r["n"] for r in v.by_centre) == v.n
    assert sum(r["events"] for r in v.by_centre) == v.events


@pytest.mark.parametrize(("event_rate", "direction"), [(0.30, 1), (0.04, -1)])
def test_shifted_event_rate_moves_calibration_in_the_large(trained, event_rate, direction):
    """More events than the model expects: citl > 0 (under-prediction), O/E > 1; and fewer."""
    v = validate_external(
        trained.model, cohort(1000, seed=303, event_rate=event_rate), n_bootstrap=300, log=quiet
    )
    lo, hi = v.ci["citl"]
    assert direction * v.metrics["citl"] > 0
    assert (lo > 0) if direction > 0 else (hi < 0), (lo, hi)
    assert direction * (v.observed_risk - v.mean_predicted_risk) > 0
    assert direction * (v.metrics["oe_ratio"] - 1.0) > 0


def test_metrics_equal_an_independent_recomputation(same_population, tmp_path):
    from RefractureRiskLib.model.dev.external_report import write_external_report

    paths = write_external_report(same_population, tmp_path, "cohort.csv")
    pred = pd.read_csv(paths["predictions.csv"])
    known = pred[pred["outcome_1y"].notna()]
    y = known["outcome_1y"].to_numpy()
    lp = known["linear_predictor"].to_numpy()
    p = known["probability"].to_numpy()
    m = same_population.metrics
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-lp)), rtol=1e-9)
    assert m["c_statistic"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2), rel=1e-9)
    assert m["oe_ratio"] == pytest.approx(y.sum() / p.sum(), rel=1e-9)
    slope_fit = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit()
    assert m["cal_intercept"] == pytest.approx(slope_fit.params[0], abs=1e-6)
    assert m["cal_slope"] == pytest.approx(slope_fit.params[1], abs=1e-6)
    citl_fit = sm.GLM(y, np.ones((y.size, 1)), family=sm.families.Binomial(), offset=lp).fit()
    assert m["citl"] == pytest.approx(citl_fit.params[0], abs=1e-6)
    doc = json.loads(paths["validation.json"].read_text())
    assert doc["n"] == y.size and doc["events"] == int(y.sum())
    assert doc["metrics"]["c_statistic"]["estimate"] == pytest.approx(m["c_statistic"])


def test_refused_row_is_listed_and_excluded_not_clipped(trained):
    data = cohort(300, seed=404)
    data.loc[7, "age_years"] = 250.0  # beyond the model's hard limit
    data.loc[9, "dxa_l1l4_tscore"] = np.nan  # missing: substituted and counted, not refused
    with pytest.raises(InputError, match="dxa_l1l4_tscore in 1 row"):
        validate_external(trained.model, data, n_bootstrap=50, log=quiet)
    v = validate_external(trained.model, data, n_bootstrap=50, log=quiet, missing="substitute")
    assert len(v.refused) == 1
    row = v.refused[0]
    bad_id = str(data.loc[7, "patient_id"])
    assert (row.row, row.patient_id, row.column) == (7, bad_id, "age_years")
    assert "250" in row.reason and "outside the allowed range" in row.reason
    assert bad_id not in set(v.predictions["patient_id"])
    assert v.n_scored == 299
    assert v.missing_counts["dxa_l1l4_tscore"] >= 1
    ninth = v.predictions[v.predictions["patient_id"] == str(data.loc[9, "patient_id"])]
    assert "dxa_l1l4_tscore" in ninth["missing_inputs"].iloc[0]


def test_extrapolation_is_counted_per_input(trained):
    data = cohort(300, seed=405)
    hi = trained.model.input("age_years").soft_range[1]
    data.loc[[3, 4], "age_years"] = min(hi + 5.0, 110.0)
    v = validate_external(trained.model, data, n_bootstrap=20, log=quiet)
    assert v.extrapolation_counts["age_years"] >= 2
    flagged = v.predictions["extrapolated_inputs"].fillna("").str.contains("age_years")
    assert flagged.sum() == v.extrapolation_counts["age_years"]


def test_bad_cohorts_are_refused_with_the_column_named(trained):
    model = trained.model
    data = cohort(200, seed=406)
    with pytest.raises(InputError, match="dxa_l1l4_tscore") as err:
        validate_external(model, data.drop(columns=["dxa_l1l4_tscore", "sex"]), log=quiet)
    assert "sex" in str(err.value)
    with pytest.raises(InputError, match="empty"):
        validate_external(model, data.iloc[:0], log=quiet)
    no_events = data.assign(outcome_1y=data["outcome_1y"].where(data["outcome_1y"].isna(), 0.0))
    with pytest.raises(InputError, match=r"outcome_1y.*no events"):
        validate_external(model, no_events, log=quiet)
    all_events = data.assign(outcome_1y=data["outcome_1y"].where(data["outcome_1y"].isna(), 1.0))
    with pytest.raises(InputError, match=r"all .* have the event"):
        validate_external(model, all_events, log=quiet)
    with pytest.raises(InputError, match="only 15 scored patients"):
        validate_external(model, data[data["outcome_1y"].notna()].iloc[:15], log=quiet)


def test_command_end_to_end(trained, tmp_path, capsys):
    model_path = trained.model.save(tmp_path / "model.json")
    cohort_path = tmp_path / "clinic.csv"
    generate_cohort(400, 2, 0.02, seed=505).data.to_csv(cohort_path, index=False)
    out = tmp_path / "external"
    args = ["validate", str(model_path), str(cohort_path), "--out", str(out), "--bootstrap", "200"]
    args += ["--missing", "substitute"]  # 2% of the inputs are missing
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "C-statistic" in printed and "calibration slope" in printed
    for name in (
        "predictions.csv",
        "validation.json",
        "report.md",
        "report.html",
        "calibration.png",
        "decision_curve.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
        assert str(out / name) in printed
    doc = json.loads((out / "validation.json").read_text())
    from RefractureRiskLib.core.hashing import file_sha256

    assert doc["cohort"]["sha256"] == file_sha256(cohort_path)
    assert doc["cohort"]["file"] == "clinic.csv"
    assert doc["model"]["content_sha256"] == json.loads(model_path.read_text())["content_sha256"]
    assert doc["model"]["validated"] is False
    assert doc["software"]["version"] and doc["created_utc"].endswith("+00:00")
    report = (out / "report.md").read_text()
    assert f"external validation of {trained.model.name} on clinic.csv" in report.lower()
    assert "NOT FOR CLINICAL USE" in report and "refused" in report
    assert "lower 95%" in report and "C-statistic" in report

    # An existing result is not replaced without --overwrite; with it, it is.
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "validation.json" in err and "--overwrite" in err and "Traceback" not in err
    assert main([*args, "--overwrite"]) == 0
    capsys.readouterr()

    # Bad input: one line naming the file and the column, exit code 2, nothing written.
    broken = tmp_path / "broken.csv"
    generate_cohort(100, 2, seed=506).data.drop(columns=["dxa_l1l4_tscore"]).to_csv(
        broken, index=False
    )
    bad_out = tmp_path / "bad"
    assert main(["validate", str(model_path), str(broken), "--out", str(bad_out)]) == 2
    err = capsys.readouterr().err
    assert "broken.csv" in err and "dxa_l1l4_tscore" in err and "Traceback" not in err
    assert not bad_out.exists()
