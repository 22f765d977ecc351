"""The external validation's result files: predictions, JSON, Markdown/HTML report, figures.

:func:`write_external_report` writes what :func:`.external.validate_external` measured;
:func:`estimate_text` is how every estimate with its interval is printed (the command's summary
and the report agree).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from RefractureRiskLib.model.dev.report_pages import (
    calibration_figure,
    decision_figure,
    notes_section,
    report_table,
    write_report_pages,
)
from RefractureRiskLib.model.modelfile import plain_json

if TYPE_CHECKING:
    from RefractureRiskLib.model.dev.external import ExternalValidation

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
    sections = _sections(result, cohort_name)
    paths["report.md"], paths["report.html"] = write_report_pages(
        out, title, warn, sections, figures
    )
    return paths


def _sections(result: ExternalValidation, cohort_name: str) -> list[tuple[str, str, str]]:
    """The report's sections: (title, Markdown, HTML)."""
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

    return sections


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
    slope = estimate_text(result.metrics["cal_slope"], result.ci["cal_slope"], 2)
    calibration_figure(
        result.calibration, out / "calibration.png", f"External calibration: slope {slope}"
    )
    decision_figure(result.decision, out / "decision_curve.png", "Decision curve (external cohort)")
    return [
        ("calibration.png", "Calibration in the external cohort"),
        ("decision_curve.png", "Net benefit against treat-all and treat-none"),
    ]
