"""Checks of a risk model's content: JSON types of a model document, then plausible values.

Two steps, both refusing with an :class:`InputError` whose source is ``"<file>: <field path>"``
(e.g. ``model.json: inputs[0].hard_range``), so a broken model is blamed on the model, never on a
patient scored with it:

1. :func:`check_document_types` on the parsed JSON, before anything is converted: numbers are
   JSON numbers (a coefficient written as the string ``"0.5"`` is refused, not converted), lists
   are lists, texts are texts, at least one input and one term.
2. :func:`check_model_values` on a built :class:`~RefractureRiskLib.model.modelfile.RiskModel`
   (from a file, from training or built in code; scoring runs it once per model):

   - coefficients and intercept finite with ``|b| <=`` :data:`MAX_ABS_COEFFICIENT` log-odds per
     unit of the design column (after centring/scaling). 50 is an odds ratio of 5e21 per unit:
     far beyond any real effect (the demonstration model's largest is 0.69, penalised fits on
     the synthetic cohorts stay below 5), low enough that no sum of terms overflows ``exp``.
   - centres, thresholds, range bounds and missing-value substitutes finite with magnitude
     ``<=`` :data:`MAX_ABS_INPUT_VALUE`; scales in [:data:`MIN_SCALE`, :data:`MAX_SCALE`];
     spline knots (on the scaled axis) within :data:`MAX_ABS_KNOT`.
   - ranges ordered (``low <= high``; equal where every training value was the same), the soft
     range inside the hard range, a substitute for a
     missing value allowed by the input's own kind and hard range.
   - outcome horizon a whole number of days in 1..:data:`MAX_HORIZON_DAYS`.
   - covariance (when present): (1 + columns) square, finite, symmetric (relative 1e-8),
     positive semi-definite (smallest eigenvalue ``>= -1e-8 x`` the largest), variances at most
     :data:`MAX_ABS_COEFFICIENT` squared.

numpy and the standard library only (runs inside 3D Slicer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from RefractureRiskLib.core.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from RefractureRiskLib.model.modelfile import RiskModel
    from RefractureRiskLib.model.terms import InputSpec, Term

#: Largest |coefficient| (log-odds per unit of a design column) and |intercept|.
MAX_ABS_COEFFICIENT = 50.0
#: Largest magnitude of a centre, threshold, range bound or missing-value substitute.
MAX_ABS_INPUT_VALUE = 1e6
#: Allowed scales of linear and spline transforms.
MIN_SCALE, MAX_SCALE = 1e-6, 1e6
#: Largest |knot| of a restricted cubic spline (knots are on the scaled axis).
MAX_ABS_KNOT = 1e3
#: Longest outcome horizon (days): 100 years.
MAX_HORIZON_DAYS = 36525
#: Relative tolerances of the covariance checks.
SYMMETRY_RTOL = 1e-8
PSD_RTOL = 1e-8


# -- step 1: JSON types -------------------------------------------------------------------------


def check_document_types(doc: Mapping[str, Any], source: str) -> None:
    """Refuse a model document whose fields have the wrong JSON type (field path named)."""
    at = _Where(source)
    _text(doc.get("name"), at("name"))
    _optional_text(doc.get("description"), at("description"))
    outcome = _object(doc.get("outcome"), at("outcome"))
    _optional_text(outcome.get("name"), at("outcome.name"))
    if "horizon_days" not in outcome:
        raise InputError(at("outcome.horizon_days"), "is missing (days, e.g. 365)")
    _number(outcome["horizon_days"], at("outcome.horizon_days"))
    intercept = _object(doc.get("intercept"), at("intercept"))
    _number(intercept.get("coefficient"), at("intercept.coefficient"))
    _optional_text(intercept.get("provenance"), at("intercept.provenance"))
    inputs = _list(doc.get("inputs"), at("inputs"), non_empty=True)
    for i, item in enumerate(inputs):
        _input_types(item, f"inputs[{i}]", at)
    terms = _list(doc.get("terms"), at("terms"), non_empty=True)
    for i, item in enumerate(terms):
        _term_types(item, f"terms[{i}]", at)
    if doc.get("covariance") is not None:
        _covariance_types(doc["covariance"], at)
    _optional_text(doc.get("covariance_note"), at("covariance_note"))
    for key in ("training", "validation"):
        if doc.get(key) is not None:
            _object(doc[key], at(key))
    _object(doc.get("software"), at("software"))


def _input_types(item: Any, p: str, at: _Where) -> None:
    """One entry of ``inputs`` (path ``p``)."""
    spec = _object(item, at(p))
    _text(spec.get("name"), at(f"{p}.name"))
    _text(spec.get("kind"), at(f"{p}.kind"))
    _optional_text(spec.get("unit"), at(f"{p}.unit"))
    _optional_text(spec.get("description"), at(f"{p}.description"))
    for key in ("soft_range", "hard_range"):
        if spec.get(key) is not None:
            pair = _list(spec[key], at(f"{p}.{key}"))
            if len(pair) != 2:
                raise InputError(at(f"{p}.{key}"), f"must be [low, high], got {pair!r}")
            for j, v in enumerate(pair):
                _number(v, at(f"{p}.{key}[{j}]"))
    if spec.get("levels") is not None:
        for j, v in enumerate(_list(spec["levels"], at(f"{p}.levels"))):
            _level(v, at(f"{p}.levels[{j}]"))
    missing = spec.get("missing_value")
    if missing is not None and not isinstance(missing, str):
        _number(missing, at(f"{p}.missing_value"))


def _term_types(item: Any, p: str, at: _Where) -> None:
    """One entry of ``terms`` (path ``p``)."""
    term = _object(item, at(p))
    _text(term.get("name"), at(f"{p}.name"))
    _text(term.get("input"), at(f"{p}.input"))
    _optional_text(term.get("label"), at(f"{p}.label"))
    _optional_text(term.get("provenance"), at(f"{p}.provenance"))
    transform = _object(term.get("transform"), at(f"{p}.transform"))
    _text(transform.get("type"), at(f"{p}.transform.type"))
    for key in ("center", "scale", "above"):
        if key in transform:
            _number(transform[key], at(f"{p}.transform.{key}"))
    if "knots" in transform:
        for j, v in enumerate(_list(transform["knots"], at(f"{p}.transform.knots"))):
            _number(v, at(f"{p}.transform.knots[{j}]"))
    if "levels" in transform:
        for j, v in enumerate(_list(transform["levels"], at(f"{p}.transform.levels"))):
            _level(v, at(f"{p}.transform.levels[{j}]"))
    coefficients = _list(term.get("coefficients"), at(f"{p}.coefficients"), non_empty=True)
    for j, v in enumerate(coefficients):
        _number(v, at(f"{p}.coefficients[{j}]"))
    if "columns" in term:
        for j, v in enumerate(_list(term["columns"], at(f"{p}.columns"))):
            _text(v, at(f"{p}.columns[{j}]"))


def _covariance_types(value: Any, at: _Where) -> None:
    """The covariance object: column names and a square matrix of numbers."""
    cov = _object(value, at("covariance"))
    for j, v in enumerate(_list(cov.get("columns"), at("covariance.columns"))):
        _text(v, at(f"covariance.columns[{j}]"))
    rows = _list(cov.get("matrix"), at("covariance.matrix"))
    for r, row in enumerate(rows):
        if len(_list(row, at(f"covariance.matrix[{r}]"))) != len(rows):
            raise InputError(
                at(f"covariance.matrix[{r}]"),
                f"must have {len(rows)} values (a square matrix), got {len(row)}",
            )
        for c, v in enumerate(row):
            _number(v, at(f"covariance.matrix[{r}][{c}]"))


# -- step 2: values -----------------------------------------------------------------------------


def check_model_values(model: RiskModel, source: str = "model") -> None:
    """Refuse implausible or inconsistent values of a built model (field path named)."""
    at = _Where(source)
    if not model.terms:
        raise InputError(at("terms"), "a model needs at least one term")
    _coefficient(model.intercept, at("intercept.coefficient"))
    horizon = model.outcome.get("horizon_days", 365)
    if (
        isinstance(horizon, bool)
        or not isinstance(horizon, int | float)
        or not math.isfinite(horizon)
        or horizon != int(horizon)
        or not 1 <= horizon <= MAX_HORIZON_DAYS
    ):
        raise InputError(
            at("outcome.horizon_days"),
            f"must be a whole number of days from 1 to {MAX_HORIZON_DAYS}, got {horizon!r}",
        )
    for i, spec in enumerate(model.inputs):
        _input_values(spec, f"inputs[{i}]", at)
    for i, term in enumerate(model.terms):
        _term_values(term, f"terms[{i}]", at)
    if model.covariance is not None:
        _check_covariance(np.asarray(model.covariance, dtype=float), at("covariance.matrix"))


def _input_values(spec: InputSpec, p: str, at: _Where) -> None:
    """One input's ranges (finite, ordered, soft inside hard) and its substitute value."""
    for key in ("soft_range", "hard_range"):
        bounds = getattr(spec, key)
        if bounds is None:
            continue
        lo, hi = bounds
        for j, v in enumerate(bounds):
            _bounded(v, MAX_ABS_INPUT_VALUE, at(f"{p}.{key}[{j}]"))
        if not lo <= hi:
            raise InputError(
                at(f"{p}.{key}"),
                f"of input {spec.name!r} must be [low, high] with low <= high, "
                f"got [{lo:g}, {hi:g}]",
            )
    if spec.soft_range is not None and spec.hard_range is not None:
        (slo, shi), (hlo, hhi) = spec.soft_range, spec.hard_range
        if slo < hlo or shi > hhi:
            raise InputError(
                at(f"{p}.soft_range"),
                f"of input {spec.name!r}, [{slo:g}, {shi:g}], must lie inside its "
                f"hard_range [{hlo:g}, {hhi:g}]",
            )
    if spec.missing_value is not None:
        if not isinstance(spec.missing_value, str):
            _bounded(spec.missing_value, MAX_ABS_INPUT_VALUE, at(f"{p}.missing_value"))
        try:
            spec.coerce(spec.missing_value)
        except InputError as err:
            raise InputError(at(f"{p}.missing_value"), err.reason) from None


