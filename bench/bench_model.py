"""Benchmark: risk-model training + bootstrap validation against rms::validate, and scoring speed.

Run: ``python bench/bench_model.py`` (about a minute). On one synthetic cohort of 560 patients
from 3 centres with the 10 candidate terms, it times

1. our training plus B = 200 bootstrap validation (ridge penalty chosen by 5-fold
   cross-validation, refitted in every replicate) — target: under 10 s;
2. the same for the unpenalised model, and ``rms::lrm`` + ``rms::validate(B = 200)`` on the same
   data in the same run (timed inside R, so R's start-up is not counted), printing the ratio;
3. the full ``train_model`` pipeline (with leave-one-centre-out, Cox, curves), complete data and
   with 5% missing values (5 imputations);
4. scoring one patient with the demonstration model — target: under 1 ms.

R is skipped with a message when Rscript or rms is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from RefractureRiskLib.model.dev.schema import read_cohort
from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort
from RefractureRiskLib.model.dev.training import (
    DEFAULT_CANDIDATES,
    PenalisedLogisticRegression,
    train_model,
)
from RefractureRiskLib.model.dev.validation import FitSpec, bootstrap_validate
from RefractureRiskLib.model.modelfile import bundled_model_path, load_model
from RefractureRiskLib.model.scoring import score
from RefractureRiskLib.model.terms import design_matrix

R_TIMING = r"""
suppressMessages(library(rms))
d <- read.csv(commandArgs(TRUE)[1])
xs <- grep("^x", names(d), value = TRUE)
form <- as.formula(paste("y ~", paste(xs, collapse = " + ")))
set.seed(1)
t <- system.time({
  f <- lrm(form, data = d, x = TRUE, y = TRUE)
  v <- validate(f, B = 200)
})[["elapsed"]]
cat("seconds", t, "\n")
cat("corrected_c", (v["Dxy", "index.corrected"] + 1) / 2, "\n")
"""


def timed(fn, repeat: int = 1):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_r(X: np.ndarray, y: np.ndarray) -> tuple[float, float] | None:
    if shutil.which("Rscript") is None:
        print("R: skipped (Rscript not found; install r-base-core r-cran-rms)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "d.csv"
        header = ",".join([f"x{j}" for j in range(X.shape[1])] + ["y"])
        np.savetxt(data, np.column_stack([X, y]), delimiter=",", header=header, comments="")
        script = Path(tmp) / "t.R"
        script.write_text(R_TIMING)
        done = subprocess.run(["Rscript", str(script), str(data)], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"R: skipped (rms not usable: {done.stderr.strip().splitlines()[-1:]})")
        return None
    values = dict(line.split()[:2] for line in done.stdout.splitlines() if line.strip())
    return float(values["seconds"]), float(values["corrected_c"])


def main() -> int:
    cohort = generate_cohort(560, 3, 0.0, seed=2024)
    df = read_cohort(cohort.data)
    known = df["outcome_1y"].notna().to_numpy()
    terms = [c.build(np.empty(0)) for c in DEFAULT_CANDIDATES]
    X = design_matrix(terms, {c.input: df.loc[known, c.input] for c in DEFAULT_CANDIDATES})
    y = df.loc[known, "outcome_1y"].to_numpy(float)
    print(
        f"cohort: {y.size} patients with a known 1-year outcome, {int(y.sum())} events, "
        f"{X.shape[1]} candidate terms"
    )

    def ridge_pipeline():
        PenalisedLogisticRegression("l2").fit(X, y)
        return bootstrap_validate(X, y, FitSpec("l2"), n_bootstrap=200, seed=1)

    t_ridge, v = timed(ridge_pipeline, 3)
    print(
        f"ours, ridge (CV penalty refitted per replicate), fit + B=200: {t_ridge:6.2f} s "
        f"(target < 10 s)  corrected C {v.corrected['c_statistic']:.4f}"
    )

    def plain_pipeline():
        PenalisedLogisticRegression("none").fit(X, y)
        return bootstrap_validate(X, y, FitSpec("none"), n_bootstrap=200, seed=1)

    t_plain, v0 = timed(plain_pipeline, 3)
    print(
        f"ours, unpenalised, fit + B=200:                            {t_plain:6.2f} s  "
        f"corrected C {v0.corrected['c_statistic']:.4f}"
    )
    r = run_r(X, y)
    if r is not None:
        t_r, c_r = r
        print(
            f"rms::lrm + rms::validate(B=200), timed inside R:           {t_r:6.2f} s  "
            f"corrected C {c_r:.4f}"
        )
        print(f"ratio rms / ours (unpenalised, like for like):  {t_r / t_plain:6.1f}x")
        print(f"ratio rms unpenalised / ours ridge with CV:     {t_r / t_ridge:6.1f}x")

    quiet = lambda _msg: None  # noqa: E731
    t_full, _ = timed(lambda: train_model(df, n_bootstrap=200, log=quiet))
    print(f"train_model (ridge, B=200, LOCO, Cox, curves), complete data: {t_full:6.2f} s")
    missing = read_cohort(generate_cohort(560, 3, 0.05, seed=2024).data)
    t_mi, _ = timed(lambda: train_model(missing, n_bootstrap=200, log=quiet))
    print(f"train_model, 5% missing values, 5 imputations x B=200:      {t_mi:6.2f} s")

    model = load_model(bundled_model_path())
    patient = {
        "age_years": 78,
        "sex": "F",
        "dxa_l1l4_tscore": -3.1,
        "cement_leak_disc": 1,
        "antiop_post": 0,
        "tl_junction": 1,
        "glucocorticoid_use": 0,
        "n_prevalent_vertebral_fractures": 2,
        "pdff_global_L1L4": 66.0,
        "r2s_global_L1L4": 120.0,
    }
    score(model, patient)
    n = 5000
    t0 = time.perf_counter()
    for _ in range(n):
        score(model, patient)
    per = (time.perf_counter() - t0) / n
    print(f"scoring one patient (demo model): {per * 1e6:8.1f} us (target < 1000 us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
