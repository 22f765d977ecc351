"""Scoring one patient with a :class:`RiskModel`: probability, 95% interval, contributions.

Needs numpy and the standard library only (3D Slicer's Python has no pandas or scikit-learn).

- Probability: expit(intercept + sum of term contributions).
- 95% interval: delta method on the logit scale, lp ± 1.96 sqrt(g' V g) with g = (1, design
  columns) and V the coefficient covariance stored in the model file, then back-transformed. A model
  without a covariance matrix (the demonstration model: its coefficients were not estimated from
  data) gets no interval — ``interval`` is None and ``interval_note`` says why — rather than a
  made-up precision.
- Contributions: per term, log-odds relative to the term's reference (0 for centred linear terms
  at the centre, indicators at 0), with the input's description and unit so a display can say
  what was scored in clinical words.
- Missing inputs (``missing=``):

  - ``"refuse"`` (the default): InputError naming every missing input. No risk is ever computed
    from a value the user did not give.
  - ``"range"``: the risk is the range over the missing inputs' plausible values — the model's
    intended input range (``soft_range``, the training cohort's range; else ``hard_range``) for
    numbers (whole numbers for counts), 0 and 1 for binary inputs, every level of a category.
    The model is additive on the logit scale, so the lowest and highest risk come from each
    missing input's lowest and highest contribution. ``probability`` is then NaN (there is no
    point estimate), ``probability_range`` holds the range and ``missing_inputs`` names them;
    every display says "range over missing inputs".
  - ``"model_value"``: the model file's ``missing_value`` is used, with a warning. Only for
    external validation of a cohort, which counts and reports every substitution.

- Warnings: the demonstration-model text whenever ``validated`` is false, values outside the soft
  range (extrapolation), unused inputs, and the range (or substitute) used for missing inputs.
- Values outside the hard limits, or of the wrong type, raise InputError naming the input.
- The model's own values are checked once per model object
  (:func:`RefractureRiskLib.model.modelcheck.check_model_values`): a model built in code gets the
  checks a model file gets, so an implausible model is refused as a model error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.modelcard import intended_use, limitations
from RefractureRiskLib.model.modelcheck import check_model_values
from RefractureRiskLib.model.modelfile import RiskModel
from RefractureRiskLib.model.result import (
    RANGE_INTERVAL_NOTE,
    RANGE_LABEL,
    Contribution,
    RiskResult,
    baseline_text,
    clean_description,
    direction_text,
    factor_text,
    format_log_odds,
    format_value,
)
from RefractureRiskLib.model.terms import InputSpec, Term

#: The scoring side's public names; the result types and their words live in :mod:`.result`.
__all__ = [
    "MISSING_MODES",
    "NO_INTERVAL_NOTE",
    "RANGE_INTERVAL_NOTE",
    "RANGE_LABEL",
    "Contribution",
    "RiskResult",
    "baseline_text",
    "check_inputs",
    "check_value",
    "direction_text",
    "factor_text",
    "format_log_odds",
    "format_value",
    "is_missing",
    "missing_inputs",
    "model_baseline",
    "plausible_values",
    "refuse_missing",
    "score",
]

Z_95 = 1.959963984540054
NO_INTERVAL_NOTE = (
    "95% interval not estimable for this model: its coefficients were not estimated from one "
    "data set, so it has no coefficient covariance matrix"
)
#: How :func:`score` treats a missing input (see the module docstring).
MISSING_MODES = ("refuse", "range", "model_value")


def model_baseline(model: RiskModel) -> tuple[float | None, str]:
    """(events / patients of the training cohort, how it was obtained), or (None, why not)."""
    training = model.training or {}
    n, events = training.get("n"), training.get("events")
    if isinstance(n, int | float) and isinstance(events, int | float) and n > 0:
        return float(events) / float(n), f"observed in the training cohort: {events:g} of {n:g}"
    return None, "not available: the model was not trained on a cohort"


_CHECKED: dict[int, RiskModel] = {}


def _check_model_once(model: RiskModel) -> None:
    if _CHECKED.get(id(model)) is model:
        return
    # A model built in code (not loaded from a file) gets the same value checks as a file.
    check_model_values(model, source=f"model {model.name!r}")
    if len(_CHECKED) > 64:
        _CHECKED.clear()
    _CHECKED[id(model)] = model


def plausible_values(spec: InputSpec) -> list[float | str]:
    """The values a missing input may take for the range view (see the module docstring)."""
    if spec.kind == "category":
        return list(spec.levels or ())
    if spec.kind == "binary":
        return [0.0, 1.0]
    bounds = spec.soft_range or spec.hard_range
    if bounds is None:
        raise InputError(
            spec.name, "is missing and the model file gives no range for it: no range view"
        )
    lo, hi = bounds
    if spec.unit == "count":
        return [float(v) for v in range(math.ceil(lo), math.floor(hi) + 1)]
    return [float(v) for v in np.linspace(lo, hi, 201)]


def check_value(spec: InputSpec, raw: Any, source: str = "patient") -> float | str:
    """One patient value checked against its input's kind, hard limits and unit (InputError)."""
    value = spec.coerce(raw, source=source)
    if spec.unit == "count" and not float(value).is_integer():
        # Only a patient's value: a model's substitute for a missing count may be a median.
        raise InputError(f"{source}: {spec.name}", f"expected a whole number, got {raw!r}")
    return value


