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

Every text is wrapped to fit, never cut: the page records each text it draws with its extent and
the box it must stay inside, and ``Testing/test_report_layout.py`` checks that record (inside
the page, its panel and its table cell; overlapping no other text) and that every section is
there.

The page is drawn once with Pillow at :data:`REPORT_DPI` (no matplotlib: the fonts are the DejaVu
files matplotlib ships, found without importing it; see :mod:`.fonts`) and encoded once as PNG;
the HTML embeds that PNG and the PDF page carries its compressed data unchanged, so the three
always show the same pixels and a report costs one drawing pass and one encoding, not one per
format. The PDF is therefore an image of the page (text not selectable); the HTML carries the
text.

Where each part lives: the words in :mod:`.text`, the page in :mod:`.figure` (its sagittal panels
and their legend in :mod:`.panels`, the factor bars in :mod:`.bars`, the level table in
:mod:`.table`, drawing and the text record in :mod:`.canvas`), PNG and PDF in :mod:`.encode`, the
HTML in :mod:`.html_page`; this module writes the three files and is the package's public face.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from RefractureRiskLib.core.study import Study
from RefractureRiskLib.model.scoring import RiskResult
from RefractureRiskLib.report.canvas import Canvas, DrawnText
from RefractureRiskLib.report.encode import REPORT_DPI, pdf_from_png, png_from_pixels
from RefractureRiskLib.report.figure import A4_PORTRAIT_IN, build_page
from RefractureRiskLib.report.html_page import HTML_SECTIONS, report_html
from RefractureRiskLib.report.text import (
    FOOTER_LINES,
    FOOTER_WIDTH,
    LevelNotes,
    LevelTable,
    footer_text,
    level_notes,
    level_table,
)
from RefractureRiskLib.stats.summary import PatientSummary

__all__ = [
    "A4_PORTRAIT_IN",
    "FOOTER_LINES",
    "FOOTER_WIDTH",
    "HTML_SECTIONS",
    "REPORT_DPI",
    "Canvas",
    "DrawnText",
    "LevelNotes",
    "LevelTable",
    "ReportFiles",
    "build_page",
    "footer_text",
    "level_notes",
    "level_table",
    "pdf_from_png",
    "png_from_pixels",
    "render_report",
    "report_html",
]


@dataclass(frozen=True)
class ReportFiles:
    """Paths of the written report."""

    pdf: Path
    png: Path
    html: Path


def render_report(
    out_dir: str | Path,
    study: Study,
    roiset: Any,
    stats: Any,
    summary: PatientSummary,
    risk: RiskResult | None,
    provenance: Mapping[str, Any],
    patient_label: str = "synthetic",
    stem: str = "report",
) -> ReportFiles:
    """Write ``report.pdf``, ``report.png`` and ``report.html`` into ``out_dir``.

    ``roiset``: the RoiResult (label confidence and uncertainty shown) or a bare RoiSet;
    ``stats``: the statistics table, a DataFrame or records (``stats/records.py``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    drawn = build_page(study, roiset, stats, summary, risk, provenance, patient_label)
    pdf, png, page = out / f"{stem}.pdf", out / f"{stem}.png", out / f"{stem}.html"
    png_bytes = png_from_pixels(np.asarray(drawn.image))
    png.write_bytes(png_bytes)
    pdf.write_bytes(pdf_from_png(png_bytes))
    notes = level_notes(roiset)
    page.write_text(report_html(png_bytes, stats, summary, risk, provenance, patient_label, notes))
    return ReportFiles(pdf, png, page)