def _term_values(term: Term, p: str, at: _Where) -> None:
    """One term's centre, scale, threshold, knots and coefficients within their limits."""
    tr = term.transform
    if tr.type in ("linear", "rcs"):
        _bounded(tr.center, MAX_ABS_INPUT_VALUE, at(f"{p}.transform.center"))
        if not MIN_SCALE <= tr.scale <= MAX_SCALE:
            raise InputError(
                at(f"{p}.transform.scale"),
                f"must be from {MIN_SCALE:g} to {MAX_SCALE:g}, got {tr.scale!r}",
            )
    if tr.type == "threshold":
        _bounded(tr.above, MAX_ABS_INPUT_VALUE, at(f"{p}.transform.above"))
    for j, knot in enumerate(tr.knots):
        _bounded(knot, MAX_ABS_KNOT, at(f"{p}.transform.knots[{j}]"))
    if not term.coefficients:
        raise InputError(at(f"{p}.coefficients"), "are missing")
    for j, b in enumerate(term.coefficients):
        _coefficient(b, at(f"{p}.coefficients[{j}]"))


def _check_covariance(cov: np.ndarray, where: str) -> None:
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise InputError(where, f"must be a square matrix, got shape {cov.shape}")
    if not np.all(np.isfinite(cov)):
        raise InputError(where, "must hold finite numbers only")
    scale = max(float(np.max(np.abs(cov), initial=0.0)), 1e-300)
    asym = float(np.max(np.abs(cov - cov.T), initial=0.0))
    if asym > SYMMETRY_RTOL * scale:
        r, c = np.unravel_index(int(np.argmax(np.abs(cov - cov.T))), cov.shape)
        raise InputError(
            where,
            f"must be symmetric: [{r}][{c}] = {cov[r, c]:g} but [{c}][{r}] = {cov[c, r]:g}",
        )
    diag = np.diag(cov)
    limit = MAX_ABS_COEFFICIENT**2
    if np.any(diag < 0) or np.any(diag > limit):
        k = int(np.flatnonzero((diag < 0) | (diag > limit))[0])
        raise InputError(where, f"variance [{k}][{k}] = {diag[k]:g} must be from 0 to {limit:g}")
    smallest = float(np.linalg.eigvalsh((cov + cov.T) / 2).min())
    if smallest < -PSD_RTOL * scale:
        raise InputError(
            where,
            f"must be positive semi-definite (a covariance matrix); smallest eigenvalue "
            f"{smallest:.3g}",
        )


