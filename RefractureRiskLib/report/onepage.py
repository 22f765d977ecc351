"""The one-page patient report (PDF, PNG and HTML) for radiologists and tumour boards.

One A4 page, read from the top:

1. the risk over the model's horizon (with its 95% interval for a trained model; a range, labelled
   as such, when missing inputs were asked to be shown as one) beside the training cohort's
   baseline risk, the model and its validation status (and the demonstration-model warning);
2. each factor in clinical words with what it does to this patient's risk ("no anti-osteoporosis
   treatment after surgery: raises risk"), terms without effect listed as such, and a bar of its
   log-odds relative to the model's reference value;
3. sagittal PDFF and R2* reformats with orientation letters (the reformat is built in RAS from
   each map's IJK-to-RAS matrix, so anterior is left and superior up for any acquisition), a
   scale bar, ROI outlines and level labels readable on grey and white, and a legend;
4. the per-level table (flags, label confidence) and the summaries naming the levels averaged;
5. caveats, the model's intended use and the provenance.

Every text is wrapped to fit, never cut: ``Testing/test_report_page.py`` checks each text's
extent against the page with the renderer.

The page is laid out and rasterised once (Agg, :data:`REPORT_DPI`) and encoded once as PNG; the
HTML embeds that PNG and the PDF page carries its compressed data unchanged, so the three always
show the same pixels and a report costs one drawing pass and one encoding, not one per format.
The PDF is therefore an image of the page (text not selectable); the HTML carries the text.
"""

from __future__ import annotations

import base64
import html
import io
import struct
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from RefractureRiskLib import __version__
from RefractureRiskLib.core.levels import LEVEL_COLORS, level_index
from RefractureRiskLib.core.roiset import RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.model.scoring import (
    RANGE_LABEL,
    Contribution,
    RiskResult,
    baseline_text,
    direction_text,
    factor_text,
)
from RefractureRiskLib.report.reformat import SagittalPlane, sagittal_plane
from RefractureRiskLib.stats.summary import PatientSummary

A4_PORTRAIT_IN = (8.27, 11.69)
#: Resolution of the one raster of the page (PNG, HTML image and PDF page): 150 dpi keeps 7-pt
#: text legible in print.
REPORT_DPI = 150
WARNING_RED = "#b00020"
RAISES, LOWERS, NEUTRAL = "#c62828", "#1565c0", "#757575"
#: A level label whose confidence is below this is marked uncertain ("?") on the page.
UNCERTAIN_CONFIDENCE = 0.75
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
#: What the summaries are called on the page (cohort-schema names in the tables).
SUMMARY_NAMES = {
    "pdff_global_L1L4_pct": ("PDFF global L1-L4", "%"),
    "r2s_global_L1L4_per_s": ("R2* global L1-L4", " 1/s"),
    "pdff_adjacent_pct": ("PDFF adjacent", "%"),
    "r2s_adjacent_per_s": ("R2* adjacent", " 1/s"),
}
#: Model inputs that are patient summaries (their factor text names the levels averaged).
SUMMARY_INPUTS = {
    "pdff_global_L1L4": "pdff_global_L1L4_pct",
    "r2s_global_L1L4": "r2s_global_L1L4_per_s",
    "pdff_adjacent": "pdff_adjacent_pct",
    "r2s_adjacent": "r2s_adjacent_per_s",
}


@dataclass(frozen=True)
class ReportFiles:
    """Paths of the written report."""

    pdf: Path
    png: Path
    html: Path


@dataclass(frozen=True)
class LevelNotes:
    """What the page says about each level's label: confidence and the uncertainty reasons."""

    confidence: Mapping[str, float]
    uncertain: bool
    reasons: tuple[str, ...]  # why the labels are uncertain
    roi_notes: tuple[str, ...] = ()  # the RoiSet's other notes (placement, splits, spheres)

    def is_uncertain(self, level: str) -> bool:
        return self.confidence.get(level, 1.0) < UNCERTAIN_CONFIDENCE


