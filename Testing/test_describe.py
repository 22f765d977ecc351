"""Cohort description: Table 1, correlations with CIs, partial correlations, odds ratios, files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from RefractureRiskLib.cli import main
from RefractureRiskLib.model.dev.describe import (
    DESCRIPTIVE_NOTE,
    describe_cohort,
    marker_correlations,
    marker_odds_ratios,
    partial_correlation,
    table_one,
)
from RefractureRiskLib.model.dev.schema import read_cohort
from RefractureRiskLib.model.dev.synthetic_cohort import DEFAULT_COEFFICIENTS, generate_cohort


@pytest.fixture(scope="module")
def strong() -> pd.DataFrame:
    """560 patients whose 1-year risk rises strongly with PDFF (log OR 1.0 per 10 points)."""
    coefs = dict(DEFAULT_COEFFICIENTS, pdff_global=1.0)
    return read_cohort(generate_cohort(true_coefficients=coefs, missing_frac=0.05, seed=7).data)


def test_describe_writes_files_and_strong_effect_excludes_one(strong, tmp_path: Path) -> None:
    res = describe_cohort(strong, tmp_path / "out")
    names = {p.name for p in res.files}
    assert {"table1.csv", "table1.html", "correlations.csv", "odds_ratios.csv"} <= names
    assert {"scatter_pdff_global_L1L4.png", "scatter_r2s_global_L1L4.png"} <= names
    for p in res.files:
        assert p.is_file() and p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "out" / "describe.html").read_text()
    assert "not used to select model terms" in page and "<table" in page
    assert DESCRIPTIVE_NOTE in (tmp_path / "out" / "README.txt").read_text()
    ors = pd.read_csv(tmp_path / "out" / "odds_ratios.csv").set_index("marker")
    row = ors.loc["pdff_global_L1L4"]
    assert row["ci_low_adjusted"] > 1.0 and row["or_adjusted"] > 1.5
    assert row["adjusted_for"] == "age_years, female"
    assert "mri_field_T" in ors.loc["r2s_global_L1L4", "adjusted_for"]


def test_odds_ratio_matches_an_independent_fit(strong) -> None:
    ors = marker_odds_ratios(strong).set_index("marker")
    d = strong[["outcome_1y", "pdff_global_L1L4", "age_years", "sex"]].dropna()
    x = pd.DataFrame(
        {
            "pdff10": d["pdff_global_L1L4"] / 10,
            "age": d["age_years"],
            "female": (d["sex"] == "F").astype(float),
        }
    )
    fit = sm.GLM(d["outcome_1y"], sm.add_constant(x), family=sm.families.Binomial()).fit()
    lo, hi = np.exp(fit.conf_int().loc["pdff10"])
    row = ors.loc["pdff_global_L1L4"]
    assert row["or_adjusted"] == pytest.approx(math.exp(fit.params["pdff10"]), rel=1e-5)
    assert (row["ci_low_adjusted"], row["ci_high_adjusted"]) == pytest.approx((lo, hi), rel=1e-5)
    assert row["n"] == len(d) and row["events"] == int(d["outcome_1y"].sum())


def test_table_one_counts_tests_and_missing(strong) -> None:
    t1 = table_one(strong)
    y = strong["outcome_1y"]
    first = t1.iloc[0]
    assert first["overall"] == str(len(strong))
    assert first["refracture_1y"] == str(int((y == 1).sum()))
    assert first["no_refracture_1y"] == str(int((y == 0).sum()))
    died = int((strong["outcome_1y_status"] == "died_before_horizon").sum())
    assert f"1-year outcome unknown: {int(y.isna().sum())}" in first["test"]
    assert f"{died} died" in first["test"] and died > 0
    age = t1[t1["variable"].str.startswith("Age")].iloc[0]
    ref = stats.ttest_ind(
        strong.loc[y == 0, "age_years"], strong.loc[y == 1, "age_years"], equal_var=False
    ).pvalue
    assert age["test"] == "Welch t-test"
    assert age["p_value"] == ("<0.001" if ref < 0.001 else f"{ref:.3f}")
    assert age["overall"] == f"{strong['age_years'].mean():.1f} ({strong['age_years'].std():.1f})"
    bmi = t1[t1["variable"].str.startswith("BMI")].iloc[0]
    assert bmi["missing"] == str(int(strong["bmi_kg_m2"].isna().sum())) != "0"
    counts = t1[t1["variable"].str.startswith("Prevalent")].iloc[0]
    assert counts["test"] == "Mann-Whitney U" and "[" in counts["overall"]
    female = t1[t1["variable"].str.startswith("Female")].iloc[0]
    k = int((strong["sex"] == "F").sum())
    assert female["overall"].startswith(f"{k} (")
    centre = t1[t1["level"].isin(["C1", "C2", "C3"])]
    assert len(centre) == 3


def test_fisher_test_for_small_two_by_two() -> None:
    df = read_cohort(generate_cohort(n=60, seed=9, lost_to_follow_up_frac=0, death_1y_frac=0).data)
    df["glucocorticoid_use"] = 0.0
    df.loc[df.index[:2], "glucocorticoid_use"] = 1.0
    row = table_one(df).set_index("variable").loc["Glucocorticoid use, n (%)"]
    assert row["test"] == "Fisher exact"


def test_correlations_and_fisher_z_intervals(strong) -> None:
    corr = marker_correlations(strong).set_index(["marker", "variable"])
    row = corr.loc[("pdff_global_L1L4", "dxa_l1l4_tscore")]
    pair = strong[["pdff_global_L1L4", "dxa_l1l4_tscore"]].dropna()
    r = stats.pearsonr(pair.iloc[:, 0], pair.iloc[:, 1]).statistic
    n = len(pair)
    assert row["n"] == n and row["pearson_r"] == pytest.approx(r)
    half = 1.959963984540054 / math.sqrt(n - 3)
    assert row["pearson_ci_low"] == pytest.approx(math.tanh(math.atanh(r) - half))
    assert row["pearson_ci_high"] == pytest.approx(math.tanh(math.atanh(r) + half))
    assert row["pearson_r"] < -0.3 and row["pearson_ci_high"] < 0  # PDFF falls with T-score
    rho = stats.spearmanr(pair.iloc[:, 0], pair.iloc[:, 1]).statistic
    assert row["spearman_rho"] == pytest.approx(rho)
    assert row["spearman_ci_low"] < rho < row["spearman_ci_high"]
    assert corr.loc[("pdff_global_L1L4", "age_years"), "pearson_r"] > 0.2
    assert set(corr.index.get_level_values("variable")) == {
        "dxa_l1l4_tscore",
        "body_volume_ml_L1L4",
        "age_years",
        "female",
    }


def test_partial_correlation_equals_regression_t_statistic(strong) -> None:
    # independent identity: partial r = t / sqrt(t^2 + df) for x's coefficient in y ~ x + Z
    d = strong[["pdff_global_L1L4", "dxa_l1l4_tscore", "age_years", "sex"]].dropna().copy()
    d["female"] = (d["sex"] == "F").astype(float)
    part = partial_correlation(d, "pdff_global_L1L4", "dxa_l1l4_tscore", ["age_years", "female"])
    ols = sm.OLS(
        d["pdff_global_L1L4"], sm.add_constant(d[["dxa_l1l4_tscore", "age_years", "female"]])
    ).fit()
    t = ols.tvalues["dxa_l1l4_tscore"]
    assert part["partial_r"] == pytest.approx(t / math.sqrt(t**2 + ols.df_resid), rel=1e-9)
    assert part["partial_p"] == pytest.approx(ols.pvalues["dxa_l1l4_tscore"], rel=1e-6)
    assert part["partial_n"] == len(d)


def test_no_events_gives_a_note_not_a_crash(tmp_path: Path) -> None:
    df = read_cohort(generate_cohort(n=80, seed=1).data)
    df["outcome_1y"] = 0.0
    ors = marker_odds_ratios(df)
    assert ors["or_adjusted"].isna().all()
    assert ors["note"].str.contains("not estimable").all()
    describe_cohort(df, tmp_path)  # still writes its tables


def test_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "cohort.csv"
    generate_cohort(n=120, seed=3).data.to_csv(csv, index=False)
    assert main(["describe", str(csv), "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "not used to select model terms" in out
    assert (tmp_path / "d" / "table1.csv").is_file()
    bad = pd.read_csv(csv)
    bad.loc[3, "age_years"] = 300
    bad["extra"] = 1
    bad.to_csv(csv, index=False)
    assert main(["describe", str(csv), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "row 4, column age_years, value '300" in err and "extra" in err


def test_perfect_separation_is_named_with_its_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 events in men: the adjusted odds ratios are not estimable, and the note names the
    separation and its counts instead of statsmodels' convergence warnings."""
    data = generate_cohort(n=300, seed=3).data
    men = data["sex"] == "M"
    data.loc[men, ["refracture", "event"]] = 0
    csv = tmp_path / "cohort.csv"
    data.to_csv(csv, index=False)
    df = read_cohort(pd.read_csv(csv))
    assert df.loc[df["sex"] == "M", "outcome_1y"].fillna(0).sum() == 0
    n_men = int(((df["sex"] == "M") & df["outcome_1y"].notna()).sum())
    ors = marker_odds_ratios(df)
    assert ors["or_crude"].notna().all()  # the marker alone is estimable
    counts = ors["note"].str.extract(r"in men \(n = (\d+)\)")[0].astype(int)
    assert ((counts > 0) & (counts <= n_men)).all()  # complete cases of each model
    assert ors["or_adjusted"].isna().all()
    assert ors["note"].str.contains(r"perfect separation by sex: 0 events in men \(n = \d+\)").all()
    assert main(["describe", str(csv), "--out", str(tmp_path / "d")]) == 0
    captured = capsys.readouterr()
    assert "ConvergenceWarning" not in captured.err + captured.out
    assert "perfect separation by sex: 0 events in men" in captured.out
    assert "Warning" not in captured.err
