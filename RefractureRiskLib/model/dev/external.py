"""External validation: an existing model file checked on a new cohort (e.g. a clinic's own).

Before a clinic uses a trained model it scores its OWN patients with it and compares the
predicted 1-year risks with what happened (:func:`validate_external`):

- Outcome: ``outcome_1y`` as derived by :func:`RefractureRiskLib.model.dev.schema.read_cohort`.
  Patients whose 1-year status is unknown (censored or dead before 365 days without a
  re-fracture) are scored but left out of the metrics and counted, never treated as non-events.
- Scoring: each patient through :func:`RefractureRiskLib.model.scoring.score` on the model's
  inputs taken from the row (NaN / empty = missing: the model's substitute is used, counted per
  input). Values outside the training (soft) range are scored and counted per input
  (extrapolation). A row with a value the model refuses (outside the hard limits, wrong type or
  level, a required input missing) is excluded and listed with patient_id, column and reason,
  never clipped and never silently dropped.
- Metrics (:func:`RefractureRiskLib.model.dev.validation.measures`, from the linear predictor lp):
  C-statistic, calibration intercept and slope (y ~ a + b lp; ideal 0 and 1), calibration in
  the large (intercept of y ~ offset(lp); > 0 = the model under-predicts), Brier score, Emax, and
  the observed/expected ratio (events / sum of predicted risks). Point estimates on the scored
  patients with a known outcome; 95% intervals by the percentile bootstrap (patients resampled
  with replacement, B replicates evaluated together as arrays; a replicate without events or
  without non-events (or with a non-finite measure) is left out and counted in
  ``n_bootstrap_failed``, not redrawn).
- Observed vs mean predicted risk overall and per ``centre_id`` when the column exists;
  calibration curve (lowess and tenths of risk) and decision curve (net benefit).

The numbers describe the model's performance in this cohort only; recommended sample size for an
external validation is at least 100 events and 100 non-events (Collins et al. 2016), and the
result says so when the cohort is smaller.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.dev.cohort_scoring import RefusedRow, ScoredCohort, score_cohort
from RefractureRiskLib.model.dev.curves import calibration_curve, decision_curve
from RefractureRiskLib.model.dev.logistic import expit
from RefractureRiskLib.model.dev.schema import OUTCOME
from RefractureRiskLib.model.dev.validation import (
    METRICS,
    measures,
)
from RefractureRiskLib.model.modelfile import RiskModel, plain_json

#: Fewer scored patients with a known outcome than this cannot give usable calibration numbers.
MIN_KNOWN_SCORED = 20
#: Events and non-events recommended for an external validation (Collins et al. 2016).
RECOMMENDED_EVENTS = 100
#: Every measure reported, in table order: :data:`METRICS` and the observed/expected ratio.
EXTERNAL_METRICS: tuple[str, ...] = (*METRICS, "oe_ratio")


@dataclass(frozen=True, eq=False)
class ExternalValidation:
    """The model's performance on one cohort (see the module docstring)."""

    model_name: str
    model_sha256: str
    model_validated: bool
    model_warning: str | None
    n_rows: int  # rows in the cohort table
    n_scored: int  # rows scored (refused rows excluded)
    n_unknown_outcome: int  # scored, 1-year outcome unknown: left out of the metrics
    n: int  # scored with a known outcome: the metrics' patients
    events: int
    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]]  # percentile bootstrap 95%
    n_bootstrap: int  # replicates used
    n_bootstrap_failed: int  # replicates without events or non-events, left out
    seed: int
    observed_risk: float
    mean_predicted_risk: float
    by_centre: tuple[dict[str, Any], ...]
    calibration: dict[str, Any]
    decision: dict[str, list[float]]
    refused: tuple[RefusedRow, ...]
    missing_counts: dict[str, int]  # per input: scored rows with the model's substitute
    extrapolation_counts: dict[str, int]  # per input: scored rows outside the soft range
    notes: tuple[str, ...]
    #: One row per scored patient: patient_id, [centre_id], probability, linear_predictor,
    #: outcome_1y (NaN = unknown), outcome_1y_status, n_warnings, missing_inputs,
    #: extrapolated_inputs (input names joined by ";").
    predictions: pd.DataFrame = field(repr=False)

    def table(self) -> list[dict[str, float | str]]:
        """One row per measure: estimate and 95% interval."""
        return [
            {
                "measure": m,
                "estimate": self.metrics[m],
                "lower_95": self.ci[m][0],
                "upper_95": self.ci[m][1],
            }
            for m in EXTERNAL_METRICS
        ]

    def to_json(self) -> dict[str, Any]:
        """The numbers as plain JSON types (NaN as None); predictions are left out."""
        doc = {
            "model": {
                "name": self.model_name,
                "content_sha256": self.model_sha256,
                "validated": self.model_validated,
                "warning": self.model_warning,
            },
            "n_rows": self.n_rows,
            "n_scored": self.n_scored,
            "n_refused": len(self.refused),
            "n_unknown_outcome": self.n_unknown_outcome,
            "n": self.n,
            "events": self.events,
            "metrics": {
                m: {"estimate": self.metrics[m], "lower_95": lo, "upper_95": hi}
                for m, (lo, hi) in ((m, self.ci[m]) for m in EXTERNAL_METRICS)
            },
            "bootstrap": {
                "method": "percentile bootstrap, patients resampled with replacement",
                "n_bootstrap": self.n_bootstrap,
                "n_failed": self.n_bootstrap_failed,
                "seed": self.seed,
            },
            "observed_risk": self.observed_risk,
            "mean_predicted_risk": self.mean_predicted_risk,
            "by_centre": list(self.by_centre),
            "refused_rows": [
                {"row": r.row, "patient_id": r.patient_id, "column": r.column, "reason": r.reason}
                for r in self.refused
            ],
            "missing_substituted": dict(self.missing_counts),
            "extrapolation": dict(self.extrapolation_counts),
            "calibration": self.calibration,
            "decision_curve": self.decision,
            "notes": list(self.notes),
        }
        return plain_json(doc)


