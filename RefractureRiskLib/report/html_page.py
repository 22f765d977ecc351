"""The HTML report: the page's content as text and tables, with the page image embedded."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from RefractureRiskLib.model.scoring import (
    RANGE_LABEL,
    RiskResult,
)
from RefractureRiskLib.report.text import (
    LOWERS,
    RAISES,
    SUMMARY_NAMES,
    UNCERTAIN_CONFIDENCE,
    LevelNotes,
    LevelTable,
    direction_colour,
    factor_rows,
    level_table,
    risk_headline,
    risk_lines,
    summary_line,
)
from RefractureRiskLib.stats.summary import PatientSummary

#: Headings of the HTML report, in order (a test checks each is present).
HTML_SECTIONS = (
    "Risk",
    "Factors",
    "Images",
    "Vertebral levels",
    "Summaries",
    "Caveats and intended use",
    "Provenance",
)


def _html_table(table: LevelTable) -> str:
    """The table as pandas' ``DataFrame.to_html(index=False, border=0, classes="levels")`` writes
    it (the report's HTML did so before pandas left the one-study path; a test compares)."""
    esc = partial(html.escape, quote=False)
    lines = ['<table class="dataframe levels">', "  <thead>"]
    lines += ['    <tr style="text-align: right;">']
    lines += [f"      <th>{esc(c)}</th>" for c in table.columns]
    lines += ["    </tr>", "  </thead>", "  <tbody>"]
    for row in table.rows:
        lines += ["    <tr>", *(f"      <td>{esc(v)}</td>" for v in row), "    </tr>"]
    return "\n".join([*lines, "  </tbody>", "</table>"])


def report_html(
    png: bytes,
    stats: Any,
    summary: PatientSummary,
    risk: RiskResult | None,
    provenance: Mapping[str, Any],
    patient_label: str,
    notes: LevelNotes | None = None,
) -> str:
    """The HTML report: the same content as the page as text and tables, and the page image."""
    esc = html.escape
    what = "risk of a new vertebral fracture after vertebroplasty/kyphoplasty"
    parts: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>RefractureRisk report: {esc(what)}, patient {esc(patient_label)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto;padding:0 1em}"
        ".warn{background:#b00020;color:#fff;padding:.5em;font-weight:bold}"
        "table.levels{border-collapse:collapse}table.levels td,table.levels th"
        "{border:1px solid #ccc;padding:2px 6px}.risk{font-size:2.5em;font-weight:bold}"
        ".raises{color:#c62828}.lowers{color:#1565c0}.neutral{color:#555}"
        "img{max-width:100%}pre{white-space:pre-wrap;overflow-wrap:anywhere}"
        "table.levels th{text-align:left !important;vertical-align:bottom}</style>",
        "</head><body>",
        f"<h1>RefractureRisk report: patient {esc(patient_label)}</h1>",
        "<h2>Risk</h2>",
        *_risk_html(risk),
        "<h2>Factors</h2>",
        *_factors_html(risk, summary, provenance, notes),
    ]
    parts += [
        "<h2>Images</h2>",
        "<p>The printable page (PDF/PNG) with the sagittal PDFF and R2* images; A anterior, "
        "P posterior, S superior, I inferior; 'excl.' after a level: left out of the summaries "
        f"(flags in the table); '?': label uncertain (confidence &lt; {UNCERTAIN_CONFIDENCE:.2f})."
        "</p>",
        f"<img alt='one-page report with sagittal PDFF and R2* images' src='data:image/png;"
        f"base64,{base64.b64encode(png).decode()}'>",
        "<h2>Vertebral levels</h2>",
        _html_table(level_table(stats, notes)),
        "<h2>Summaries</h2>",
        "<ul>"
        + "".join(f"<li>{esc(summary_line(summary, f))}</li>" for f in SUMMARY_NAMES)
        + "".join(f"<li>Note: {esc(n)}</li>" for n in summary.notes)
        + "</ul>",
        "<h2>Caveats and intended use</h2>",
    ]
    parts += _caveats_html(risk)
    parts += [
        "<h2>Provenance</h2>",
        "<pre>" + esc("\n".join(f"{k}: {v}" for k, v in _flatten(provenance))) + "</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _risk_html(risk: RiskResult | None) -> list[str]:
    esc = html.escape
    if risk is None:
        return ["<p>No risk computed (measurements only).</p>"]
    parts = []
    if risk.model_warning:
        parts.append(f"<p class='warn'>{esc(risk.model_warning.capitalize())}.</p>")
    label = f" <b>({esc(RANGE_LABEL)})</b>" if risk.is_range else ""
    lines = risk_lines(risk)
    parts += [
        f"<p><span class='risk'>{esc(risk_headline(risk))}</span>{label}</p>",
        "<p>" + "<br>".join(esc(line) for line in lines) + "</p>",
    ]
    return parts


def _factors_html(
    risk: RiskResult | None,
    summary: PatientSummary,
    provenance: Mapping[str, Any],
    notes: LevelNotes | None,
) -> list[str]:
    """The factors table and warnings, then what is uncertain about the levels."""
    esc = html.escape
    parts: list[str] = []
    if risk is not None:
        parts.append(
            "<p>Effect of each input relative to the model's reference value; log-odds &gt; 0 "
            "raises the risk.</p><table class='levels'><tr><th>factor</th><th>effect</th>"
            "<th>log-odds</th></tr>"
        )
        for (factor, does), c in zip(factor_rows(risk, summary), risk.contributions, strict=True):
            css = {RAISES: "raises", LOWERS: "lowers"}.get(direction_colour(c), "neutral")
            if c.log_odds_range is not None:
                lo, hi = c.log_odds_range
                value = f"{lo:+.2f} to {hi:+.2f}"
            else:
                value = "0" if c.no_effect else f"{c.log_odds:+.3f}"
            parts.append(
                f"<tr><td>{esc(factor)}</td><td class='{css}'>{esc(does)}</td>"
                f"<td>{esc(value)}</td></tr>"
            )
        parts.append("</table>")
        if risk.warnings:
            parts.append(
                "<p>Warnings:</p><ul>"
                + "".join(f"<li>{esc(w)}</li>" for w in risk.warnings)
                + "</ul>"
            )
    else:
        parts.append("<p>No risk computed.</p>")
    if (notes is not None and notes.uncertain) or provenance.get("labels"):
        reasons = "; ".join(notes.reasons) if notes is not None else ""
        parts.append(
            f"<p class='warn'>Level labels uncertain: check them before use. {esc(reasons)}</p>"
        )
    if notes is not None and notes.roi_notes:
        parts.append(
            "<p>ROI notes:</p><ul>"
            + "".join(f"<li>{esc(n)}</li>" for n in notes.roi_notes)
            + "</ul>"
        )
    return parts


def _caveats_html(risk: RiskResult | None) -> list[str]:
    esc = html.escape
    parts: list[str] = []
    if risk is not None:
        use = "".join(f"<p>{esc(p)}</p>" for p in risk.intended_use.split("\n\n") if p)
        parts.append("<h3>Intended use</h3>")
        parts.append(use or "<p>(no intended use given in the model file)</p>")
        parts.append("<h3>Caveats</h3>")
        parts.append("<ul>" + "".join(f"<li>{esc(c)}</li>" for c in risk.caveats) + "</ul>")
    else:
        parts.append("<p>Measurements only; no risk model was applied.</p>")
    return parts


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Sequence[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.extend(_flatten(v, key + "."))
        else:
            out.append((key, v))
    return out
