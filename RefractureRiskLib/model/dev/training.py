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

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from RefractureRiskLib import __version__
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.dev.cox import CoxFit, fit_cox
from RefractureRiskLib.model.dev.imputation import impute_one, pool_rubin
from RefractureRiskLib.model.dev.logistic import (
    Standardiser,
    assign_folds,
    cv_fit,
    expit,
    fit_batch,
    lambda_grid,
)
from RefractureRiskLib.model.dev.validation import (
    METRICS,
    BootstrapValidation,
    FitSpec,
    bootstrap_validate,
    calibration_curve,
    decision_curve,
    leave_one_centre_out,
    penalty_alpha,
)
from RefractureRiskLib.model.modelfile import RiskModel
from RefractureRiskLib.model.splines import default_knots
from RefractureRiskLib.model.terms import InputSpec, Term, Transform, design_matrix

OUTCOME = "outcome_1y"

# ------------------------------------------------------------------------------ estimator


class PenalisedLogisticRegression:
    """Logistic regression with an L2, L1 or elastic-net penalty chosen by cross-validation.

    ``penalty``: "l2" (ridge), "l1" (lasso), "elasticnet" (mixing ``l1_ratio``) or "none".
    The penalty acts on standardised columns (glmnet's objective, see :mod:`.logistic`); the
    candidate penalties are ``n_lambdas`` values on a log grid and the one with the lowest
    ``n_folds``-fold cross-validated deviance is used. After ``fit``: ``coef_`` (q,),
    ``intercept_``, ``lambda_``, ``covariance_`` ((q+1) x (q+1), intercept first; the inverse
    penalised information — for L1 restricted to the non-zero terms, conditional on selection),
    ``converged_``.
    """

    def __init__(
        self,
        penalty: str = "l2",
        l1_ratio: float = 0.5,
        n_folds: int = 5,
        n_lambdas: int = 20,
        random_state: int = 0,
    ) -> None:
        self.penalty = penalty
        self.l1_ratio = l1_ratio
        self.n_folds = n_folds
        self.n_lambdas = n_lambdas
        self.random_state = random_state

    @property
    def spec(self) -> FitSpec:
        return FitSpec(self.penalty, self.l1_ratio, self.n_folds, self.n_lambdas)

    def fit(
        self, X: np.ndarray, y: np.ndarray, column_names: Sequence[str] | None = None
    ) -> PenalisedLogisticRegression:
        X, y = check_xy(X, y, column_names)
        alpha = penalty_alpha(self.penalty, self.l1_ratio)
        st = Standardiser.of(X)
        Z = st.apply(X)
        n = y.size
        ones = np.ones((1, n))
        if alpha is None:
            beta, ok = fit_batch(Z, y, ones, 0.0, 0.0)
            lam = 0.0
        else:
            if min(y.sum(), n - y.sum()) < self.n_folds:
                raise InputError(
                    OUTCOME,
                    f"{self.n_folds}-fold cross-validation needs at least {self.n_folds}"
                    " events and non-events",
                )
            rng = np.random.default_rng(self.random_state)
            folds = assign_folds(rng, 1, y, self.n_folds)
            lambdas = lambda_grid(Z, y, alpha, self.n_lambdas)
            beta, lam_arr, cv_dev = cv_fit(Z, y, ones, folds, self.n_folds, lambdas, alpha)
            lam = float(lam_arr[0])
            self.lambdas_, self.cv_deviance_ = lambdas, cv_dev[0]
            ok = np.isfinite(beta).all(axis=1)
        if not ok[0]:
            warnings.warn(
                "logistic fit did not converge (complete separation? too few events?)",
                RuntimeWarning,
                stacklevel=2,
            )
        self.converged_ = bool(ok[0])
        T = st.to_original()
        b_std = beta[0]
        cov_std = _penalised_covariance(Z, y, b_std, lam, alpha or 0.0)
        b = T @ b_std
        self.intercept_ = float(b[0])
        self.coef_ = b[1:]
        self.covariance_ = T @ cov_std @ T.T
        self.lambda_ = lam
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.intercept_ + np.asarray(X, dtype=float) @ self.coef_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = expit(self.decision_function(X))
        return np.column_stack([1 - p, p])