def _check_missing(scored: ScoredCohort, missing: str) -> ScoredCohort:
    """A row without a model input is refused by default (its risk would rest on an input nobody
    gave); ``missing="substitute"`` scores it with the model's stand-in value, for the cohort's
    figures only (the row is marked in ``predictions``)."""
    if missing not in ("refuse", "substitute"):
        raise InputError("missing", f"must be 'refuse' or 'substitute', got {missing!r}")
    absent = {k: n for k, n in scored.missing_counts.items() if n}
    if absent and missing == "refuse":
        per_input = ", ".join(f"{k} in {n} row(s)" for k, n in absent.items())
        raise InputError(
            "cohort",
            f"model inputs missing ({per_input}): give them, or score those rows with the "
            "model's stand-in values for the cohort's figures only (--missing substitute)",
        )
    return scored


def validate_external(
    model: RiskModel,
    cohort: pd.DataFrame,
    n_bootstrap: int = 1000,
    seed: int = 0,
    log: Callable[[str], None] = print,
    missing: str = "refuse",
) -> ExternalValidation:
    """Score every patient of ``cohort`` with ``model`` and measure the model's performance.

    ``cohort``: as returned by :func:`RefractureRiskLib.model.dev.schema.read_cohort` (a table
    without ``outcome_1y`` but with ``time_days`` and ``event`` gets it derived). Raises
    InputError (naming the column) for an empty cohort, model inputs absent from the cohort (all
    named), no events or only events among the known outcomes, fewer than
    :data:`MIN_KNOWN_SCORED` scored patients with a known outcome, or rows without an input
    (unless ``missing`` says otherwise: :func:`_check_missing`)."""
    _check_arguments(model, cohort, n_bootstrap)
    scored = _check_missing(score_cohort(model, cohort), missing)
    refused, predictions = scored.refused, scored.predictions
    n_refused_rows, known = _log_refused(refused, log), predictions["outcome_1y"].notna().to_numpy()
    n_unknown = int((~known).sum())
    lp = predictions["linear_predictor"].to_numpy(dtype=float)[known]
    y = predictions["outcome_1y"].to_numpy(dtype=float)[known]
    n, events = int(y.size), int(y.sum())
    _check_known_outcomes(n, events, len(cohort), n_refused_rows, n_unknown)
    notes = _notes(n, events, n_unknown, scored.extrapolation_counts)
    for note in notes:
        log(f"note: {note}")

    point = _measures(lp[None, :], y[None, :])
    metrics = {k: float(v[0]) for k, v in point.items()}
    ci, used, failed = _bootstrap_ci(lp, y, n_bootstrap, seed)
    p = expit(lp)
    by_centre = _by_centre(predictions, known, y, p) if "centre_id" in cohort.columns else []
    return ExternalValidation(
        model_name=model.name,
        model_sha256=model.content_sha256 or model.to_document()["content_sha256"],
        model_validated=model.validated,
        model_warning=model.warning_text,
        n_rows=len(cohort),
        n_scored=len(predictions),
        n_unknown_outcome=n_unknown,
        n=n,
        events=events,
        metrics=metrics,
        ci=ci,
        n_bootstrap=used,
        n_bootstrap_failed=failed,
        seed=seed,
        observed_risk=float(y.mean()),
        mean_predicted_risk=float(p.mean()),
        by_centre=tuple(by_centre),
        calibration=calibration_curve(p, y),
        decision=decision_curve(p, y),
        refused=tuple(refused),
        missing_counts=scored.missing_counts,
        extrapolation_counts=scored.extrapolation_counts,
        notes=tuple(notes),
        predictions=predictions,
    )


