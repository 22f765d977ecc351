"""Scoring one patient with a :class:`RiskModel`: probability, 95% interval, contributions.

Needs numpy and the standard library only (3D Slicer's Python has no pandas or scikit-learn).

- Probability: expit(intercept + sum of term contributions).
- 95% interval: delta method on the logit scale, lp ± 1.96 sqrt(g' V g) with g = (1, design
  columns) and V the coefficient covariance stored in the model file, then back-transformed. A model
  without a covariance matrix (the demonstration model: its coefficients were not estimated from
  data) gets no interval — ``interval`` is None and ``interval_note`` says why — rather than a
  made-up precision.
- Contributions: per term, log-odds relative to the term's reference (0 for centred linear terms
  at the centre, indicators at 0) and nomogram points: as in ``rms::nomogram``, the term whose
  contribution spans the widest range over the model's soft input ranges gets 0-100 points and
  every other term is scaled by the same factor, each term's lowest contribution being 0 points.
- Warnings: the demonstration-model text whenever ``validated`` is false, missing inputs (with
  the substitute used), values outside the soft range (extrapolation) and unused inputs.
- Values outside the hard limits, or of the wrong type, raise InputError naming the input.
- The model's own values are checked once per model object
  (:func:`RefractureRiskLib.model.modelcheck.check_model_values`): a model built in code gets the
  checks a model file gets, so an implausible model is refused as a model error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.modelcheck import check_model_values
from RefractureRiskLib.model.modelfile import RiskModel
from RefractureRiskLib.model.terms import InputSpec, Term

Z_95 = 1.959963984540054
NO_INTERVAL_NOTE = (
    "95% interval not estimable for this model: its coefficients were not estimated from one "
    "data set, so it has no coefficient covariance matrix"
)


@dataclass(frozen=True)
class Contribution:
    """One term's share of the linear predictor for one patient."""

    term: str
    label: str
    input: str
    value: float | str
    log_odds: float
    points: float


@dataclass(frozen=True)
class RiskResult:
    """The risk of one patient under one model."""

    model_name: str
    validated: bool
    outcome: str
    horizon_days: int
    probability: float
    interval: tuple[float, float] | None  # 95%, probability scale
    interval_note: str
    linear_predictor: float
    contributions: tuple[Contribution, ...]
    total_points: float
    warnings: tuple[str, ...]
    #: The text every display of this result must carry when the model is not validated.
    model_warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = list(self.interval) if self.interval else None
        return out

    def format_text(self) -> str:
        lines = []
        if self.model_warning:
            lines.append(f"*** {self.model_warning.upper()} ***")
        lines.append(f"Model: {self.model_name}")
        lines.append(f"Outcome: {self.outcome} (horizon {self.horizon_days} days)")
        lines.append(f"Probability: {100 * self.probability:.1f}%")
        if self.interval is not None:
            lo, hi = self.interval
            lines.append(f"95% interval: {100 * lo:.1f}% to {100 * hi:.1f}%")
        else:
            note = self.interval_note.removeprefix("95% interval ")
            lines.append(f"95% interval: {note}")
        lines.append("")
        lines.append(f"{'term':<44} {'value':>10} {'log-odds':>9} {'points':>7}")
        for c in self.contributions:
            value = format_value(c.value)
            lines.append(
                f"{(c.label or c.term)[:44]:<44} {value:>10} {c.log_odds:>+9.3f} {c.points:>7.1f}"
            )
        lines.append(f"{'total points':<44} {'':>10} {'':>9} {self.total_points:>7.1f}")
        if self.warnings:
            lines.append("")
            lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


@dataclass(frozen=True)
class _Prepared:
    """Per-model constants computed once: nomogram offsets and the points per log-odds unit."""

    term_min: tuple[float, ...]
    points_per_logodds: float


_PREPARED: dict[int, tuple[RiskModel, _Prepared]] = {}


def _prepare(model: RiskModel) -> _Prepared:
    cached = _PREPARED.get(id(model))
    if cached is not None and cached[0] is model:
        return cached[1]
    # A model built in code (not loaded from a file) gets the same value checks as a file.
    check_model_values(model, source=f"model {model.name!r}")
    mins, spans = [], []
    for term in model.terms:
        lo, hi = _term_range(model, term)
        mins.append(lo)
        spans.append(hi - lo)
    widest = max(spans, default=0.0)
    prepared = _Prepared(tuple(mins), 100.0 / widest if widest > 0 else 0.0)
    if len(_PREPARED) > 64:
        _PREPARED.clear()
    _PREPARED[id(model)] = (model, prepared)
    return prepared


