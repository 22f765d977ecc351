"""The panel's handlers on a real MRML scene (slicer-core), with recording stand-ins for Qt.

What is tested is the widget's own decisions (which study is loaded, which label a new point gets,
which message the user sees, which table the view shows); the stand-ins are described in
``slicer_core_bootstrap.py``. Skips, with the reason, when slicer-core is not importable.
"""

from __future__ import annotations

import itertools
import time

import pytest

from Testing import slicer_core_bootstrap as boot

pytest_plugins = ("Testing.conftest_slicer",)
pytestmark = pytest.mark.slicer_core


class FakeDicomDatabase:
    """Two studies of one patient; remembers which files were asked for."""

    isOpen = True  # noqa: N815 - ctkDICOMDatabase property

    def __init__(self) -> None:
        self.files_asked: list[str] = []

    def patients(self):
        return ["P1"]

    def studiesForPatient(self, patient):
        return ["1.2.1", "1.2.2"]

    def seriesForStudy(self, study):
        return [study + ".1"]

    def fieldForStudy(self, field, study):
        return {"StudyDescription": "spine " + study[-1], "StudyDate": "20240101"}[field]

    def filesForSeries(self, series):
        self.files_asked.append(series)
        return [f"/nonexistent/{series}.dcm"]


# -- bug: Cancel in the study chooser loaded the first study ------------------------------------
def test_cancel_in_the_study_chooser_loads_nothing(widget, monkeypatch):
    import qt
    import slicer

    database = FakeDicomDatabase()
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    loaded = []
    monkeypatch.setattr(
        widget.logic, "loadStudyFromFiles", lambda files, **kw: loaded.append(files)
    )
    monkeypatch.setattr(widget, "_ensureDependencies", lambda *a, **k: None)
    monkeypatch.setattr(qt.QInputDialog, "answer", None)  # the user presses Cancel
    widget.onLoadFromDatabase()
    assert loaded == [] and database.files_asked == []


def test_the_chosen_study_is_the_one_loaded(widget, monkeypatch):
    import qt
    import slicer

    database = FakeDicomDatabase()
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    monkeypatch.setattr(widget, "_ensureDependencies", lambda *a, **k: None)
    monkeypatch.setattr(qt.QInputDialog, "answer", 1)  # the second study
    loaded = []

    def load(files, progress=None, echoes=False):
        loaded.append(files)
        raise RuntimeError("stop here")  # reading is tested elsewhere

    monkeypatch.setattr(widget.logic, "loadStudyFromFiles", load)
    with pytest.raises(RuntimeError, match="stop here"):
        widget.onLoadFromDatabase()
    assert loaded == [["/nonexistent/1.2.2.1.dcm"]]


# -- bug: no DICOM module -> AttributeError ---------------------------------------------------
def test_without_the_dicom_module_the_message_says_so(widget, monkeypatch):
    import slicer

    monkeypatch.delattr(slicer, "dicomDatabase", raising=False)
    with pytest.raises(ValueError, match="DICOM module"):
        widget.onLoadFromDatabase()


# -- bug: a stale pending level renamed the next point ---------------------------------------------
def test_leaving_place_mode_forgets_the_pending_level(widget, env):
    import slicer
    import vtk

    interaction = env.application_logic.GetInteractionNode()
    widget.onPlaceNextLevel()
    points = widget._parameterNode.roiPoints
    assert points is not None and widget._levelPoints.pendingLevel == "L1"
    interaction.SetCurrentInteractionMode(slicer.vtkMRMLInteractionNode.Place)
    interaction.SetCurrentInteractionMode(slicer.vtkMRMLInteractionNode.ViewTransform)
    assert widget._levelPoints.pendingLevel is None
    index = points.AddControlPoint(vtk.vtkVector3d(0.0, 0.0, 0.0), "L3")
    points.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent)
    assert points.GetNthControlPointLabel(index) == "L3"


def test_points_written_by_the_panel_keep_their_levels(widget, env):
    """Detection and relabelling rewrite the point list in code (which fires the same
    "position defined" event): a pending request must not rename those points."""
    import types

    import slicer

    widget.onPlaceNextLevel()
    env.application_logic.GetInteractionNode().SetCurrentInteractionMode(
        slicer.vtkMRMLInteractionNode.Place
    )
    placed = types.SimpleNamespace(
        levels=[types.SimpleNamespace(level=lv, centre_ras=(0.0, 0.0, 30.0 * i))
                for i, lv in enumerate(("L2", "L3"))]
    )  # fmt: skip
    widget._writeLevelPoints(placed)
    points = widget._parameterNode.roiPoints
    labels = [points.GetNthControlPointLabel(i) for i in range(points.GetNumberOfControlPoints())]
    assert labels == ["L2", "L3"]


