"""The report's words: the risk headline, each factor in clinical words, the summaries, the
per-level table and the footer; shared by the page (:mod:`.figure`) and the HTML
(:mod:`.html_page`).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from RefractureRiskLib.core.levels import level_index
from RefractureRiskLib.model.scoring import (
    Contribution,
    RiskResult,
    baseline_text,
    direction_text,
    factor_text,
)
from RefractureRiskLib.stats.records import as_records
from RefractureRiskLib.stats.summary import PatientSummary

WARNING_RED = "#b00020"
RAISES, LOWERS, NEUTRAL = "#c62828", "#1565c0", "#757575"
#: A level label whose confidence is below this is marked uncertain ("?") on the page.
UNCERTAIN_CONFIDENCE = 0.75


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


def wrap_text(text: str, width: int) -> str:
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
                f"{lv} excluded: {why.removeprefix('flagged: ').replace('_', ' ')}"
                for lv, why in left_out
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


def direction_colour(c: Contribution) -> str:
    if c.no_effect or c.log_odds_range is not None or c.log_odds == 0:
        return NEUTRAL
    return RAISES if c.log_odds > 0 else LOWERS


#: The per-level table's column headings.
LEVEL_COLUMNS = (
    "Level",
    "PDFF %\nmean ± SD",
    "R2* 1/s\nmean ± SD",
    "ROI\nvol. mL",
    "Flags",
    "Label\nconfidence",
    "In\nsummaries",
)
#: The heading of the column saying whether a level is in the summaries.
IN_SUMMARIES = LEVEL_COLUMNS[-1]


@dataclass(frozen=True)
class LevelTable:
    """The per-level table of the page and the HTML: column headings and each level's cells
    (text), one row per level in table order. No levels: no columns and no rows."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[str]:
        """The cells of the column headed ``name``, top to bottom."""
        j = self.columns.index(name)
        return [row[j] for row in self.rows]


def level_table(stats: Any, notes: LevelNotes | None = None) -> LevelTable:
    """One row per level: PDFF and R2* mean +- SD, ROI volume, flags, label, used in summaries.

    ``stats``: the statistics table, a DataFrame or records (``stats/records.py``).
    """
    by_level: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in as_records(stats):  # one pass, levels in their order of appearance
        by_level.setdefault(r["level"], {})[r["map"]] = r
    rows = []
    for level, by_map in by_level.items():
        first = next(iter(by_map.values()))

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
            (
                str(level),
                fmt("pdff"),
                fmt("r2s"),
                f"{first['volume_ml']:.1f}",
                str(first["flags"]).replace(";", ", ").replace("_", " ") or "-",
                label,
                "yes" if bool(first["included"]) else "no",
            )
        )
    return LevelTable(LEVEL_COLUMNS if rows else (), tuple(rows))


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
