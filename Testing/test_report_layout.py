"""The report as a reader sees it: no text leaves the page, runs over another text or past its
table cell, is cut by its panel, and no section is missing, in the page (PNG/PDF: the same
raster, see test_report_render) and in the HTML. Each check is shown to fail on a broken page.

Extents are the page's own record of every text it drew (``page.texts``: the string, the box of
its glyphs and lines in pixels, the box it must stay inside and the part of the page it is in):
titles, the factor list, level labels, orientation letters, tick labels, table cells, the
legend, the footer.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from RefractureRiskLib.commands.demo import DEMO_CLINICAL
from RefractureRiskLib.model.modelfile import bundled_model_path, load_model
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
from RefractureRiskLib.pipeline import AnalysisOptions, measure, place_rois, score_patient
from RefractureRiskLib.report import figure, onepage, panels, table

#: What a reader must find on the page, in reading order (written here, not taken from the code).
PAGE_SECTIONS = (
    "RefractureRisk report",
    "Factors for this patient",
    "Sagittal images through the ROIs",
    "Vertebral levels",
    "Summaries (levels averaged):",
    "Caveats and intended use",
)
#: The HTML's headings, in order.
HTML_SECTIONS = (
    "Risk",
    "Factors",
    "Images",
    "Vertebral levels",
    "Summaries",
    "Caveats and intended use",
    "Provenance",
)
TOLERANCE_PX = 0.5


def _study(spec: PhantomSpec, index: tuple[str, ...] = ("L1",), empty: str | None = None):
    """Study, ROIs, statistics and summary; ``empty`` names a level whose ROI voxels are
    removed (a level listed without an ROI)."""
    study = generate_phantom(spec).study
    rois = place_rois(study, AnalysisOptions(index_levels=index))
    if empty is not None:
        labelmap = rois.roiset.labelmap
        arr = np.where(labelmap.array == rois.placement(empty).label, 0, labelmap.array)
        roiset = dataclasses.replace(rois.roiset, labelmap=dataclasses.replace(labelmap, array=arr))
        rois = dataclasses.replace(rois, roiset=roiset)
    stats, summary = measure(study, rois, index)
    return study, rois, stats, summary


@pytest.fixture(scope="module")
def fractured():
    return _study(PhantomSpec(seed=1, fractured={"L1": 0.3}, snr=80.0))


@pytest.fixture(scope="module")
def cemented():
    return _study(PhantomSpec(seed=2, cemented=("L1",), snr=80.0), empty="L1")


def _risk(summary, study, which: str):
    model = load_model(bundled_model_path())
    if which == "range":
        patient = {k: v for k, v in DEMO_CLINICAL.items() if k != "dxa_l1l4_tscore"}
        return score_patient(model, patient, summary, study, missing="range")
    return score_patient(model, DEMO_CLINICAL, summary, study)


def _page(inputs, which: str = "complete"):
    study, rois, stats, summary = inputs
    risk = None if which == "none" else _risk(summary, study, which)
    provenance = {"software": "x", "study_uid": "1.2.3." + "4" * 60, "reader": "pytest"}
    return onepage.build_page(study, rois, stats, summary, risk, provenance, "pytest")


def drawn_texts(page) -> list:
    """Every non-empty text the page drew, as recorded."""
    return [t for t in page.texts if t.text.strip()]


def _inside(box, frame) -> bool:
    return (
        box[0] >= frame[0] - TOLERANCE_PX
        and box[2] <= frame[2] + TOLERANCE_PX
        and box[1] >= frame[1] - TOLERANCE_PX
        and box[3] <= frame[3] + TOLERANCE_PX
    )


def layout_problems(page) -> list[str]:
    """Texts off the page, cut by their panel, past their table cell or column, or overlapping
    another text."""
    sheet = (0, 0, page.width, page.height)
    texts = drawn_texts(page)
    problems = []
    for t in texts:
        name = " ".join(t.text.split())
        if not _inside(t.box, sheet):
            problems.append(f"off the page: {name!r}")
        if t.frame is not None and not _inside(t.box, t.frame):
            where = {"table": "runs past its table cell"}.get(t.part, "runs past its box")
            if t.part.startswith("panel:"):
                where = "cut by its panel"
            problems.append(f"{where}: {name!r}")
    for a, b in itertools.combinations(texts, 2):
        if (
            min(a.box[2], b.box[2]) - max(a.box[0], b.box[0]) > TOLERANCE_PX
            and min(a.box[3], b.box[3]) - max(a.box[1], b.box[1]) > TOLERANCE_PX
        ):
            first, second = (" ".join(t.text.split()) for t in (a, b))
            problems.append(f"overlap: {first!r} and {second!r}")
    return problems


def page_text(page) -> str:
    return "\n".join(t.text for t in drawn_texts(page))


def missing_page_sections(page) -> list[str]:
    """The page's sections not found, or found out of reading order (top to bottom)."""
    tops: dict[str, float] = {}
    for t in drawn_texts(page):
        for section in PAGE_SECTIONS:
            if t.text.startswith(section) and section not in tops:
                tops[section] = t.box[1]
    missing = [s for s in PAGE_SECTIONS if s not in tops]
    found = [s for s in PAGE_SECTIONS if s in tops]
    order = sorted(found, key=lambda s: tops[s])
    if order != found and not missing:
        missing.append(f"out of order: {order}")
    return missing


