"""The report page drawn with Pillow (:mod:`.canvas`): the risk, the factors, sagittal PDFF and
R2* reformats with ROI outlines and level labels (:mod:`.panels`), the per-level table
(:mod:`.table`), the footer. Positions are written as fractions of the A4 page (y from the
bottom); every text is wrapped to fit and recorded with the box it must stay inside
(``Testing/test_report_layout.py`` checks the record: extents and overlaps).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from RefractureRiskLib import __version__
from RefractureRiskLib.core.roiset import RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.model.scoring import RANGE_LABEL, RiskResult
from RefractureRiskLib.report.bars import draw_bars
from RefractureRiskLib.report.canvas import Canvas, TextStyle
from RefractureRiskLib.report.encode import REPORT_DPI
from RefractureRiskLib.report.panels import (
    draw_legend,
    draw_map,
    r2s_window_max,
    sagittal_views,
)
from RefractureRiskLib.report.table import draw_table, table_lines
from RefractureRiskLib.report.text import (
    IN_SUMMARIES,
    SUMMARY_NAMES,
    WARNING_RED,
    LevelNotes,
    LevelTable,
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
HEADING = TextStyle(9.5, bold=True)
GREY_TEXT = "#444444"


def new_page(dpi: float = REPORT_DPI) -> Canvas:
    """A blank A4 portrait page at ``dpi`` (1240 x 1753 pixels at 150 dpi)."""
    return Canvas(int(A4_PORTRAIT_IN[0] * dpi), int(A4_PORTRAIT_IN[1] * dpi), dpi)


def build_page(
    study: Study,
    rois: Any,
    stats: Any,
    summary: PatientSummary,
    risk: RiskResult | None,
    provenance: Mapping[str, Any],
    patient_label: str,
) -> Canvas:
    """The report page, drawn (A4 portrait, :data:`REPORT_DPI`); ``rois``: RoiResult or RoiSet.

    ``page.image`` is the raster, ``page.texts`` the record of every text on it.
    """
    notes = level_notes(rois)
    page = new_page()
    _draw_header(page, study, risk, patient_label)
    _draw_risk(page, risk)
    _draw_factors(page, risk, summary)
    _draw_images_and_levels(page, study, rois, stats, summary, notes, provenance)
    _draw_footer(page, risk, provenance)
    return page


def _draw_header(page: Canvas, study: Study, risk: RiskResult | None, patient_label: str) -> None:
    page.text(
        page.fx(0.04),
        page.fy(0.985),
        "RefractureRisk report: new vertebral fracture after vertebroplasty/kyphoplasty",
        TextStyle(12, bold=True),
        part="header",
    )
    field = study.provenance.field_strength_t
    page.text(
        page.fx(0.04),
        page.fy(0.962),
        f"Patient: {patient_label}   ·   MRI: {study.provenance.vendor or 'unknown vendor'} "
        f"{f'{field:g} T' if field else '(field strength unknown)'}   ·   "
        f"RefractureRisk {__version__}",
        TextStyle(8, colour=GREY_TEXT),
        part="header",
    )
    if risk is not None and risk.model_warning:
        page.text(
            page.fx(0.5),
            page.fy(0.942),
            risk.model_warning.upper(),
            TextStyle(10.5, bold=True, colour="white"),
            "center",
            part="header",
            backdrop=(WARNING_RED, None, 0.0, 3.0),
        )


def _draw_risk(page: Canvas, risk: RiskResult | None) -> None:
    top = 0.905
    if risk is None:
        page.text(
            page.fx(0.04), page.fy(top), "No risk computed (measurements only)", TextStyle(14)
        )
        return
    colour = WARNING_RED if not risk.validated else "black"
    size = 24 if risk.is_range else 34
    page.text(
        page.fx(0.04), page.fy(top), risk_headline(risk), TextStyle(size, True, colour), part="risk"
    )
    x_text = 0.44 if risk.is_range else 0.30
    width = 80 if risk.is_range else 92
    lines = [wrap_text(line, width) for line in risk_lines(risk)]
    style = TextStyle(7.5 if risk.is_range else 8, linespacing=1.3)
    page.text(page.fx(x_text), page.fy(top), "\n".join(lines), style, part="risk")
    if risk.is_range:
        style = TextStyle(7.5, colour=WARNING_RED)
        page.text(page.fx(0.04), page.fy(top - 0.045), RANGE_LABEL.upper(), style, part="risk")


def _draw_factors(page: Canvas, risk: RiskResult | None, summary: PatientSummary) -> None:
    """Each factor in clinical words and what it does (left), its log-odds bar (right)."""
    if risk is None or not risk.contributions:
        return
    top, bottom = 0.80, 0.565
    head = page.fy(top + 0.012)
    page.text(page.fx(0.04), head, "Factors for this patient", HEADING, va="baseline")
    note = "(effect relative to the model's reference value of each input; bar: change in log-odds)"
    page.text(page.fx(0.30), head, note, TextStyle(7, colour=GREY_TEXT), va="baseline")
    contribs = list(risk.contributions)
    rows = factor_rows(risk, summary)
    column = (page.fx(0.04), page.fy(top), page.fx(0.70), page.fy(bottom))
    bars = (page.fx(0.72), page.fy(top), page.fx(0.97), page.fy(bottom))
    page.regions |= {"factors": column, "bars": bars}
    pitch = (column[3] - column[1]) / len(rows)
    for i in range(0, len(rows), 2):  # banded rows across both
        y0 = column[1] + i * pitch
        page.rect((column[0], y0, column[2], y0 + pitch), fill="#f3f3f3")
        page.rect((bars[0], y0, bars[2], y0 + pitch), fill="#f3f3f3")
    width = column[2] - column[0]
    for i, ((what, does), c) in enumerate(zip(rows, contribs, strict=True)):
        y = column[1] + (i + 0.5) * pitch
        style = TextStyle(6.8, linespacing=1.1)
        x_name, x_does = column[0] + 0.005 * width, column[0] + 0.995 * width
        page.text(
            x_name, y, wrap_text(what, 66), style, "left", "center", part="factors", frame=column
        )
        style = TextStyle(6.8, bold=True, colour=direction_colour(c), linespacing=1.1)
        page.text(
            x_does, y, wrap_text(does, 26), style, "right", "center", part="effects", frame=column
        )
    draw_bars(page, bars, contribs)


def _body_centres_z(rois: Any) -> dict[str, float]:
    """RAS z (mm) of each level's body centre, from a RoiResult (a bare RoiSet has none)."""
    if not hasattr(rois, "roiset"):
        return {}
    return {p.level: float(p.centre_ras[2]) for p in getattr(rois, "levels", ())}