def is_missing(raw: Any) -> bool:
    """None, NaN or an empty string: a value the user did not give."""
    return (
        raw is None
        or (isinstance(raw, float) and math.isnan(raw))
        or (isinstance(raw, str) and not raw.strip())
    )


def missing_inputs(model: RiskModel, patient: Mapping[str, Any]) -> list[str]:
    """The model's inputs the patient lacks, in the model's order."""
    return [spec.name for spec in model.inputs if is_missing(patient.get(spec.name))]


def refuse_missing(names: list[str], source: str) -> None:
    """InputError naming the missing inputs and the two ways out."""
    if names:
        raise InputError(
            source,
            f"missing model input(s): {', '.join(names)}; no risk computed. Give them, or ask "
            "for the risk as a range over their plausible values (--missing range; in Python "
            "missing='range')",
        )


def check_inputs(model: RiskModel, patient: Mapping[str, Any], source: str = "patient") -> None:
    """Refuse a patient's given values that :func:`score` would refuse, before any other work.

    Missing values are not judged here (some come from the images or the index levels later);
    :func:`score` refuses them.
    """
    if not isinstance(patient, Mapping):
        raise InputError(source, "a patient must be a JSON object of input name -> value")
    for spec in model.inputs:
        raw = patient.get(spec.name)
        if not is_missing(raw):
            check_value(spec, raw, source)


def score(
    model: RiskModel,
    patient: Mapping[str, Any],
    source: str = "patient",
    missing: str = "refuse",
) -> RiskResult:
    """Risk of one patient (a mapping input name -> value; None, NaN, "" or absent = missing).

    ``missing``: "refuse" (default: InputError naming the missing inputs), "range" (the risk as
    the range over their plausible values) or "model_value" (external validation only).
    """
    if not isinstance(patient, Mapping):
        raise InputError(source, "a patient must be a JSON object of input name -> value")
    if missing not in MISSING_MODES:
        raise InputError("missing", f"{missing!r}; expected one of {', '.join(MISSING_MODES)}")
    _check_model_once(model)
    absent = missing_inputs(model, patient)
    warnings: list[str] = []
    if not model.validated:
        warnings.append(str(model.warning_text))
    values = _checked_values(model, patient, absent, missing, source, warnings)
    if missing == "refuse":  # after the given values: a wrong value is named first
        refuse_missing(absent, source)
    unused = sorted(set(patient) - {spec.name for spec in model.inputs})
    if unused:
        warnings.append(f"input(s) not used by this model: {', '.join(unused)}")
    ranged = [name for name in absent if name not in values]
    if ranged:
        warnings.append(
            "risk shown as a range over the plausible values of the missing input(s) "
            + "; ".join(_plausible_text(model.input(n)) for n in ranged)
            + ": not a point estimate"
        )

    lp_low, lp_high = _range_bounds(model, ranged)
    design, contributions, lp = _contributions(model, values, ranged)
    common_result = _result_fields(model, contributions, warnings)
    if ranged:
        return RiskResult(
            probability=math.nan,
            interval=None,
            interval_note=RANGE_INTERVAL_NOTE,
            linear_predictor=math.nan,
            probability_range=(_expit(lp + lp_low), _expit(lp + lp_high)),
            missing_inputs=tuple(ranged),
            **common_result,
        )
    interval, note = _interval(model, design, lp)
    return RiskResult(
        probability=_expit(lp),
        interval=interval,
        interval_note=note,
        linear_predictor=lp,
        **common_result,
    )


def _result_fields(
    model: RiskModel, contributions: list[Contribution], warnings: list[str]
) -> dict[str, Any]:
    """The fields every :class:`RiskResult` of ``model`` carries, point or range."""
    baseline, baseline_note = model_baseline(model)
    return {
        "model_name": model.name,
        "validated": model.validated,
        "outcome": str(model.outcome.get("name", "outcome")),
        "horizon_days": model.horizon_days,
        "contributions": tuple(contributions),
        "warnings": tuple(warnings),
        "model_warning": model.warning_text,
        "baseline_risk": baseline,
        "baseline_note": baseline_note,
        "intended_use": intended_use(model),
        "caveats": tuple(limitations(model)),
    }


