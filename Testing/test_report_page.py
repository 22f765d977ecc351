"""The report page as a reader sees it: no text cut or outside the page, every section present."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from RefractureRiskLib.commands.demo import DEMO_CLINICAL
from RefractureRiskLib.model.modelfile import bundled_model_path, load_model
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
from RefractureRiskLib.pipeline import AnalysisOptions, analyze_study, measure, place_rois
from RefractureRiskLib.report import onepage


@pytest.fixture(scope="module")
def page_inputs():
    phantom = generate_phantom(PhantomSpec(seed=1, fractured={"L1": 0.3}, snr=80.0))
    options = AnalysisOptions(index_levels=("L1",))
    rois = place_rois(phantom.study, options)
    stats, summary = measure(phantom.study, rois, ("L1",))
    return phantom.study, rois, stats, summary


def _risks(summary):
    from RefractureRiskLib.pipeline import score_patient

    model = load_model(bundled_model_path())
    return model, {
        "complete": lambda study: score_patient(model, DEMO_CLINICAL, summary, study),
        "range": lambda study: score_patient(
            model,
            {k: v for k, v in DEMO_CLINICAL.items() if k != "dxa_l1l4_tscore"},
            summary,
            study,
            missing="range",
        ),
    }


def _all_texts(fig):
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [*ax.texts, ax.title, ax.xaxis.label, ax.yaxis.label]
        lo, hi = sorted(ax.get_xlim())  # tick labels beyond the limits are not drawn
        texts += [t for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi]
        texts += [a for a in ax.tables for a in a.get_celld().values()]
    for legend in fig.legends:
        texts += list(legend.get_texts())
    return [t for t in texts if t.get_visible() and getattr(t, "get_text", lambda: "x")()]


@pytest.mark.parametrize("which", ["complete", "range"])
def test_no_text_is_cut_or_off_the_page(page_inputs, which: str) -> None:
    study, rois, stats, summary = page_inputs
    _model, risks = _risks(summary)
    risk = risks[which](study)
    provenance = {"software": "x", "study_uid": "1.2.3." + "4" * 60, "reader": "pytest"}
    fig = onepage.build_figure(study, rois, stats, summary, risk, provenance, "pytest")
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    page = fig.bbox
    cut = []
    for t in _all_texts(fig):
        box = t.get_window_extent(renderer)
        if not (
            box.x0 >= page.x0 - 0.5
            and box.x1 <= page.x1 + 0.5
            and box.y0 >= page.y0 - 0.5
            and box.y1 <= page.y1 + 0.5
        ):
            cut.append(t.get_text() if hasattr(t, "get_text") else repr(t))
    assert not cut, f"text outside the page: {cut}"
    # factor names and directions stay left of the bars, and no label is shortened with "…"
    factor_axes, bar_axes = fig.axes[0], fig.axes[1]
    bars = bar_axes.get_window_extent(renderer)
    for t in factor_axes.texts:
        assert t.get_window_extent(renderer).x1 <= bars.x0, t.get_text()
        assert "…" not in t.get_text()
    # rows of factor text do not overlap each other
    boxes = sorted((t.get_window_extent(renderer) for t in factor_axes.texts), key=lambda b: b.y0)
    names = [b for b in boxes if b.x0 < bars.x0 - 200]
    for lower, upper in itertools.pairwise(names):
        assert lower.y1 <= upper.y0 + 0.5
    # the page says what the number is
    text = "\n".join(t.get_text() for t in fig.texts)
    if which == "range":
        # the missing input in clinical words, never its variable name
        assert "RANGE OVER MISSING INPUTS" in text and "DXA L1-L4 T-score" in text
        assert "dxa_l1l4_tscore" not in text
    else:
        assert "29.5%" in text or "%" in text.split("\n")[2]
    assert "Cohort baseline 1-year risk" in text


def test_html_has_every_section_and_says_what_it_is(page_inputs, tmp_path: Path) -> None:
    study, rois, stats, summary = page_inputs
    _model, risks = _risks(summary)
    files = onepage.render_report(
        tmp_path, study, rois, stats, summary, risks["complete"](study), {"software": "x"}
    )
    page = files.html.read_text()
    for heading in onepage.HTML_SECTIONS:
        assert f"<h2>{heading}</h2>" in page, heading
    assert "<title>RefractureRisk report: risk of a new vertebral fracture" in page
    assert "<h2>Page</h2>" not in page and "points" not in page


def test_orientation_letters_follow_the_ijk_to_ras_matrix() -> None:
    """A bright spot anterior-superior shows top-left whatever the voxel order."""
    import numpy as np

    from RefractureRiskLib.core.volume import Volume
    from RefractureRiskLib.report.reformat import sagittal_plane

    array = np.zeros((40, 40, 3))
    array[2:6, 2:6, :] = 1.0  # low k, low j
    # k runs to inferior (-z), j runs to anterior (+y): an LPS-like, flipped acquisition
    ijk_to_ras = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1.0]])
    ijk_to_ras = ijk_to_ras[:, [0, 1, 2, 3]]
    volume = Volume(array.transpose(0, 1, 2), ijk_to_ras)
    plane = sagittal_plane(volume, 1.0)
    rows, cols = np.nonzero(plane.image > 0.5)
    assert plane.orientation == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    # j low = RAS y low = posterior -> right; k low = z high (k runs inferior) -> top
    assert cols.mean() > plane.image.shape[1] / 2 and rows.mean() < plane.image.shape[0] / 2


@pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("pdftoppm")),
    reason="needs Debian's chromium and poppler-utils (pdftoppm) to render the pages",
)
def test_pages_render_in_a_browser_and_from_the_pdf(page_inputs, tmp_path: Path) -> None:
    study, _rois, _stats, _summary = page_inputs
    result = analyze_study(
        study, DEMO_CLINICAL, tmp_path / "out", AnalysisOptions(index_levels=("L1",))
    )
    shot = tmp_path / "html.png"
    subprocess.run(
        [
            "chromium", "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", f"--screenshot={shot}",
            "--window-size=1200,1700", result.files["report_html"].as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert shot.stat().st_size > 20_000
    subprocess.run(
        ["pdftoppm", "-png", "-r", "50", str(result.files["report_pdf"]), str(tmp_path / "pdf")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert [p.name for p in tmp_path.glob("pdf*.png")] == ["pdf-1.png"]  # one page
