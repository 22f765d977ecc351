"""QA regressions for the one-page report: R2* grey scale, table headers, footer warnings."""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.commands.demo import DEMO_CLINICAL
from RefractureRiskLib.core.roiset import LevelRoi, RoiMethod, RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.model.modelfile import bundled_model_path, load_model
from RefractureRiskLib.model.scoring import score
from RefractureRiskLib.report import onepage


def _study_and_rois() -> tuple[Study, RoiSet]:
    shape = (4, 20, 20)
    r2s = np.full(shape, 1000.0)  # fits in air/noise saturate at the stored maximum
    labels = np.zeros(shape, dtype=np.int16)
    labels[1:3, 5:10, 5:10] = 4  # L1 marrow
    r2s[labels > 0] = np.linspace(50.0, 70.0, int((labels > 0).sum()))
    pdff = np.full(shape, 50.0)
    study = Study({"pdff": Volume(pdff), "r2s": Volume(r2s)})
    rois = RoiSet(Volume(labels), (LevelRoi("L1", 4),), RoiMethod("automatic"))
    return study, rois


def test_r2s_grey_scale_follows_the_marrow_not_the_air() -> None:
    study, rois = _study_and_rois()
    top = onepage._r2s_window_max(study, rois)
    marrow = study.r2s.array[rois.labelmap.array > 0]
    # Marrow must sit in the visible part of the scale, not at the bottom 7% of 0-1000.
    assert np.percentile(marrow, 95) < top < 1000.0
    assert marrow.mean() / top > 0.25


def test_level_table_says_what_the_spread_is() -> None:

    stats = _one_level_stats()
    table = onepage._level_table(stats)
    assert any("SD" in c and "PDFF" in c for c in table.columns)
    assert any("SD" in c and "R2*" in c for c in table.columns)


def test_footer_never_drops_a_risk_warning_silently() -> None:
    model = load_model(bundled_model_path())
    risk = score(model, {"age_years": 74, "sex": "F"})  # 8 missing-input warnings
    provenance = {f"key{i}": f"value{i}" for i in range(8)}
    assert len(risk.warnings) + len(provenance) > onepage.FOOTER_LINES
    text = onepage.provenance_text(provenance, risk)
    lines = text.splitlines()
    assert len(lines) <= onepage.FOOTER_LINES
    shown = sum(line.startswith("warning: ") for line in lines)
    more = [line for line in lines if "more warning" in line]
    assert len(more) == 1
    hidden = int(more[0].split("and ")[1].split(" more")[0])
    assert shown + hidden == len(risk.warnings)
    # The demonstration-model warning is the first and always shown.
    first_warning = next(line for line in lines if line.startswith("warning: "))
    assert "not for clinical use" in first_warning


def test_footer_keeps_all_lines_when_they_fit() -> None:
    model = load_model(bundled_model_path())
    full = {
        **DEMO_CLINICAL,
        "pdff_global_L1L4": 55.0,
        "r2s_global_L1L4": 70.0,
    }
    risk = score(model, full)
    text = onepage.provenance_text({"software": "x", "reader": "y"}, risk)
    assert text.splitlines() == ["software: x", "reader: y"] + [
        f"warning: {w}" for w in risk.warnings
    ]


def _figure_texts(fig) -> str:
    texts = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        texts.extend(t.get_text() for t in ax.texts)
    return "\n".join(texts)


def _one_level_stats():
    """A statistics table with one level (L1), PDFF and R2* rows, as roi_statistics writes it."""
    import pandas as pd

    return pd.DataFrame(
        {
            "level": ["L1", "L1"],
            "map": ["pdff", "r2s"],
            "mean": [50.0, 60.0],
            "sd": [1.0, 2.0],
            "volume_ml": [3.0, 3.0],
            "flags": ["", ""],
            "included": [True, True],
        }
    )


def test_page_shows_uncertain_labels_and_no_nan() -> None:
    import math

    from RefractureRiskLib.stats.summary import PatientSummary

    study, rois = _study_and_rois()
    stats = _one_level_stats()
    nan = math.nan
    summary = PatientSummary(nan, nan, nan, nan, notes=("too few levels",))
    provenance = {"software": "x", "labels": "UNCERTAIN: check the level labels"}
    model = load_model(bundled_model_path())
    risk = score(model, {"age_years": 74, "sex": "F"})
    fig = onepage.build_figure(study, rois, stats, summary, risk, provenance, "anonymous")
    text = _figure_texts(fig)
    assert "nan%" not in text and "nan 1/s" not in text
    assert "n/a" in text
    # The uncertainty is on the page itself, not only in the footer that warnings may crowd out.
    body = [t.get_text() for t in fig.texts]
    assert any("LEVEL LABELS" in t and "UNCERTAIN" in t for t in body)


def test_terminal_summary_says_not_available_instead_of_nan() -> None:
    import math

    from RefractureRiskLib.commands.analyze import _fmt

    assert _fmt(math.nan, "%") == "not available"
    assert _fmt(None, "%") == "not available"
    assert _fmt(50.19, "%") == "50.2 %"


def test_html_page_uses_the_model_warning_and_no_float_noise(tmp_path) -> None:
    import math

    from RefractureRiskLib.stats.summary import PatientSummary

    study, rois = _study_and_rois()
    stats = _one_level_stats()
    summary = PatientSummary(50.194292935842874, 64.17620633630129, math.nan, math.nan)
    model = load_model(bundled_model_path())
    risk = score(model, {"age_years": 74, "sex": "F", "pdff_global_L1L4": 50.194292935842874})
    provenance = {"software": "x", "labels": "UNCERTAIN: check the level labels"}
    files = onepage.render_report(tmp_path, study, rois, stats, summary, risk, provenance)
    page = files.html.read_text()
    assert "50.194" not in page and "64.176" not in page
    assert "50.2" in page and "n/a" in page
    assert risk.warnings[0].capitalize() in page
    assert "Level labels UNCERTAIN" in page


def test_contribution_bars_show_the_scored_inputs() -> None:
    import math

    from RefractureRiskLib.stats.summary import PatientSummary

    study, rois = _study_and_rois()
    stats = _one_level_stats()
    summary = PatientSummary(50.2, 64.2, math.nan, math.nan)
    model = load_model(bundled_model_path())
    risk = score(model, {"age_years": 74, "sex": "F", "antiop_post": 0})
    fig = onepage.build_figure(study, rois, stats, summary, risk, {}, "anonymous")
    ticks = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert any("age_years = 74" in t for t in ticks)
    assert any("antiop_post = 0" in t for t in ticks)
