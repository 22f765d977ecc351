"""Report pages shared by the training and the external validation reports: Markdown and HTML
tables, the notes section, the two pages written together, and the calibration and decision-curve
figures (bare matplotlib Figures: no pyplot, no global backend).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


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
