"""The report as a reader sees it: no text leaves the page, runs over another text or past its
table cell, is cut by its panel, and no section is missing, in the page (PNG/PDF: the same
raster, see test_report_render) and in the HTML. Each check is shown to fail on a broken page.

Extents are the renderer's window extents of every drawn text artist (figure texts, axes texts
and titles, axis labels, tick labels, table cells, legend entries).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

from RefractureRiskLib.commands.demo import DEMO_CLINICAL
from RefractureRiskLib.model.modelfile import bundled_model_path, load_model
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
from RefractureRiskLib.pipeline import AnalysisOptions, measure, place_rois, score_patient
from RefractureRiskLib.report import figure, onepage

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


def _study(spec: PhantomSpec, index: tuple[str, ...] = ("L1",)):
    study = generate_phantom(spec).study
    rois = place_rois(study, AnalysisOptions(index_levels=index))
    stats, summary = measure(study, rois, index)
    return study, rois, stats, summary


@pytest.fixture(scope="module")
def fractured():
    return _study(PhantomSpec(seed=1, fractured={"L1": 0.3}, snr=80.0))


@pytest.fixture(scope="module")
def cemented():
    return _study(PhantomSpec(seed=2, cemented=("L1",), snr=80.0))


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
    return onepage.build_figure(study, rois, stats, summary, risk, provenance, "pytest")


def drawn_texts(fig) -> list[tuple[Text, object | None]]:
    """Every visible, non-empty text artist of the page, with the table cell holding it."""
    found: list[tuple[Text, object | None]] = [(t, None) for t in fig.texts]
    for ax in fig.axes:
        found += [(t, None) for t in (*ax.texts, ax.title, ax.xaxis.label, ax.yaxis.label)]
        for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = sorted(limits)  # ticks beyond the limits are not drawn
            for tick in axis.get_major_ticks():
                if tick.label1.get_visible() and lo <= tick.get_loc() <= hi:
                    found.append((tick.label1, None))
        for table in ax.tables:
            found += [(cell.get_text(), cell) for cell in table.get_celld().values()]
    for legend in fig.legends:
        found += [(t, None) for t in legend.get_texts()]
    return [(t, c) for t, c in found if t.get_visible() and t.get_text().strip()]


def layout_problems(fig) -> list[str]:
    """Texts off the page, cut by their panel or cell, or overlapping another text."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    page = fig.bbox
    texts = drawn_texts(fig)
    boxes = [t.get_window_extent(renderer) for t, _ in texts]
    problems = []

    def inside(box, frame) -> bool:
        return (
            box.x0 >= frame.x0 - TOLERANCE_PX
            and box.x1 <= frame.x1 + TOLERANCE_PX
            and box.y0 >= frame.y0 - TOLERANCE_PX
            and box.y1 <= frame.y1 + TOLERANCE_PX
        )

    for (t, cell), box in zip(texts, boxes, strict=True):
        name = " ".join(t.get_text().split())
        if not inside(box, page):
            problems.append(f"off the page: {name!r}")
        if cell is not None and not inside(box, cell.get_window_extent(renderer)):
            problems.append(f"runs past its table cell: {name!r}")
        clip = t.get_clip_box() if t.get_clip_on() and cell is None else None
        if clip is not None and not inside(box, clip):
            problems.append(f"cut by its panel: {name!r}")
    for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
        if (
            min(a.x1, b.x1) - max(a.x0, b.x0) > TOLERANCE_PX
            and min(a.y1, b.y1) - max(a.y0, b.y0) > TOLERANCE_PX
        ):
            first, second = (" ".join(texts[k][0].get_text().split()) for k in (i, j))
            problems.append(f"overlap: {first!r} and {second!r}")
    return problems


def page_text(fig) -> str:
    return "\n".join(t.get_text() for t, _ in drawn_texts(fig))


def missing_page_sections(fig) -> list[str]:
    """The page's sections not found, or found out of reading order (top to bottom)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    tops: dict[str, float] = {}
    for t, _ in drawn_texts(fig):
        for section in PAGE_SECTIONS:
            if t.get_text().startswith(section) and section not in tops:
                tops[section] = t.get_window_extent(renderer).y1
    missing = [s for s in PAGE_SECTIONS if s not in tops]
    found = [s for s in PAGE_SECTIONS if s in tops]
    order = sorted(found, key=lambda s: -tops[s])
    if order != found and not missing:
        missing.append(f"out of order: {order}")
    return missing


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
    fig = _page(fractured, which)
    assert not layout_problems(fig)
    assert not missing_page_sections(fig) or which == "none"


def test_uncertain_labels_are_marked_and_their_warning_fits(fractured) -> None:
    """Levels below the confidence threshold get "?" on both panels; the warning is on the page."""
    import dataclasses

    study, rois, stats, summary = fractured
    doubtful = ("L4", "L5", "S1")
    levels = tuple(
        dataclasses.replace(p, confidence=0.5) if p.level in doubtful else p for p in rois.levels
    )
    reason = "sacrum not found: levels counted from the top of the field of view, " * 2
    rois = dataclasses.replace(rois, levels=levels, uncertain=True, reasons=(reason.strip(),))
    fig = _page((study, rois, stats, summary))
    assert not layout_problems(fig)
    assert "LEVEL LABELS UNCERTAIN" in page_text(fig)
    panels = [ax for ax in fig.axes if ax.get_title() in ("PDFF (%)", "R2* (1/s)")]
    for ax in panels:
        marked = {t.get_text().split()[0] for t in ax.texts if "?" in t.get_text()}
        assert marked == {f"{lv}?" for lv in doubtful}, marked


def test_every_level_is_named_on_both_panels_even_without_roi_voxels(cemented) -> None:
    """A cemented L1 has an empty ROI; it is still named on the images, as left out."""
    fig = _page(cemented)
    assert not layout_problems(fig)
    stats = cemented[2]
    panels = [ax for ax in fig.axes if ax.get_title() in ("PDFF (%)", "R2* (1/s)")]
    assert len(panels) == 2
    for ax in panels:
        names = [t.get_text().split()[0].rstrip("?") for t in ax.texts]
        for level in stats["level"].unique():
            assert level in names, (ax.get_title(), level)
        l1 = next(t.get_text() for t in ax.texts if t.get_text().startswith("L1"))
        assert "excl." in l1 and "no ROI" in l1


def test_the_checks_fail_on_a_broken_page(fractured, monkeypatch) -> None:
    """A label too long for its row overlaps the next; text not wrapped leaves the page."""
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

    fig = _page(fractured)
    next(t for t in fig.texts if t.get_text() == "Vertebral levels").set_text("")
    assert missing_page_sections(fig) == ["Vertebral levels"]


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
    fig = _page(fractured)
    factor_axes = fig.axes[0]
    names = [t.get_text() for t in factor_axes.texts if t.get_position()[0] < 0.5]
    assert names and all(n[0].isupper() for n in names), names
    assert not any("_" in n for n in names), names
    text = page_text(fig)
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