def _penalised_covariance(
    Z: np.ndarray, y: np.ndarray, beta: np.ndarray, lam: float, alpha: float
) -> np.ndarray:
    """Inverse penalised information on the standardised scale (zero rows for dropped terms)."""
    n, q = Z.shape
    A = np.hstack([np.ones((n, 1)), Z])
    mu = expit(A @ beta)
    info = (A * (mu * (1 - mu))[:, None]).T @ A
    pen = np.full(q + 1, n * lam * (1 - alpha))
    pen[0] = 0.0
    info += np.diag(pen)
    keep = np.ones(q + 1, dtype=bool)
    if alpha > 0:
        keep[1:] = beta[1:] != 0
    cov = np.zeros((q + 1, q + 1))
    sub = np.linalg.pinv(info[np.ix_(keep, keep)])
    cov[np.ix_(keep, keep)] = sub
    return cov


def check_xy(
    X: Any, y: Any, column_names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a design matrix and 0/1 outcome; InputError naming the bad column."""
    X = np.asarray(X, dtype=float) if not isinstance(X, np.ndarray) else X.astype(float)
    y = np.asarray(y, dtype=float).reshape(-1)
    names = (
        list(column_names)
        if column_names is not None
        else [f"column {i}" for i in range(X.shape[1])]
    )
    if X.ndim != 2 or X.shape[0] != y.size:
        raise InputError("X", f"expected a (n, q) matrix with n = {y.size}, got shape {X.shape}")
    if y.size == 0:
        raise InputError("cohort", "no patients with a known 1-year outcome")
    for j, name in enumerate(names):
        if not np.all(np.isfinite(X[:, j])):
            raise InputError(name, "has missing or non-finite values (impute first)")
        if np.ptp(X[:, j]) == 0:
            raise InputError(name, "is constant in the training data: it cannot be estimated")
    if not np.all((y == 0) | (y == 1)):
        raise InputError(OUTCOME, "must be 0 or 1")
    if y.sum() == 0:
        raise InputError(OUTCOME, "has no events: a risk model cannot be trained")
    if y.sum() == y.size:
        raise InputError(OUTCOME, "every patient has the event: a risk model cannot be trained")
    return X, y


# ------------------------------------------------------------------------------ terms


@dataclass(frozen=True)
class CandidateTerm:
    """A term to be estimated: its input, transform and (for ``rcs``) the number of knots."""

    name: str
    input: str
    transform: str  # linear | indicator | threshold | rcs
    center: float = 0.0
    scale: float = 1.0
    levels: tuple[str, ...] = ()
    above: float = 0.0
    n_knots: int = 4
    label: str = ""

    def build(self, values: np.ndarray) -> Term:
        """The model term, with spline knots at Harrell's quantiles of the observed values."""
        knots: tuple[float, ...] = ()
        if self.transform == "rcs":
            z = (np.asarray(values, dtype=float) - self.center) / self.scale
            try:
                knots = default_knots(z, self.n_knots)
            except ValueError as err:
                raise InputError(self.input, f"spline for term {self.name}: {err}") from None
        tr = Transform(
            self.transform, self.center, self.scale, tuple(self.levels), self.above, knots
        )
        return Term(self.name, self.input, tr, label=self.label)


#: The candidate terms of the study (the demonstration model's terms, issue 5 item 6).
DEFAULT_CANDIDATES: tuple[CandidateTerm, ...] = (
    CandidateTerm("age_per_year", "age_years", "linear", 70.0, 1.0, label="(age - 70) per year"),
    CandidateTerm("female", "sex", "indicator", levels=("F",), label="female sex"),
    CandidateTerm(
        "tscore_per_sd",
        "dxa_l1l4_tscore",
        "linear",
        -2.5,
        1.0,
        label="(L1-L4 T-score + 2.5) per SD",
    ),
    CandidateTerm(
        "cement_leak_disc",
        "cement_leak_disc",
        "indicator",
        levels=("1",),
        label="cement leakage into the disc",
    ),
    CandidateTerm(
        "no_antiop_post",
        "antiop_post",
        "indicator",
        levels=("0",),
        label="no anti-osteoporosis treatment after surgery",
    ),
    CandidateTerm(
        "tl_junction",
        "tl_junction",
        "indicator",
        levels=("1",),
        label="thoracolumbar-junction index level",
    ),
    CandidateTerm(
        "glucocorticoid_use",
        "glucocorticoid_use",
        "indicator",
        levels=("1",),
        label="glucocorticoid use",
    ),
    CandidateTerm(
        "prior_vertebral_fracture",
        "n_prevalent_vertebral_fractures",
        "threshold",
        above=0.0,
        label="prior vertebral fracture (n prevalent > 0)",
    ),
    CandidateTerm(
        "pdff_per_10",
        "pdff_global_L1L4",
        "linear",
        60.0,
        10.0,
        label="(PDFF global L1-L4 - 60) per 10 points",
    ),
    CandidateTerm(
        "r2s_per_10",
        "r2s_global_L1L4",
        "linear",
        100.0,
        10.0,
        label="(R2* global L1-L4 - 100) per 10 1/s",
    ),
)


#: Added by :func:`train_model` when R2* terms meet R2* from both 1.5 and 3 T (see there).
FIELD_STRENGTH_TERM = CandidateTerm(
    "field_3t",
    "mri_field_T",
    "threshold",
    above=2.25,
    label="3 T scanner (R2* at 3 T is about twice its 1.5 T value)",
)


def _field_strength_handling(
    data: pd.DataFrame, candidates: Sequence[CandidateTerm], known: np.ndarray
) -> tuple[tuple[CandidateTerm, ...], str | None, str | None]:
    """R2* depends on the field strength: (candidates, extra input without a term, note).

    - R2* from 1.5 and 3 T: the 3 T indicator :data:`FIELD_STRENGTH_TERM` is added (unless a
      candidate already uses ``mri_field_T``) so that the R2* coefficient is not confounded by
      the scanner; the R2* slope itself is still pooled over field strengths.
    - R2* from one field strength: ``mri_field_T`` becomes a model input without a term, so that
      scoring an image from another field strength is flagged as an extrapolation.
    """
    r2s = [c.input for c in candidates if c.input.startswith("r2s")]
    if not r2s or any(c.input == "mri_field_T" for c in candidates):
        return tuple(candidates), None, None
    if "mri_field_T" not in data:
        raise InputError(
            "mri_field_T",
            f"column missing: the R2* term(s) on {sorted(set(r2s))} need the field strength "
            "(R2* at 3 T is about twice its 1.5 T value)",
        )
    _check_column(data, FIELD_STRENGTH_TERM)
    rows = known & data[r2s].notna().any(axis=1).to_numpy()
    fields = sorted(pd.to_numeric(data.loc[rows, "mri_field_T"], errors="coerce").dropna().unique())
    if len(fields) > 1:
        note = (
            f"R2* was measured at {' and '.join(f'{f:g} T' for f in fields)}: the term "
            f"{FIELD_STRENGTH_TERM.name} ({FIELD_STRENGTH_TERM.label}) was added so that the R2* "
            "coefficient is not confounded by the scanner; the R2* slope is pooled over field "
            "strengths"
        )
        return (*candidates, FIELD_STRENGTH_TERM), None, note
    if len(fields) == 1:
        note = (
            f"R2* was measured at {fields[0]:g} T only: the model's R2* term(s) apply to "
            f"{fields[0]:g} T images, and scoring an image from another field strength is "
            "flagged as an extrapolation"
        )
        return tuple(candidates), "mri_field_T", note
    return tuple(candidates), None, None


def with_splines(
    candidates: Sequence[CandidateTerm], names: Sequence[str], n_knots: int = 4
) -> tuple[CandidateTerm, ...]:
    """The candidates with the named linear terms (term or input names) made splines."""
    wanted = set(names)
    known = {c.name for c in candidates} | {c.input for c in candidates}
    unknown = wanted - known
    if unknown:
        raise InputError("splines", f"no candidate term or input named {sorted(unknown)}")
    out = []
    for c in candidates:
        if c.name in wanted or c.input in wanted:
            if c.transform != "linear":
                raise InputError("splines", f"term {c.name} is not continuous")
            c = replace(
                c,
                transform="rcs",
                n_knots=n_knots,
                name=f"{c.input}_rcs",
                label=f"{c.input} (restricted cubic spline, {n_knots} knots)",
            )
        out.append(c)
    return tuple(out)


def _input_spec(name: str, values: pd.Series) -> InputSpec:
    """An input's kind, unit and limits from the cohort schema and the training data."""
    from RefractureRiskLib.model.dev.schema import column_spec

    try:
        col = column_spec(name)
    except KeyError:
        col = None
    dtype = (
        col.dtype
        if col is not None
        else ("float" if pd.api.types.is_numeric_dtype(values) else "category")
    )
    present = values.dropna()
    if dtype == "category":
        levels = tuple(
            str(v)
            for v in (
                col.allowed
                if col is not None and col.allowed
                else sorted(present.astype(str).unique())
            )
        )
        mode = str(present.astype(str).mode().iloc[0]) if len(present) else None
        return InputSpec(
            name,
            "category",
            description=col.description if col else "",
            levels=levels,
            missing_value=mode,
        )
    numbers = pd.to_numeric(present, errors="coerce").to_numpy(dtype=float)
    if dtype == "boolean":
        mode = float(np.round(numbers.mean())) if numbers.size else None
        return InputSpec(
            name, "binary", description=col.description if col else "", missing_value=mode
        )
    hard = None
    if col is not None and col.min is not None and col.max is not None:
        hard = (float(col.min), float(col.max))
    soft = (float(numbers.min()), float(numbers.max())) if numbers.size else None
    median = float(np.median(numbers)) if numbers.size else None
    return InputSpec(
        name,
        "number",
        unit=col.unit if col else "",
        description=col.description if col else "",
        soft_range=soft,
        hard_range=hard,
        missing_value=median,
    )


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
    data = _checked_cohort(cohort, candidates)
    notes: list[str] = []
    if n_bootstrap < 200:
        notes.append(
            f"only {n_bootstrap} bootstrap replicates (at least 200 are recommended): the "
            "optimism estimates carry more Monte Carlo error"
        )
        log(f"warning: {notes[-1]}")
    known = data[OUTCOME].notna().to_numpy()
    candidates, field_input, field_note = _field_strength_handling(data, candidates, known)
    if field_note:
        notes.append(field_note)
        log(f"note: {field_note}")
    inputs_needed = list(dict.fromkeys(c.input for c in candidates))
    n_unknown = int((~known).sum())
    y_all = data[OUTCOME].to_numpy(dtype=float)
    y = y_all[known]
    n, events = int(y.size), int(y.sum())
    if n == 0:
        raise InputError(OUTCOME, "no patient has a known 1-year outcome")
    if events == 0:
        raise InputError(OUTCOME, f"no events among {n} patients: a risk model cannot be trained")
    if events == n:
        raise InputError(OUTCOME, "every patient has the event: a risk model cannot be trained")
    if loco:
        # Checked before the fits and the bootstrap, not after them.
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

    # Terms (spline knots from the observed values) and inputs.
    terms0 = [
        c.build(data.loc[known, c.input].dropna().to_numpy())
        if c.transform == "rcs"
        else c.build(np.empty(0))
        for c in candidates
    ]
    n_params = sum(t.transform.n_columns for t in terms0)
    size_msg, size_ok = _sample_size(n, events, n_params, log)
    inputs = tuple(_input_spec(i, data.loc[known, i]) for i in inputs_needed)
    # An input checked at scoring time but not imputed or fitted (see _field_strength_handling).
    checked_only = (_input_spec(field_input, data.loc[known, field_input]),) if field_input else ()

    # Multiple imputation (whole cohort; the 1-year outcome as an auxiliary column).
    n_missing = {i: int(data[i].isna().sum()) for i in inputs_needed if data[i].isna().any()}
    if n_missing:
        m = max(2, n_imputations)
        log(f"missing predictors {n_missing}: {m} imputations (chained equations)")
        completed = _map_parallel(impute_one, [(data, inputs, y_all, k, seed) for k in range(m)])
    else:
        completed = [data]
    m = len(completed)

    # Fit on each completed data set, pool by Rubin's rules.
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
    beta = pooled.estimate
    log(f"fitted {spec.penalty} logistic model on {n} patients, {events} events, {m} data set(s)")

    # Internal validation on each completed data set, averaged.
    vals = _map_parallel(
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

    # Leave-one-centre-out.
    loco_rows = None
    if loco:
        centre = data.loc[known, "centre_id"].astype(str).to_numpy()
        per = [leave_one_centre_out(X, y, centre, spec, seed=seed) for X in designs]
        loco_rows = []
        for j, row in enumerate(per[0]):
            avg = dict(row)
            for key, value in row.items():
                if isinstance(value, float):
                    avg[key] = float(np.mean([p[j][key] for p in per]))
            loco_rows.append(avg)

    # Calibration and decision curves of the pooled model (predictions averaged over imputations).
    p = np.mean([expit(beta[0] + X @ beta[1:]) for X in designs], axis=0)
    calibration = calibration_curve(p, y)
    decision = decision_curve(p, y)

    # Cause-specific Cox model.
    cox_out = None
    if cox:
        cox_out = _fit_cox(completed, terms0, inputs_needed, names, notes)

    final_terms = tuple(
        replace(
            t,
            coefficients=tuple(float(b) for b in beta[1 + off : 1 + off + t.transform.n_columns]),
            provenance=_provenance(spec, n, events, m),
        )
        for t, off in zip(
            terms0, np.cumsum([0] + [t.transform.n_columns for t in terms0[:-1]]), strict=True
        )
    )
    summary = _summary(data, known, n, events, n_unknown, n_missing, m)
    coef_table = _coef_table(names, beta, pooled.covariance, [f.lambda_ for f in fits])
    model = RiskModel(
        name=name,
        description=(
            f"Penalised ({spec.penalty}) logistic model for a new vertebral fracture within 1 year "
            f"after vertebroplasty/kyphoplasty, trained by RefractureRiskLib {__version__}."
        ),
        intercept=float(beta[0]),
        intercept_provenance=_provenance(spec, n, events, m),
        inputs=inputs + checked_only,
        terms=final_terms,
        validated=validated,
        outcome={
            "name": "new vertebral fracture within 1 year",
            "definition": "outcome_1y: new vertebral fracture within 365 days of the index surgery",
            "horizon_days": 365,
        },
        covariance=pooled.covariance,
        covariance_note=(
            "Rubin's rules over imputations of the inverse penalised information matrix "
            "(conditional on the chosen penalty"
            + (
                "; terms set to zero have no variance"
                if spec.penalty in ("l1", "elasticnet")
                else ""
            )
            + ")"
        ),
        training={
            **summary,
            "method": {
                "penalty": spec.penalty,
                "l1_ratio": spec.l1_ratio if spec.penalty == "elasticnet" else None,
                "penalty_choice": (
                    f"{spec.n_folds}-fold cross-validated deviance over {spec.n_lambdas} values"
                ),
                "lambda_per_imputation": [f.lambda_ for f in fits],
                "imputations": m,
                "seed": seed,
            },
            "notes": list(notes),
            "data_source": dict(data_source) if data_source else None,
        },
        validation={
            "internal": {"n_bootstrap": n_bootstrap, **validation},
            "leave_one_centre_out": loco_rows,
            "calibration_ici": calibration["ici"],
        },
        software={"name": "RefractureRiskLib", "version": __version__},
    )
    return TrainingResult(
        model=model,
        sample_size_message=size_msg,
        sample_size_ok=size_ok,
        validation=validation,
        validations=tuple(vals),
        loco=loco_rows,
        calibration=calibration,
        decision=decision,
        cox=cox_out,
        coefficients=coef_table,
        summary=summary,
        notes=tuple(notes),
    )


def _map_parallel(fn: Callable[..., Any], arguments: list[tuple]) -> list[Any]:
    """fn(*args) for each args, in worker processes (one per core) when there are several.

    The imputed data sets are independent; on a machine with more than one core their
    bootstrap validations run side by side. Falls back to a plain loop where processes cannot
    be forked (or for a single data set), with identical results: every call has its own seed.
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    workers = min(len(arguments), os.cpu_count() or 1)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(*a) for a in arguments]
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(fn, *a) for a in arguments]
            return [f.result() for f in futures]
    except (OSError, RuntimeError):  # pragma: no cover - no process support here
        return [fn(*a) for a in arguments]


def _provenance(spec: FitSpec, n: int, events: int, m: int) -> str:
    return (
        f"Estimated by {spec.penalty}-penalised logistic regression on the training cohort "
        f"(n = {n}, events = {events}{f', pooled over {m} imputations' if m > 1 else ''})."
    )


def _checked_cohort(cohort: Any, candidates: Sequence[CandidateTerm]) -> pd.DataFrame:
    if not isinstance(cohort, pd.DataFrame):
        raise InputError("cohort", "expected a pandas DataFrame (use read_cohort for files)")
    if len(cohort) == 0:
        raise InputError("cohort", "the cohort table is empty")
    data = cohort.copy()
    if OUTCOME not in data:
        if {"time_days", "event"} <= set(data.columns):
            from RefractureRiskLib.model.dev.schema import outcome_1y

            data[OUTCOME] = outcome_1y(
                data["time_days"].to_numpy(float), data["event"].to_numpy(float)
            )[0]
        else:
            raise InputError(OUTCOME, "column missing (and no time_days/event to derive it from)")
    needed = list(dict.fromkeys([c.input for c in candidates] + ["centre_id"]))
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise InputError(
            missing[0], f"column needed by the model is missing (all missing: {missing})"
        )
    for c in candidates:
        _check_column(data, c)
    y = data[OUTCOME].dropna()
    if not y.isin([0, 1]).all():
        raise InputError(OUTCOME, "must be 0, 1 or missing")
    return data


def _check_column(data: pd.DataFrame, c: CandidateTerm) -> None:
    """The candidate's column holds what its transform needs (InputError naming it)."""
    col = data[c.input]
    if c.transform == "indicator":
        present = set(
            col.dropna().map(
                lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
            )
        )
        if not present & set(c.levels):
            raise InputError(
                c.input,
                f"no value equals {list(c.levels)} (values seen: {sorted(present)[:5]})",
            )
    elif not pd.api.types.is_numeric_dtype(col):
        bad = col[pd.to_numeric(col, errors="coerce").isna() & col.notna()]
        raise InputError(c.input, f"must be numeric, found {bad.iloc[0]!r} (row {bad.index[0]})")


def _sample_size(
    n: int, events: int, n_params: int, log: Callable[[str], None]
) -> tuple[str, bool]:
    if events >= n or events == 0:
        return "sample-size check not possible", False
    from RefractureRiskLib.model.dev.samplesize import supported_parameters

    sp = supported_parameters(n, events)
    ok = n_params <= sp.max_parameters
    msg = f"sample size: {sp.message()}; candidate parameters: {n_params}"
    log(msg)
    if not ok:
        warn = (
            f"WARNING: {n_params} candidate parameters exceed the {sp.max_parameters} these data "
            "support: expect overfitting; penalisation helps but does not remove it — reduce "
            "the candidate terms (without looking at their association with the outcome)"
        )
        log(warn)
        msg += "\n" + warn
    return msg, ok


def _fit_cox(completed, terms, inputs_needed, names, notes) -> dict[str, Any] | None:
    first = completed[0]
    if "time_days" not in first or "event" not in first:
        notes.append("no time_days/event columns: Cox model not fitted")
        return None
    fits: list[CoxFit] = []
    for df in completed:
        X = design_matrix(terms, {i: df[i] for i in inputs_needed})
        fits.append(
            fit_cox(X, df["time_days"].to_numpy(float), df["event"].to_numpy(), tuple(names))
        )
    pooled = pool_rubin([f.coef for f in fits], [f.covariance for f in fits])
    se = np.sqrt(np.diag(pooled.covariance))
    rows = [
        {
            "term": c,
            "coef": float(b),
            "se": float(s),
            "hazard_ratio": float(np.exp(b)),
            "hr_lower": float(np.exp(b - 1.96 * s)),
            "hr_upper": float(np.exp(b + 1.96 * s)),
        }
        for c, b, s in zip(names, pooled.estimate, se, strict=True)
    ]
    return {
        "table": rows,
        "n": fits[0].n,
        "events": fits[0].events,
        "competing_deaths": fits[0].competing_events,
        "concordance": float(np.mean([f.concordance for f in fits])),
        "note": "cause-specific hazard of re-fracture; deaths censored as a competing event",
    }


def _summary(data, known, n, events, n_unknown, n_missing, m) -> dict[str, Any]:
    period = None
    if "surgery_date" in data:
        dates = pd.to_datetime(data["surgery_date"], errors="coerce").dropna()
        if len(dates):
            period = [dates.min().date().isoformat(), dates.max().date().isoformat()]
    centres = sorted(data["centre_id"].astype(str).unique())
    return {
        "n": n,
        "events": events,
        "event_rate": events / n,
        "n_in_table": len(data),
        "n_unknown_1y_outcome": n_unknown,
        "centres": len(centres),
        "centre_ids": centres,
        "period": period,
        "missing_values": n_missing,
        "imputations": m,
    }


def _coef_table(names, beta, cov, lambdas) -> list[dict[str, Any]]:
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    rows = []
    for i, name in enumerate(["intercept", *names]):
        rows.append(
            {
                "term": name,
                "coef": float(beta[i]),
                "se": float(se[i]),
                "odds_ratio": float(np.exp(beta[i])) if i else None,
                "lower": float(beta[i] - 1.96 * se[i]),
                "upper": float(beta[i] + 1.96 * se[i]),
            }
        )
    return rows