def _draw_images_and_levels(
    page: Canvas,
    study: Study,
    rois: Any,
    stats: Any,
    summary: PatientSummary,
    notes: LevelNotes,
    provenance: Mapping[str, Any],
) -> None:
    roiset: RoiSet = rois.roiset if hasattr(rois, "roiset") else rois
    centres = _body_centres_z(rois)
    y0, y1 = page.fy(0.205), page.fy(0.515)
    labels, planes = sagittal_views(study, roiset)
    box = (page.fx(0.03), y1, page.fx(0.24), y0)
    draw_map(page, box, planes["pdff"], labels, roiset, "PDFF (%)", 100.0, notes, centres)
    if "r2s" in planes:
        vmax = r2s_window_max(study, roiset)
        box = (page.fx(0.25), y1, page.fx(0.46), y0)
        draw_map(page, box, planes["r2s"], labels, roiset, "R2* (1/s)", vmax, notes, centres)
    draw_legend(page, page.fx(0.03), page.fy(0.205 - 0.022))
    head = page.fy(0.534)
    page.text(page.fx(0.04), head, "Sagittal images through the ROIs", HEADING, va="baseline")
    page.text(page.fx(0.50), head, "Vertebral levels", HEADING, va="baseline")
    y_text = 0.522
    if notes.uncertain or provenance.get("labels"):
        reasons = "; ".join(notes.reasons) or "see the ROI notes"
        warn = wrap_text(f"LEVEL LABELS UNCERTAIN: check them before use ({reasons})", 62)
        style = TextStyle(7, bold=True, colour=WARNING_RED)
        page.text(page.fx(0.50), page.fy(y_text), warn, style, part="levels")
        y_text -= 0.012 * (warn.count("\n") + 1) + 0.006
    y_sum = _draw_level_table(page, level_table(stats, notes), y_text) - 0.012
    lines = ["Summaries (levels averaged):"]
    lines += [wrap_text(summary_line(summary, f), 80) for f in SUMMARY_NAMES]
    lines += [wrap_text(f"Note: {n}", 80) for n in summary.notes]
    lines += [wrap_text(f"ROI note: {n}", 80) for n in notes.roi_notes]
    style = TextStyle(6.8, linespacing=1.3)
    page.text(page.fx(0.50), page.fy(y_sum), "\n".join(lines), style, part="levels")


def _draw_level_table(page: Canvas, table: LevelTable, y_top: float) -> float:
    """The per-level table below ``y_top`` (page fraction); returns its bottom (page fraction).

    Each row is as high as its most wrapped cell, so no cell's text runs over its borders.
    """
    height = min(0.0165 * sum(table_lines(table)), y_top - 0.27)
    box = (page.fx(0.50), page.fy(y_top), page.fx(0.97), page.fy(y_top - height))
    shaded = [v == "no" for v in table.column(IN_SUMMARIES)] if len(table) else []
    page.regions["table"] = draw_table(page, table, box, shaded)
    return y_top - height


def _draw_footer(page: Canvas, risk: RiskResult | None, provenance: Mapping[str, Any]) -> None:
    head = TextStyle(8.5, bold=True)
    page.text(page.fx(0.04), page.fy(0.118), "Caveats and intended use", head, va="baseline")
    style = TextStyle(5.8, linespacing=1.25)
    page.text(page.fx(0.04), page.fy(0.112), footer_text(provenance, risk), style, part="footer")
