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

import html
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.dev.logistic import expit
from RefractureRiskLib.model.dev.validation import (
    METRICS,
    calibration_curve,
    decision_curve,
    measures,
)
from RefractureRiskLib.model.modelfile import RiskModel, plain_json
from RefractureRiskLib.model.scoring import check_value, score

OUTCOME = "outcome_1y"
#: Fewer scored patients with a known outcome than this cannot give usable calibration numbers.
MIN_KNOWN_SCORED = 20
#: Events and non-events recommended for an external validation (Collins et al. 2016).
RECOMMENDED_EVENTS = 100
#: Every measure reported, in table order: :data:`METRICS` and the observed/expected ratio.
EXTERNAL_METRICS: tuple[str, ...] = (*METRICS, "oe_ratio")


@dataclass(frozen=True)
class RefusedRow:
    """A cohort row the model refused to score (excluded from everything)."""

    row: int  # 0-based position in the cohort table
    patient_id: str
    column: str
    reason: str


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


def validate_external(
    model: RiskModel,
    cohort: pd.DataFrame,
    n_bootstrap: int = 1000,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> ExternalValidation:
    """Score every patient of ``cohort`` with ``model`` and measure the model's performance.

    ``cohort``: as returned by :func:`RefractureRiskLib.model.dev.schema.read_cohort` (a table
    without ``outcome_1y`` but with ``time_days`` and ``event`` gets it derived). Raises
    InputError (naming the column) for an empty cohort, model inputs absent from the cohort (all
    named), no events or only events among the known outcomes, or fewer than
    :data:`MIN_KNOWN_SCORED` scored patients with a known outcome.
    """
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
    outcome = _outcome(cohort)
    ids = (
        cohort["patient_id"].astype(str).to_numpy()
        if "patient_id" in cohort
        else np.array([f"row {i}" for i in range(len(cohort))])
    )
    has_centre = "centre_id" in cohort.columns
    model_warning = model.warning_text

    columns = {spec.name: cohort[spec.name].tolist() for spec in model.inputs}
    refused: list[RefusedRow] = []
    missing_counts = {spec.name: 0 for spec in model.inputs}
    extrap_counts = {spec.name: 0 for spec in model.inputs}
    records: list[dict[str, Any]] = []
    for i in range(len(cohort)):
        source = f"cohort row {i} (patient {ids[i]})"
        patient: dict[str, Any] = {}
        missing: list[str] = []
        extrapolated: list[str] = []
        problems: list[RefusedRow] = []
        for spec in model.inputs:
            raw = _cell(columns[spec.name][i])
            patient[spec.name] = raw
            if raw is None:
                if spec.missing_value is None:
                    problems.append(
                        RefusedRow(i, ids[i], spec.name, "required by this model and missing")
                    )
                missing.append(spec.name)
                continue
            try:
                value = check_value(spec, raw, source)
            except InputError as err:
                problems.append(RefusedRow(i, ids[i], spec.name, err.reason))
                continue
            if spec.outside_soft_range(value):
                extrapolated.append(spec.name)
        if not problems:
            try:
                result = score(model, patient, source=source, missing="model_value")
            except InputError as err:  # anything the checks above did not foresee
                column = (err.source or "").removeprefix(f"{source}: ")
                problems.append(RefusedRow(i, ids[i], column, err.reason))
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
            n_warnings=sum(1 for w in result.warnings if w != model_warning),
            missing_inputs=";".join(missing),
            extrapolated_inputs=";".join(extrapolated),
        )
        records.append(record)

    n_refused_rows = len({r.row for r in refused})
    if refused:
        log(
            f"warning: {n_refused_rows} row(s) refused by the model and excluded "
            f"(first: patient {refused[0].patient_id}, {refused[0].column}: {refused[0].reason})"
        )
    predictions = pd.DataFrame.from_records(
        records,
        columns=[
            "patient_id",
            *(["centre_id"] if has_centre else []),
            "probability",
            "linear_predictor",
            "outcome_1y",
            "outcome_1y_status",
            "n_warnings",
            "missing_inputs",
            "extrapolated_inputs",
        ],
    )
    known = predictions["outcome_1y"].notna().to_numpy()
    n_unknown = int((~known).sum())
    lp = predictions["linear_predictor"].to_numpy(dtype=float)[known]
    y = predictions["outcome_1y"].to_numpy(dtype=float)[known]
    n, events = int(y.size), int(y.sum())
    why = (
        f"{len(cohort)} rows, {n_refused_rows} refused by the model, {n_unknown} with an "
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
    for note in notes:
        log(f"note: {note}")

    point = _measures(lp[None, :], y[None, :])
    metrics = {k: float(v[0]) for k, v in point.items()}
    ci, used, failed = _bootstrap_ci(lp, y, n_bootstrap, seed)
    p = expit(lp)
    by_centre: list[dict[str, Any]] = []
    if has_centre:
        centre = predictions["centre_id"].astype(str).to_numpy()[known]
        for name in sorted(set(centre)):
            sel = centre == name
            by_centre.append(_observed_expected(str(name), y[sel], p[sel]))
    return ExternalValidation(
        model_name=model.name,
        model_sha256=model.content_sha256 or model.to_document()["content_sha256"],
        model_validated=model.validated,
        model_warning=model_warning,
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
        missing_counts=missing_counts,
        extrapolation_counts=extrap_counts,
        notes=tuple(notes),
        predictions=predictions,
    )


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


# ----------------------------------------------------------------------------- report

MEASURE_LABELS = {
    "c_statistic": "C-statistic (AUC)",
    "cal_intercept": "Calibration intercept (y ~ a + b lp)",
    "cal_slope": "Calibration slope",
    "citl": "Calibration in the large (> 0: risk under-predicted)",
    "brier": "Brier score",
    "emax": "Emax (from the calibration line)",
    "oe_ratio": "Observed / expected events",
}


def write_external_report(
    result: ExternalValidation,
    out_dir: str | Path,
    cohort_name: str,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write predictions.csv, validation.json, report.md, report.html and the two figures.

    ``cohort_name``: the cohort file's name as the report shows it; ``provenance``: extra
    fields for validation.json (cohort file SHA-256, software version, time). Returns the
    written paths by name.
    """
    from RefractureRiskLib.model.dev.validation_report import (
        notes_section,
        report_table,
        write_report_pages,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"predictions.csv": out / "predictions.csv"}
    result.predictions.to_csv(paths["predictions.csv"], index=False)
    figures = _external_figures(result, out)
    paths.update({name: out / name for name, _ in figures})

    doc = {"cohort": {"file": cohort_name}, **dict(provenance or {}), **result.to_json()}
    paths["validation.json"] = out / "validation.json"
    paths["validation.json"].write_text(
        json.dumps(plain_json(doc), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )

    title = f"External validation of {result.model_name} on {cohort_name}"
    warn = result.model_warning
    sections: list[tuple[str, str, str]] = []
    n_refused_rows = len({r.row for r in result.refused})
    intro = (
        f"External validation of {result.model_name} (content SHA-256 "
        f"{result.model_sha256[:16]}…) on {cohort_name}: {result.n_rows} rows, "
        f"{n_refused_rows} refused by the model and excluded, {result.n_unknown_outcome} with an "
        f"unknown 1-year outcome (left out), {result.n} patients with {result.events} events "
        f"in the metrics. Observed 1-year risk {100 * result.observed_risk:.1f}%, mean "
        f"predicted {100 * result.mean_predicted_risk:.1f}%."
    )
    sections.append(("Summary", intro, f"<p>{html.escape(intro)}</p>"))
    rows = [
        [MEASURE_LABELS[r["measure"]], r["estimate"], r["lower_95"], r["upper_95"]]
        for r in result.table()
    ]
    md, ht = report_table(["measure", "estimate", "lower 95%", "upper 95%"], rows)
    note = (
        f"95% intervals: percentile bootstrap, {result.n_bootstrap} replicates (patients "
        f"resampled; {result.n_bootstrap_failed} without events or non-events left out), "
        f"seed {result.seed}."
    )
    sections.append(("Performance", md + "\n\n" + note, ht + f"<p>{html.escape(note)}</p>"))
    if result.by_centre:
        keys = ["centre", "n", "events", "observed", "mean_predicted", "oe_ratio"]
        md, ht = report_table(keys, [[r[k] for k in keys] for r in result.by_centre])
        sections.append(("Observed vs predicted risk by centre", md, ht))
    rows = [[r.row, r.patient_id, r.column, r.reason] for r in result.refused]
    txt = f"{n_refused_rows} row(s) refused by the model and excluded from every number."
    md, ht = report_table(["row", "patient_id", "column", "reason"], rows)
    sections.append(
        (
            "Refused rows",
            txt + ("\n\n" + md if rows else ""),
            f"<p>{html.escape(txt)}</p>" + (ht if rows else ""),
        )
    )
    rows = [
        [name, result.missing_counts[name], result.extrapolation_counts[name]]
        for name in result.missing_counts
    ]
    md, ht = report_table(["input", "missing (substituted)", "outside training range"], rows)
    sections.append(("Inputs: substitutions and extrapolation", md, ht))
    cal = result.calibration
    txt = (
        f"Lowess calibration: ICI {cal['ici']:.3f}, E90 {cal['e90']:.3f}, "
        f"Emax {cal['emax_smooth']:.3f}."
    )
    sections.append(("Calibration", txt, f"<p>{html.escape(txt)}</p>"))
    if result.notes:
        sections.append(notes_section(result.notes))

    paths["report.md"], paths["report.html"] = write_report_pages(
        out, title, warn, sections, figures
    )
    return paths


def estimate_text(value: Any, interval: Any, digits: int) -> str:
    """``"0.712 (95% CI 0.650 to 0.770)"``; "not estimable" in place of any missing or
    non-finite number (a cohort without events, a bootstrap without usable replicates)."""

    def finite(v: Any) -> bool:
        return isinstance(v, int | float) and math.isfinite(v)

    if not finite(value):
        return "not estimable"
    lo, hi = interval if interval is not None else (None, None)
    ci = f"{lo:.{digits}f} to {hi:.{digits}f}" if finite(lo) and finite(hi) else "not estimable"
    return f"{value:.{digits}f} (95% CI {ci})"


def _external_figures(result: ExternalValidation, out: Path) -> list[tuple[str, str]]:
    from RefractureRiskLib.model.dev.validation_report import calibration_figure, decision_figure

    slope = estimate_text(result.metrics["cal_slope"], result.ci["cal_slope"], 2)
    calibration_figure(
        result.calibration, out / "calibration.png", f"External calibration: slope {slope}"
    )
    decision_figure(result.decision, out / "decision_curve.png", "Decision curve (external cohort)")
    return [
        ("calibration.png", "Calibration in the external cohort"),
        ("decision_curve.png", "Net benefit against treat-all and treat-none"),
    ]