def _log_refused(refused: list[RefusedRow], log: Callable[[str], None]) -> int:
    """How many rows the model refused; logged with the first refusal."""
    n_rows = len({r.row for r in refused})
    if refused:
        first = refused[0]
        log(
            f"warning: {n_rows} row(s) refused by the model and excluded "
            f"(first: patient {first.patient_id}, {first.column}: {first.reason})"
        )
    return n_rows


def _by_centre(
    predictions: pd.DataFrame, known: np.ndarray, y: np.ndarray, p: np.ndarray
) -> list[dict[str, Any]]:
    """Observed and mean predicted risk per centre (patients with a known outcome)."""
    centre = predictions["centre_id"].astype(str).to_numpy()[known]
    return [
        _observed_expected(str(name), y[centre == name], p[centre == name])
        for name in sorted(set(centre))
    ]


def _check_arguments(model: RiskModel, cohort: Any, n_bootstrap: int) -> None:
    """InputError for a cohort or settings nothing can be validated on (before any scoring)."""
    if not isinstance(cohort, pd.DataFrame):
        raise InputError("cohort", "expected a pandas DataFrame (use read_cohort for files)")
    if len(cohort) == 0:
        raise InputError("cohort", "the cohort table is empty")
    if n_bootstrap < 1:
        raise InputError("n_bootstrap", f"must be at least 1, got {n_bootstrap}")
    if model.horizon_days != 365:
        raise InputError(
            f"model {model.name}",
            f"predicts a {model.horizon_days}-day outcome; the cohort's outcome_1y is at 365 days",
        )
    absent = [spec.name for spec in model.inputs if spec.name not in cohort.columns]
    if absent:
        raise InputError(
            absent[0], f"column needed by the model is missing from the cohort (all: {absent})"
        )


def _check_known_outcomes(
    n: int, events: int, n_rows: int, n_refused_rows: int, n_unknown: int
) -> None:
    """InputError when the scored patients with a known outcome cannot validate anything."""
    why = (
        f"{n_rows} rows, {n_refused_rows} refused by the model, {n_unknown} with an "
        "unknown 1-year outcome (censored or dead before 365 days)"
    )
    if n < MIN_KNOWN_SCORED:
        raise InputError(
            OUTCOME,
            f"only {n} scored patients with a known 1-year outcome ({why}); at least "
            f"{MIN_KNOWN_SCORED} are needed to estimate discrimination and calibration",
        )
    if events == 0:
        raise InputError(OUTCOME, f"no events among {n} scored patients: nothing to validate")
    if events == n:
        raise InputError(OUTCOME, f"all {n} scored patients have the event: nothing to validate")


def _notes(n: int, events: int, n_unknown: int, extrap_counts: Mapping[str, int]) -> list[str]:
    notes: list[str] = []
    if n_unknown:
        notes.append(
            f"{n_unknown} scored patients censored or dead before 365 days without a re-fracture "
            "have an unknown 1-year outcome and are left out of the metrics (not non-events)"
        )
    if min(events, n - events) < RECOMMENDED_EVENTS:
        notes.append(
            f"{events} events and {n - events} non-events: an external validation should have "
            f"at least {RECOMMENDED_EVENTS} of each (Collins et al. 2016); the intervals are wide"
        )
    for name, count in extrap_counts.items():
        if count:
            notes.append(
                f"{count} patient(s) with {name} outside the model's training range (extrapolation)"
            )
    return notes


def _measures(lp: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`measures` per row of (R, n) arrays, plus the observed/expected ratio."""
    out = measures(lp, y)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["oe_ratio"] = y.sum(axis=1) / expit(lp).sum(axis=1)
    return out


def _bootstrap_ci(
    lp: np.ndarray, y: np.ndarray, n_bootstrap: int, seed: int
) -> tuple[dict[str, tuple[float, float]], int, int]:
    """Percentile 95% intervals of every measure: (intervals, replicates used, left out).

    All replicates at once: row r of the (B, n) index matrix is bootstrap sample r.
    """
    rng = np.random.default_rng(seed)
    n = y.size
    idx = rng.integers(0, n, size=(n_bootstrap, n))
    lp_b, y_b = lp[idx], y[idx]
    events = y_b.sum(axis=1)
    ok = (events > 0) & (events < n)
    values = _measures(lp_b[ok], y_b[ok])
    finite = np.all([np.isfinite(v) for v in values.values()], axis=0)
    ci = {}
    for k in EXTERNAL_METRICS:
        v = values[k][finite]
        ci[k] = (
            (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5)))
            if v.size
            else (math.nan, math.nan)
        )
    used = int(finite.sum())
    return ci, used, n_bootstrap - used


def _observed_expected(name: str, y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    expected = float(p.sum())
    return {
        "centre": name,
        "n": int(y.size),
        "events": int(y.sum()),
        "observed": float(y.mean()),
        "mean_predicted": float(p.mean()),
        "oe_ratio": float(y.sum() / expected) if expected > 0 else math.nan,
    }
