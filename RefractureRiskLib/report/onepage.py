"""The one-page patient report (PDF, PNG and HTML) for radiologists and tumour boards.

One A4 page: the risk as a large number with its 95% interval, horizon, model name and validation
status (and the demonstration-model warning where it applies), sagittal PDFF and R2* images with
the coloured, labelled ROIs, the per-level table with flags, the patient summaries, the per-term
contributions, and the provenance (software version, series UIDs, ROI method, reader).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from RefractureRiskLib import __version__
from RefractureRiskLib.core.roiset import RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.io.segmentation import LEVEL_COLORS
from RefractureRiskLib.model.scoring import Contribution, RiskResult, format_value
from RefractureRiskLib.report.reformat import sagittal_plane
from RefractureRiskLib.stats.summary import PatientSummary

A4_PORTRAIT_IN = (8.27, 11.69)
WARNING_RED = "#b00020"


@dataclass(frozen=True)
class ReportFiles:
    """Paths of the written report."""

    pdf: Path
    png: Path
    html: Path


def _level_colour(level: str) -> tuple[float, float, float]:
    return LEVEL_COLORS.get(level, (1.0, 1.0, 1.0))


def _roi_centre_x(roiset: RoiSet) -> float:
    """RAS x (mm) of the ROI voxels' centroid: the mid-sagittal plane through the ROIs."""
    idx = np.argwhere(roiset.labelmap.array > 0)
    if idx.size == 0:
        nk, nj, ni = roiset.labelmap.shape
        return float(roiset.labelmap.ijk_to_ras_points([[ni / 2, nj / 2, nk / 2]])[0, 0])
    return float(roiset.labelmap.ijk_to_ras_points(idx[:, ::-1].mean(axis=0))[0, 0])


def _roi_bounds_mm(roiset: RoiSet, margin_mm: float) -> tuple[float, float, float, float] | None:
    """(y_min, y_max, z_min, z_max) RAS of the ROIs plus a margin: the figure's field of view."""
    idx = np.argwhere(roiset.labelmap.array > 0)
    if idx.size == 0:
        return None
    ras = roiset.labelmap.ijk_to_ras_points(idx[:, ::-1])
    lo, hi = ras.min(axis=0), ras.max(axis=0)
    return (lo[1] - margin_mm, hi[1] + margin_mm, lo[2] - margin_mm, hi[2] + margin_mm)


def _draw_map(ax: Any, study: Study, kind: str, roiset: RoiSet, title: str, vmax: float) -> None:
    x = _roi_centre_x(roiset)
    bounds = _roi_bounds_mm(roiset, margin_mm=35.0)
    plane = sagittal_plane(study.maps[kind], x, bounds_mm=bounds)
    labels = sagittal_plane(roiset.labelmap, x, labels=True, bounds_mm=bounds)
    img = ax.imshow(plane.image, cmap="gray", vmin=0, vmax=vmax, extent=plane.extent_mm)
    overlay = np.zeros((*labels.image.shape, 4))
    left, right, bottom, top = plane.extent_mm
    for lv in roiset.levels:
        mask = labels.image == lv.label
        if not mask.any():
            continue
        colour = _level_colour(lv.level)
        overlay[mask] = (*colour, 0.55 if lv.included else 0.25)
        rows, cols = np.nonzero(mask)
        cx = left + (cols.max() + 3) * (right - left) / mask.shape[1]
        cy = top - rows.mean() * (top - bottom) / mask.shape[0]
        name = lv.level if lv.included else f"{lv.level} (excl.)"
        ax.text(
            cx,
            cy,
            name,
            color=colour,
            fontsize=7,
            fontweight="bold",
            va="center",
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "edgecolor": "none"},
        )
    ax.imshow(overlay, extent=plane.extent_mm, interpolation="nearest")
    ax.set_title(f"{title}, sagittal through the ROIs", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.figure.colorbar(img, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)


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


#: Lines of text the page footer holds.
FOOTER_LINES = 9


def _level_table(stats: pd.DataFrame) -> pd.DataFrame:
    """One row per level: PDFF and R2* mean +- SD, ROI volume, flags, used in summaries."""
    rows = []
    for level, part in stats.groupby("level", sort=False):
        by_map = {m: r for m, r in zip(part["map"], part.to_dict("records"), strict=True)}
        first = part.iloc[0]

        def fmt(kind: str, by_map: Mapping[str, Any] = by_map) -> str:
            r = by_map.get(kind)
            if r is None or not np.isfinite(r["mean"]):
                return "-"
            return f"{r['mean']:.1f} ± {r['sd']:.1f}"

        rows.append(
            {
                "Level": level,
                "PDFF (%) mean ± SD": fmt("pdff"),
                "R2* (1/s) mean ± SD": fmt("r2s"),
                "ROI (mL)": f"{first['volume_ml']:.2f}",
                "Flags": str(first["flags"]).replace(";", ", ").replace("_", " ") or "-",
                "In summary": "yes" if bool(first["included"]) else "no",
            }
        )
    return pd.DataFrame(rows)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _contribution_label(c: Contribution) -> str:
    """Bar label with the input value it came from, so the page shows what was scored."""
    return f"{_short(c.label or c.term, 26)} [{_short(c.input, 16)} = {format_value(c.value)}]"


def _fmt_summary(value: float | None, unit: str) -> str:
    """A patient summary for the page; "n/a" (not "nan%") when too few levels were eligible."""
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.1f}{unit}"