def test_a_point_placed_in_place_mode_gets_the_pending_level(widget, env):
    import slicer
    import vtk

    widget.onPlaceNextLevel()
    points = widget._parameterNode.roiPoints
    env.application_logic.GetInteractionNode().SetCurrentInteractionMode(
        slicer.vtkMRMLInteractionNode.Place
    )
    index = points.AddControlPoint(vtk.vtkVector3d(0.0, 0.0, 0.0), "F-1")
    points.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent)
    assert points.GetNthControlPointLabel(index) == "L1"
    assert widget._levelPoints.pendingLevel is None


# -- bug: the Sample Data loader failed silently ---------------------------------------------------
def test_sample_data_loader_errors_reach_the_user(widget, module, monkeypatch):
    import slicer

    shown = []
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kw: shown.append(text))
    slicer.app.testing = False  # as in an interactive session

    def declined(*args, **kwargs):
        raise RuntimeError("the user declined installing pandas")

    monkeypatch.setattr(module, "_ensureLibraryDependencies", declined)
    with pytest.raises(RuntimeError):
        module._loadPhantomSample()
    assert len(shown) == 1 and "declined installing pandas" in shown[0]


# -- rough edge: the statistics view showed the old table ------------------------------------------
def test_picking_another_statistics_table_shows_it(widget, env):
    other = env.scene.AddNewNodeByClass("vtkMRMLTableNode", "another table")
    widget._parameterNode.statisticsTable = other
    widget._updateGuiState()
    assert widget.ui.statisticsTableView.called("setMRMLTableNode")[-1] == (other,)


# -- responsive: long steps off the GUI thread, with cancel ----------------------------------------
def test_cancel_stops_the_worker_inside_a_library_call(module):
    """Cancel reaches work that reports no progress (a library call): the worker stops."""
    import time

    from RefractureRiskSlicer import tasks

    def busy(n):  # stands for a library function: Python calls, no progress reports
        return sum(i * i for i in range(n))

    def work(progress):
        progress("working", 0.1)
        for _ in range(10_000):
            busy(20_000)
        return "finished"

    polls, worker = [], []
    started = time.perf_counter()
    with pytest.raises(tasks.Cancelled):
        tasks.runInBackground(
            work, lambda progress: polls.append(1) or len(polls) >= 2, worker=worker
        )
    assert time.perf_counter() - started < 1.0  # the GUI got control back at once
    worker[0].join(2.0)
    assert not worker[0].is_alive()  # and the worker stopped (10 000 calls would take minutes)


