"""What a trained model records: the model file's content (pooled coefficients, every term's
provenance, the method), the training summary and the coefficient table of the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from RefractureRiskLib import __version__
from RefractureRiskLib.model.dev.validation import FitSpec
from RefractureRiskLib.model.modelfile import RiskModel
from RefractureRiskLib.model.terms import InputSpec, Term


def trained_model(
    n: int,
    events: int,
    inputs: tuple[InputSpec, ...],
    terms: Sequence[Term],
    spec: FitSpec,
    pooled: Any,
    m: int,
    *,
    name: str,
    validated: bool,
    training: dict[str, Any],
    validation: dict[str, Any],
) -> RiskModel:
    """The model file's content: pooled coefficients, every term's provenance, the training
    summary and the validation metrics."""
    beta = pooled.estimate
    provenance = term_provenance(spec, n, events, m)
    return RiskModel(
        name=name,
        description=(
            f"Penalised ({spec.penalty}) logistic model for a new vertebral fracture within 1 year "
            f"after vertebroplasty/kyphoplasty, trained by RefractureRiskLib {__version__}."
        ),
        intercept=float(beta[0]),
        intercept_provenance=provenance,
        inputs=inputs,
        terms=final_terms(terms, beta, provenance),
        validated=validated,
        outcome={
            "name": "new vertebral fracture within 1 year",
            "definition": "new vertebral fracture within 365 days of the index surgery",
            "horizon_days": 365,
        },
        covariance=pooled.covariance,
        covariance_note=covariance_note(spec),
        training=training,
        validation=validation,
        software={"name": "RefractureRiskLib", "version": __version__},
    )


def final_terms(terms0: Sequence[Term], beta: np.ndarray, provenance: str) -> tuple[Term, ...]:
    """The terms with their pooled coefficients (``beta[0]`` is the intercept) and provenance."""
    widths = [t.transform.n_columns for t in terms0]
    offsets = np.cumsum([0, *widths[:-1]])
    return tuple(
        replace(
            t,
            coefficients=tuple(float(b) for b in beta[1 + off : 1 + off + t.transform.n_columns]),
            provenance=provenance,
        )
        for t, off in zip(terms0, offsets, strict=True)
    )


def covariance_note(spec: FitSpec) -> str:
    return (
        "Rubin's rules over imputations of the inverse penalised information matrix "
        "(conditional on the chosen penalty"
        + ("; terms set to zero have no variance" if spec.penalty in ("l1", "elasticnet") else "")
        + ")"
    )


def method_record(spec: FitSpec, lambdas: list[float], m: int, seed: int) -> dict[str, Any]:
    return {
        "penalty": spec.penalty,
        "l1_ratio": spec.l1_ratio if spec.penalty == "elasticnet" else None,
        "penalty_choice": (
            f"{spec.n_folds}-fold cross-validated deviance over {spec.n_lambdas} values"
        ),
        "lambda_per_imputation": lambdas,
        "imputations": m,
        "seed": seed,
    }


def term_provenance(spec: FitSpec, n: int, events: int, m: int) -> str:
    return (
        f"Estimated by {spec.penalty}-penalised logistic regression on the training cohort "
        f"(n = {n}, events = {events}{f', pooled over {m} imputations' if m > 1 else ''})."
    )


def training_summary(data, known, n, events, n_unknown, n_missing, m) -> dict[str, Any]:
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


def coefficient_table(names, beta, cov, lambdas) -> list[dict[str, Any]]:
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
