"""The panel's Save writes its result set whole or not at all (core.atomic), issue 16."""

from __future__ import annotations

import pytest

from Testing import slicer_core_bootstrap as boot

pytest_plugins = ("Testing.conftest_slicer",)
pytestmark = pytest.mark.slicer_core


def _snapshot(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def outcome():
    module = boot.load_module()
    boot.bootstrap()
    logic = module.RefractureRiskLogic()
    phantom = logic.generatePhantomStudy(seed=0)
    points = {t.level: t.centre_ras for t in phantom.truth.levels if t.level in ("L2", "L3", "L4")}
    result = logic.roisFromPoints(phantom.study, points, "reader A", ("L1",))
    model = logic.loadModel()
    clinical = {
        s.name: module.workflow.typicalInputValue(s) for s in logic.clinicalInputSpecs(model)
    }
    return logic, logic.computeRisk(phantom.study, result, model, clinical, ("L1",))


@pytest.mark.slow
def test_save_is_whole_or_nothing(outcome, tmp_path, monkeypatch):
    import RefractureRiskLib.report.onepage as onepage

    logic, result = outcome
    folder = tmp_path / "results"
    written = logic.saveResults(result, str(folder))
    assert {"statistics.csv", "rois.seg.nrrd", "results.json", "report.pdf"} <= {
        p.rsplit("/", 1)[1] for p in written
    }
    assert all(p.startswith(str(folder)) for p in written)  # the published paths, not staging
    before = _snapshot(folder)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onepage, "render_report", disk_full)  # fails after the first files
    statistics = result["statistics"]
    changed = dict(result, statistics=statistics.assign(mean=statistics["mean"] + 1.0))
    with pytest.raises(OSError, match="No space"):
        logic.saveResults(changed, str(folder))
    assert _snapshot(folder) == before  # the earlier result set, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no staging left behind

    fresh = tmp_path / "new"
    with pytest.raises(OSError):
        logic.saveResults(result, str(fresh))
    assert not fresh.exists()  # nothing half-written


def test_save_never_replaces_a_folder_it_did_not_write(outcome, tmp_path):
    logic, result = outcome
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("the user's own file")
    with pytest.raises(ValueError, match=r"results\.json"):
        logic.saveResults(result, str(folder))
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
