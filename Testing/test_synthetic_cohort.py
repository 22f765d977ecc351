"""Synthetic cohort generator: schema-valid, realistic correlations, known outcome model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from RefractureRiskLib.model.dev.schema import HORIZON_DAYS, MEASURED_LEVELS, read_cohort
from RefractureRiskLib.model.dev.synthetic_cohort import (
    DEFAULT_COEFFICIENTS,
    MISSABLE_COLUMNS,
    generate_cohort,
)


@pytest.fixture(scope="module")
def big():
    return generate_cohort(n=4000, n_centres=4, seed=11)


def test_default_cohort_passes_validation_and_is_deterministic() -> None:
    a = generate_cohort()
    df = read_cohort(a.data)
    assert len(df) == 560
    assert df["centre_id"].nunique() == 3
    assert set(a.true_coefficients) == {"intercept", *DEFAULT_COEFFICIENTS}
    assert a.data.attrs["true_coefficients"] == a.true_coefficients
    b = generate_cohort()
    assert a.data.equals(b.data)
    assert not a.data.equals(generate_cohort(seed=1).data)


def test_realistic_correlations(big) -> None:
    df = read_cohort(big.data)
    corr = df[["age_years", "dxa_l1l4_tscore", "pdff_global_L1L4"]].corr()
    assert corr.loc["pdff_global_L1L4", "age_years"] > 0.2
    assert corr.loc["pdff_global_L1L4", "dxa_l1l4_tscore"] < -0.2
    # R2* lower with osteoporosis, within a field strength
    at15 = df[df["mri_field_T"] == 1.5]
    assert at15[["r2s_global_L1L4", "dxa_l1l4_tscore"]].corr().iloc[0, 1] > 0.15
    ratio = (
        df.loc[df["mri_field_T"] == 3.0, "r2s_global_L1L4"].mean()
        / df.loc[df["mri_field_T"] == 1.5, "r2s_global_L1L4"].mean()
    )
    assert 1.8 < ratio < 2.2
    # one scanner per centre
    assert (df.groupby("centre_id")["mri_field_T"].nunique() == 1).all()
    assert 40 <= df["pdff_global_L1L4"].mean() <= 70


def test_global_mean_uses_only_eligible_lumbar_levels(big) -> None:
    df = big.data.head(300)
    for _, row in df.iterrows():
        vals = [row[f"pdff_pct_{lv}"] for lv in ("L1", "L2", "L3", "L4") if row[f"excl_{lv}"] == ""]
        assert len(vals) >= 2
        assert row["pdff_global_L1L4"] == pytest.approx(np.mean(vals), abs=0.02)
        for lv in row["index_levels"].split(";"):
            if lv in MEASURED_LEVELS:
                assert "index" in row[f"excl_{lv}"] and np.isnan(row[f"pdff_pct_{lv}"])


def test_event_rate_and_follow_up_consistent_with_latent_outcome(big) -> None:
    df = read_cohort(big.data)
    assert big.risk_1y.mean() == pytest.approx(0.12, abs=1e-6)  # intercept solved for the rate
    assert big.outcome_latent.mean() == pytest.approx(0.12, abs=0.02)
    known = df["outcome_1y"].notna().to_numpy()
    assert 0.85 < known.mean() < 0.99  # some censored/died before a year
    assert np.array_equal(df["outcome_1y"].to_numpy()[known], big.outcome_latent[known])
    early = df["time_days"].to_numpy() < HORIZON_DAYS
    ev = df["event"].to_numpy()
    assert set(np.unique(ev[early & ~known])) <= {0, 2}
    assert (ev == 2).any() and ((ev == 0) & early).any()


def test_unpenalised_fit_recovers_true_coefficients() -> None:
    coefs = dict(DEFAULT_COEFFICIENTS, pdff_global=0.6, female=0.8)
    cohort = generate_cohort(
        n=10000, true_coefficients=coefs, event_rate=0.2, seed=3, lost_to_follow_up_frac=0.0,
        death_1y_frac=0.0,
    )  # fmt: skip
    x = sm.add_constant(cohort.design_matrix())
    y = read_cohort(cohort.data)["outcome_1y"].to_numpy()
    assert not np.isnan(y).any()
    fit = sm.Logit(y, x).fit(disp=0)
    truth = pd.Series(cohort.true_coefficients).rename({"intercept": "const"})[x.columns]
    z = (fit.params - truth) / fit.bse
    assert (z.abs() < 3.3).all(), z  # every true coefficient inside its 99.9% interval
    assert fit.params["pdff_global"] > 0.4 and fit.params["female"] > 0.5


def test_given_intercept_is_used() -> None:
    c = generate_cohort(n=200, true_coefficients={"intercept": -1.0, "age": 0.05}, seed=2)
    assert c.true_coefficients["intercept"] == -1.0
    assert c.true_coefficients["female"] == 0.0
    lp = -1.0 + 0.05 * (c.data["age_years"].to_numpy() - 70)
    assert np.allclose(c.risk_1y, 1 / (1 + np.exp(-lp)))


def test_missing_values_at_random() -> None:
    c = generate_cohort(n=2000, missing_frac=0.2, seed=4)
    df = read_cohort(c.data)
    for name in MISSABLE_COLUMNS:
        assert 0.15 < df[name].isna().mean() < 0.35, name  # some columns are also missing by design
    for name in ("age_years", "sex", "time_days", "event", "mri_field_T"):
        assert df[name].notna().all()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate_cohort(n=0)
    with pytest.raises(ValueError):
        generate_cohort(missing_frac=1.5)
    with pytest.raises(ValueError):
        generate_cohort(event_rate=0.0)
    with pytest.raises(ValueError, match="unknown terms"):
        generate_cohort(true_coefficients={"shoe_size": 1.0})
