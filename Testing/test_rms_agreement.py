"""Agreement with Harrell's rms (R) on the same synthetic data.

Unpenalised logistic coefficients, their standard errors and the apparent C-statistic within
1e-4 of ``rms::lrm``; the optimism-corrected C (bootstrap, B = 200) within 0.01 of
``rms::validate``; restricted cubic spline fits (knots at Harrell's quantiles) within 1e-4 of
``lrm(y ~ rcs(x, 4))``; the Cox model within 1e-4 of ``survival::coxph(ties = "breslow")``.
Skips, with the reason, when Rscript or the rms package is missing (Debian: r-base-core,
r-cran-rms).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from RefractureRiskLib.model.dev.cox import fit_cox
from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort
from RefractureRiskLib.model.dev.training import DEFAULT_CANDIDATES, PenalisedLogisticRegression
from RefractureRiskLib.model.dev.validation import FitSpec, bootstrap_validate
from RefractureRiskLib.model.splines import default_knots, rcs_basis
from RefractureRiskLib.model.terms import design_matrix

R_SCRIPT = r"""
suppressMessages(library(rms))
args <- commandArgs(TRUE)
d <- read.csv(args[1])
xs <- grep("^x", names(d), value = TRUE)
out <- function(key, values) cat(key, format(values, digits = 15), "\n")
f <- lrm(as.formula(paste("y ~", paste(xs, collapse = " + "))), data = d, x = TRUE, y = TRUE,
         tol = 1e-14)
out("coef", coef(f))
out("se", sqrt(diag(vcov(f))))
out("C", f$stats[["C"]])
set.seed(1)
v <- validate(f, B = 200)
out("validate_dxy", v["Dxy", c("index.orig", "index.corrected")])
out("validate_slope", v["Slope", "index.corrected"])
out("validate_n", v["Dxy", "n"])
g <- lrm(y ~ rcs(x9, 4) + x1 + x2, data = d, tol = 1e-14)
out("rcs_knots", g$Design$parms$x9)
out("rcs_coef", coef(g))
cx <- coxph(Surv(time, status) ~ x1 + x2 + x9, data = d, ties = "breslow")
out("cox_coef", coef(cx))
out("cox_se", sqrt(diag(vcov(cx))))
"""


def _r_available() -> str | None:
    if shutil.which("Rscript") is None:
        return "Rscript not found (install r-base-core and r-cran-rms)"
    done = subprocess.run(
        ["Rscript", "-e", "suppressMessages(library(rms))"], capture_output=True, timeout=120
    )
    if done.returncode != 0:
        return "R package rms not installed (install r-cran-rms)"
    return None


@pytest.fixture(scope="module")
def agreement(tmp_path_factory: pytest.TempPathFactory):
    reason = _r_available()
    if reason:
        pytest.skip(reason)
    cohort = generate_cohort(
        560, 3, 0.0, seed=5, event_rate=0.15, lost_to_follow_up_frac=0.0, death_1y_frac=0.0
    )
    df = cohort.data
    terms = [c.build(np.empty(0)) for c in DEFAULT_CANDIDATES]
    X = design_matrix(terms, {c.input: df[c.input] for c in DEFAULT_CANDIDATES})
    y = cohort.outcome_latent.astype(float)
    rng = np.random.default_rng(0)
    time = np.round(rng.exponential(900 * np.exp(-0.5 * X[:, 0] / 10), y.size)) + 1
    status = (rng.random(y.size) < 0.7).astype(int)
    folder = tmp_path_factory.mktemp("rms")
    path = folder / "data.csv"
    header = ",".join([f"x{j}" for j in range(X.shape[1])] + ["y", "time", "status"])
    np.savetxt(
        path,
        np.column_stack([X, y, time, status]),
        delimiter=",",
        header=header,
        comments="",
        fmt="%.17g",
    )
    script = folder / "agree.R"
    script.write_text(R_SCRIPT)
    done = subprocess.run(
        ["Rscript", str(script), str(path)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    r = {}
    for line in done.stdout.splitlines():
        key, *values = line.split()
        r[key] = np.array([float(v) for v in values])
    return X, y, time, status, r


def test_unpenalised_coefficients_and_apparent_c_match_lrm(agreement) -> None:
    X, y, _, _, r = agreement
    fit = PenalisedLogisticRegression("none").fit(X, y)
    ours = np.r_[fit.intercept_, fit.coef_]
    assert np.max(np.abs(ours - r["coef"])) < 1e-4
    assert np.max(np.abs(np.sqrt(np.diag(fit.covariance_)) - r["se"])) < 1e-4
    v = bootstrap_validate(X, y, FitSpec("none"), n_bootstrap=200, seed=3)
    assert abs(v.apparent["c_statistic"] - r["C"][0]) < 1e-4
    assert abs(v.apparent["c_statistic"] - (r["validate_dxy"][0] + 1) / 2) < 1e-4
    # Optimism-corrected C against rms::validate (different random bootstrap samples).
    rms_corrected_c = (r["validate_dxy"][1] + 1) / 2
    assert abs(v.corrected["c_statistic"] - rms_corrected_c) < 0.01
    assert abs(v.corrected["cal_slope"] - r["validate_slope"][0]) < 0.03


def test_restricted_cubic_spline_matches_rms_rcs(agreement) -> None:
    X, y, _, _, r = agreement
    knots = default_knots(X[:, 9], 4)
    assert np.max(np.abs(np.array(knots) - r["rcs_knots"])) < 1e-8
    design = np.column_stack([rcs_basis(X[:, 9], knots), X[:, 1], X[:, 2]])
    fit = PenalisedLogisticRegression("none").fit(design, y)
    assert np.max(np.abs(np.r_[fit.intercept_, fit.coef_] - r["rcs_coef"])) < 1e-4


def test_cox_matches_survival_coxph(agreement) -> None:
    X, _, time, status, r = agreement
    fit = fit_cox(X[:, [1, 2, 9]], time, status)
    assert np.max(np.abs(fit.coef - r["cox_coef"])) < 1e-4
    assert np.max(np.abs(fit.se - r["cox_se"])) < 1e-4
