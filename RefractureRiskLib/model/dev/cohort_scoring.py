"""Every row of a cohort through a model file: predictions, refused rows, substitutions.

Used by the external validation (:mod:`.external`). A row with a value the model refuses is
excluded and listed with patient_id, column and reason (never clipped, never silently dropped);
a missing input is replaced by the model's substitute and counted; a value outside the training
range is scored and counted as an extrapolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.dev.schema import OUTCOME
from RefractureRiskLib.model.modelfile import RiskModel
from RefractureRiskLib.model.scoring import check_value, score


@dataclass(frozen=True)
class RefusedRow:
    """A cohort row the model refused to score (excluded from everything)."""

    row: int  # 0-based position in the cohort table
    patient_id: str
    column: str
    reason: str


@dataclass(frozen=True)
class ScoredCohort:
    """Every row of a cohort through the model: the predictions, the refused rows, and per
    input the scored rows with a substituted (missing) or extrapolated value."""

    predictions: pd.DataFrame
    refused: list[RefusedRow]
    missing_counts: dict[str, int]
    extrapolation_counts: dict[str, int]


def score_cohort(model: RiskModel, cohort: pd.DataFrame) -> ScoredCohort:
    """Score every row of ``cohort``; the 1-year outcome per row is taken as train_model takes
    it (InputError when it is neither given nor derivable, or not 0/1)."""
    outcome = _outcome(cohort)
    ids = (
        cohort["patient_id"].astype(str).to_numpy()
        if "patient_id" in cohort
        else np.array([f"row {i}" for i in range(len(cohort))])
    )
    has_centre = "centre_id" in cohort.columns
    columns = {spec.name: cohort[spec.name].tolist() for spec in model.inputs}
    refused: list[RefusedRow] = []
    missing_counts = {spec.name: 0 for spec in model.inputs}
    extrap_counts = {spec.name: 0 for spec in model.inputs}
    records: list[dict[str, Any]] = []
    for i in range(len(cohort)):
        patient = {spec.name: _cell(columns[spec.name][i]) for spec in model.inputs}
        result, missing, extrapolated, problems = _score_row(model, patient, i, str(ids[i]))
        if problems:
            refused.extend(problems)
            continue
        for name in missing:
            missing_counts[name] += 1
        for name in extrapolated:
            extrap_counts[name] += 1
        record: dict[str, Any] = {"patient_id": ids[i]}
        if has_centre:
            record["centre_id"] = _cell(cohort["centre_id"].iat[i])
        record.update(
            probability=result.probability,
            linear_predictor=result.linear_predictor,
            outcome_1y=outcome[i],
            outcome_1y_status=_status(cohort, i, outcome[i]),
            n_warnings=sum(1 for w in result.warnings if w != model.warning_text),
            missing_inputs=";".join(missing),
            extrapolated_inputs=";".join(extrapolated),
        )
        records.append(record)
    predictions = pd.DataFrame.from_records(
        records, columns=["patient_id", *(["centre_id"] if has_centre else []), *_PREDICTED]
    )
    return ScoredCohort(predictions, refused, missing_counts, extrap_counts)


#: Columns of the predictions table after patient_id and (when the cohort has it) centre_id.
_PREDICTED = (
    "probability",
    "linear_predictor",
    "outcome_1y",
    "outcome_1y_status",
    "n_warnings",
    "missing_inputs",
    "extrapolated_inputs",
)


def _score_row(model: RiskModel, patient: dict[str, Any], i: int, patient_id: str):
    """One row: (risk result or None, missing inputs, extrapolated inputs, refusals)."""
    source = f"cohort row {i} (patient {patient_id})"
    missing: list[str] = []
    extrapolated: list[str] = []
    problems: list[RefusedRow] = []
    for spec in model.inputs:
        raw = patient[spec.name]
        if raw is None:
            if spec.missing_value is None:
                problems.append(
                    RefusedRow(i, patient_id, spec.name, "required by this model and missing")
                )
            missing.append(spec.name)
            continue
        try:
            value = check_value(spec, raw, source)
        except InputError as err:
            problems.append(RefusedRow(i, patient_id, spec.name, err.reason))
            continue
        if spec.outside_soft_range(value):
            extrapolated.append(spec.name)
    result = None
    if not problems:
        try:
            result = score(model, patient, source=source, missing="model_value")
        except InputError as err:  # anything the checks above did not foresee
            column = (err.source or "").removeprefix(f"{source}: ")
            problems.append(RefusedRow(i, patient_id, column, err.reason))
    return result, missing, extrapolated, problems


def _outcome(cohort: pd.DataFrame) -> np.ndarray:
    """The 1-year outcome per row (1, 0 or NaN = unknown), as train_model takes it."""
    if OUTCOME in cohort:
        y = pd.to_numeric(cohort[OUTCOME], errors="coerce").to_numpy(dtype=float)
        bad = cohort[OUTCOME].notna().to_numpy() & ~np.isin(y, (0.0, 1.0))
    elif {"time_days", "event"} <= set(cohort.columns):
        from RefractureRiskLib.model.dev.schema import outcome_1y

        y = outcome_1y(cohort["time_days"].to_numpy(float), cohort["event"].to_numpy(float))[0]
        bad = np.zeros(y.shape, dtype=bool)
    else:
        raise InputError(OUTCOME, "column missing (and no time_days/event to derive it from)")
    if bad.any():
        raise InputError(OUTCOME, f"must be 0, 1 or missing (row {int(np.argmax(bad))})")
    return y


def _status(cohort: pd.DataFrame, i: int, outcome: float) -> str:
    if "outcome_1y_status" in cohort:
        value = _cell(cohort["outcome_1y_status"].iat[i])
        if value is not None:
            return str(value)
    return "unknown" if math.isnan(outcome) else ("event" if outcome == 1 else "no_event")


def _cell(value: Any) -> Any:
    """A table cell as score takes it: None for every kind of missing, numpy scalars kept."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # list-like cells are not missing
        pass
    return value
