"""The model card of a model file: what the model is for, what it was built on, how well it did.

Written next to every trained model file (``refracture-risk train`` writes ``model.md`` beside
``model.json``) and made from the model file alone, so a card can always be regenerated from
the file it describes (its content hash is quoted). Markdown, readable as plain text.

Sections: intended use and status, inputs (units, training range, hard limits, the
external-validation substitute when missing), terms with coefficients and provenance, training
data, internal and leave-one-centre-out validation, notes from training, limitations, software.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from RefractureRiskLib.model.modelfile import RiskModel
from RefractureRiskLib.model.terms import InputSpec, Term

_METRIC_LABELS = {
    "c_statistic": "C-statistic",
    "cal_slope": "calibration slope",
    "cal_intercept": "calibration intercept",
    "citl": "calibration-in-the-large",
    "brier": "Brier score",
    "emax": "Emax",
}


def model_card(model: RiskModel, file_name: str | None = None) -> str:
    """The model card (Markdown) of ``model``; ``file_name``: the model file it describes."""
    doc = model.to_document()
    lines = [f"# Model card: {model.name}", ""]
    if model.warning_text:
        lines += [f"**{model.warning_text}**", ""]
    lines += [
        f"File: `{file_name or 'model.json'}` (schema `{doc['schema']}` version "
        f"{doc['schema_version']}, content_sha256 `{doc['content_sha256']}`; an edited file is "
        "refused on loading).",
        "",
        "## Intended use",
        "",
        intended_use(model),
        f"Status: {'validated and approved for use' if model.validated else 'not validated'}.",
        "",
        "## Inputs",
        "",
        "A patient's missing input is refused, or on request the risk is shown as a range over "
        "the input's training range (0 and 1; every level). External validation of a cohort "
        "substitutes the value in the last column and counts each substitution.",
        "",
        "| input | unit | training range | refused outside | external validation substitute |",
        "|---|---|---|---|---|",
        *(_input_row(spec) for spec in model.inputs),
        "",
        "## Terms",
        "",
        "Logistic model: risk = 1 / (1 + exp(-(intercept + sum of terms))).",
        "",
        "| term | input | transform | log odds | provenance |",
        "|---|---|---|---|---|",
        f"| intercept | - | - | {model.intercept:.4f} | {model.intercept_provenance or '-'} |",
        *(_term_row(term) for term in model.terms),
        "",
    ]
    lines += _training_section(model.training)
    lines += _validation_section(model.validation)
    notes = (model.training or {}).get("notes") or ()
    if notes:
        lines += ["## Notes from training", "", *(f"- {n}" for n in notes), ""]
    lines += ["## Limitations", "", *(f"- {text}" for text in limitations(model)), ""]
    software = " ".join(str(model.software.get(k, "")) for k in ("name", "version")).strip()
    lines += ["## Software", "", software or "not recorded", ""]
    return "\n".join(lines)


def intended_use(model: RiskModel) -> str:
    """What the model is for: its description, outcome definition and horizon."""
    outcome = model.outcome.get("definition", model.outcome.get("name", "?"))
    description = model.description or "(no description in the model file)"
    return f"{description}\n\nOutcome: {outcome}; horizon {model.horizon_days} days."


def write_model_card(model: RiskModel, path: str | Path, file_name: str | None = None) -> Path:
    """Write :func:`model_card` to ``path`` (UTF-8); returns the path."""
    out = Path(path)
    out.write_text(model_card(model, file_name), encoding="utf-8")
    return out


def _number(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{float(value):.{digits}g}"


def _fixed(value: Any) -> str:
    """A validation measure: 3 decimals (no 1e-16 noise), "-" when absent or undefined."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{round(float(value), 3) + 0.0:.3f}"  # + 0.0: no "-0.000"


def _range(pair: tuple[float, float] | None) -> str:
    return "-" if pair is None else f"{_number(pair[0])} to {_number(pair[1])}"


def _input_row(spec: InputSpec) -> str:
    missing = "none (row refused)" if spec.missing_value is None else spec.missing_value
    if not isinstance(missing, str):
        missing = _number(missing)
    if spec.kind == "category":
        allowed = ", ".join(spec.levels or ())
        return f"| `{spec.name}` | one of {allowed} | - | other values | {missing} |"
    unit = spec.unit or ("0/1" if spec.kind == "binary" else "-")
    return (
        f"| `{spec.name}` | {unit} | {_range(spec.soft_range)} | "
        f"{_range(spec.hard_range)} | {missing} |"
    )


def _shifted(center: float) -> str:
    """``(x - 70)``, ``(x + 2.5)``, or ``x`` for a zero centre."""
    if center == 0:
        return "x"
    return f"(x {'-' if center > 0 else '+'} {_number(abs(center))})"


