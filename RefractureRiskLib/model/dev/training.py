"""Training a risk model from a cohort: terms, penalised logistic fit, imputation, validation.

Outcome: ``outcome_1y`` (1 = new vertebral fracture within 365 days; derived by the cohort
schema from time_days/event). Patients whose 1-year status is unknown (censored or dead before
365 days without a re-fracture) are left out of the logistic model, never counted as
non-events; the Cox model (time to re-fracture, deaths censored as competing events) uses them.

The pipeline (:func:`train_model`):

1. check the table at the boundary (every needed column present and numeric or of the allowed
   levels; patients; events), and print the Riley sample-size check
   (:func:`RefractureRiskLib.model.dev.samplesize.supported_parameters`), warning when the candidate
   parameters exceed what the data support;
2. multiple imputation of missing predictors (:mod:`.imputation`), m completed data sets;
3. on each: the penalised logistic regression (L2, L1, elastic net or none; penalty by
   cross-validation), pooled over imputations by Rubin's rules; restricted cubic splines
   (Harrell's knots) for the continuous terms asked for;
4. bootstrap optimism correction, leave-one-centre-out validation, calibration and decision
   curves (:mod:`.validation`), averaged over the imputed data sets;
5. the cause-specific Cox model (:mod:`.cox`), pooled the same way;
6. a :class:`RiskModel` with every term's provenance, training summary and validation metrics.

The estimator :class:`PenalisedLogisticRegression` has the scikit-learn shape (fit /
predict_proba) for use on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.dev.candidates import (
    DEFAULT_CANDIDATES,
    FIELD_STRENGTH_TERM,
    CandidateTerm,
    checked_cohort,
    field_strength_handling,
    input_spec,
    sample_size_check,
    with_splines,
)
from RefractureRiskLib.model.dev.cox import pooled_cox
from RefractureRiskLib.model.dev.curves import calibration_curve, decision_curve
from RefractureRiskLib.model.dev.estimator import OUTCOME, PenalisedLogisticRegression, check_xy
from RefractureRiskLib.model.dev.imputation import impute_one, pool_rubin
from RefractureRiskLib.model.dev.logistic import expit
from RefractureRiskLib.model.dev.parallel import map_parallel
from RefractureRiskLib.model.dev.training_record import (
    coefficient_table,
    method_record,
    trained_model,
    training_summary,
)
from RefractureRiskLib.model.dev.validation import (
    METRICS,
    BootstrapValidation,
    FitSpec,
    bootstrap_validate,
    leave_one_centre_out,
    penalty_alpha,
)
from RefractureRiskLib.model.modelfile import RiskModel
from RefractureRiskLib.model.terms import InputSpec, Term, design_matrix

__all__ = [
    "DEFAULT_CANDIDATES",
    "FIELD_STRENGTH_TERM",
    "OUTCOME",
    "CandidateTerm",
    "FitSpec",
    "PenalisedLogisticRegression",
    "TrainingResult",
    "check_xy",
    "train_model",
    "with_splines",
]

# ------------------------------------------------------------------------------ pipeline


@dataclass(frozen=True)
class TrainingResult:
    """Everything the training produced; ``model`` is what gets saved."""

    model: RiskModel
    sample_size_message: str
    sample_size_ok: bool
    validation: dict[str, Any]  # averaged over imputations: apparent/optimism/corrected
    validations: tuple[BootstrapValidation, ...]
    loco: list[dict[str, Any]] | None
    calibration: dict[str, Any]
    decision: dict[str, list[float]]
    cox: dict[str, Any] | None
    coefficients: list[dict[str, Any]]
    summary: dict[str, Any]
    notes: tuple[str, ...] = field(default=())


def train_model(
    cohort: pd.DataFrame,
    candidates: Sequence[CandidateTerm] = DEFAULT_CANDIDATES,
    spec: FitSpec | None = None,
    n_imputations: int = 5,
    n_bootstrap: int = 200,
    seed: int = 0,
    loco: bool = True,
    cox: bool = True,
    name: str = "locally trained model",
    validated: bool = False,
    log: Callable[[str], None] = print,
    data_source: Mapping[str, Any] | None = None,
) -> TrainingResult:
    """Train and internally validate a model on a cohort table (see the module docstring).

    ``cohort``: as returned by :func:`RefractureRiskLib.model.dev.schema.read_cohort` (with the
    derived ``outcome_1y``); a table without ``outcome_1y`` but with ``time_days`` and ``event``
    gets it derived. ``validated``: set only for a model that has passed external validation
    and been approved for use; otherwise every output carries the not-for-clinical-use warning.
    ``data_source``: where the cohort came from (e.g. file name and SHA-256, no patient data),
    kept in the model file's training section so the model can be traced to its data.
    Raises InputError naming the column for anything unusable.
    """
    spec = spec or FitSpec()
    penalty_alpha(spec.penalty, spec.l1_ratio)
    prep = _prepared(cohort, candidates, n_bootstrap, loco, log)
    completed = _imputed(
        prep.data, prep.inputs, prep.y_all, prep.n_missing, n_imputations, seed, log
    )
    fitted = _fit_and_validate(prep, completed, spec, n_bootstrap, seed, loco, log)
    m, beta, pooled = len(completed), fitted.pooled.estimate, fitted.pooled
    names = [c for t in prep.terms for c in t.column_names]
    notes = prep.notes
    cox_out = pooled_cox(completed, prep.terms, prep.needed, names, notes) if cox else None
    summary = training_summary(
        prep.data, prep.known, prep.n, prep.events, prep.n_unknown, prep.n_missing, m
    )
    lambdas = [f.lambda_ for f in fitted.fits]
    training = _training_record(summary, method_record(spec, lambdas, m, seed), notes, data_source)
    model = trained_model(
        prep.n, prep.events, prep.inputs + prep.checked_only, prep.terms, spec, pooled, m,
        name=name, validated=validated, training=training,
        validation=fitted.record(n_bootstrap),
    )  # fmt: skip
    return TrainingResult(
        model=model,
        sample_size_message=prep.size_message,
        sample_size_ok=prep.size_ok,
        validation=fitted.validation,
        validations=fitted.validations,
        loco=fitted.loco,
        calibration=fitted.calibration,
        decision=fitted.decision,
        cox=cox_out,
        coefficients=coefficient_table(names, beta, pooled.covariance, lambdas),
        summary=summary,
        notes=tuple(notes),
    )


def _training_record(
    summary: dict[str, Any],
    method: dict[str, Any],
    notes: list[str],
    data_source: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The model file's training section: the cohort summary, method, notes and data source."""
    return {
        **summary,
        "method": method,
        "notes": list(notes),
        "data_source": dict(data_source) if data_source else None,
    }


