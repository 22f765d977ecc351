"""Per-level label confidence in the panel (issue 16): the levels to check with the reason, and
accept / reject / relabel in one click with the risk following at once. slicer-core (real MRML)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from Testing import slicer_core_bootstrap as boot

pytest_plugins = ("Testing.conftest_slicer",)
pytestmark = pytest.mark.slicer_core
INDEX = ("L1",)


@pytest.fixture(scope="module")
def detected(module):
    """The phantom, detected automatically (as the panel's "Detect vertebrae" does)."""
    boot.bootstrap()
    logic = module.RefractureRiskLogic()
    phantom = logic.generatePhantomStudy(seed=0)
    return phantom, logic.detectVertebrae(phantom.study, None, "reader A", INDEX)


def _doubtful(result, level="L2"):
    """``result`` as the engine reports a doubt about one body (lower confidence, a reason)."""
    levels = tuple(
        dataclasses.replace(p, confidence=0.4) if p.level == level else p for p in result.levels
    )
    reason = f"{level}: the body found is not where the profile put it"
    return dataclasses.replace(result, levels=levels, reasons=(reason,), uncertain=True)


def test_uncertain_levels_are_listed_with_the_reason(module, detected):
    review = module.review
    _phantom, result = detected
    assert review.reviewRows(dataclasses.replace(result, reasons=(), uncertain=False)) == [] or all(
        row["confidence"] < review.CONFIDENT for row in review.reviewRows(result)
    )
    rows = review.reviewRows(_doubtful(result))
    assert [row["level"] for row in rows] == ["L2"]
    assert rows[0]["confidence"] == pytest.approx(0.4)
    assert rows[0]["reasons"] == ["L2: the body found is not where the profile put it"]
    # a doubt about the count concerns every level
    counted = dataclasses.replace(result, reasons=("sacrum not found",), uncertain=True)
    rows = review.reviewRows(counted)
    assert {row["level"] for row in rows} == {p.level for p in result.levels}
    assert all("sacrum not found" in row["reasons"] for row in rows)


def test_accept_and_reject(module, detected):
    review = module.review
    _phantom, result = detected
    doubtful = _doubtful(result)
    accepted = review.accept(doubtful, "L2")
    assert not accepted.uncertain and accepted.extras["review"] == {"L2": "accepted"}
    assert review.reviewRows(accepted)[0]["decision"] == "accepted"
    rejected = review.reject(doubtful, "L2")
    assert not rejected.roiset.level("L2").included
    assert not rejected.uncertain and rejected.extras["review"]["L2"] == "rejected"


def test_relabel_one_body_or_shift_the_count(module, detected):
    review, core = module.review, module.mrml.lib("core")
    phantom, _result = detected
    boot.bootstrap()
    points = {t.level: t.centre_ras for t in phantom.truth.levels if t.level in ("L2", "L3", "L4")}
    result = module.RefractureRiskLogic().roisFromPoints(phantom.study, points, "reader A", INDEX)
    # a free name: only that body is renamed
    renamed = review.relabel(result, "L2", "L1", INDEX)
    assert [p.level for p in renamed.levels] == ["L1", "L3", "L4"]
    assert np.array_equal(renamed.roiset.mask("L1"), result.roiset.mask("L2"))
    assert np.array_equal(renamed.roiset.mask("L3"), result.roiset.mask("L3"))
    assert renamed.extras["review"] == {"L1": "relabelled from L2"}
    assert "index" in {str(f) for f in renamed.roiset.level("L1").flags}  # follows the name
    assert set(renamed.extras["points_ras"]) == {"L1", "L3", "L4"}
    masks = result.extras["level_masks"]
    kept = renamed.extras["level_masks"]
    assert set(kept) == {"L1", "L3", "L4"}  # the masks follow the names
    assert kept["L1"] is masks["L2"] and kept["L3"] is masks["L3"]
    # a taken name: the count was off, every label shifts by the same number of levels
    shifted = review.relabel(result, "L3", "L4", INDEX)
    assert [p.level for p in shifted.levels] == ["L3", "L4", "L5"]
    for old, new in (("L2", "L3"), ("L3", "L4"), ("L4", "L5")):
        assert np.array_equal(shifted.roiset.mask(new), result.roiset.mask(old)), old
        new_body = shifted.body_labels.array == core.level_label(new)
        assert np.array_equal(new_body, result.body_labels.array == core.level_label(old))
    # a body shifted beyond T10-S1 is dropped (L5 would become "S2")
    twice = review.relabel(shifted, "L3", "L5", INDEX)
    assert [p.level for p in twice.levels] == ["L5", "S1"]
    kept = twice.extras["level_masks"]
    assert set(kept) == {"L5", "S1"} and kept["L5"] is masks["L2"] and kept["S1"] is masks["L3"]
    # a point moved after the relabelling paints with the renamed levels' own masks
    moved = module.RefractureRiskLogic().updateLevel(twice, phantom.study, "L5", points["L2"])
    assert np.array_equal(moved.roiset.labelmap.array, twice.roiset.labelmap.array)
    assert set(np.unique(twice.roiset.labelmap.array)) == {
        0,
        core.level_label("L5"),
        core.level_label("S1"),
    }


def test_one_click_in_the_panel_updates_segments_points_and_risk(module, detected, monkeypatch):
    import slicer

    env = boot.bootstrap()
    widget = boot.make_widget(module, env)
    monkeypatch.setattr(
        slicer.util, "createProgressDialog", lambda **kw: boot.FakeProgressDialog(**kw)
    )
    try:
        phantom, result = detected
        logic = widget.logic
        nodes = logic.addStudyToScene(phantom.study, baseName="p")
        p = widget._parameterNode
        p.pdffVolume, p.r2sVolume, p.indexLevels = nodes["pdff"], nodes["r2s"], "L1"
        widget.ui.modelPathLineEdit.currentPath = ""
        model = logic.loadModel()
        clinical = {
            s.name: module.workflow.typicalInputValue(s) for s in logic.clinicalInputSpecs(model)
        }
        monkeypatch.setattr(widget, "_clinicalValues", lambda: clinical)
        monkeypatch.setattr(widget, "_buildClinicalForm", lambda model: None)  # Qt layout
        study = logic.studyFromNodes({"pdff": nodes["pdff"], "r2s": nodes["r2s"]}, 1.5)
        widget._showRoiResult(_doubtful(result), study)
        widget._writeLevelPoints(result)
        assert widget.ui.levelReviewLabel.text.endswith("L2")
        widget._computeRisk(study)
        before = widget._lastOutcome["risk"].probability

        widget.onRejectLevel("L3")  # one click: excluded, the risk recomputed at once
        used = widget._lastOutcome["summary"].levels_used["pdff_global_L1L4_pct"]
        assert "L3" not in used
        assert widget._lastOutcome["risk"].probability != before

        widget.onRelabelLevel("L2", "L1")  # the count was off by one
        segmentation = p.segmentation.GetSegmentation()
        names = [
            segmentation.GetNthSegment(i).GetName()
            for i in range(segmentation.GetNumberOfSegments())
        ]
        assert names == [pl.level for pl in widget._roiResult.levels]
        levels = module.LEVELS
        before_names = [pl.level for pl in result.levels]
        assert names == [levels[levels.index(n) - 1] for n in before_names if n != "T10"]
        points = p.roiPoints
        labels = [
            points.GetNthControlPointLabel(i) for i in range(points.GetNumberOfControlPoints())
        ]
        assert labels == names
        assert widget._lastOutcome["roiSet"] is widget._roiResult.roiset  # the risk followed
        assert widget.ui.levelReviewLabel.text.endswith("none")
    finally:
        widget.cleanup()
        boot.remove_fake_application()