def level_notes(rois: Any) -> LevelNotes:
    """Label confidence and uncertainty from a RoiResult; a bare RoiSet gives its notes only."""
    if hasattr(rois, "roiset"):
        reasons = tuple(rois.reasons)
        others = tuple(n for n in rois.roiset.notes if n not in reasons)
        return LevelNotes(dict(rois.confidence), bool(rois.uncertain), reasons, others)
    return LevelNotes({}, False, (), tuple(getattr(rois, "notes", ())))


# ----------------------------------------------------------------------------------- text helpers
def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


def _fmt_pct(p: float) -> str:
    return f"{100 * p:.1f}%"


def _horizon(risk: RiskResult) -> str:
    years = risk.horizon_days / 365.25
    return f"{years:.0f}-year" if abs(years - round(years)) < 0.05 else f"{risk.horizon_days}-day"


def risk_headline(risk: RiskResult) -> str:
    """The big number: "29.5%" or "11.7% to 36.1%" (the range is labelled beside it)."""
    if risk.probability_range is not None:
        lo, hi = risk.probability_range
        return f"{_fmt_pct(lo)} to {_fmt_pct(hi)}"
    return _fmt_pct(risk.probability)


def risk_lines(risk: RiskResult) -> list[str]:
    """The lines beside the big number: what, interval or range, baseline, model."""
    lines = [f"{_horizon(risk)} risk of a new vertebral fracture after vertebroplasty/kyphoplasty"]
    if risk.is_range:
        # the missing inputs in clinical words ("DXA L1-L4 T-score"), as in the factor list
        words = {c.input: factor_text(c).removesuffix(": missing") for c in risk.contributions}
        missing = ", ".join(words.get(name, name) for name in risk.missing_inputs)
        lines.append(
            f"RANGE over missing input(s) {missing} (each over the model's training range): "
            "not a point estimate"
        )
    elif risk.interval is not None:
        lo, hi = risk.interval
        lines.append(f"95% interval {_fmt_pct(lo)} to {_fmt_pct(hi)}")
    else:
        lines.append("95% interval: not available for this model (no coefficient covariance)")
    lines.append(f"Cohort baseline {_horizon(risk)} risk: {baseline_text(risk)}")
    status = "validated" if risk.validated else "NOT validated"
    lines.append(f"Model: {risk.model_name} ({status})")
    return lines