def _fmt_pct(p: float) -> str:
    return f"{100 * p:.1f}%"


def _risk_lines(risk: RiskResult) -> tuple[str, str, str]:
    interval = (
        f"95% interval {_fmt_pct(risk.interval[0])} to {_fmt_pct(risk.interval[1])}"
        if risk.interval
        else "95% interval: not available for this model"
    )
    status = "validated" if risk.validated else "NOT validated"
    years = risk.horizon_days / 365.25
    horizon = (
        f"{years:.0f}-year" if abs(years - round(years)) < 0.05 else f"{risk.horizon_days}-day"
    )
    return (
        f"{horizon} risk of a new vertebral fracture",
        interval,
        f"Model: {risk.model_name} ({status})",
    )


def build_figure(
    study: Study,
    roiset: RoiSet,
    stats: pd.DataFrame,
    summary: PatientSummary,
    risk: RiskResult | None,
    provenance: Mapping[str, Any],
    patient_label: str,
) -> Figure:
    """The report page as a matplotlib Figure (A4 portrait)."""
    # A bare Figure (no pyplot): no GUI backend, nothing global to close.
    fig = Figure(figsize=A4_PORTRAIT_IN, dpi=100)
    # Fixed page regions (figure fractions, A4 portrait): header, images, risk, table, footer.
    layout = {
        "pdff": [0.05, 0.47, 0.42, 0.41],
        "r2s": [0.53, 0.47, 0.42, 0.41],
        "risk": [0.05, 0.29, 0.36, 0.15],
        "contrib": [0.68, 0.325, 0.28, 0.12],
        "table": [0.05, 0.09, 0.90, 0.17],
        "footer": [0.05, 0.005, 0.90, 0.08],
    }
    fig.text(
        0.05,
        0.975,
        "RefractureRisk: new vertebral fracture after PVP/PKP",
        fontsize=14,
        fontweight="bold",
        va="top",
    )
    fig.text(
        0.05,
        0.952,
        f"Patient {patient_label}   ·   {study.provenance.vendor} "
        f"{study.provenance.field_strength_t or '?'} T   ·   generated by RefractureRisk "
        f"{__version__}",
        fontsize=8,
        va="top",
        color="#444444",
    )
    if risk is not None and not risk.validated:
        fig.text(
            0.5,
            0.928,
            risk.warnings[0].upper().replace(", ", " · "),  # the model's own warning text
            fontsize=11,
            fontweight="bold",
            color="white",
            ha="center",
            va="top",
            bbox={"facecolor": WARNING_RED, "edgecolor": "none", "pad": 4},
        )

    labels_note = provenance.get("labels")
    if labels_note:
        # Wrong level labels make every number on the page refer to the wrong vertebra.
        fig.text(
            0.05,
            0.458,
            f"LEVEL LABELS {labels_note}",
            fontsize=10,
            fontweight="bold",
            color=WARNING_RED,
            va="center",
        )
    _draw_map(fig.add_axes(layout["pdff"]), study, "pdff", roiset, "PDFF (%)", 100.0)
    if "r2s" in study.maps:
        r2s_max = _r2s_window_max(study, roiset)
        _draw_map(fig.add_axes(layout["r2s"]), study, "r2s", roiset, "R2* (1/s)", r2s_max)

    ax_risk = fig.add_axes(layout["risk"])
    ax_risk.axis("off")
    if risk is None:
        ax_risk.text(0, 0.6, "No risk computed", fontsize=14)
    else:
        what, interval, model = _risk_lines(risk)
        colour = WARNING_RED if not risk.validated else "black"
        ax_risk.text(
            0.0,
            0.78,
            _fmt_pct(risk.probability),
            fontsize=38,
            fontweight="bold",
            color=colour,
            va="center",
        )
        ax_risk.text(0.0, 0.45, what, fontsize=9, va="center")
        ax_risk.text(0.0, 0.30, interval, fontsize=8, va="center")
        ax_risk.text(0.0, 0.03, model, fontsize=7, va="center", color="#444444", wrap=True)
        n_input_warnings = len(risk.warnings) - (0 if risk.validated else 1)
        if n_input_warnings > 0:
            ax_risk.text(
                0.0,
                0.16,
                f"{n_input_warnings} input warning(s) (missing or out of range): see below",
                fontsize=8,
                fontweight="bold",
                va="center",
                color=WARNING_RED,
            )

    ax_c = fig.add_axes(layout["contrib"])
    if risk is not None and risk.contributions:
        contribs = list(risk.contributions)[::-1]
        vals = [c.log_odds for c in contribs]
        ax_c.barh(
            [_contribution_label(c) for c in contribs],
            vals,
            color=["#c62828" if v > 0 else "#1565c0" for v in vals],
        )
        ax_c.axvline(0, color="black", linewidth=0.6)
        ax_c.set_xlabel("contribution (log-odds)", fontsize=7)
        ax_c.tick_params(labelsize=6)
        ax_c.set_title("Per-term contributions", fontsize=9)
    else:
        ax_c.axis("off")

    ax_t = fig.add_axes(layout["table"])
    ax_t.axis("off")
    table = _level_table(stats)
    tbl = ax_t.table(
        cellText=table.to_numpy(),
        colLabels=list(table.columns),
        loc="upper center",
        cellLoc="center",
    )
    tbl.auto_set_font_size(False)
    tbl.set_fontsize(7)
    tbl.auto_set_column_width(list(range(len(table.columns))))
    tbl.scale(1.0, 1.15)
    for (row, _col), cell in tbl.get_celld().items():
        if row > 0 and table.iloc[row - 1]["In summary"] == "no":
            cell.set_facecolor("#eeeeee")
    summ = (
        f"PDFF global L1-L4: {_fmt_summary(summary.pdff_global_L1L4_pct, '%')}   ·   "
        f"R2* global L1-L4: {_fmt_summary(summary.r2s_global_L1L4_per_s, ' 1/s')}   ·   "
        f"PDFF adjacent: {_fmt_summary(summary.pdff_adjacent_pct, '%')}   ·   "
        f"R2* adjacent: {_fmt_summary(summary.r2s_adjacent_per_s, ' 1/s')}"
    )
    fig.text(0.05, 0.268, summ, fontsize=8)

    ax_p = fig.add_axes(layout["footer"])
    ax_p.axis("off")
    ax_p.text(
        0,
        1.0,
        provenance_text(provenance, risk),
        fontsize=6,
        va="top",
        family="monospace",
        wrap=True,
    )
    return fig