@dataclass(frozen=True)
class _Fitted:
    """The pooled fit and its validation: per-imputation fits, designs, pooled estimate, the
    bootstrap validations and their average, leave-one-centre-out rows, and the calibration and
    decision curves of the pooled model."""

    fits: list[Any]
    designs: list[np.ndarray]
    pooled: Any
    validations: tuple[BootstrapValidation, ...]
    validation: dict[str, Any]
    loco: list[dict[str, Any]] | None
    calibration: dict[str, Any]
    decision: dict[str, list[float]]

    def record(self, n_bootstrap: int) -> dict[str, Any]:
        """The model file's validation section."""
        return {
            "internal": {"n_bootstrap": n_bootstrap, **self.validation},
            "leave_one_centre_out": self.loco,
            "calibration_ici": self.calibration["ici"],
        }


def _fit_and_validate(
    prep: _Prepared,
    completed: list[pd.DataFrame],
    spec: FitSpec,
    n_bootstrap: int,
    seed: int,
    loco: bool,
    log: Callable[[str], None],
) -> _Fitted:
    """Fit on every completed data set, pool, validate (bootstrap, leave-one-centre-out) and
    draw the pooled model's calibration and decision curves."""
    known, y = prep.known, prep.y
    fits, designs, pooled = _fit_pooled(completed, prep.terms, prep.needed, known, y, spec, seed)
    beta = pooled.estimate
    log(
        f"fitted {spec.penalty} logistic model on {prep.n} patients, {prep.events} events, "
        f"{len(completed)} data set(s)"
    )
    vals, validation = _validated(designs, y, spec, n_bootstrap, seed, log)
    loco_rows = _loco_averaged(prep.data, known, designs, y, spec, seed) if loco else None
    # Calibration and decision curves of the pooled model (predictions averaged over imputations).
    p = np.mean([expit(beta[0] + X @ beta[1:]) for X in designs], axis=0)
    return _Fitted(
        fits, designs, pooled, tuple(vals), validation, loco_rows,
        calibration_curve(p, y), decision_curve(p, y),
    )  # fmt: skip


