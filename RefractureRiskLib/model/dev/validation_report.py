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
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from RefractureRiskLib.model.dev.training import TrainingResult

MEASURE_LABELS = {
    "c_statistic": "C-statistic (AUC)",
    "cal_intercept": "Calibration intercept (y ~ a + b lp)",
    "cal_slope": "Calibration slope",
    "citl": "Calibration in the large",
    "brier": "Brier score",
    "emax": "Emax (from the calibration line)",
}


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def report_table(headers: list[str], rows: list[list[Any]]) -> tuple[str, str]:
    """A table as (Markdown, HTML) for the validation reports (numbers formatted alike)."""
    md = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    md += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    h = [
        "<table><thead><tr>"
        + "".join(f"<th>{html.escape(x)}</th>" for x in headers)
        + "</tr></thead><tbody>"
    ]
    h += ["<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows]
    h.append("</tbody></table>")
    return "\n".join(md), "\n".join(h)


#: A report section: (title, Markdown text, HTML fragment).
Section = tuple[str, str, str]


def notes_section(notes: Sequence[str]) -> Section:
    """The "Notes" section: one bullet per note."""
    return (
        "Notes",
        "\n".join(f"- {n}" for n in notes),
        "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>",
    )


def write_report_pages(
    out: Path,
    title: str,
    warning: str | None,
    sections: Sequence[Section],
    figures: Sequence[tuple[str, str]],
) -> tuple[Path, Path]:
    """``report.md`` and ``report.html`` in ``out``: title, the model warning (if any) in
    capitals, the sections, then the figures (file name, caption). Returns (md, html)."""
    md_lines = [f"# {title}", ""]
    if warning:
        md_lines += [f"**{warning.upper()}**", ""]
    for t, md_text, _ in sections:
        md_lines += [f"## {t}", "", md_text, ""]
    md_lines += ["## Figures", ""] + [f"![{cap}]({name})" for name, cap in figures]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md_lines) + "\n", encoding="utf-8")

    body = [f"<h1>{html.escape(title)}</h1>"]
    if warning:
        body.append(f'<p class="warn">{html.escape(warning.upper())}</p>')
    body += [f"<h2>{html.escape(t)}</h2>{ht}" for t, _, ht in sections]
    body.append("<h2>Figures</h2>")
    body += [
        f'<figure><img src="{n}" alt="{html.escape(c)}">'
        f"<figcaption>{html.escape(c)}</figcaption></figure>"
        for n, c in figures
    ]
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}"
        ".warn{color:#b00;font-weight:bold}"
    )
    html_path = out / "report.html"
    html_path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>",
        encoding="utf-8",
    )
    return md_path, html_path


def calibration_figure(
    cal: dict[str, Any], path: Path, title: str, smooth_label: str = "lowess"
) -> Path:
    """Calibration plot (lowess line and tenths of predicted risk with 95% CI) as a PNG."""
    # A bare Figure: no pyplot, no global backend (the Slicer app keeps its own).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="ideal")
    ax.plot(cal["smooth_predicted"], cal["smooth_observed"], color="C0", label=smooth_label)
    g = cal["groups"]
    ax.errorbar(
        [x["predicted"] for x in g],
        [x["observed"] for x in g],
        yerr=[[x["observed"] - x["lower"] for x in g], [x["upper"] - x["observed"] for x in g]],
        fmt="o",
        color="C1",
        label="tenths of predicted risk (95% CI)",
    )
    top = max(0.05, max(x["upper"] for x in g), max(x["predicted"] for x in g)) * 1.1
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("predicted 1-year risk")
    ax.set_ylabel("observed 1-year risk")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def decision_figure(d: dict[str, Any], path: Path, title: str) -> Path:
    """Decision curve: the model's net benefit against treat-all and treat-none, as a PNG."""
    # A bare Figure: no pyplot, no global backend (the Slicer app keeps its own).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(d["threshold"], d["model"], label="model", color="C0")
    ax.plot(d["threshold"], d["treat_all"], label="treat all", color="C3", ls="--")
    ax.plot(d["threshold"], d["treat_none"], label="treat none", color="k", lw=1)
    ymax = max(max(d["model"]), max(d["treat_all"]), 0.01)
    ax.set_ylim(min(-0.1 * ymax, min(d["model"]) - 0.01), ymax * 1.2)
    ax.set_xlabel("risk threshold")
    ax.set_ylabel("net benefit")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


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
    s = result.summary
    m = result.model
    study = "to be reported by the study team"
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


def write_report(result: TrainingResult, out_dir: str | Path) -> Path:
    """Write the report folder; returns the path of report.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = _figures(result, out)
    m = result.model
    sections: list[tuple[str, str, str]] = []  # (title, markdown, html)

    warn = m.warning_text
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

    md, ht = report_table(["TRIPOD+AI topic", "where / status"], tripod_rows(result))
    sections.append(("TRIPOD+AI checklist (development, internal validation)", md, ht))
    if result.notes:
        sections.append(notes_section(result.notes))

    title = "RefractureRisk model validation report"
    _, path = write_report_pages(out, title, warn, sections, figs)
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