def _panel_texts(page) -> dict[str, list[str]]:
    """The texts on each sagittal panel (level labels, letters, scale), by the panel's title."""
    panels_found: dict[str, list[str]] = {}
    for t in page.texts:
        if t.part.startswith("panel:"):
            panels_found.setdefault(t.part.removeprefix("panel:"), []).append(t.text)
    return panels_found


def missing_html_sections(page: str) -> list[str]:
    """The HTML headings not found, out of order, or with nothing under them."""
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    missing = [h for h in HTML_SECTIONS if h not in headings]
    if not missing and [h for h in headings if h in HTML_SECTIONS] != list(HTML_SECTIONS):
        missing.append(f"out of order: {headings}")
    for heading, body in re.findall(r"<h2>(.*?)</h2>(.*?)(?=<h2>|</body>)", page, re.S):
        if not re.sub(r"<[^>]+>", "", body).strip():
            missing.append(f"empty: {heading}")
    return missing


@pytest.mark.parametrize("which", ["complete", "range", "none"])
def test_no_text_overlaps_or_leaves_the_page(fractured, which: str) -> None:
    page = _page(fractured, which)
    assert not layout_problems(page)
    assert not missing_page_sections(page) or which == "none"


def test_uncertain_labels_are_marked_and_their_warning_fits(fractured) -> None:
    """Levels below the confidence threshold get "?" on both panels; the warning is on the page."""
    study, rois, stats, summary = fractured
    doubtful = ("L4", "L5", "S1")
    levels = tuple(
        dataclasses.replace(p, confidence=0.5) if p.level in doubtful else p for p in rois.levels
    )
    reason = "sacrum not found: levels counted from the top of the field of view, " * 2
    rois = dataclasses.replace(rois, levels=levels, uncertain=True, reasons=(reason.strip(),))
    page = _page((study, rois, stats, summary))
    assert not layout_problems(page)
    assert "LEVEL LABELS UNCERTAIN" in page_text(page)
    shown = _panel_texts(page)
    assert set(shown) == {"PDFF (%)", "R2* (1/s)"}
    for texts in shown.values():
        marked = {t.split()[0] for t in texts if "?" in t}
        assert marked == {f"{lv}?" for lv in doubtful}, marked


def test_every_level_is_named_on_both_panels_even_without_roi_voxels(cemented) -> None:
    """A cemented L1 with an empty ROI is still named on the images, as left out."""
    page = _page(cemented)
    assert not layout_problems(page)
    stats = cemented[2]
    shown = _panel_texts(page)
    assert set(shown) == {"PDFF (%)", "R2* (1/s)"}
    for title, texts in shown.items():
        names = [t.split()[0].rstrip("?") for t in texts]
        for level in stats["level"].unique():
            assert level in names, (title, level)
        l1 = next(t for t in texts if t.startswith("L1"))
        assert "excl." in l1 and "no ROI" in l1


