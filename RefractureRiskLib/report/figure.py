"""The report page drawn as one matplotlib Figure (no pyplot, nothing global): the risk, the
factors, sagittal PDFF and R2* reformats with ROI outlines and level labels (:mod:`.panels`), the
per-level table, the footer. Every text is wrapped to fit (``Testing/test_report_layout.py``
checks the extents and overlaps).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from RefractureRiskLib import __version__
from RefractureRiskLib.core.roiset import RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.model.scoring import RANGE_LABEL, RiskResult
from RefractureRiskLib.report.panels import draw_map, legend_handles, r2s_window_max
from RefractureRiskLib.report.text import (
    NEUTRAL,
    SUMMARY_NAMES,
    WARNING_RED,
    LevelNotes,
    direction_colour,
    factor_rows,
    footer_text,
    level_notes,
    level_table,
    risk_headline,
    risk_lines,
    summary_line,
    wrap_text,
)
from RefractureRiskLib.stats.summary import PatientSummary

A4_PORTRAIT_IN = (8.27, 11.69)


def build_figure(
    study: Study,
    rois: Any,
    stats: pd.DataFrame,
    summary: PatientSummary,
    risk: RiskResult | None,
    provenance: Mapping[str, Any],
    patient_label: str,
) -> Figure:
    """The report page as a matplotlib Figure (A4 portrait); ``rois``: RoiResult or RoiSet."""
    notes = level_notes(rois)
    # A bare Figure (no pyplot): no GUI backend, nothing global to close.
    fig = Figure(figsize=A4_PORTRAIT_IN, dpi=100)
    fig.text(
        0.04,
        0.985,
        "RefractureRisk report: new vertebral fracture after vertebroplasty/kyphoplasty",
        fontsize=12,
        fontweight="bold",
        va="top",
    )
    field = study.provenance.field_strength_t
    fig.text(
        0.04,
        0.962,
        f"Patient: {patient_label}   ·   MRI: {study.provenance.vendor or 'unknown vendor'} "
        f"{f'{field:g} T' if field else '(field strength unknown)'}   ·   "
        f"RefractureRisk {__version__}",
        fontsize=8,
        va="top",
        color="#444444",
    )
    if risk is not None and risk.model_warning:
        fig.text(
            0.5,
            0.942,
            risk.model_warning.upper(),
            fontsize=10.5,
            fontweight="bold",
            color="white",
            ha="center",
            va="top",
            bbox={"facecolor": WARNING_RED, "edgecolor": "none", "pad": 3},
        )
    _draw_risk(fig, risk)
    _draw_factors(fig, risk, summary)
    _draw_images_and_levels(fig, study, rois, stats, summary, notes, provenance)
    _draw_footer(fig, risk, provenance)
    return fig


def _draw_risk(fig: Figure, risk: RiskResult | None) -> None:
    top = 0.905
    if risk is None:
        fig.text(0.04, top, "No risk computed (measurements only)", fontsize=14, va="top")
        return
    colour = WARNING_RED if not risk.validated else "black"
    big = risk_headline(risk)
    fig.text(
        0.04,
        top,
        big,
        fontsize=24 if risk.is_range else 34,
        fontweight="bold",
        color=colour,
        va="top",
    )
    x_text = 0.44 if risk.is_range else 0.30
    width = 80 if risk.is_range else 92
    lines = [wrap_text(line, width) for line in risk_lines(risk)]
    size = 7.5 if risk.is_range else 8
    fig.text(x_text, top, "\n".join(lines), fontsize=size, va="top", linespacing=1.3)
    if risk.is_range:
        fig.text(0.04, top - 0.045, RANGE_LABEL.upper(), fontsize=7.5, color=WARNING_RED, va="top")


def _draw_factors(fig: Figure, risk: RiskResult | None, summary: PatientSummary) -> None:
    if risk is None or not risk.contributions:
        return
    top, bottom = 0.80, 0.565
    fig.text(0.04, top + 0.012, "Factors for this patient", fontsize=9.5, fontweight="bold")
    fig.text(
        0.30,
        top + 0.012,
        "(effect relative to the model's reference value of each input; bar: change in log-odds)",
        fontsize=7,
        color="#444444",
    )
    contribs = list(risk.contributions)
    rows = factor_rows(risk, summary)
    n = len(contribs)
    ax_text = fig.add_axes([0.04, bottom, 0.66, top - bottom])
    ax_bar = fig.add_axes([0.72, bottom, 0.25, top - bottom])
    for ax in (ax_text, ax_bar):
        ax.set_ylim(n - 0.5, -0.5)
    ax_text.axis("off")
    ax_text.set_xlim(0, 1)
    for i, ((what, does), c) in enumerate(zip(rows, contribs, strict=True)):
        if i % 2 == 0:
            ax_text.axhspan(i - 0.5, i + 0.5, color="#f3f3f3", zorder=0)
            ax_bar.axhspan(i - 0.5, i + 0.5, color="#f3f3f3", zorder=0)
        ax_text.text(0.005, i, wrap_text(what, 66), fontsize=6.8, va="center", linespacing=1.1)
        ax_text.text(
            0.995,
            i,
            wrap_text(does, 26),
            fontsize=6.8,
            va="center",
            ha="right",
            color=direction_colour(c),
            fontweight="bold",
            linespacing=1.1,
        )
        if c.log_odds_range is not None:
            lo, hi = c.log_odds_range
            ax_bar.barh(i, hi - lo, left=lo, color="white", edgecolor=NEUTRAL, hatch="////")
        elif not c.no_effect:
            ax_bar.barh(i, c.log_odds, color=direction_colour(c), height=0.6)
    ax_bar.axvline(0, color="black", linewidth=0.6)
    ax_bar.set_yticks([])
    ax_bar.tick_params(labelsize=6)
    ax_bar.set_xlabel("log-odds (> 0 raises risk)", fontsize=6.5, labelpad=1)


def _body_centres_z(rois: Any) -> dict[str, float]:
    """RAS z (mm) of each level's body centre, from a RoiResult (a bare RoiSet has none)."""
    if not hasattr(rois, "roiset"):
        return {}
    return {p.level: float(p.centre_ras[2]) for p in getattr(rois, "levels", ())}