def _range_bounds(model: RiskModel, ranged: Sequence[str]) -> tuple[float, float]:
    """The missing inputs' lowest and highest total log-odds over their plausible values (the
    model is additive on the logit scale, so each input's extremes add up)."""
    lp_low = lp_high = 0.0
    for name in ranged:
        totals = [_input_log_odds(model, name, v) for v in plausible_values(model.input(name))]
        lp_low += min(totals)
        lp_high += max(totals)
    return lp_low, lp_high


def _interval(
    model: RiskModel, design: list[float], lp: float
) -> tuple[tuple[float, float] | None, str]:
    """95% interval of the risk by the delta method on the logit scale, and how it was made (or
    why there is none: a model without a covariance matrix)."""
    if model.covariance is None:
        return None, model.covariance_note or NO_INTERVAL_NOTE
    g = np.asarray(design)
    se = math.sqrt(max(float(g @ model.covariance @ g), 0.0))
    interval = (_expit(lp - Z_95 * se), _expit(lp + Z_95 * se))
    return interval, "delta method on the logit scale from the coefficient covariance matrix"


def _checked_values(
    model: RiskModel,
    patient: Mapping[str, Any],
    absent: Sequence[str],
    missing: str,
    source: str,
    warnings: list[str],
) -> dict[str, float | str]:
    """Every given input checked (InputError naming it) and, with ``missing="model_value"``, each
    missing one replaced by the model's value; warnings for substitutions and extrapolation."""
    values: dict[str, float | str] = {}
    for spec in model.inputs:
        if spec.name in absent:
            if missing == "model_value":
                if spec.missing_value is None:
                    raise InputError(
                        f"{source}: {spec.name}", "is required by this model and missing"
                    )
                values[spec.name] = spec.coerce(spec.missing_value, source="model missing_value")
                unit = f" {spec.unit}" if spec.unit else ""
                warnings.append(
                    f"{spec.name} missing: {format_value(values[spec.name])}{unit}"
                    " used in its place; the result is less certain than shown"
                )
            continue
        value = check_value(spec, patient[spec.name], source)
        values[spec.name] = value
        if spec.outside_soft_range(value):
            lo, hi = spec.soft_range  # type: ignore[misc]
            warnings.append(
                f"{spec.name} = {value:g}{' ' + spec.unit if spec.unit else ''} is outside the "
                f"model's intended input range [{lo:g}, {hi:g}]: extrapolation"
                + (f" (check the unit: {spec.unit})" if spec.unit else "")
            )
    return values


def _contributions(
    model: RiskModel, values: Mapping[str, float | str], ranged: Sequence[str]
) -> tuple[list[float], list[Contribution], float]:
    """(design row with the intercept's 1 first, each term's contribution, linear predictor
    without the ranged inputs)."""
    design = [1.0]
    contributions = []
    lp = model.intercept
    for term in model.terms:
        spec = model.input(term.input)
        common = {
            "term": term.name,
            "label": term.label,
            "input": term.input,
            "input_description": spec.description,
            "unit": spec.unit,
            "input_kind": spec.kind,
            "no_effect": all(b == 0.0 for b in term.coefficients),
        }
        if term.input in ranged:
            span = [_term_log_odds(term, v) for v in plausible_values(spec)]
            contributions.append(
                Contribution(
                    value=None,
                    log_odds=math.nan,
                    log_odds_range=(min(span), max(span)),
                    **common,
                )
            )
            continue
        cols = term.transform.column_one(values[term.input])
        design.extend(cols)
        log_odds = math.fsum(b * c for b, c in zip(term.coefficients, cols, strict=True))
        lp += log_odds
        contributions.append(Contribution(value=values[term.input], log_odds=log_odds, **common))
    return design, contributions, lp


def _input_log_odds(model: RiskModel, name: str, value: float | str) -> float:
    """Total log-odds of every term reading input ``name`` at ``value``."""
    return math.fsum(_term_log_odds(term, value) for term in model.terms if term.input == name)


def _term_log_odds(term: Term, value: float | str) -> float:
    cols = term.transform.column_one(value)
    return math.fsum(b * c for b, c in zip(term.coefficients, cols, strict=True))


def _plausible_text(spec: InputSpec) -> str:
    """A missing input in clinical words with the values the range runs over."""
    what = clean_description(spec.description) or spec.name.replace("_", " ")
    if spec.kind == "category":
        return f"{what} (any of {', '.join(spec.levels or ())})"
    if spec.kind == "binary":
        return f"{what} (yes or no)"
    lo, hi = spec.soft_range or spec.hard_range or (math.nan, math.nan)
    unit = f" {spec.unit}" if spec.unit and spec.unit != "count" else ""
    return f"{what} ({lo:g} to {hi:g}{unit})"


def _expit(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