@dataclass(frozen=True)
class _Prepared:
    """The checked cohort and what the fits need: outcome, terms, inputs, notes so far."""

    data: pd.DataFrame
    known: np.ndarray  # rows with a known 1-year outcome
    y_all: np.ndarray
    y: np.ndarray  # the known outcomes
    n: int
    events: int
    n_unknown: int
    notes: list[str]  # appended to by later steps
    terms: list[Term]  # knots set, coefficients not yet
    needed: list[str]  # inputs the terms read
    inputs: tuple[InputSpec, ...]  # their specifications
    checked_only: tuple[InputSpec, ...]  # checked at scoring time, not fitted
    n_missing: dict[str, int]
    size_message: str
    size_ok: bool


def _prepared(
    cohort: pd.DataFrame,
    candidates: Sequence[CandidateTerm],
    n_bootstrap: int,
    loco: bool,
    log: Callable[[str], None],
) -> _Prepared:
    """The cohort checked at the boundary, the terms built and the sample size judged."""
    data = checked_cohort(cohort, candidates)
    notes: list[str] = []
    if n_bootstrap < 200:
        notes.append(
            f"only {n_bootstrap} bootstrap replicates (at least 200 are recommended): the "
            "optimism estimates carry more Monte Carlo error"
        )
        log(f"warning: {notes[-1]}")
    known = data[OUTCOME].notna().to_numpy()
    candidates, field_input, field_note = field_strength_handling(data, candidates, known)
    if field_note:
        notes.append(field_note)
        log(f"note: {field_note}")
    needed = list(dict.fromkeys(c.input for c in candidates))
    y_all = data[OUTCOME].to_numpy(dtype=float)
    y = y_all[known]
    n, events, n_unknown = _check_outcomes(data, known, y, loco, notes)
    # Terms (spline knots from the observed values) and inputs.
    terms = [
        c.build(data.loc[known, c.input].dropna().to_numpy())
        if c.transform == "rcs"
        else c.build(np.empty(0))
        for c in candidates
    ]
    n_params = sum(t.transform.n_columns for t in terms)
    size_message, size_ok = sample_size_check(n, events, n_params, log)
    inputs = tuple(input_spec(i, data.loc[known, i]) for i in needed)
    # An input checked at scoring time but not imputed or fitted (see field_strength_handling).
    checked_only = (input_spec(field_input, data.loc[known, field_input]),) if field_input else ()
    n_missing = {i: int(data[i].isna().sum()) for i in needed if data[i].isna().any()}
    return _Prepared(
        data, known, y_all, y, n, events, n_unknown, notes, terms, needed, inputs, checked_only,
        n_missing, size_message, size_ok,
    )  # fmt: skip