def _draw_images_and_levels(
    fig: Figure,
    study: Study,
    rois: Any,
    stats: pd.DataFrame,
    summary: PatientSummary,
    notes: LevelNotes,
    provenance: Mapping[str, Any],
) -> None:
    roiset: RoiSet = rois.roiset if hasattr(rois, "roiset") else rois
    centres = _body_centres_z(rois)
    y0, y1 = 0.205, 0.515
    ax = fig.add_axes([0.03, y0, 0.21, y1 - y0])
    draw_map(ax, study, "pdff", roiset, "PDFF (%)", 100.0, notes, centres)
    if "r2s" in study.maps:
        vmax = r2s_window_max(study, roiset)
        ax = fig.add_axes([0.25, y0, 0.21, y1 - y0])
        draw_map(ax, study, "r2s", roiset, "R2* (1/s)", vmax, notes, centres)
    fig.legend(
        handles=legend_handles(),
        loc="upper left",
        bbox_to_anchor=(0.03, y0 - 0.022),
        fontsize=6,
        frameon=False,
        handlelength=1.5,
        borderaxespad=0,
    )
    fig.text(0.04, 0.534, "Sagittal images through the ROIs", fontsize=9.5, fontweight="bold")
    fig.text(0.50, 0.534, "Vertebral levels", fontsize=9.5, fontweight="bold")
    y_text = 0.522
    if notes.uncertain or provenance.get("labels"):
        reasons = "; ".join(notes.reasons) or "see the ROI notes"
        warn = wrap_text(f"LEVEL LABELS UNCERTAIN: check them before use ({reasons})", 62)
        fig.text(0.50, y_text, warn, fontsize=7, color=WARNING_RED, fontweight="bold", va="top")
        y_text -= 0.012 * (warn.count("\n") + 1) + 0.006
    y_sum = _draw_level_table(fig, level_table(stats, notes), y_text) - 0.012
    lines = ["Summaries (levels averaged):"]
    lines += [wrap_text(summary_line(summary, f), 80) for f in SUMMARY_NAMES]
    lines += [wrap_text(f"Note: {n}", 80) for n in summary.notes]
    lines += [wrap_text(f"ROI note: {n}", 80) for n in notes.roi_notes]
    fig.text(0.50, y_sum, "\n".join(lines), fontsize=6.8, va="top", linespacing=1.3)


def _draw_level_table(fig: Figure, table: pd.DataFrame, y_top: float) -> float:
    """The per-level table below ``y_top`` (figure fraction); returns its bottom.

    Each row is as high as its most wrapped cell, so no cell's text runs over its borders.
    """
    cells = [[wrap_text(str(v), 22) for v in row] for row in table.to_numpy()]
    row_lines = [2] + [max(c.count("\n") + 1 for c in row) for row in cells]  # header: 2
    units = sum(row_lines)
    height = min(0.0165 * units, y_top - 0.27)
    ax_t = fig.add_axes([0.50, y_top - height, 0.47, height])
    ax_t.axis("off")
    tbl = ax_t.table(cellText=cells, colLabels=list(table.columns), loc="upper center")
    tbl.auto_set_font_size(False)
    tbl.set_fontsize(6.3)
    tbl.auto_set_column_width(list(range(len(table.columns))))
    for (row, _col), cell in tbl.get_celld().items():
        cell.set_height(row_lines[row] / units)
        cell.get_text().set_horizontalalignment("center")
        if row > 0 and table.iloc[row - 1]["In\nsummaries"] == "no":
            cell.set_facecolor("#eeeeee")
    return y_top - height


def _draw_footer(fig: Figure, risk: RiskResult | None, provenance: Mapping[str, Any]) -> None:
    fig.text(0.04, 0.118, "Caveats and intended use", fontsize=8.5, fontweight="bold")
    fig.text(0.04, 0.112, footer_text(provenance, risk), fontsize=5.8, va="top", linespacing=1.25)