def test_cancel_during_an_import_leaves_imports_working(module, tmp_path, monkeypatch):
    """Cancel while the worker imports a module (the library's first use): the cancel waits
    until the import is done, so the interpreter's import lock is not left taken (every later
    import, the GUI's too, waited for ever)."""
    import importlib
    import sys
    import threading

    from RefractureRiskSlicer import tasks

    (tmp_path / "rr_slow_import.py").write_text("import time\ntime.sleep(0.4)\nDONE = True\n")
    (tmp_path / "rr_later_import.py").write_text("DONE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def work(progress):
        importlib.import_module("rr_slow_import")  # Cancel is pressed in here
        while True:
            sum(i for i in range(1000))

    worker = []
    with pytest.raises(tasks.Cancelled):
        tasks.runInBackground(work, lambda progress: True, worker=worker)
    worker[0].join(5.0)
    assert not worker[0].is_alive()  # stopped after its import
    assert sys.modules["rr_slow_import"].DONE
    later = threading.Thread(target=importlib.import_module, args=("rr_later_import",))
    later.start()
    later.join(5.0)
    assert not later.is_alive(), "an import after the cancel waits for ever"
    for name in ("rr_slow_import", "rr_later_import"):
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def dicom_folder(tmp_path_factory):
    """A small IDEAL-IQ-style DICOM study of the phantom (PDFF and R2* series)."""
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
    from RefractureRiskLib.phantom.dicom_writer import write_dicom_study

    folder = tmp_path_factory.mktemp("dicom")
    spec = PhantomSpec(seed=4, in_plane_spacing_mm=2.5, slice_thickness_mm=4.0)
    write_dicom_study(generate_phantom(spec).study, folder, seed=4, kinds=("pdff", "r2s"))
    return folder


def test_loading_a_dicom_folder_through_the_panel(widget, env, dialogs, dicom_folder):
    """Loading a DICOM folder: read off the GUI thread behind a progress dialog, then the maps are
    volume nodes of the scene and the parameter node points at them; the PDFF source is kept
    for SEG/SR export."""
    widget._ensureDependencies = lambda *a, **k: None
    widget.ui.dicomFolderPathLineEdit.currentPath = str(dicom_folder)
    widget.onLoadDicomFolder()
    p = widget._parameterNode
    assert p.pdffVolume is not None and p.r2sVolume is not None
    assert env.scene.GetNodeByID(p.pdffVolume.GetID()) is p.pdffVolume
    study = widget._study()
    assert study.pdff.array.max() <= 100.0 and study.provenance.study_uid
    assert widget.logic.dicomSource and len(widget.logic.dicomSource[0]) == study.grid.shape[0]
    assert dialogs and dialogs[-1].closed and "DICOM" in dialogs[-1].labelText


def test_loading_reports_files_scanned_and_series_read(widget, dicom_folder):
    """The panel's loading step (what runLong runs) reports real progress from the library's
    callbacks: every few files scanned, then each series read; more than twice, never going
    back, to the end."""
    reports = []
    widget.logic.readDicomFolder(str(dicom_folder), lambda *report: reports.append(report))
    n_files = sum(1 for p in dicom_folder.rglob("*") if p.is_file())
    fractions = [fraction for _message, fraction in reports]
    assert len(reports) > 2 and fractions == sorted(fractions) and fractions[-1] == 1.0
    messages = [message for message, _fraction in reports]
    assert f"scanned {n_files} of {n_files} files" in messages
    assert sum(m.startswith("scanned ") for m in messages) > 2
    assert [m.split(" (")[0] for m in messages if m.startswith("read ")] == [
        "read 1 of 2 series",
        "read 2 of 2 series",
    ]


def test_cancelled_loading_adds_nothing(widget, env, dialogs, dicom_folder, monkeypatch):
    """Cancel pressed while the folder is read. A warm read of this small folder can end
    before the dialog's first look at its Cancel button (50 ms): here it takes 200 ms more."""
    widget._ensureDependencies = lambda *a, **k: None
    widget.ui.dicomFolderPathLineEdit.currentPath = str(dicom_folder)
    before = env.scene.GetNumberOfNodes()
    read = widget.logic.readDicomFolder

    def slowRead(folder, progress=None, echoes=False):
        time.sleep(0.2)
        return read(folder, progress, echoes)

    monkeypatch.setattr(widget.logic, "readDicomFolder", slowRead)
    dialogs.cancel_after = 1  # Cancel pressed at the first look
    widget.onLoadDicomFolder()  # a cancel is no error
    assert env.scene.GetNumberOfNodes() == before
    assert widget._parameterNode.pdffVolume is None and widget.logic.dicomSource is None
    assert dialogs[-1].closed and dialogs[-1].polls == 1


def test_the_gui_processes_events_every_100_ms_during_detection(widget, module, dialogs):
    """Detection on the phantom: events are processed at least every ~100 ms (measured)."""
    import slicer

    logic = widget.logic
    phantom = logic.generatePhantomStudy(seed=0)
    logic.detectVertebrae(phantom.study)  # the first run also imports scipy & co. (not measured)
    nodes = logic.addStudyToScene(phantom.study, baseName="p")
    widget._parameterNode.pdffVolume = nodes["pdff"]
    widget._parameterNode.r2sVolume = nodes["r2s"]
    widget._ensureDependencies = lambda *a, **k: None
    widget.onDetectVertebrae()
    times = slicer.app.processed_events_at
    gaps = sorted(b - a for a, b in itertools.pairwise(times))
    assert len(times) > 10, "detection ran without processing events"
    # every 50 ms plus the wait for the worker's current C call (GIL), then after each segment
    # shown. A single C call or garbage collection in the worker can hold the GIL longer: the
    # longest wait is bounded loosely, the typical one tightly.
    p90 = gaps[int(0.9 * (len(gaps) - 1))]
    assert p90 < 0.1 and gaps[-1] < 0.4, f"waits without events (s): {gaps[-5:]}"
    assert widget._roiResult is not None and widget._parameterNode.segmentation is not None
    assert dialogs and dialogs[-1].closed and dialogs[-1].value > 0


def test_detection_reports_the_library_steps(widget):
    """Detecting vertebrae shows automatic_rois' own steps as they start, each a share of the
    bar, never going back (issue 16, point 2)."""
    reports = []
    study = widget.logic.generatePhantomStudy(seed=0).study
    widget.logic.detectVertebrae(study, progress=lambda *report: reports.append(report))
    messages = [message for message, _fraction in reports]
    fractions = [fraction for _message, fraction in reports]
    assert {"finding the vertebral column", "naming the levels", "placing the ROIs"} <= set(
        messages
    )
    assert len(set(fractions)) > 4 and fractions == sorted(fractions), reports


def test_cancelled_detection_leaves_the_scene_as_it_was(widget, env, dialogs):
    logic = widget.logic
    nodes = logic.addStudyToScene(logic.generatePhantomStudy(seed=0).study, baseName="p")
    widget._parameterNode.pdffVolume = nodes["pdff"]
    widget._ensureDependencies = lambda *a, **k: None
    before = env.scene.GetNumberOfNodes()
    dialogs.cancel_after = 2  # Cancel pressed about 0.1 s into the detection
    widget.onDetectVertebrae()  # a cancel is no error: nothing raised
    assert env.scene.GetNumberOfNodes() == before
    assert widget._roiResult is None and widget._parameterNode.segmentation is None
    assert widget._parameterNode.roiPoints is None
    assert dialogs[-1].closed


def test_closing_the_scene_clears_the_caches(widget, env, module):
    """Closing the scene forgets the loaded studies, the cached Study and the results."""
    logic = widget.logic
    nodes = logic.addStudyToScene(logic.generatePhantomStudy(seed=0).study, baseName="p")
    study = logic.studyFromNodes({"pdff": nodes["pdff"]})
    assert logic.studyFromNodes({"pdff": nodes["pdff"]}) is study  # cached while unchanged
    widget._lastOutcome = {"risk": "stale"}
    studies = module.studies
    assert studies._loaded and studies._built
    widget.setParameterNode = lambda node: None  # (the wrapper needs the application)
    env.scene.Clear(0)
    assert not studies._loaded and not studies._built
    assert widget._lastOutcome is None and widget._roiResult is None


def test_a_new_study_forgets_the_last_results_and_studies_no_longer_in_the_scene(
    widget, env, module
):
    logic = widget.logic
    first = logic.generatePhantomStudy(seed=0).study
    nodes = logic.addStudyToScene(first, baseName="first")
    widget._roiResult, widget._lastOutcome = "old ROIs", "old risk"
    for node in nodes.values():
        env.scene.RemoveNode(node)
    widget._useStudy(first)
    assert widget._roiResult is None and widget._lastOutcome is None
    assert len(module.studies._loaded) == 1  # the removed nodes' study is forgotten


def test_a_live_point_move_recomputes_only_its_level(widget, env, dialogs):
    """Moving L2's point: L2's ROI, statistics rows and segment change; the rest is kept, and
    the statistics equal a full recomputation."""
    import numpy as np
    import pandas as pd

    logic = widget.logic
    phantom = logic.generatePhantomStudy(seed=0)
    nodes = logic.addStudyToScene(phantom.study, baseName="p")
    p = widget._parameterNode
    p.pdffVolume, p.r2sVolume = nodes["pdff"], nodes["r2s"]
    truth = {t.level: t.centre_ras for t in phantom.truth.levels if t.level in ("L1", "L2", "L3")}
    points = boot.load_module().mrml.updateMarkupsFromLevelPoints(truth)
    p.roiPoints = points
    study = widget._study()
    widget._showRoiResult(logic.roisFromPoints(study, truth, "r", ()), study)
    segmentation = p.segmentation.GetSegmentation()
    kept = {lv: segmentation.GetSegment(f"Segment_{lv}") for lv in ("L1", "L2", "L3")}
    before = widget._roiResult
    index = points.GetControlPointIndexByLabel("L2")
    x, y, z = truth["L2"]
    points.SetNthControlPointPosition(index, x, y + 2.0, z + 2.0)
    widget._onLevelPointChanged(points, "L2")
    after = widget._roiResult
    assert widget._study() is study  # the maps were not copied again
    assert np.allclose(after.extras["points_ras"]["L2"], (x, y + 2.0, z + 2.0))
    assert segmentation.GetSegment("Segment_L2") is not kept["L2"]  # rebuilt
    for lv in ("L1", "L3"):
        assert np.array_equal(after.roiset.mask(lv), before.roiset.mask(lv))
        assert segmentation.GetSegment(f"Segment_{lv}") is kept[lv]  # not rebuilt
    full = logic.computeStatistics(after, study)
    pd.testing.assert_frame_equal(
        widget._statistics.reset_index(drop=True), full.reset_index(drop=True), rtol=1e-12
    )
    segment = segmentation.GetSegment("Segment_L2")
    assert segment is not None and segment.GetName() == "L2"


def test_a_dragged_point_runs_the_one_level_update(widget, env, dialogs, monkeypatch):
    """The end of a drag (Slicer's PointEndInteractionEvent, the point's index in
    "Markups.MovingMarkupIndex") reaches the library's one-level update: one level placed, the
    others kept as they were, the label map as a full recomputation with the moved point."""
    import numpy as np
    import slicer

    from RefractureRiskLib.roi import level_update
    from RefractureRiskLib.roi.manual import rois_from_points

    placed = []
    place_one = level_update._place_one
    monkeypatch.setattr(
        level_update,
        "_place_one",
        lambda arrays, level, *args: placed.append(level) or place_one(arrays, level, *args),
    )
    logic = widget.logic
    phantom = logic.generatePhantomStudy(seed=0)
    nodes = logic.addStudyToScene(phantom.study, baseName="p")
    p = widget._parameterNode
    p.pdffVolume, p.r2sVolume = nodes["pdff"], nodes["r2s"]
    levels = ("L1", "L2", "L3", "L4")
    truth = {t.level: t.centre_ras for t in phantom.truth.levels if t.level in levels}
    points = boot.load_module().mrml.updateMarkupsFromLevelPoints(truth)
    p.roiPoints = points
    study = widget._study()
    widget._showRoiResult(logic.roisFromPoints(study, truth, "r", ()), study)
    before = {e.level: e for e in widget._roiResult.levels}
    widget._levelPoints.observe(points)
    index = points.GetControlPointIndexByLabel("L2")
    moved = dict(truth, L2=tuple(np.asarray(truth["L2"]) + np.array([0.0, 2.0, 0.0])))
    points.SetNthControlPointPosition(index, *moved["L2"])
    points.SetAttribute("Markups.MovingMarkupIndex", str(index))
    points.InvokeEvent(slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent)
    points.RemoveAttribute("Markups.MovingMarkupIndex")
    after = widget._roiResult
    assert placed == ["L2"]  # one level placed, not four
    assert after.extras["updated_levels"] == ("L2",)
    assert {e.level: e for e in after.levels}["L4"] is before["L4"]
    full = rois_from_points(study, moved, reader="r")
    assert np.array_equal(after.roiset.labelmap.array, full.roiset.labelmap.array)
    assert np.array_equal(after.body_labels.array, full.body_labels.array)
    assert [d for d in dialogs if d.kwargs.get("minimumDuration") == 500]  # shown only if slow


def test_a_live_move_into_another_segmentation_fills_every_level(widget, env, dialogs):
    """The user picked another (empty) segmentation: a live move writes every level into it,
    not only the moved one."""
    logic = widget.logic
    phantom = logic.generatePhantomStudy(seed=0)
    nodes = logic.addStudyToScene(phantom.study, baseName="p")
    p = widget._parameterNode
    p.pdffVolume = nodes["pdff"]
    truth = {t.level: t.centre_ras for t in phantom.truth.levels if t.level in ("L1", "L2", "L3")}
    p.roiPoints = boot.load_module().mrml.updateMarkupsFromLevelPoints(truth)
    study = widget._study()
    widget._showRoiResult(logic.roisFromPoints(study, truth, "r", ()), study)
    p.segmentation = env.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty")
    widget._onLevelPointChanged(p.roiPoints, "L2")
    segmentation = p.segmentation.GetSegmentation()
    names = [
        segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())
    ]
    assert sorted(names) == ["L1", "L2", "L3"]