def _check_outcomes(
    data: pd.DataFrame, known: np.ndarray, y: np.ndarray, loco: bool, notes: list[str]
) -> tuple[int, int, int]:
    """(patients with a known outcome, events, unknown outcomes); InputError when no model can
    be trained or leave-one-centre-out cannot run, checked before any fit or bootstrap."""
    n_unknown = int((~known).sum())
    n, events = int(y.size), int(y.sum())
    if n == 0:
        raise InputError(OUTCOME, "no patient has a known 1-year outcome")
    if events == 0:
        raise InputError(OUTCOME, f"no events among {n} patients: a risk model cannot be trained")
    if events == n:
        raise InputError(OUTCOME, "every patient has the event: a risk model cannot be trained")
    if loco:
        n_centres = data.loc[known, "centre_id"].astype(str).nunique()
        if n_centres < 2:
            raise InputError(
                "centre_id",
                f"leave-one-centre-out validation needs at least 2 centres, found {n_centres} "
                "(train with --no-loco / loco=False for a single-centre cohort)",
            )
    if n_unknown:
        notes.append(
            f"{n_unknown} patients censored or dead before 365 days without a re-fracture have "
            "an unknown 1-year outcome and are left out of the logistic model (the Cox model "
            "uses them)"
        )
    return n, events, n_unknown


def _imputed(
    data: pd.DataFrame,
    inputs: tuple[Any, ...],
    y_all: np.ndarray,
    n_missing: dict[str, int],
    n_imputations: int,
    seed: int,
    log: Callable[[str], None],
) -> list[pd.DataFrame]:
    """The completed data sets: multiple imputation (whole cohort; the 1-year outcome as an
    auxiliary column) when a predictor is missing, else the data as they are."""
    if not n_missing:
        return [data]
    m = max(2, n_imputations)
    log(f"missing predictors {n_missing}: {m} imputations (chained equations)")
    return map_parallel(impute_one, [(data, inputs, y_all, k, seed) for k in range(m)])


def _fit_pooled(completed, terms0, inputs_needed, known, y, spec: FitSpec, seed: int):
    """The penalised fit on each completed data set, pooled by Rubin's rules:
    (fits, design matrices, pooled estimate and covariance)."""
    names = [c for t in terms0 for c in t.column_names]
    fits, designs = [], []
    for k, df in enumerate(completed):
        X = design_matrix(terms0, {i: df.loc[known, i] for i in inputs_needed})
        est = PenalisedLogisticRegression(
            spec.penalty, spec.l1_ratio, spec.n_folds, spec.n_lambdas, random_state=seed + k
        ).fit(X, y, column_names=names)
        fits.append(est)
        designs.append(X)
    pooled = pool_rubin([np.r_[f.intercept_, f.coef_] for f in fits], [f.covariance_ for f in fits])
    return fits, designs, pooled


def _validated(designs, y, spec: FitSpec, n_bootstrap: int, seed: int, log):
    """Bootstrap internal validation on each completed data set, and its metrics averaged."""
    vals = map_parallel(
        bootstrap_validate,
        [(X, y, spec, n_bootstrap, seed + 1000 + k) for k, X in enumerate(designs)],
    )
    validation = {
        part: {mt: float(np.mean([getattr(v, part)[mt] for v in vals])) for mt in METRICS}
        for part in ("apparent", "optimism", "corrected")
    }
    log(
        f"bootstrap (B={n_bootstrap}): C apparent {validation['apparent']['c_statistic']:.3f}, "
        f"corrected {validation['corrected']['c_statistic']:.3f}; calibration slope corrected "
        f"{validation['corrected']['cal_slope']:.3f}"
    )
    return vals, validation


def _loco_averaged(data, known, designs, y, spec: FitSpec, seed: int) -> list[dict[str, Any]]:
    """Leave-one-centre-out rows, each number averaged over the completed data sets."""
    centre = data.loc[known, "centre_id"].astype(str).to_numpy()
    per = [leave_one_centre_out(X, y, centre, spec, seed=seed) for X in designs]
    rows = []
    for j, row in enumerate(per[0]):
        avg = dict(row)
        for key, value in row.items():
            if isinstance(value, float):
                avg[key] = float(np.mean([p[j][key] for p in per]))
        rows.append(avg)
    return rows
