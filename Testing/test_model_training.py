"""Training and validation: coefficient recovery, solver agreement, validation, bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from RefractureRiskLib.cli import main
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.dev.cox import fit_cox, harrell_c
from RefractureRiskLib.model.dev.curves import decision_curve
from RefractureRiskLib.model.dev.imputation import impute, pool_rubin
from RefractureRiskLib.model.dev.logistic import Standardiser, expit, fit_batch
from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort
from RefractureRiskLib.model.dev.training import (
    DEFAULT_CANDIDATES,
    PenalisedLogisticRegression,
    train_model,
    with_splines,
)
from RefractureRiskLib.model.dev.validation import (
    FitSpec,
    bootstrap_validate,
    c_statistic,
    leave_one_centre_out,
    recalibration,
)
from RefractureRiskLib.model.modelfile import load_model
from RefractureRiskLib.model.scoring import score
from RefractureRiskLib.model.terms import InputSpec, design_matrix


def quiet(_: str) -> None:
    pass


def design(df: pd.DataFrame) -> np.ndarray:
    terms = [c.build(np.empty(0)) for c in DEFAULT_CANDIDATES]
    return design_matrix(terms, {c.input: df[c.input] for c in DEFAULT_CANDIDATES})


@pytest.fixture(scope="module")
def large_cohort():
    return generate_cohort(
        20_000, 3, 0.0, seed=11, event_rate=0.15, lost_to_follow_up_frac=0.0, death_1y_frac=0.0
    )


def simulated(n: int, seed: int, q: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, q))
    X[:, 1] = rng.random(n) < 0.4
    beta = np.r_[-1.8, np.linspace(0.6, -0.4, q)]
    y = (rng.random(n) < expit(beta[0] + X @ beta[1:])).astype(float)
    return X, y, beta


def _z_scores(cohort) -> np.ndarray:
    truth_by_input = {t.column: cohort.true_coefficients[t.name] for t in cohort.terms}
    X = design(cohort.data)
    y = cohort.outcome_latent.astype(float)
    fit = PenalisedLogisticRegression("none").fit(X, y)
    se = np.sqrt(np.diag(fit.covariance_))
    estimate = np.r_[fit.intercept_, fit.coef_]
    truth = np.r_[
        cohort.true_coefficients["intercept"],
        [truth_by_input[c.input] for c in DEFAULT_CANDIDATES],
    ]
    return (estimate - truth) / se


def test_unpenalised_fit_recovers_the_true_coefficients(large_cohort) -> None:
    # One large cohort: every estimate close to the truth in units of its standard error
    # (|z| < 3.29, the 99.9% interval) and the standard errors right overall (sum of z^2 is
    # chi-square with 11 df). Each single 95% interval misses with probability 5%, so "all 11
    # inside" would fail by chance in 43% of cohorts; coverage is tested on replicates below.
    z = _z_scores(large_cohort)
    assert np.all(np.abs(z) < 3.29), f"z = {np.round(z, 2)}"
    assert (z**2).sum() < stats.chi2.ppf(0.999, z.size)


def test_95_percent_intervals_cover_the_true_coefficients() -> None:
    z = np.concatenate(
        [
            _z_scores(
                generate_cohort(
                    1500,
                    3,
                    0.0,
                    seed=100 + k,
                    event_rate=0.2,
                    lost_to_follow_up_frac=0.0,
                    death_1y_frac=0.0,
                )
            )
            for k in range(30)
        ]
    )
    coverage = np.mean(np.abs(z) <= 1.959964)
    # 330 intervals: binomial(330, 0.95) falls outside [0.91, 0.985] with probability < 0.005.
    assert 0.91 <= coverage <= 0.985, coverage


def test_unpenalised_and_penalised_fits_agree_with_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    X, y, _ = simulated(800, 1)
    ours = PenalisedLogisticRegression("none").fit(X, y)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(X, y)
    assert ours.coef_ == pytest.approx(ref.coef_[0], abs=1e-6)
    assert ours.intercept_ == pytest.approx(ref.intercept_[0], abs=1e-6)
    # L1 at a fixed penalty on standardised columns: sklearn's C = 1 / (n lambda).
    st = Standardiser.of(X)
    Z = st.apply(X)
    lam = 0.02
    beta, ok = fit_batch(Z, y, np.ones((1, y.size)), lam, alpha=1.0)
    ref = LogisticRegression(
        l1_ratio=1.0, solver="saga", C=1 / (y.size * lam), tol=1e-12, max_iter=200_000
    ).fit(Z, y)
    assert ok[0]
    assert beta[0, 1:] == pytest.approx(ref.coef_[0], abs=1e-6)
    assert (beta[0, 1:] == 0).any()  # the lasso removed at least one term


def test_penalised_fit_shrinks_and_chooses_a_penalty() -> None:
    X, y, _ = simulated(300, 2)
    plain = PenalisedLogisticRegression("none").fit(X, y)
    ridge = PenalisedLogisticRegression("l2").fit(X, y)
    lasso = PenalisedLogisticRegression("l1").fit(X, y)
    assert ridge.lambda_ > 0 and lasso.lambda_ > 0
    scaled = lambda f: f.coef_ * X.std(axis=0)  # noqa: E731
    assert np.linalg.norm(scaled(ridge)) < np.linalg.norm(scaled(plain))
    assert np.abs(scaled(lasso)).sum() < np.abs(scaled(plain)).sum()
    p = ridge.predict_proba(X)
    assert p.shape == (300, 2) and np.allclose(p.sum(axis=1), 1.0)


def test_c_statistic_and_recalibration_against_independent_computations() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    lp = np.round(rng.normal(size=400), 1)  # many ties
    y = (rng.random(400) < expit(lp)).astype(float)
    w = rng.integers(0, 4, 400).astype(float)
    assert c_statistic(lp, y)[0] == pytest.approx(roc_auc_score(y, lp))
    assert c_statistic(lp, y, w)[0] == pytest.approx(roc_auc_score(y, lp, sample_weight=w))
    # Outcomes drawn from a known calibration line are recovered.
    lp = rng.normal(-1, 1.2, 200_000)
    y = (rng.random(lp.size) < expit(0.3 + 0.7 * lp)).astype(float)
    a, b, _ = recalibration(lp[None, :], y)
    assert a[0] == pytest.approx(0.3, abs=0.03) and b[0] == pytest.approx(0.7, abs=0.03)


def test_decision_curve_of_a_perfect_predictor_gains_the_prevalence() -> None:
    y = np.r_[np.ones(20), np.zeros(80)]
    curve = decision_curve(y * 0.9 + 0.05, y, thresholds=np.array([0.1, 0.3]))
    assert curve["model"] == pytest.approx([0.2, 0.2])
    assert curve["treat_all"] == pytest.approx([0.2 - 0.8 * 0.1 / 0.9, 0.2 - 0.8 * 0.3 / 0.7])


def test_bootstrap_validation_behaves() -> None:
    # Small and overfitted: optimism is positive and the corrected slope below 1.
    X, y, _ = simulated(300, 4)
    v = bootstrap_validate(X, y, FitSpec("none"), n_bootstrap=200, seed=1)
    assert v.corrected["c_statistic"] < v.apparent["c_statistic"]
    assert v.apparent["cal_slope"] == pytest.approx(1.0, abs=1e-6)
    assert v.apparent["cal_intercept"] == pytest.approx(0.0, abs=1e-6)
    assert v.corrected["cal_slope"] < 0.95
    assert v.n_bootstrap == 200 and v.n_failed == 0
    # Large and correctly specified: little optimism, slope near 1.
    X, y, _ = simulated(4000, 5)
    v = bootstrap_validate(X, y, FitSpec("none"), n_bootstrap=50, seed=1)
    assert 0 < v.optimism["c_statistic"] < 0.01
    assert v.corrected["cal_slope"] == pytest.approx(1.0, abs=0.03)
    assert v.corrected["brier"] >= v.apparent["brier"]


def test_penalised_bootstrap_refits_the_penalty() -> None:
    X, y, _ = simulated(300, 6)
    v = bootstrap_validate(X, y, FitSpec("l2"), n_bootstrap=40, seed=2)
    assert v.lambda_apparent > 0
    assert v.corrected["c_statistic"] < v.apparent["c_statistic"]
    # The ridge's apparent slope exceeds 1 (shrunken coefficients are under-confident on the
    # training data) and the corrected slope is closer to 1 than the unpenalised fit's.
    assert v.apparent["cal_slope"] > 1.0
    plain = bootstrap_validate(X, y, FitSpec("none"), n_bootstrap=40, seed=2)
    assert abs(v.corrected["cal_slope"] - 1) < abs(plain.corrected["cal_slope"] - 1)


def test_leave_one_centre_out_needs_two_centres() -> None:
    X, y, _ = simulated(300, 7)
    rows = leave_one_centre_out(X, y, np.repeat(["A", "B", "C"], 100), FitSpec("l2"))
    assert [r["centre"] for r in rows] == ["A", "B", "C"]
    assert sum(r["n"] for r in rows) == 300
    with pytest.raises(InputError, match="at least 2 centres"):
        leave_one_centre_out(X, y, np.repeat("A", 300), FitSpec("l2"))


def test_rubin_pooling() -> None:
    est = [np.array([1.0, 2.0]), np.array([1.2, 2.0]), np.array([0.8, 2.0])]
    cov = [np.eye(2) * 0.01] * 3
    pooled = pool_rubin(est, cov)
    assert pooled.estimate == pytest.approx([1.0, 2.0])
    # Between-imputation variance 0.04 -> total 0.01 + (1 + 1/3) 0.04.
    assert pooled.covariance[0, 0] == pytest.approx(0.01 + 4 / 3 * 0.04)
    assert pooled.covariance[1, 1] == pytest.approx(0.01)


def test_imputation_fills_plausible_values() -> None:
    df = generate_cohort(400, 3, 0.2, seed=3).data
    inputs = (
        InputSpec("dxa_l1l4_tscore", "number", hard_range=(-6.0, 4.0)),
        InputSpec("cement_leak_disc", "binary"),
        InputSpec("sex", "category", levels=("F", "M")),
        InputSpec("pdff_global_L1L4", "number", hard_range=(0.0, 100.0)),
    )
    y = np.zeros(len(df))
    sets = impute(df, inputs, y, m=3, seed=1)
    assert len(sets) == 3
    for s in sets:
        assert not s[[i.name for i in inputs]].isna().any().any()
        assert set(s["cement_leak_disc"].unique()) <= {0.0, 1.0}
        assert s["dxa_l1l4_tscore"].between(-6, 4).all()
        observed = df["pdff_global_L1L4"].notna()
        assert (s.loc[observed, "pdff_global_L1L4"] == df.loc[observed, "pdff_global_L1L4"]).all()
    miss = df["pdff_global_L1L4"].isna()
    assert not np.allclose(
        sets[0].loc[miss, "pdff_global_L1L4"], sets[1].loc[miss, "pdff_global_L1L4"]
    )


def test_cox_recovers_a_known_hazard_ratio() -> None:
    rng = np.random.default_rng(8)
    n = 3000
    x = rng.normal(size=(n, 2))
    rate = 0.001 * np.exp(x @ np.array([0.5, -0.3]))
    t_event = rng.exponential(1 / rate)
    t_cens = rng.uniform(0, 1500, n)
    time = np.minimum(t_event, t_cens).round()  # rounding creates ties
    event = (t_event <= t_cens).astype(int)
    fit = fit_cox(x, time, event, ("a", "b"))
    z = (fit.coef - np.array([0.5, -0.3])) / fit.se
    assert np.all(np.abs(z) < 3)
    assert 0.5 < fit.concordance < 1
    assert harrell_c(-time, time, event) == pytest.approx(1.0)
    with pytest.raises(InputError, match="no re-fracture events"):
        fit_cox(x, time, np.zeros(n))


def test_train_model_end_to_end_with_missing_data_and_splines(tmp_path: Path) -> None:
    df = generate_cohort(500, 3, 0.05, seed=21).data
    candidates = with_splines(DEFAULT_CANDIDATES, ["pdff_global_L1L4"], 4)
    logs: list[str] = []
    result = train_model(
        df, candidates, FitSpec("l2"), n_imputations=2, n_bootstrap=20, log=logs.append
    )
    assert any("support at most" in line for line in logs)  # sample-size check printed
    assert any("WARNING" in line for line in logs)  # 12 parameters exceed what 500 patients support
    model = load_model(result.model.save(tmp_path / "m.json"))
    assert model.training["imputations"] == 2
    # The cohort's three centres scan at 1.5 and 3 T: the field-strength term is added last.
    assert len(model.terms) == 11 and model.terms[8].transform.type == "rcs"
    assert model.terms[-1].name == "field_3t" and any("1.5 T and 3 T" in n for n in result.notes)
    assert len(model.terms[8].transform.knots) == 4
    assert result.cox is not None and result.loco is not None and len(result.loco) == 3
    # Scoring the file reproduces the training design: same linear predictor for a patient.
    names = [i.name for i in model.inputs]
    row = df.dropna(subset=names).iloc[0]
    patient = {k: (row[k] if k == "sex" else float(row[k])) for k in names}
    terms = model.terms
    X = design_matrix(terms, {k: [v] for k, v in patient.items()})
    expected = model.intercept + X[0] @ np.concatenate([t.coefficients for t in terms])
    res = score(model, patient)
    assert res.linear_predictor == pytest.approx(expected)
    assert res.interval is not None and res.interval[0] < res.probability < res.interval[1]


def test_r2s_terms_and_field_strength() -> None:
    """R2* roughly doubles at 3 T: never pooled silently across field strengths."""
    df = generate_cohort(300, 3, 0.0, seed=8).data
    candidates = [c for c in DEFAULT_CANDIDATES if c.name in ("age_per_year", "r2s_per_10")]
    fit = dict(spec=FitSpec("none"), n_bootstrap=5, loco=False, cox=False, log=quiet)
    assert set(df["mri_field_T"]) == {1.5, 3.0}
    mixed = train_model(df, candidates, **fit)
    assert [t.name for t in mixed.model.terms] == ["age_per_year", "r2s_per_10", "field_3t"]
    # One field strength: no term, but the input is kept so another field strength is flagged.
    one = df[df["mri_field_T"] == 1.5]
    single = train_model(one, candidates, **fit)
    assert [t.name for t in single.model.terms] == ["age_per_year", "r2s_per_10"]
    assert single.model.input("mri_field_T").soft_range == (1.5, 1.5)
    assert any("1.5 T only" in n for n in single.notes)
    patient = {"age_years": 70.0, "r2s_global_L1L4": 150.0}
    at_3t = score(single.model, {**patient, "mri_field_T": 3.0})
    assert any("mri_field_T = 3" in w and "extrapolation" in w for w in at_3t.warnings)
    at_15t = score(single.model, {**patient, "mri_field_T": 1.5, "r2s_global_L1L4": 75.0})
    assert not any("mri_field_T" in w for w in at_15t.warnings)
    assert at_3t.linear_predictor != at_15t.linear_predictor
    with pytest.raises(InputError, match=r"mri_field_T.*field strength"):
        train_model(df.drop(columns=["mri_field_T"]), candidates, **fit)
    # Without R2* terms the field strength plays no part.
    no_r2s = train_model(df, candidates[:1], **fit)
    assert [i.name for i in no_r2s.model.inputs] == ["age_years"]


@pytest.mark.parametrize(
    ("edit", "column", "message"),
    [
        (lambda d: d.drop(columns=["pdff_global_L1L4"]), "pdff_global_L1L4", "missing"),
        (
            lambda d: d.assign(age_years=d["age_years"].astype(object).where(d.index != 3, "old")),
            "age_years",
            "numeric",
        ),
        (lambda d: d.iloc[:0], "cohort", "empty"),
        (lambda d: d.assign(outcome_1y=0.0), "outcome_1y", "no events"),
        (lambda d: d.assign(sex="M"), "sex", "no value equals"),
    ],
)
def test_train_model_refuses_bad_tables(edit, column: str, message: str) -> None:
    df = generate_cohort(200, 2, 0.0, seed=4).data
    from RefractureRiskLib.model.dev.schema import derive_columns

    df = edit(derive_columns(df))
    with pytest.raises(InputError, match=message) as err:
        train_model(df, n_bootstrap=5, log=quiet)
    assert column in str(err.value)


def test_train_and_score_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    df = generate_cohort(400, 3, 0.0, seed=31).data
    cohort = tmp_path / "cohort.csv"
    df.to_csv(cohort, index=False)
    model = tmp_path / "model.json"
    report = tmp_path / "report"
    assert (
        main(
            [
                "train",
                str(cohort),
                "--out",
                str(model),
                "--report",
                str(report),
                "--bootstrap",
                "20",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "support at most" in out and "model written" in out
    assert (report / "report.html").is_file() and (report / "calibration.png").stat().st_size > 1000
    text = (report / "report.md").read_text()
    assert "optimism-corrected" in text and "TRIPOD+AI" in text and "Leave-one-centre-out" in text
    assert "NOT FOR CLINICAL USE" in text
    doc = json.loads(model.read_text())
    assert doc["validation"]["internal"]["n_bootstrap"] == 20
    # The model card beside the model file quotes the file's hash and its own numbers.
    card = model.with_suffix(".md").read_text()
    assert doc["content_sha256"] in card and "not validated" in card
    corrected_c = doc["validation"]["internal"]["corrected"]["c_statistic"]
    assert f"| {corrected_c:.3f} |" in card.split("| C-statistic |")[1].splitlines()[0]
    assert "R2* was measured at 1.5 T and 3 T" in card  # the training note is kept
    assert all(f"`{i['name']}`" in card for i in doc["inputs"])
    # ... and the model is tied to the exact cohort file it was trained on
    source = doc["training"]["data_source"]
    assert source["sha256"] == hashlib.sha256(cohort.read_bytes()).hexdigest()
    assert source["file"] == "cohort.csv" and source["rows"] == len(df)
    assert source["sha256"] in card
    # A partial patient is refused, naming what is missing (issue 12: no silent substitutes) ...
    patient = tmp_path / "p.json"
    patient.write_text(json.dumps({"age_years": 77, "sex": "F", "pdff_global_L1L4": 66.0}))
    assert main(["score", "--model", str(model), "--patient", str(patient)]) == 2
    assert "missing model input(s)" in capsys.readouterr().err
    # ... and a complete one (the cohort's first patient) gets its risk with a 95% interval.
    first = df.iloc[0]
    full = {i["name"]: first[i["name"]] for i in doc["inputs"]}
    full = {k: v.item() if hasattr(v, "item") else v for k, v in full.items()}
    patient.write_text(json.dumps(full))
    assert main(["score", "--model", str(model), "--patient", str(patient)]) == 0
    assert "95% interval: " in capsys.readouterr().out

    # An existing model file is not replaced unless asked.
    before = model.read_text()
    assert main(["train", str(cohort), "--out", str(model)]) == 2
    assert "--overwrite" in capsys.readouterr().err and model.read_text() == before
    # Bad cohorts: unknown column, out-of-range value, a single centre for LOCO.
    assert main(["train", str(cohort), "--out", str(tmp_path / "m.txt")]) == 2
    assert "--out" in capsys.readouterr().err and not (tmp_path / "m.txt").exists()
    model.unlink()
    bad = df.assign(favourite_colour="blue")
    bad.to_csv(cohort, index=False)
    assert main(["train", str(cohort), "--out", str(model)]) == 2
    assert "favourite_colour" in capsys.readouterr().err
    bad = df.copy()
    bad.loc[5, "pdff_global_L1L4"] = 640.0  # permille, not percent
    bad.to_csv(cohort, index=False)
    assert main(["train", str(cohort), "--out", str(model)]) == 2
    assert "pdff_global_L1L4" in capsys.readouterr().err
    df.iloc[:0].to_csv(cohort, index=False)
    assert main(["train", str(cohort), "--out", str(model)]) == 2
    assert "no patient rows" in capsys.readouterr().err
    df.assign(centre_id="C1").to_csv(cohort, index=False)
    assert main(["train", str(cohort), "--out", str(model), "--bootstrap", "5"]) == 2
    assert "at least 2 centres" in capsys.readouterr().err


def test_model_card_of_the_demonstration_model() -> None:
    from RefractureRiskLib.model.modelcard import model_card
    from RefractureRiskLib.model.modelfile import bundled_model_path

    model = load_model(bundled_model_path())
    card = model_card(model, "demo_model.json")
    assert card.splitlines()[2] == f"**{model.warning_text}**"
    assert "not estimated from data" in card and "None recorded in the model file" in card
    for term in model.terms:
        row = next(line for line in card.splitlines() if line.startswith(f"| {term.label} |"))
        assert f"{term.coefficients[0]:.4f}" in row and term.input in row


def test_card_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from RefractureRiskLib.model.modelcard import model_card
    from RefractureRiskLib.model.modelfile import bundled_model_path

    assert main(["card"]) == 0
    printed = capsys.readouterr().out
    expected = model_card(load_model(bundled_model_path()), "demo_model.json")
    assert printed.strip() == expected.strip()
    out = tmp_path / "demo.md"
    assert main(["card", str(bundled_model_path()), "--out", str(out)]) == 0
    assert out.read_text().strip() == printed.strip()
    assert main(["card", "--out", str(out)]) == 2  # exists
    assert main(["card", "--out", str(tmp_path / "m.json")]) == 2  # would look like a model
    tampered = tmp_path / "tampered.json"
    doc = json.loads(bundled_model_path().read_text())
    doc["intercept"] = 0.0
    tampered.write_text(json.dumps(doc))
    assert main(["card", str(tampered)]) == 2
    assert "tampered.json" in capsys.readouterr().err