def _term_range(model: RiskModel, term: Term) -> tuple[float, float]:
    """Lowest and highest log-odds contribution of a term over the input's soft range."""
    spec = model.input(term.input)
    beta = np.asarray(term.coefficients)
    if term.transform.type in ("indicator", "threshold"):
        values = [0.0, float(beta[0])]
    else:
        bounds = spec.soft_range or spec.hard_range
        if bounds is None:
            return 0.0, 0.0
        grid = np.linspace(bounds[0], bounds[1], 201)
        values = list(term.transform.columns(grid) @ beta)
    return float(min(values)), float(max(values))


def check_value(spec: InputSpec, raw: Any, source: str = "patient") -> float | str:
    """One patient value checked against its input's kind, hard limits and unit (InputError)."""
    value = spec.coerce(raw, source=source)
    if spec.unit == "count" and not float(value).is_integer():
        # Only a patient's value: a model's substitute for a missing count may be a median.
        raise InputError(f"{source}: {spec.name}", f"expected a whole number, got {raw!r}")
    return value


def check_inputs(model: RiskModel, patient: Mapping[str, Any], source: str = "patient") -> None:
    """Refuse a patient's given values that :func:`score` would refuse, before any other work.

    Missing values are allowed here (the model may substitute them); they are judged by
    :func:`score` once the measured inputs are known.
    """
    if not isinstance(patient, Mapping):
        raise InputError(source, "a patient must be a JSON object of input name -> value")
    for spec in model.inputs:
        raw = patient.get(spec.name)
        if raw is not None and not (isinstance(raw, float) and math.isnan(raw)):
            check_value(spec, raw, source)


def score(model: RiskModel, patient: Mapping[str, Any], source: str = "patient") -> RiskResult:
    """Risk of one patient (a mapping input name -> value; None or absent = missing)."""
    if not isinstance(patient, Mapping):
        raise InputError(source, "a patient must be a JSON object of input name -> value")
    prepared = _prepare(model)
    warnings: list[str] = []
    if not model.validated:
        warnings.append(str(model.warning_text))
    values: dict[str, float | str] = {}
    for spec in model.inputs:
        raw = patient.get(spec.name)
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            if spec.missing_value is None:
                raise InputError(f"{source}: {spec.name}", "is required by this model and missing")
            values[spec.name] = spec.coerce(spec.missing_value, source="model missing_value")
            unit = f" {spec.unit}" if spec.unit else ""
            warnings.append(
                f"{spec.name} missing: {format_value(values[spec.name])}{unit}"
                " used in its place; the result is less certain than shown"
            )
            continue
        value = check_value(spec, raw, source)
        values[spec.name] = value
        if spec.outside_soft_range(value):
            lo, hi = spec.soft_range  # type: ignore[misc]
            warnings.append(
                f"{spec.name} = {value:g}{' ' + spec.unit if spec.unit else ''} is outside the "
                f"model's intended input range [{lo:g}, {hi:g}]: extrapolation"
                + (f" (check the unit: {spec.unit})" if spec.unit else "")
            )
    unused = sorted(set(patient) - set(values))
    if unused:
        warnings.append(f"input(s) not used by this model: {', '.join(unused)}")

    design = [1.0]
    contributions = []
    lp = model.intercept
    for term, term_min in zip(model.terms, prepared.term_min, strict=True):
        cols = term.transform.column_one(values[term.input])
        design.extend(cols)
        log_odds = math.fsum(b * c for b, c in zip(term.coefficients, cols, strict=True))
        lp += log_odds
        contributions.append(
            Contribution(
                term=term.name,
                label=term.label,
                input=term.input,
                value=values[term.input],
                log_odds=log_odds,
                points=(log_odds - term_min) * prepared.points_per_logodds,
            )
        )
    probability = _expit(lp)
    interval: tuple[float, float] | None = None
    note = ""
    if model.covariance is not None:
        g = np.asarray(design)
        se = math.sqrt(max(float(g @ model.covariance @ g), 0.0))
        interval = (_expit(lp - Z_95 * se), _expit(lp + Z_95 * se))
        note = "delta method on the logit scale from the coefficient covariance matrix"
    else:
        note = model.covariance_note or NO_INTERVAL_NOTE
    return RiskResult(
        model_name=model.name,
        validated=model.validated,
        outcome=str(model.outcome.get("name", "outcome")),
        horizon_days=model.horizon_days,
        probability=probability,
        interval=interval,
        interval_note=note,
        linear_predictor=lp,
        contributions=tuple(contributions),
        total_points=sum(c.points for c in contributions),
        warnings=tuple(warnings),
        model_warning=model.warning_text,
    )


def format_value(value: float | str) -> str:
    """An input value for people (terminal, report): 4 significant digits.

    No float noise like 140.14999999999998, no false precision like a PDFF of 50.1943 %.
    """
    return value if isinstance(value, str) else f"{value:.4g}"


def _expit(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