def _term_row(term: Term) -> str:
    t = term.transform
    if t.type == "linear":
        transform = f"{_shifted(t.center)} / {_number(t.scale)}"
    elif t.type == "indicator":
        transform = f"1 if x in {{{', '.join(t.levels)}}}"
    elif t.type == "threshold":
        transform = f"1 if x > {_number(t.above)}"
    else:
        knots = ", ".join(_number(k) for k in t.knots)
        transform = f"spline of {_shifted(t.center)} / {_number(t.scale)}, knots {knots}"
    coefficients = ", ".join(f"{b:.4f}" for b in term.coefficients)
    label = term.label or term.name
    return f"| {label} | `{term.input}` | {transform} | {coefficients} | {term.provenance or '-'} |"


def _training_section(training: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Training data", ""]
    if not training:
        return [*lines, "None: the coefficients were not estimated from data.", ""]
    period = training.get("period")
    method = training.get("method") or {}
    lines += [
        f"- patients with a known 1-year outcome: {training.get('n')}, events "
        f"{training.get('events')} ({100 * float(training.get('event_rate', math.nan)):.1f} %)",
        f"- patients in the table: {training.get('n_in_table')}; unknown 1-year outcome "
        f"(censored or dead before 365 days): {training.get('n_unknown_1y_outcome')}",
        f"- centres: {training.get('centres')} ({', '.join(training.get('centre_ids') or [])})",
        f"- surgery dates: {' to '.join(period) if period else 'not given'}",
        f"- missing values: {training.get('missing_values') or 'none'}; data sets after "
        f"multiple imputation: {training.get('imputations')}",
    ]
    source = training.get("data_source")
    if source:
        lines.append(
            f"- cohort file: `{source.get('file')}` ({source.get('rows')} rows, sha256 "
            f"`{source.get('sha256')}`)"
        )
    if method:
        lines.append(
            f"- method: {method.get('penalty')} penalised logistic regression, penalty by "
            f"{method.get('penalty_choice')}, seed {method.get('seed')}"
        )
    return [*lines, ""]


def _validation_section(validation: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Validation", ""]
    internal = (validation or {}).get("internal")
    if not internal:
        return [*lines, "None recorded in the model file.", ""]
    lines += [
        f"Internal: bootstrap optimism correction, {internal.get('n_bootstrap')} replicates "
        "(every step refitted in each).",
        "",
        "| measure | apparent | optimism | corrected |",
        "|---|---|---|---|",
    ]
    for key, label in _METRIC_LABELS.items():
        parts = [internal.get(p, {}).get(key) for p in ("apparent", "optimism", "corrected")]
        lines.append(f"| {label} | " + " | ".join(_fixed(v) for v in parts) + " |")
    loco = validation.get("leave_one_centre_out") if validation else None
    if loco:
        lines += [
            "",
            "Leave-one-centre-out (fitted without the centre, tested on it):",
            "",
            "| centre | n | events | C-statistic | calibration slope | observed | predicted |",
            "|---|---|---|---|---|---|---|",
            *(_loco_row(row) for row in loco),
        ]
    ici = validation.get("calibration_ici") if validation else None
    if ici is not None:
        lines += ["", f"Integrated calibration index (apparent): {_fixed(ici)}."]
    return [*lines, ""]


def _loco_row(row: Mapping[str, Any]) -> str:
    cells: Iterable[Any] = (
        row.get("centre"),
        row.get("n"),
        row.get("events"),
        _fixed(row.get("c_statistic")),
        _fixed(row.get("cal_slope")),
        _fixed(row.get("observed")),
        _fixed(row.get("mean_predicted")),
    )
    return "| " + " | ".join(str(c) for c in cells) + " |"


def limitations(model: RiskModel) -> list[str]:
    """The model's limitations, for the model card and every risk display."""
    out = []
    if not model.validated:
        out.append(
            "Not externally validated: internal validation estimates optimism but cannot show "
            "how the model transports to other hospitals, scanners or periods."
        )
    if not model.training:
        out.append("The coefficients were not estimated from data (see the terms' provenance).")
    out.append(
        "Inputs outside the training range give a result flagged as an extrapolation; values "
        "outside the hard limits are refused."
    )
    if any(term.input.startswith("r2s") for term in model.terms):
        out.append(
            "R2* depends on the field strength (about twice as high at 3 T as at 1.5 T) and on "
            "the vendor's fitting; R2* from other scanners or protocols may not be comparable."
        )
    if any(term.input.startswith("pdff") for term in model.terms):
        out.append(
            "PDFF was measured in vertebral-body marrow ROIs by RefractureRisk; other ROI "
            "methods or software may give systematically different values."
        )
    return out