def test_the_checks_fail_on_a_broken_page(fractured, monkeypatch) -> None:
    """A label too long for its row overlaps the next; text not wrapped leaves the page; a row
    too low for its cells' lines lets them run past; labels too big are cut by their panel; a
    missing heading is seen."""
    rows = figure.factor_rows

    def long_first_label(risk, summary):
        out = rows(risk, summary)
        return [("a very long label " * 40, out[0][1]), *out[1:]]

    monkeypatch.setattr(figure, "factor_rows", long_first_label)
    problems = layout_problems(_page(fractured))
    assert any(p.startswith("overlap: 'a very long label") for p in problems), problems
    monkeypatch.undo()

    monkeypatch.setattr(figure, "wrap_text", lambda text, width: text)
    problems = layout_problems(_page(fractured, "range"))
    assert any(p.startswith("off the page") for p in problems), problems
    monkeypatch.undo()

    monkeypatch.setattr(table, "HEADER_LINES", 1)  # the two-line header in a one-line row
    problems = layout_problems(_page(fractured))
    assert any(p.startswith("runs past its table cell: 'PDFF %") for p in problems), problems
    monkeypatch.undo()

    monkeypatch.setattr(panels, "LABEL_STYLE", dataclasses.replace(panels.LABEL_STYLE, size=30))
    problems = layout_problems(_page(fractured))
    assert any(p.startswith("cut by its panel: 'T10") for p in problems), problems
    monkeypatch.undo()

    page = _page(fractured)
    assert not layout_problems(page) and not missing_page_sections(page)
    drawn = list(page.texts)
    page.texts = [t for t in drawn if t.text != "Vertebral levels"]
    assert missing_page_sections(page) == ["Vertebral levels"]
    page.texts = [
        dataclasses.replace(t, box=(t.box[0], page.height - 30, t.box[2], page.height - 10))
        if t.text == "Factors for this patient"
        else t
        for t in drawn
    ]  # a section moved to the bottom of the page
    (problem,) = missing_page_sections(page)
    assert problem.startswith("out of order: ['RefractureRisk report', 'Sagittal images"), problem
    assert problem.endswith("'Factors for this patient']"), problem


def test_html_has_every_section_and_the_checker_sees_a_missing_one(fractured, tmp_path) -> None:
    study, rois, stats, summary = fractured
    risk = _risk(summary, study, "range")
    files = onepage.render_report(tmp_path, study, rois, stats, summary, risk, {"software": "x"})
    page = files.html.read_text()
    assert missing_html_sections(page) == []
    # the range is never shown as a point; intended use and caveats are there
    assert "range over missing inputs, not a point estimate" in page
    assert risk.intended_use.split(".")[0] in page and risk.caveats[0] in page
    assert missing_html_sections(page.replace("<h2>Summaries</h2>", "")) == ["Summaries"]
    emptied = re.sub(r"(<h2>Provenance</h2>).*?(</body>)", r"\1\2", page, flags=re.S)
    assert missing_html_sections(emptied) == ["empty: Provenance"]


def test_words_on_the_page_are_sentence_case_and_no_variable_names(fractured) -> None:
    page = _page(fractured)
    names = [t.text for t in page.texts if t.part == "factors"]
    assert names and all(n[0].isupper() for n in names), names
    assert not any("_" in n for n in names), names
    text = page_text(page)
    assert "low_coverage" not in text and "outcome_1y" not in text


def test_example_pages_in_docs_exist_for_each_case() -> None:
    """The README links five example reports; each folder holds its page and its HTML."""
    examples = Path(__file__).parents[1] / "docs" / "examples"
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for name in ("normal", "fractured-index", "cement", "missing-range", "trained-interval"):
        assert (examples / name / "report.png").stat().st_size > 50_000, name
        page = (examples / name / "report.html").read_text()
        assert missing_html_sections(page) == [], name
        assert f"docs/examples/{name}/report.html" in readme, name
    ranged = (examples / "missing-range" / "report.html").read_text()
    assert "range over missing inputs, not a point estimate" in ranged
    trained = (examples / "trained-interval" / "report.html").read_text()
    assert "95% interval " in trained and "Cohort baseline" in trained