def provenance_text(provenance: Mapping[str, Any], risk: RiskResult | None) -> str:
    """Short provenance lines for the page footer, then the risk warnings.

    At most ``FOOTER_LINES`` lines; warnings (missing inputs, extrapolation) take precedence
    over provenance lines, and any warning that does not fit is counted, never dropped silently.
    """
    lines = [f"{k}: {v}" for k, v in provenance.items() if not isinstance(v, (dict, list))]
    warnings = [f"warning: {w}" for w in risk.warnings] if risk is not None else []
    keep = max(FOOTER_LINES - len(warnings), FOOTER_LINES // 2)
    lines = lines[:keep]
    room = FOOTER_LINES - len(lines)
    if len(warnings) > room:
        hidden = len(warnings) - (room - 1)
        more = f"... and {hidden} more warning(s): see report.html or results.json"
        warnings = [*warnings[: room - 1], more]
    return "\n".join(line[:150] for line in lines + warnings)


def _html_table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, escape=True, border=0, classes="levels")


def render_report(
    out_dir: str | Path,
    study: Study,
    roiset: RoiSet,
    stats: pd.DataFrame,
    summary: PatientSummary,
    risk: RiskResult | None,
    provenance: Mapping[str, Any],
    patient_label: str = "synthetic",
    stem: str = "report",
) -> ReportFiles:
    """Write ``report.pdf``, ``report.png`` and ``report.html`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = build_figure(study, roiset, stats, summary, risk, provenance, patient_label)
    pdf, png, page = out / f"{stem}.pdf", out / f"{stem}.png", out / f"{stem}.html"
    fig.savefig(pdf)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)  # rendered once: the file and the HTML share it
    png.write_bytes(buf.getvalue())
    page.write_text(_html(buf.getvalue(), stats, summary, risk, provenance, patient_label))
    return ReportFiles(pdf, png, page)


def _html(
    png: bytes,
    stats: pd.DataFrame,
    summary: PatientSummary,
    risk: RiskResult | None,
    provenance: Mapping[str, Any],
    patient_label: str,
) -> str:
    esc = html.escape
    parts: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>RefractureRisk report {esc(patient_label)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        ".warn{background:#b00020;color:#fff;padding:.5em;font-weight:bold}"
        "table.levels{border-collapse:collapse}table.levels td,table.levels th"
        "{border:1px solid #ccc;padding:2px 6px}.risk{font-size:3em;font-weight:bold}</style>",
        "</head><body>",
        f"<h1>RefractureRisk report: patient {esc(patient_label)}</h1>",
    ]
    if risk is not None:
        if not risk.validated:
            parts.append(f"<p class='warn'>{esc(risk.warnings[0].capitalize())}.</p>")
        what, interval, model = _risk_lines(risk)
        parts += [
            f"<p><span class='risk'>{_fmt_pct(risk.probability)}</span> {esc(what)}</p>",
            f"<p>{esc(interval)}<br>{esc(model)}</p>",
        ]
        contrib = pd.DataFrame(
            [
                {
                    "term": c.label or c.term,
                    "value": format_value(c.value),
                    "log-odds": round(c.log_odds, 3),
                    "points": round(c.points, 1),
                }
                for c in risk.contributions
            ]
        )
        parts += ["<h2>Per-term contributions</h2>", _html_table(contrib)]
        if risk.warnings:
            parts.append("<ul>" + "".join(f"<li>{esc(w)}</li>" for w in risk.warnings) + "</ul>")
    if provenance.get("labels"):
        parts.append(f"<p class='warn'>Level labels {esc(str(provenance['labels']))}</p>")
    parts += [
        "<h2>Page</h2>",
        f"<img alt='report page' style='width:100%' src='data:image/png;base64,"
        f"{base64.b64encode(png).decode()}'>",
        "<h2>Levels</h2>",
        _html_table(_level_table(stats)),
        "<h2>Summaries</h2>",
        _html_table(pd.DataFrame([_summary_record(summary)])),
        "<h2>Provenance</h2>",
        "<pre>" + esc("\n".join(f"{k}: {v}" for k, v in _flatten(provenance))) + "</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _summary_record(summary: PatientSummary) -> dict[str, object]:
    """The summaries for a table: values to 0.1 (as measured), "n/a" where not computable."""
    record = summary.as_record()
    return {
        k: ((f"{v:.1f}" if np.isfinite(v) else "n/a") if isinstance(v, float | np.floating) else v)
        for k, v in record.items()
    }


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Sequence[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.extend(_flatten(v, key + "."))
        else:
            out.append((key, v))
    return out
