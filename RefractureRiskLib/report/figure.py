"""The report page drawn as one matplotlib Figure (no pyplot, nothing global): the risk, the
factors, sagittal PDFF and R2* reformats with ROI outlines and level labels, the per-level table,
the footer. Every text is wrapped to fit (``Testing/test_report_page.py`` checks the extents).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from RefractureRiskLib import __version__
from RefractureRiskLib.core.levels import LEVEL_COLORS
from RefractureRiskLib.core.roiset import RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.model.scoring import (
    RANGE_LABEL,
    RiskResult,
)
from RefractureRiskLib.report.reformat import SagittalPlane, sagittal_plane
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
    _orientation_and_scale(ax, plane)
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    cbar = ax.figure.colorbar(img, ax=ax, orientation="horizontal", fraction=0.035, pad=0.02)
    cbar.ax.tick_params(labelsize=6)
    return plane


def _orientation_and_scale(ax: Any, plane: SagittalPlane) -> None:
    """Orientation letters on the four sides and a scale bar, readable on grey and white."""
    left, right, bottom, top = plane.extent_mm
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
        lines.append(wrap_text(line, width if i else width - 8))
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
        warn = wrap_text(f"LEVEL LABELS UNCERTAIN: check them before use ({reasons})", 78)
        fig.text(0.50, y_text, warn, fontsize=7, color=WARNING_RED, fontweight="bold", va="top")
        y_text -= 0.012 * (warn.count("\n") + 1) + 0.006
    table = level_table(stats, notes)
    units = len(table) + 2  # the header row is two lines high
    height = min(0.0165 * units, y_text - 0.27)
    ax_t = fig.add_axes([0.50, y_text - height, 0.47, height])
    ax_t.axis("off")
    cells = [[wrap_text(str(v), 18) for v in row] for row in table.to_numpy()]
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
    lines += [wrap_text(summary_line(summary, f), 80) for f in SUMMARY_NAMES]
    lines += [wrap_text(f"Note: {n}", 80) for n in summary.notes]
    lines += [wrap_text(f"ROI note: {n}", 80) for n in notes.roi_notes]
    fig.text(0.50, y_sum, "\n".join(lines), fontsize=6.8, va="top", linespacing=1.3)


def _draw_footer(fig: Figure, risk: RiskResult | None, provenance: Mapping[str, Any]) -> None:
    fig.text(0.04, 0.118, "Caveats and intended use", fontsize=8.5, fontweight="bold")
    fig.text(0.04, 0.112, footer_text(provenance, risk), fontsize=5.8, va="top", linespacing=1.25)
