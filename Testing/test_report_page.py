"""The report page as a reader sees it: no text cut or outside the page, every section present."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("which", ["complete", "range"])
def test_no_text_is_cut_or_off_the_page(page_inputs, which: str) -> None:
    study, rois, stats, summary = page_inputs
    _model, risks = _risks(summary)
    risk = risks[which](study)
    provenance = {"software": "x", "study_uid": "1.2.3." + "4" * 60, "reader": "pytest"}
    page = onepage.build_page(study, rois, stats, summary, risk, provenance, "pytest")
    cut = [
        t.text
        for t in page.texts
        if not (
            t.box[0] >= -0.5
            and t.box[2] <= page.width + 0.5
            and t.box[1] >= -0.5
            and t.box[3] <= page.height + 0.5
        )
    ]
    assert not cut, f"text outside the page: {cut}"
    # factor names and directions stay left of the bars, and no label is shortened with "…"
    bars = page.regions["bars"]
    factor_texts = [t for t in page.texts if t.part in ("factors", "effects")]
    assert len(factor_texts) == 2 * len(risk.contributions)
    for t in factor_texts:
        assert t.box[2] <= bars[0], t.text
        assert "…" not in t.text
    # rows of factor text do not overlap each other
    names = sorted((t.box for t in factor_texts if t.part == "factors"), key=lambda b: b[1])
    for upper, lower in itertools.pairwise(names):
        assert upper[3] <= lower[1] + 0.5
    # the page says what the number is
    text = "\n".join(t.text for t in page.texts if t.part in ("header", "risk"))
    if which == "range":
        # the missing input in clinical words, never its variable name
        assert "RANGE OVER MISSING INPUTS" in text and "DXA L1-L4 T-score" in text
        assert "dxa_l1l4_tscore" not in text
    else:
        assert "29.5%" in text
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