# -- helpers -------------------------------------------------------------------------------------


class _Where:
    """``at("terms[0].name")`` -> ``"<source>: terms[0].name"``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, path: str) -> str:
        return f"{self.source}: {path}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any, where: str) -> None:
    if not _is_number(value):
        raise InputError(where, f"must be a JSON number, got {_show(value)}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise InputError(where, f"must be a finite number, got {_show(value)}")


def _bounded(value: Any, limit: float, where: str) -> None:
    _number(value, where)
    if abs(value) > limit:
        raise InputError(where, f"{value:g} is implausible (magnitude above {limit:g})")


def _coefficient(value: Any, where: str) -> None:
    _number(value, where)
    if abs(value) > MAX_ABS_COEFFICIENT:
        raise InputError(
            where,
            f"{value:g} is implausible: a coefficient must lie within "
            f"±{MAX_ABS_COEFFICIENT:g} log-odds per unit of its (centred, scaled) column",
        )


def _text(value: Any, where: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InputError(where, f"must be a non-empty text, got {_show(value)}")


def _optional_text(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, str):
        raise InputError(where, f"must be a text, got {_show(value)}")


def _level(value: Any, where: str) -> None:
    if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
        raise InputError(where, f"must be a text (or whole number), got {_show(value)}")


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(where, f"must be a JSON object, got {_show(value)}")
    return value


def _list(value: Any, where: str, non_empty: bool = False) -> list[Any]:
    if not isinstance(value, list):
        raise InputError(where, f"must be a JSON list, got {_show(value)}")
    if non_empty and not value:
        raise InputError(where, "must not be empty")
    return value


def _show(value: Any) -> str:
    kind = {str: "text", bool: "true/false", type(None): "null", dict: "an object"}.get(
        type(value), type(value).__name__
    )
    text = repr(value)
    return f"{kind} {text[:40] + '...' if len(text) > 40 else text}"
