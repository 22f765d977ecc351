"""QA regressions for the one-page report: R2* grey scale, table headers, footer warnings."""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.commands.demo import DEMO_CLINICAL
from RefractureRiskLib.core.roiset import LevelRoi, RoiMethod, RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.model.modelfile import bundled_model_path, load_model
from RefractureRiskLib.model.scoring import score
from RefractureRiskLib.report import onepage, panels


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
    top = panels.r2s_window_max(study, rois)
    marrow = study.r2s.array[rois.labelmap.array > 0]
    # Marrow must sit in the visible part of the scale, not at the bottom 7% of 0-1000.
    assert np.percentile(marrow, 95) < top < 1000.0
    assert marrow.mean() / top > 0.25


def test_level_table_says_what_the_spread_is() -> None:

    stats = _one_level_stats()
    table = onepage.level_table(stats)
    assert any("SD" in c and "PDFF" in c for c in table.columns)
    assert any("SD" in c and "R2*" in c for c in table.columns)


def test_footer_never_drops_a_risk_warning_silently() -> None:
    model = load_model(bundled_model_path())
    patient = {"age_years": 74, "sex": "F", "r2s_global_L1L4": 400.0, "extra": 1}
    risk = score(model, patient, missing="range")  # range, extrapolation, unused input
    provenance = {f"key{i}": "value " * 40 for i in range(8)}
    text = onepage.footer_text(provenance, risk)
    lines = text.splitlines()
    assert len(lines) == onepage.FOOTER_LINES  # it did not fit: cut to the page's room ...
    assert "more line(s): see report.html" in lines[-1]  # ... and said so
    joined = " ".join(line.strip() for line in lines)
    for warning in risk.warnings[1:]:  # the model's own warning is the page's red banner
        assert f"Warning: {warning}" in joined
    assert joined.startswith("Warning: ")  # warnings first: never the part that is cut


def test_footer_keeps_all_lines_when_they_fit() -> None:
    model = load_model(bundled_model_path())
    full = {**DEMO_CLINICAL, "pdff_global_L1L4": 55.0, "r2s_global_L1L4": 70.0}
    risk = score(model, full)
    text = onepage.footer_text({"software": "x", "reader": "y"}, risk)
    assert "more line" not in text
    assert text.startswith("Intended use: Demonstration logistic model")
    assert "Caveats: Not externally validated" in text
    assert text.splitlines()[-1] == "Provenance: software: x; reader: y"


def _figure_texts(page) -> str:
    return "\n".join(t.text for t in page.texts)


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
    risk = score(model, {"age_years": 74, "sex": "F"}, missing="range")
    page = onepage.build_page(study, rois, stats, summary, risk, provenance, "anonymous")
    text = _figure_texts(page)
    assert "nan%" not in text and "nan 1/s" not in text and "nan" not in text.split()
    assert "PDFF global L1-L4: not available (no eligible level)" in text
    # The uncertainty is on the page itself, not only in the footer that warnings may crowd out.
    body = [t.text for t in page.texts if t.part == "levels"]
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
    patient = {"age_years": 74, "sex": "F", "pdff_global_L1L4": 50.194292935842874}
    risk = score(model, patient, missing="range")
    provenance = {"software": "x", "labels": "UNCERTAIN: check the level labels"}
    files = onepage.render_report(tmp_path, study, rois, stats, summary, risk, provenance)
    page = files.html.read_text()
    assert "50.194" not in page and "64.176" not in page
    assert "50.2" in page and "PDFF adjacent: not available" in page
    assert risk.warnings[0].capitalize() in page
    assert "Level labels uncertain: check them before use" in page


def test_factors_are_in_clinical_words_with_their_direction() -> None:
    import math

    from RefractureRiskLib.stats.summary import PatientSummary

    study, rois = _study_and_rois()
    stats = _one_level_stats()
    summary = PatientSummary(
        50.2,
        64.2,
        math.nan,
        math.nan,
        levels_used={
            "pdff_global_L1L4_pct": ("L2", "L3", "L4"),
            "r2s_global_L1L4_per_s": ("L2", "L3", "L4"),
        },
        excluded=(("L1", "flagged: fractured"),),
    )
    model = load_model(bundled_model_path())
    risk = score(model, {**DEMO_CLINICAL, "pdff_global_L1L4": 50.2, "r2s_global_L1L4": 64.2})
    page = onepage.build_page(study, rois, stats, summary, risk, {}, "anonymous")
    # the factor names and directions, row by row
    rows = [" ".join(t.text.split()) for t in page.texts if t.part in ("factors", "effects")]
    assert "No anti-osteoporosis treatment after surgery" in rows
    assert rows[rows.index("No anti-osteoporosis treatment after surgery") + 1] == "raises risk"
    assert "Age at surgery: 74 years" in rows
    assert "PDFF global L1-L4: 50.2% (mean of L2-L4; L1 excluded: fractured)" in rows
    assert "no effect in this model (coefficient 0)" in rows  # the R2* term
    assert not any("antiop_post" in r or "_" in r or "…" in r for r in rows)
    assert "points" not in _figure_texts(page)