def _level_span(levels: Sequence[str]) -> str:
    """["L2", "L3", "L4"] -> "L2-L4"; ["T12", "L2"] -> "T12, L2" (runs of consecutive levels)."""
    ordered = sorted(set(levels), key=level_index)
    runs: list[list[str]] = []
    for lv in ordered:
        if runs and level_index(lv) == level_index(runs[-1][-1]) + 1:
            runs[-1].append(lv)
        else:
            runs.append([lv])
    return ", ".join(r[0] if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def summary_levels_text(summary: PatientSummary, field: str) -> str:
    """Which levels a summary averages and which candidate levels were left out, and why."""
    used = summary.levels_used.get(field, ())
    text = f"mean of {_level_span(used)}" if used else "no eligible level"
    if "global" in field:
        candidates = {"L1", "L2", "L3", "L4"}
        left_out = [(lv, why) for lv, why in summary.excluded if lv in candidates]
        if left_out:
            text += "; " + "; ".join(
                f"{lv} excluded: {why.removeprefix('flagged: ')}" for lv, why in left_out
            )
    return text


def summary_line(summary: PatientSummary, field: str) -> str:
    name, unit = SUMMARY_NAMES[field]
    value = getattr(summary, field)
    shown = f"{value:.1f}{unit}" if value is not None and np.isfinite(value) else "not available"
    return f"{name}: {shown} ({summary_levels_text(summary, field)})"


def factor_rows(risk: RiskResult, summary: PatientSummary | None) -> list[tuple[str, str]]:
    """(factor in clinical words, what it does) per model term, in the model's order."""
    rows = []
    for c in risk.contributions:
        if summary is not None and c.input in SUMMARY_INPUTS and not c.missing:
            what = summary_line(summary, SUMMARY_INPUTS[c.input])  # names the levels averaged
        else:
            what = factor_text(c)
        rows.append((what, direction_text(c)))
    return rows


def _direction_colour(c: Contribution) -> str:
    if c.no_effect or c.log_odds_range is not None or c.log_odds == 0:
        return NEUTRAL
    return RAISES if c.log_odds > 0 else LOWERS


# ----------------------------------------------------------------------------------- images
def _level_colour(level: str) -> tuple[float, float, float]:
    return LEVEL_COLORS.get(level, (1.0, 1.0, 1.0))


def _roi_centre_x(roiset: RoiSet) -> float:
    """RAS x (mm) of the ROI voxels' centroid: the mid-sagittal plane through the ROIs."""
    idx = np.argwhere(roiset.labelmap.array > 0)
    if idx.size == 0:
        nk, nj, ni = roiset.labelmap.shape
        return float(roiset.labelmap.ijk_to_ras_points([[ni / 2, nj / 2, nk / 2]])[0, 0])
    return float(roiset.labelmap.ijk_to_ras_points(idx[:, ::-1].mean(axis=0))[0, 0])


def _roi_bounds_mm(roiset: RoiSet) -> tuple[float, float, float, float] | None:
    """(y_min, y_max, z_min, z_max) RAS of the ROIs plus margins: the figure's field of view.

    Posteriorly wider than anteriorly: the level labels sit behind the bodies (in the canal).
    """
    idx = np.argwhere(roiset.labelmap.array > 0)
    if idx.size == 0:
        return None
    ras = roiset.labelmap.ijk_to_ras_points(idx[:, ::-1])
    lo, hi = ras.min(axis=0), ras.max(axis=0)
    return (lo[1] - 45.0, hi[1] + 25.0, lo[2] - 20.0, hi[2] + 20.0)


def _halo(width: float = 2.0) -> list[Any]:
    return [patheffects.withStroke(linewidth=width, foreground="black")]


def _scale_bar_mm(width_mm: float) -> int:
    return max((b for b in (5, 10, 20, 50, 100) if b <= 0.35 * width_mm), default=5)


def draw_map(
    ax: Any,
    study: Study,
    kind: str,
    roiset: RoiSet,
    title: str,
    vmax: float,
    notes: LevelNotes,
) -> SagittalPlane:
    """One sagittal panel: grey map, ROI outlines, labels, orientation letters, scale bar."""
    x = _roi_centre_x(roiset)
    bounds = _roi_bounds_mm(roiset)
    plane = sagittal_plane(study.maps[kind], x, bounds_mm=bounds)
    labels = sagittal_plane(roiset.labelmap, x, labels=True, bounds_mm=bounds)
    img = ax.imshow(plane.image, cmap="gray", vmin=0, vmax=vmax, extent=plane.extent_mm)
    left, right, bottom, top = plane.extent_mm
    overlay = np.zeros((*labels.image.shape, 4))
    for lv in roiset.levels:
        mask = labels.image == lv.label
        if not mask.any():
            continue
        colour = _level_colour(lv.level)
        overlay[mask] = (*colour, 0.55 if lv.included else 0.15)
        ax.contour(
            mask.astype(float),
            levels=[0.5],
            colors=[colour],
            linewidths=0.8,
            linestyles="solid" if lv.included else "dashed",
            extent=plane.extent_mm,
            origin="upper",
        )
        rows, cols = np.nonzero(mask)
        # label posterior to the body (right), at the ROI's height
        cx = left + (cols.max() + 4) * (right - left) / mask.shape[1]
        cy = top - rows.mean() * (top - bottom) / mask.shape[0]
        name = lv.level + ("?" if notes.is_uncertain(lv.level) else "")
        if not lv.included:
            name += " excl."
        ax.text(
            cx,
            cy,
            name,
            color="black",
            fontsize=6,
            fontweight="bold",
            va="center",
            ha="left",
            clip_on=True,
            bbox={"facecolor": "white", "edgecolor": colour, "linewidth": 1.5, "pad": 1.2},
        )
    ax.imshow(overlay, extent=plane.extent_mm, interpolation="nearest")
    letters = plane.orientation
    style = {"color": "white", "fontsize": 8, "fontweight": "bold", "path_effects": _halo()}
    mid_y, mid_x = (top + bottom) / 2, (left + right) / 2
    pad = 0.03 * (right - left)
    ax.text(left + pad, mid_y, letters["left"], ha="left", va="center", **style)
    ax.text(right - pad, mid_y, letters["right"], ha="right", va="center", **style)
    ax.text(mid_x, top - pad, letters["top"], ha="center", va="top", **style)
    ax.text(mid_x, bottom + pad, letters["bottom"], ha="center", va="bottom", **style)
    bar = _scale_bar_mm(right - left)
    y_bar = bottom + 0.03 * (top - bottom)
    x0 = left + 2 * pad
    ax.plot([x0, x0 + bar], [y_bar, y_bar], color="white", linewidth=2, path_effects=_halo(3.5))
    ax.text(x0, y_bar + 0.01 * (top - bottom), f"{bar} mm", ha="left", va="bottom", **style)
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    cbar = ax.figure.colorbar(img, ax=ax, orientation="horizontal", fraction=0.035, pad=0.02)
    cbar.ax.tick_params(labelsize=6)
    return plane


def _r2s_window_max(study: Study, roiset: RoiSet) -> float:
    """Upper end (1/s) of the R2* grey scale: 2.5x the 95th percentile inside the ROIs.

    The whole map is useless for this: fits in air and noise reach the stored maximum (often
    1000 1/s), which would show marrow at 40-150 1/s as black. Falls back to the 99.5th
    percentile of the map's finite values when no ROI holds an R2* value.
    """
    r2s = np.asarray(study.r2s.array, dtype=float)
    inside = r2s[(np.asarray(roiset.labelmap.array) > 0) & np.isfinite(r2s)]
    if inside.size:
        top = 2.5 * float(np.percentile(inside, 95))
    else:
        finite = r2s[np.isfinite(r2s)]
        top = float(np.percentile(finite, 99.5)) if finite.size else 0.0
    return top if top > 0 else 1.0


def _legend_handles() -> list[Any]:
    return [
        Patch(facecolor="#999999", edgecolor="black", label="ROI used in the summaries"),
        Patch(
            facecolor="#e0e0e0",
            edgecolor="black",
            linestyle="dashed",
            label="ROI left out ('excl.': flags in the table)",
        ),
        Line2D([], [], color="none", label="'?' after a level: label uncertain"),
        Line2D([], [], color="none", label="A anterior, P posterior, S superior, I inferior"),
    ]


# ----------------------------------------------------------------------------------- table
def level_table(stats: pd.DataFrame, notes: LevelNotes | None = None) -> pd.DataFrame:
    """One row per level: PDFF and R2* mean +- SD, ROI volume, flags, label, used in summaries."""
    rows = []
    for level, part in stats.groupby("level", sort=False):
        by_map = {m: r for m, r in zip(part["map"], part.to_dict("records"), strict=True)}
        first = part.iloc[0]

        def fmt(kind: str, by_map: Mapping[str, Any] = by_map) -> str:
            r = by_map.get(kind)
            if r is None or not np.isfinite(r["mean"]):
                return "-"
            return f"{r['mean']:.1f} ± {r['sd']:.1f}"

        label = "-"
        if notes is not None and level in notes.confidence:
            conf = notes.confidence[level]
            label = f"{conf:.2f}" + (" uncertain" if notes.is_uncertain(level) else "")
        rows.append(
            {
                "Level": level,
                "PDFF %\nmean ± SD": fmt("pdff"),
                "R2* 1/s\nmean ± SD": fmt("r2s"),
                "ROI\nmL": f"{first['volume_ml']:.1f}",
                "Flags": str(first["flags"]).replace(";", ", ").replace("_", " ") or "-",
                "Label\nconfidence": label,
                "In\nsummaries": "yes" if bool(first["included"]) else "no",
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------- the page
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
    roiset: RoiSet = rois.roiset if hasattr(rois, "roiset") else rois
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
    _draw_images_and_levels(fig, study, roiset, stats, summary, notes, provenance)
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
    x_text = 0.45 if risk.is_range else 0.30
    width = 78 if risk.is_range else 92
    lines = []
    for i, line in enumerate(risk_lines(risk)):
        lines.append(_wrap(line, width if i else width - 8))
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
        ax_text.text(0.005, i, _wrap(what, 66), fontsize=6.8, va="center", linespacing=1.1)
        ax_text.text(
            0.995,
            i,
            _wrap(does, 26),
            fontsize=6.8,
            va="center",
            ha="right",
            color=_direction_colour(c),
            fontweight="bold",
            linespacing=1.1,
        )
        if c.log_odds_range is not None:
            lo, hi = c.log_odds_range
            ax_bar.barh(i, hi - lo, left=lo, color="white", edgecolor=NEUTRAL, hatch="////")
        elif not c.no_effect:
            ax_bar.barh(i, c.log_odds, color=_direction_colour(c), height=0.6)
    ax_bar.axvline(0, color="black", linewidth=0.6)
    ax_bar.set_yticks([])
    ax_bar.tick_params(labelsize=6)
    ax_bar.set_xlabel("log-odds (> 0 raises risk)", fontsize=6.5, labelpad=1)


def _draw_images_and_levels(
    fig: Figure,
    study: Study,
    roiset: RoiSet,
    stats: pd.DataFrame,
    summary: PatientSummary,
    notes: LevelNotes,
    provenance: Mapping[str, Any],
) -> None:
    y0, y1 = 0.205, 0.515
    ax = fig.add_axes([0.03, y0, 0.21, y1 - y0])
    draw_map(ax, study, "pdff", roiset, "PDFF (%)", 100.0, notes)
    if "r2s" in study.maps:
        vmax = _r2s_window_max(study, roiset)
        ax = fig.add_axes([0.25, y0, 0.21, y1 - y0])
        draw_map(ax, study, "r2s", roiset, "R2* (1/s)", vmax, notes)
    fig.legend(
        handles=_legend_handles(),
        loc="upper left",
        bbox_to_anchor=(0.03, y0 - 0.022),
        fontsize=6,
        frameon=False,
        handlelength=1.5,
        borderaxespad=0,
    )
    fig.text(0.04, 0.532, "Sagittal images through the ROIs", fontsize=9.5, fontweight="bold")
    fig.text(0.50, 0.532, "Vertebral levels", fontsize=9.5, fontweight="bold")

    y_text = 0.522
    if notes.uncertain or provenance.get("labels"):
        reasons = "; ".join(notes.reasons) or "see the ROI notes"
        warn = _wrap(f"LEVEL LABELS UNCERTAIN: check them before use ({reasons})", 78)
        fig.text(0.50, y_text, warn, fontsize=7, color=WARNING_RED, fontweight="bold", va="top")
        y_text -= 0.012 * (warn.count("\n") + 1) + 0.006
    table = level_table(stats, notes)
    units = len(table) + 2  # the header row is two lines high
    height = min(0.0165 * units, y_text - 0.27)
    ax_t = fig.add_axes([0.50, y_text - height, 0.47, height])
    ax_t.axis("off")
    cells = [[_wrap(str(v), 18) for v in row] for row in table.to_numpy()]
    tbl = ax_t.table(cellText=cells, colLabels=list(table.columns), loc="upper center")
    tbl.auto_set_font_size(False)
    tbl.set_fontsize(6.3)
    tbl.auto_set_column_width(list(range(len(table.columns))))
    for (row, _col), cell in tbl.get_celld().items():
        cell.set_height((2.0 if row == 0 else 1.0) / units)
        cell.get_text().set_horizontalalignment("center")
        if row > 0 and table.iloc[row - 1]["In\nsummaries"] == "no":
            cell.set_facecolor("#eeeeee")
    y_sum = y_text - height - 0.012
    lines = ["Summaries (levels averaged):"]
    lines += [_wrap(summary_line(summary, f), 80) for f in SUMMARY_NAMES]
    lines += [_wrap(f"Note: {n}", 80) for n in summary.notes]
    lines += [_wrap(f"ROI note: {n}", 80) for n in notes.roi_notes]
    fig.text(0.50, y_sum, "\n".join(lines), fontsize=6.8, va="top", linespacing=1.3)


def _draw_footer(fig: Figure, risk: RiskResult | None, provenance: Mapping[str, Any]) -> None:
    fig.text(0.04, 0.118, "Caveats and intended use", fontsize=8.5, fontweight="bold")
    fig.text(0.04, 0.112, footer_text(provenance, risk), fontsize=5.8, va="top", linespacing=1.25)


#: Width (characters) of the footer's wrapped lines and how many lines it holds.
FOOTER_WIDTH = 160
FOOTER_LINES = 13


def footer_text(provenance: Mapping[str, Any], risk: RiskResult | None) -> str:
    """Warnings, intended use, caveats, then provenance, wrapped; what does not fit is counted.

    Warnings come first and are never dropped; any line that does not fit is counted with a
    pointer to report.html, never cut silently.
    """
    items: list[str] = []
    if risk is not None:
        items += [f"Warning: {w}" for w in risk.warnings if w != risk.model_warning]
        if risk.intended_use:
            items.append("Intended use: " + risk.intended_use.replace("\n\n", " "))
        if risk.caveats:
            items.append("Caveats: " + " ".join(risk.caveats))
    prov = [f"{k}: {v}" for k, v in provenance.items() if not isinstance(v, dict | list)]
    items.append("Provenance: " + "; ".join(prov))
    lines: list[str] = []
    for item in items:
        lines += textwrap.wrap(item, FOOTER_WIDTH, subsequent_indent="  ", break_on_hyphens=False)
    if len(lines) > FOOTER_LINES:
        hidden = len(lines) - (FOOTER_LINES - 1)
        lines = [*lines[: FOOTER_LINES - 1], f"... {hidden} more line(s): see report.html"]
    return "\n".join(lines)


def _html_table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, escape=True, border=0, classes="levels")


def render_report(
    out_dir: str | Path,
    study: Study,
    roiset: Any,
    stats: pd.DataFrame,
    summary: PatientSummary,
    risk: RiskResult | None,
    provenance: Mapping[str, Any],
    patient_label: str = "synthetic",
    stem: str = "report",
) -> ReportFiles:
    """Write ``report.pdf``, ``report.png`` and ``report.html`` into ``out_dir``.

    ``roiset``: the RoiResult (label confidence and uncertainty shown) or a bare RoiSet.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = build_figure(study, roiset, stats, summary, risk, provenance, patient_label)
    pdf, png, page = out / f"{stem}.pdf", out / f"{stem}.png", out / f"{stem}.html"
    png_bytes = png_from_pixels(rasterize(fig))
    png.write_bytes(png_bytes)
    pdf.write_bytes(pdf_from_png(png_bytes))
    notes = level_notes(roiset)
    page.write_text(report_html(png_bytes, stats, summary, risk, provenance, patient_label, notes))
    return ReportFiles(pdf, png, page)


def rasterize(fig: Figure, dpi: float = REPORT_DPI) -> np.ndarray:
    """The page drawn once with Agg: an RGB uint8 array (rows top to bottom) at ``dpi``.

    The Agg canvas is attached to this figure only: no global backend is chosen or needed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def png_from_pixels(pixels: np.ndarray) -> bytes:
    """PNG bytes of an RGB page raster (lossless)."""
    from PIL import Image  # Pillow comes with matplotlib

    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="png", compress_level=6)
    return buf.getvalue()


def pdf_from_png(png: bytes, dpi: float = REPORT_DPI) -> bytes:
    """A one-page PDF showing an 8-bit RGB PNG at its physical size (``dpi``), losslessly.

    The PNG's compressed data (zlib over rows with PNG filters) is what a PDF image with
    ``/FlateDecode`` and ``/Predictor 15`` holds, so it is copied, not decoded and re-encoded.
    """
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if (depth, colour, interlace) != (8, 2, 0):
        raise ValueError("pdf_from_png takes 8-bit RGB PNGs without interlacing")
    data = b"".join(idat)
    w_pt, h_pt = width * 72 / dpi, height * 72 / dpi
    draw = f"q {w_pt:.2f} 0 0 {h_pt:.2f} 0 0 cm /Im1 Do Q".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w_pt:.2f} {h_pt:.2f}] "
        f"/Resources << /XObject << /Im1 4 0 R >> >> /Contents 5 0 R >>".encode(),
        f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} "
        f"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode "
        f"/DecodeParms << /Predictor 15 /Colors 3 /BitsPerComponent 8 /Columns {width} >> "
        f"/Length {len(data)} >>\nstream\n".encode()
        + data
        + b"\nendstream",
        f"<< /Length {len(draw)} >>\nstream\n".encode() + draw + b"\nendstream",
        b"<< /Title (RefractureRisk report) /Producer (RefractureRisk) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def report_html(
    png: bytes,
    stats: pd.DataFrame,
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
        "img{max-width:100%}pre{white-space:pre-wrap;overflow-wrap:anywhere}</style>",
        "</head><body>",
        f"<h1>RefractureRisk report: patient {esc(patient_label)}</h1>",
        "<h2>Risk</h2>",
    ]
    if risk is None:
        parts.append("<p>No risk computed (measurements only).</p>")
    else:
        if risk.model_warning:
            parts.append(f"<p class='warn'>{esc(risk.model_warning.capitalize())}.</p>")
        label = f" <b>({esc(RANGE_LABEL)})</b>" if risk.is_range else ""
        lines = risk_lines(risk)
        parts += [
            f"<p><span class='risk'>{esc(risk_headline(risk))}</span>{label}</p>",
            "<p>" + "<br>".join(esc(line) for line in lines) + "</p>",
        ]
    parts.append("<h2>Factors</h2>")
    if risk is not None:
        parts.append(
            "<p>Effect of each input relative to the model's reference value; log-odds &gt; 0 "
            "raises the risk.</p><table class='levels'><tr><th>factor</th><th>effect</th>"
            "<th>log-odds</th></tr>"
        )
        for (factor, does), c in zip(factor_rows(risk, summary), risk.contributions, strict=True):
            css = {RAISES: "raises", LOWERS: "lowers"}.get(_direction_colour(c), "neutral")
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
    parts += [
        "<h2>Images</h2>",
        "<p>The printable page (PDF/PNG) with the sagittal PDFF and R2* images; A anterior, "
        "P posterior, S superior, I inferior.</p>",
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
    if risk is not None:
        use = "".join(f"<p>{esc(p)}</p>" for p in risk.intended_use.split("\n\n") if p)
        parts.append(use or "<p>(no intended use given in the model file)</p>")
        parts.append("<ul>" + "".join(f"<li>{esc(c)}</li>" for c in risk.caveats) + "</ul>")
    else:
        parts.append("<p>Measurements only; no risk model was applied.</p>")
    parts += [
        "<h2>Provenance</h2>",
        "<pre>" + esc("\n".join(f"{k}: {v}" for k, v in _flatten(provenance))) + "</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Sequence[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.extend(_flatten(v, key + "."))
        else:
            out.append((key, v))
    return out
