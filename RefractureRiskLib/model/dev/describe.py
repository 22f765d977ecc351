"""Describing a cohort: "Table 1", marker correlations and marker-outcome odds ratios.

Descriptive only. Nothing here feeds the risk model: model terms are pre-specified, never
selected by these univariable or age/sex-adjusted associations (docs/architecture.md, "Risk
model": no univariable screening). Every output says so (:data:`DESCRIPTIVE_NOTE`).

* :func:`table_one` (in :mod:`.table_one`): baseline characteristics overall and by the 1-year
  outcome (patients whose 1-year outcome is unknown appear in the overall column only).
  Continuous variables as mean (SD) with Welch's t-test, or median [IQR] with the Mann-Whitney U
  test when skewed (|skewness| > 1 overall) or counts; categorical variables as n (%) with the
  chi-square test, or Fisher's exact test for a 2x2 table with an expected count below 5.
  Missing counts per variable.
* :func:`marker_correlations` (in :mod:`.markers`, as are the odds ratios and scatter plots):
  PDFF and R2* (global L1-L4) against DXA T-score, vertebral body volume, age and sex
  (female = 1): Pearson r with a Fisher-z 95% CI (SE 1/sqrt(n-3)), Spearman rho with a Fisher-z
  CI using the Bonett-Wright variance (1 + rho^2/2)/(n-3), and the partial Pearson correlation
  adjusted for age and sex (and for field strength when R2* comes from both 1.5 and 3 T), CI
  with SE 1/sqrt(n-3-k) for k covariates.
* :func:`marker_odds_ratios`: each imaging marker against the 1-year outcome by logistic
  regression (statsmodels Logit), crude and adjusted for age and sex (and field strength for
  R2*), odds ratio per 10 units (% for fat fractions, 1/s for R2*) with Wald 95% CI.
* :func:`describe_cohort` writes all of it (CSV, HTML, PNG scatter plots) to a folder.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from RefractureRiskLib.model.dev.markers import (
    marker_correlations,
    marker_odds_ratios,
    partial_correlation,
    scatter_plots,
)
from RefractureRiskLib.model.dev.table_one import table_one

__all__ = [
    "DESCRIPTIVE_NOTE",
    "DescribeResult",
    "describe_cohort",
    "marker_correlations",
    "marker_odds_ratios",
    "partial_correlation",
    "scatter_plots",
    "table_one",
]

DESCRIPTIVE_NOTE = (
    "Descriptive only: these summaries and associations are not used to select model terms "
    "(the model's terms are pre-specified)."
)


@dataclass(frozen=True)
class DescribeResult:
    """Tables of :func:`describe_cohort` and the files written (paths in ``files``)."""

    table1: pd.DataFrame
    correlations: pd.DataFrame
    odds_ratios: pd.DataFrame
    files: tuple[Path, ...]


def describe_cohort(df: pd.DataFrame, out_dir: str | Path) -> DescribeResult:
    """Write Table 1, correlations, odds ratios (CSV + one HTML page) and scatter plots.

    Files in ``out_dir`` (created): table1.csv, table1.html, correlations.csv,
    odds_ratios.csv, scatter_<marker>.png, describe.html (everything, with the note that these
    results are descriptive and not used to select model terms) and README.txt (the note).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t1 = table_one(df)
    corr = marker_correlations(df)
    ors = marker_odds_ratios(df)
    files = [
        out / "table1.csv",
        out / "table1.html",
        out / "correlations.csv",
        out / "odds_ratios.csv",
    ]
    t1.to_csv(files[0], index=False)
    files[1].write_text(_page("Table 1: baseline characteristics", [_t1_html(t1)]), "utf-8")
    corr.to_csv(files[2], index=False)
    ors.to_csv(files[3], index=False)
    pngs = scatter_plots(df, out)
    files += pngs
    sections = [
        "<h2>Table 1: baseline characteristics by 1-year outcome</h2>",
        _t1_html(t1),
        "<h2>Correlations of marrow PDFF and R2* (global L1-L4)</h2>",
        _num_html(corr),
        *[f'<p><img src="{html.escape(p.name)}" alt="{html.escape(p.stem)}"></p>' for p in pngs],
        "<h2>Imaging markers and the 1-year outcome (logistic regression)</h2>",
        _num_html(ors),
    ]
    page = out / "describe.html"
    page.write_text(_page("Cohort description", sections), "utf-8")
    readme = out / "README.txt"
    readme.write_text(
        "Cohort description written by refracture-risk describe.\n" + DESCRIPTIVE_NOTE + "\n",
        "utf-8",
    )
    files += [page, readme]
    return DescribeResult(t1, corr, ors, tuple(files))


def _t1_html(t1: pd.DataFrame) -> str:
    return t1.rename(
        columns={
            "no_refracture_1y": "no re-fracture in 1 year",
            "refracture_1y": "re-fracture in 1 year",
        }
    ).to_html(index=False, escape=True)


def _num_html(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p>Not enough data.</p>"
    return table.to_html(index=False, escape=True, float_format=lambda v: f"{v:.3g}", na_rep="")


def _page(title: str, sections: list[str]) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:2px 6px;font-size:90%}"
        ".note{background:#fff3cd;padding:0.5em;border:1px solid #e0c36b}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='note'>{html.escape(DESCRIPTIVE_NOTE)}</p>"
        + "\n".join(sections)
        + "</body></html>\n"
    )
