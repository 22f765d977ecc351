"""The validation report of a trained model: figures (PNG) and tables (Markdown and HTML).

Written to a folder: ``report.md``, ``report.html``, ``calibration.png``, ``decision_curve.png``,
``coefficients.png``, ``leave_one_centre_out.png`` and ``validation.json`` (the numbers). The
report lays out what TRIPOD+AI asks of a model-development study with internal validation;
topics that only the study team can report (eligibility, ethics, funding, registration) are
listed as such rather than filled in.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from RefractureRiskLib.model.dev.report_pages import (
    calibration_figure,
    decision_figure,
    notes_section,
    report_table,
    write_report_pages,
)
from RefractureRiskLib.model.dev.training import TrainingResult

MEASURE_LABELS = {
    "c_statistic": "C-statistic (AUC)",
    "cal_intercept": "Calibration intercept (y ~ a + b lp)",
    "cal_slope": "Calibration slope",
    "citl": "Calibration in the large",
    "brier": "Brier score",
    "emax": "Emax (from the calibration line)",
}


def _figures(result: TrainingResult, out: Path) -> list[tuple[str, str]]:
    # A bare Figure: no pyplot, no global backend (the Slicer app keeps its own).
    from matplotlib.figure import Figure

    figs = []
    v = result.validation
    calibration_figure(
        result.calibration,
        out / "calibration.png",
        f"Calibration: slope {v['apparent']['cal_slope']:.2f} apparent, "
        f"{v['corrected']['cal_slope']:.2f} corrected",
        smooth_label="lowess (apparent)",
    )
    figs.append(("calibration.png", "Calibration curve (apparent) with grouped observed risks"))
    decision_figure(result.decision, out / "decision_curve.png", "Decision curve (apparent)")
    figs.append(
        ("decision_curve.png", "Decision curve: net benefit against treat-all and treat-none")
    )

    rows = [r for r in result.coefficients if r["term"] != "intercept"]
    fig = Figure(figsize=(6, 0.35 * len(rows) + 1))
    ax = fig.subplots()
    yy = np.arange(len(rows))[::-1]
    ax.errorbar(
        [r["coef"] for r in rows],
        yy,
        xerr=[[r["coef"] - r["lower"] for r in rows], [r["upper"] - r["coef"] for r in rows]],
        fmt="o",
        color="C0",
    )
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(yy, [r["term"] for r in rows], fontsize=8)
    ax.set_xlabel("log odds ratio (95% interval)")
    fig.tight_layout()
    fig.savefig(out / "coefficients.png", dpi=120)
    figs.append(("coefficients.png", "Pooled coefficients with 95% intervals (penalised)"))

    if result.loco:
        fig = Figure(figsize=(5, 3.5))
        ax = fig.subplots()
        names = [str(r["centre"]) for r in result.loco]
        ax.bar(names, [r["c_statistic"] for r in result.loco], color="C0")
        ax.axhline(
            v["corrected"]["c_statistic"], color="C1", ls="--", label="bootstrap-corrected C"
        )
        ax.set_ylim(0.4, 1.0)
        ax.set_ylabel("C-statistic in the held-out centre")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "leave_one_centre_out.png", dpi=120)
        figs.append(("leave_one_centre_out.png", "Leave-one-centre-out C-statistic"))
    return figs


def tripod_rows(result: TrainingResult) -> list[list[str]]:
    """TRIPOD+AI topics for development with internal validation, and where this report answers."""
    return _tripod_methods(result) + _tripod_results(result)


#: What the report leaves to the study team.
_BY_THE_STUDY = "to be reported by the study team"


def _tripod_methods(result: TrainingResult) -> list[list[str]]:
    """TRIPOD+AI topics of the methods: intended use to performance measures."""
    s = result.summary
    m = result.model
    study = _BY_THE_STUDY
    return [
        [
            "Intended use and target population",
            "Model card / this report: adults after vertebroplasty or kyphoplasty; risk of a "
            "new vertebral fracture within 1 year",
        ],
        [
            "Data source, centres and period",
            f"{s['centres']} centres ({', '.join(s['centre_ids'])}); "
            f"surgery dates {s['period'] or 'not given'}",
        ],
        ["Eligibility criteria and setting", study],
        [
            "Outcome definition and horizon",
            f"{m.outcome['definition']}; horizon {m.horizon_days} days; death before 365 "
            "days is a competing event",
        ],
        [
            "Predictors: definition, units, timing",
            "Model terms table (inputs named as the cohort schema, units in the model file)",
        ],
        ["Sample size", result.sample_size_message.replace("\n", " ")],
        [
            "Missing data",
            f"missing values per predictor {s['missing_values'] or 'none'}; "
            f"{s['imputations']} imputed data set(s) (chained equations), pooled by Rubin's rules",
        ],
        [
            "Analytical methods: model, penalty, non-linearity",
            m.training["method"]["penalty"]
            + " penalised logistic regression, penalty by cross-validation; "
            + m.training["method"]["penalty_choice"],
        ],
        [
            "Internal validation",
            f"bootstrap optimism correction, B = {m.validation['internal']['n_bootstrap']}, "
            "whole procedure refitted including penalty choice; leave-one-centre-out",
        ],
        [
            "Performance measures",
            "C-statistic, calibration intercept/slope/in-the-large, Brier score, Emax, "
            "calibration curve, decision curve",
        ],
    ]


def _tripod_results(result: TrainingResult) -> list[list[str]]:
    """TRIPOD+AI topics of the results and the discussion: participants to limitations."""
    s = result.summary
    study = _BY_THE_STUDY
    return [
        [
            "Participants: numbers and flow",
            f"{s['n_in_table']} in the table, {s['n_unknown_1y_outcome']} with unknown 1-year "
            f"outcome, {s['n']} analysed, {s['events']} events",
        ],
        [
            "Model specification (full model)",
            "Coefficients table (intercept and every term) and the model file",
        ],
        ["Model performance with apparent and corrected values", "Validation table"],
        ["Heterogeneity across centres", "Leave-one-centre-out table"],
        ["Fairness / subgroups", "not assessed by this report beyond centres"],
        ["Ethics, funding, registration, data and code availability", study],
        [
            "Limitations",
            "internal validation only; the model needs external validation before any clinical use",
        ],
    ]


def _model_sections(result: TrainingResult) -> list[tuple[str, str, str]]:
    """Summary, sample size, internal validation, coefficients and terms: (title, md, html)."""
    m = result.model
    sections: list[tuple[str, str, str]] = []  # (title, markdown, html)
    intro = (
        f"Model: {m.name}. Outcome: {m.outcome['name']}. "
        f"{result.summary['n']} patients, {result.summary['events']} events, "
        f"{result.summary['centres']} centres."
    )
    sections.append(("Summary", intro, f"<p>{html.escape(intro)}</p>"))
    sections.append(
        (
            "Sample size",
            result.sample_size_message,
            f"<pre>{html.escape(result.sample_size_message)}</pre>",
        )
    )

    v = result.validation
    rows = [
        [MEASURE_LABELS[k], v["apparent"][k], v["optimism"][k], v["corrected"][k]]
        for k in MEASURE_LABELS
    ]
    md, ht = report_table(["measure", "apparent", "optimism", "optimism-corrected"], rows)
    note = (
        f"Bootstrap B = {m.validation['internal']['n_bootstrap']} per imputed data set, averaged "
        "over imputations; every replicate refits the whole procedure including the penalty choice."
    )
    sections.append(("Internal validation", md + "\n\n" + note, ht + f"<p>{html.escape(note)}</p>"))

    rows = [
        [r["term"], r["coef"], r["se"], r["odds_ratio"], r["lower"], r["upper"]]
        for r in result.coefficients
    ]
    md, ht = report_table(["term", "log OR", "SE", "OR", "lower 95%", "upper 95%"], rows)
    sections.append(("Coefficients (pooled)", md, ht))

    rows = [
        [t.name, t.label, t.input, json.dumps(t.transform.to_json()), t.provenance] for t in m.terms
    ]
    md, ht = report_table(["term", "label", "input", "transform", "provenance"], rows)
    sections.append(("Model terms", md, ht))
    return sections


def _validation_sections(result: TrainingResult) -> list[tuple[str, str, str]]:
    """Leave-one-centre-out, calibration and the Cox model: (title, md, html)."""
    sections: list[tuple[str, str, str]] = []
    if result.loco:
        keys = [
            "centre",
            "n",
            "events",
            "c_statistic",
            "cal_slope",
            "citl",
            "brier",
            "mean_predicted",
            "observed",
        ]
        md, ht = report_table(keys, [[r[k] for k in keys] for r in result.loco])
        sections.append(("Leave-one-centre-out validation", md, ht))

    cal = result.calibration
    txt = (
        f"Lowess calibration (apparent): ICI {cal['ici']:.3f}, E90 {cal['e90']:.3f}, "
        f"Emax {cal['emax_smooth']:.3f}."
    )
    sections.append(("Calibration", txt, f"<p>{html.escape(txt)}</p>"))

    if result.cox:
        c = result.cox
        rows = [
            [r["term"], r["coef"], r["se"], r["hazard_ratio"], r["hr_lower"], r["hr_upper"]]
            for r in c["table"]
        ]
        md, ht = report_table(["term", "log HR", "SE", "HR", "lower 95%", "upper 95%"], rows)
        txt = (
            f"{c['note']}. n = {c['n']}, re-fractures {c['events']}, deaths (competing) "
            f"{c['competing_deaths']}, Harrell's C {c['concordance']:.3f}."
        )
        sections.append(
            ("Time to re-fracture (Cox)", txt + "\n\n" + md, f"<p>{html.escape(txt)}</p>" + ht)
        )
    return sections


def write_report(result: TrainingResult, out_dir: str | Path) -> Path:
    """Write the report folder; returns the path of report.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = _figures(result, out)
    sections = _model_sections(result) + _validation_sections(result)
    md, ht = report_table(["TRIPOD+AI topic", "where / status"], tripod_rows(result))
    sections.append(("TRIPOD+AI checklist (development, internal validation)", md, ht))
    if result.notes:
        sections.append(notes_section(result.notes))

    title = "RefractureRisk model validation report"
    _, path = write_report_pages(out, title, result.model.warning_text, sections, figs)
    (out / "validation.json").write_text(
        json.dumps(
            {
                "validation": result.validation,
                "leave_one_centre_out": result.loco,
                "calibration": result.calibration,
                "decision_curve": result.decision,
                "cox": result.cox,
                "coefficients": result.coefficients,
                "summary": result.summary,
            },
            indent=1,
            default=str,
        ),
        encoding="utf-8",
    )
    return path
