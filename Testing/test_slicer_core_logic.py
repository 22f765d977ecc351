"""The Slicer module's logic against real MRML nodes from slicer-core (no Qt, no application).

Skips, with the reason, when slicer-core is not importable. The bootstrap and its test-only
stand-ins for Slicer's Qt-based Python modules are described in ``slicer_core_bootstrap.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from RefractureRiskLib.core import InputError, LevelRoi, RoiFlag, RoiMethod, RoiSet, Volume
from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS, level_label
from Testing import slicer_core_bootstrap as boot

pytest_plugins = ("Testing.conftest_slicer",)
pytestmark = pytest.mark.slicer_core


@pytest.fixture(scope="module")
def mrml(module):
    """The module's MRML conversions (RefractureRisk/RefractureRiskSlicer/mrml.py)."""
    return module.mrml


@pytest.fixture(scope="module")
def display(module):
    return module.display


@pytest.fixture(scope="module")
def workflow(module):
    return module.workflow


def _rotation(ax_deg: float, ay_deg: float, az_deg: float) -> np.ndarray:
    a, b, c = np.deg2rad([ax_deg, ay_deg, az_deg])
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _oblique_grid(shape=(12, 20, 16), seed=1) -> Volume:
    rng = np.random.default_rng(seed)
    array = rng.uniform(0.0, 100.0, size=shape).astype(np.float32)
    return Volume.from_geometry(
        array,
        spacing_mm=(0.78, 0.91, 3.3),
        origin_ras=(-41.5, 17.25, 102.0),
        directions_ras=_rotation(12.0, -7.0, 25.0),
    )


def _roiset(grid: Volume) -> RoiSet:
    labels = np.zeros(grid.shape, np.int16)
    labels[1:4, 2:8, 3:9] = level_label("T12")
    labels[5:8, 4:12, 2:10] = level_label("L1")
    labels[9:11, 10:18, 5:14] = level_label("L2")
    labels[9, 10, 5] = 0  # an irregular hole so voxel counts are not box volumes
    levels = (
        LevelRoi("T12", level_label("T12")),
        LevelRoi("L1", level_label("L1"), flags=frozenset({RoiFlag.INDEX})),
        LevelRoi(
            "L2", level_label("L2"), flags=frozenset({RoiFlag.FRACTURED}), include_override=True
        ),
    )
    return RoiSet(grid.with_array(labels), levels, RoiMethod.MANUAL_POINTS, reader="tester")


# -- volumes ---------------------------------------------------------------------------------
def test_volume_round_trip_oblique_geometry(logic, env, mrml):
    grid = _oblique_grid()
    node = mrml.updateVolumeNode(grid, name="pdff")
    assert env.scene.GetNodeByID(node.GetID()) is node
    # MRML's own view of the geometry agrees (spacing and origin are stored separately there)
    assert np.allclose(node.GetSpacing(), grid.spacing_mm, atol=1e-9)
    assert np.allclose(node.GetOrigin(), grid.origin_ras, atol=1e-9)
    back = mrml.volumeFromNode(node)
    assert back.array.dtype == grid.array.dtype
    assert np.array_equal(back.array, grid.array)
    assert np.allclose(back.ijk_to_ras, grid.ijk_to_ras, atol=1e-9)
    # one voxel's RAS position, computed by MRML itself
    ijk = (3, 7, 5)
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    ras_mrml = matrix.MultiplyPoint((*ijk, 1.0))[:3]
    assert np.allclose(ras_mrml, grid.ijk_to_ras_points([ijk])[0], atol=1e-9)


def test_volume_integer_and_bool_arrays(logic, mrml):
    grid = _oblique_grid()
    labels = grid.with_array(np.arange(np.prod(grid.shape)).reshape(grid.shape) % 10)  # int64
    node = mrml.updateVolumeNode(labels, name="labels", labelmap=True)
    assert node.IsA("vtkMRMLLabelMapVolumeNode")
    back = mrml.volumeFromNode(node)
    assert np.array_equal(back.array, labels.array)
    mask = mrml.volumeFromNode(mrml.updateVolumeNode(grid.with_array(labels.array > 4), name="m"))
    assert np.array_equal(mask.array, (labels.array > 4).astype(np.uint8))


def test_sheared_grid_and_transformed_volume_are_refused(logic, env, mrml):
    import slicer

    sheared = np.eye(4)
    sheared[0, 1] = 0.5
    with pytest.raises(InputError, match="not orthogonal"):
        mrml.updateVolumeNode(Volume(np.zeros((2, 3, 4), np.float32), sheared), name="shear")
    node = mrml.updateVolumeNode(_oblique_grid(), name="moved")
    transform = env.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(InputError, match="harden"):
        mrml.volumeFromNode(node)
    assert slicer.mrmlScene is env.scene


def test_study_from_nodes_checks_grid_and_pdff(logic, mrml):
    grid = _oblique_grid()
    pdff = mrml.updateVolumeNode(grid, name="FatFrac: sag")
    r2s = mrml.updateVolumeNode(grid.with_array(grid.array * 0.5), name="R2* map")
    study = logic.studyFromNodes({"pdff": pdff, "r2s": r2s, "water": None}, fieldStrengthT=3.0)
    assert set(study.maps) == {"pdff", "r2s"}
    assert study.provenance.field_strength_t == 3.0
    assert np.array_equal(study.r2s.array, grid.array * 0.5)
    other = mrml.updateVolumeNode(_oblique_grid(shape=(12, 20, 17)), name="other grid")
    with pytest.raises(InputError, match="grid"):
        logic.studyFromNodes({"pdff": pdff, "r2s": other})
    with pytest.raises(InputError, match="PDFF"):
        logic.studyFromNodes({"r2s": r2s})
    guesses = mrml.guessMapKinds([r2s, pdff])
    assert guesses == {"r2s": r2s, "pdff": pdff}


def test_pdff_display_uses_fat_fraction_colours(logic, module, mrml, display):
    node = mrml.updateVolumeNode(_oblique_grid(), name="pdff")
    shown = display.showPdff(node)
    assert shown.GetColorNodeID() == display.pdffColorNode().GetID()
    assert (shown.GetWindowLevelMin(), shown.GetWindowLevelMax()) == (0.0, 100.0)
    table = display.pdffColorNode()
    rgba = [0.0] * 4
    table.GetColor(255, rgba)
    assert np.allclose(rgba[:3], display.pdffColor(100.0), atol=1.0 / 255)  # stored as 8 bits


# -- RoiSet <-> segmentation -----------------------------------------------------------------
def test_roiset_segmentation_round_trip(logic, env, module, mrml, display):
    grid = _oblique_grid()
    reference = mrml.updateVolumeNode(grid, name="pdff")
    roiset = _roiset(grid)
    means = {"T12": 38.0, "L1": 52.0, "L2": 61.0}
    seg = mrml.roiSetToSegmentation(roiset, reference, colors=display.levelColors(roiset, means))
    segmentation = seg.GetSegmentation()
    names = [
        segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())
    ]
    assert names == ["T12", "L1", "L2"]
    colours = {n: segmentation.GetNthSegment(i).GetColor() for i, n in enumerate(names)}
    assert np.allclose(colours["T12"], display.pdffColor(38.0))  # included: coloured by its PDFF
    assert np.allclose(colours["L1"], display.INDEX_LEVEL_COLOR)  # index level: distinct
    assert np.allclose(colours["L2"], display.pdffColor(61.0))  # re-included by the user
    assert len({tuple(np.round(c, 6)) for c in colours.values()}) == 3

    back = mrml.roiSetFromSegmentation(seg, reference, reader="tester")
    assert back.level_names == roiset.level_names
    for lv in roiset.levels:
        assert int(back.mask(lv.level).sum()) == int(roiset.mask(lv.level).sum()) > 0
        assert back.level(lv.level).flags == lv.flags
        assert back.level(lv.level).include_override == lv.include_override
    assert np.array_equal(back.labelmap.array, roiset.labelmap.array)
    assert np.allclose(back.labelmap.ijk_to_ras, grid.ijk_to_ras, atol=1e-9)
    assert back.method == roiset.method and back.reader == roiset.reader  # from segment tags

    # writing the read-back RoiSet again gives the same names and colours
    seg2 = mrml.roiSetToSegmentation(back, reference, colors=display.levelColors(back, means))
    s2 = seg2.GetSegmentation()
    for i, name in enumerate(names):
        assert s2.GetNthSegment(i).GetName() == name
        assert np.allclose(s2.GetNthSegment(i).GetColor(), colours[name])

    # each level searched for only in a box holding its voxels (a RoiResult's placement boxes,
    # as the panel passes them): the same segments, at the same place on the oblique grid
    boxes = {}
    for lv in roiset.levels:
        where = np.nonzero(roiset.labelmap.array == lv.label)
        boxes[lv.level] = tuple(slice(max(int(a.min()) - 2, 0), int(a.max()) + 3) for a in where)
    seg3 = mrml.roiSetToSegmentation(roiset, reference, boxes=boxes)
    back3 = mrml.roiSetFromSegmentation(seg3, reference)
    assert np.array_equal(back3.labelmap.array, roiset.labelmap.array)


def test_segmentation_from_other_software_is_read_by_segment_name(logic, env, mrml):
    import slicer
    import vtk

    grid = _oblique_grid()
    reference = mrml.updateVolumeNode(grid, name="pdff")
    seg = env.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    seg.SetReferenceImageGeometryParameterFromVolumeNode(reference)
    masks = {}
    for name, box in (("vertebrae_L3", np.s_[1:5, 3:9, 2:7]), ("L4 body", np.s_[6:10, 5:15, 4:12])):
        mask = np.zeros(grid.shape, np.uint8)
        mask[box] = 1
        masks[name] = mask
        segment_id = seg.GetSegmentation().AddEmptySegment(name, name, (0.2, 0.4, 0.6))
        label_node = mrml.updateVolumeNode(grid.with_array(mask), name="tmp", labelmap=True)
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
            label_node, seg, ids
        )
        env.scene.RemoveNode(label_node)
    roiset = mrml.roiSetFromSegmentation(seg, reference)
    assert roiset.level_names == ("L3", "L4")
    assert int(roiset.mask("L3").sum()) == int(masks["vertebrae_L3"].sum())
    assert int(roiset.mask("L4").sum()) == int(masks["L4 body"].sum())
    assert roiset.level("L3").label == level_label("L3")

    seg.GetSegmentation().AddEmptySegment("tumour", "tumour", (1, 0, 0))
    with pytest.raises(InputError, match="tumour"):
        mrml.roiSetFromSegmentation(seg, reference)


# -- statistics -> table ---------------------------------------------------------------------
def test_statistics_records_to_table(logic, mrml):
    records = [
        {
            "level": "L1",
            "map": "pdff",
            "n_voxels": 120,
            "volume_ml": 0.84,
            "mean": 51.5,
            "flags": "",
        },
        {
            "level": "L2",
            "map": "pdff",
            "n_voxels": 98,
            "volume_ml": 0.69,
            "mean": None,
            "flags": "fractured",
        },
        {
            "level": "L2",
            "map": "r2s",
            "n_voxels": 98,
            "volume_ml": 0.69,
            "mean": float("nan"),
            "flags": "fractured",
        },
    ]
    table = mrml.updateTableNode(records, name="stats")
    assert table.GetNumberOfRows() == 3
    assert table.GetNumberOfColumns() == 6
    vtable = table.GetTable()
    assert vtable.GetColumnByName("mean").GetValue(0) == 51.5
    assert math.isnan(vtable.GetColumnByName("mean").GetValue(1))
    assert vtable.GetColumnByName("level").GetValue(1) == "L2"
    assert vtable.GetColumnByName("flags").GetValue(2) == "fractured"
    assert vtable.GetColumnByName("n_voxels").GetValue(2) == 98
    assert table.GetColumnUnitLabel("volume_ml") == "mL"
    back = mrml.recordsFromTableNode(table)
    assert back[0]["level"] == "L1" and back[0]["volume_ml"] == pytest.approx(0.84)
    # refilling replaces the content
    mrml.updateTableNode(records[:1], table)
    assert table.GetNumberOfRows() == 1


def test_library_statistics_dataframe_to_table(logic, mrml):
    import importlib

    from RefractureRiskLib.core import Study

    # the module, not the function of the same name that RefractureRiskLib.stats re-exports
    stats_module = importlib.import_module("RefractureRiskLib.stats.roi_statistics")

    grid = _oblique_grid()
    roiset = _roiset(grid)
    study = Study({"pdff": grid, "r2s": grid.with_array(grid.array * 0.7)})
    stats = stats_module.roi_statistics(roiset, study)
    table = mrml.updateTableNode(stats, name="stats")
    assert table.GetNumberOfRows() == len(stats)
    assert table.GetNumberOfColumns() == len(stats.columns)
    vtable = table.GetTable()
    for column in ("mean", "volume_ml"):
        assert np.allclose(
            [vtable.GetColumnByName(column).GetValue(r) for r in range(len(stats))],
            stats[column].to_numpy(float),
        )
    means = mrml.meanPdffByLevel(stats)
    for level in ("T12", "L1", "L2"):
        assert means[level] == pytest.approx(float(grid.array[roiset.mask(level)].mean()), rel=1e-5)


# -- markups -> manual ROI points ------------------------------------------------------------
def test_markups_points_named_by_level(logic, env, mrml):
    import slicer
    import vtk

    node = env.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "points")
    node.AddControlPoint(vtk.vtkVector3d(1.0, 2.0, 3.0), "L1")
    node.AddControlPoint(vtk.vtkVector3d(4.0, 5.0, -6.5), "l2")
    node.AddControlPoint(vtk.vtkVector3d(0.0, 0.0, 40.0), "T12 body")
    points = mrml.levelPointsFromMarkups(node)
    assert points == {"L1": (1.0, 2.0, 3.0), "L2": (4.0, 5.0, -6.5), "T12": (0.0, 0.0, 40.0)}
    assert mrml.nextLevelToPlace(points) == "L3"

    # positions are world RAS: a parent transform moves them
    transform = env.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = vtk.vtkMatrix4x4()
    shift.SetElement(2, 3, 10.0)
    transform.SetMatrixTransformToParent(shift)
    node.SetAndObserveTransformNodeID(transform.GetID())
    assert mrml.levelPointsFromMarkups(node)["L1"] == (1.0, 2.0, 13.0)

    node.AddControlPoint(vtk.vtkVector3d(9.0, 9.0, 9.0), "F-4")
    with pytest.raises(InputError, match="F-4"):
        mrml.levelPointsFromMarkups(node)
    assert set(mrml.levelPointsFromMarkups(node, strict=False)) == {"L1", "L2", "T12"}
    node.SetNthControlPointLabel(3, "L1")
    with pytest.raises(InputError, match="repeats level L1"):
        mrml.levelPointsFromMarkups(node)

    written = mrml.updateMarkupsFromLevelPoints({"L3": (1.0, 1.0, 1.0), "T10": (0.0, 0.0, 90.0)})
    assert [written.GetNthControlPointLabel(i) for i in range(2)] == ["T10", "L3"]
    assert slicer.util.arrayFromMarkupsControlPoints(written).tolist() == [[0, 0, 90], [1, 1, 1]]


def test_level_names_match_library(module, mrml):
    assert module.LEVELS == VERTEBRAL_LEVELS
    assert mrml.parseLevels("L1, l2;T12") == ("L1", "L2", "T12")
    for bad in ("L1, X7", "L1-L2", "T8"):
        with pytest.raises(InputError):
            mrml.parseLevels(bad)


def test_next_level_to_place(logic, mrml):
    assert mrml.nextLevelToPlace([]) == "L1"
    assert mrml.nextLevelToPlace(["L1", "L2"]) == "L3"
    assert mrml.nextLevelToPlace(["L4", "L5", "S1"]) == "L3"
    assert mrml.nextLevelToPlace(["T10", "S1"]) == "L5"
    assert mrml.nextLevelToPlace(list(VERTEBRAL_LEVELS)) is None


def test_risk_annotation_text(module, logic, display, workflow):
    from RefractureRiskLib.model import modelfile, scoring

    model = modelfile.load_model(modelfile.bundled_model_path())
    patient = {spec.name: workflow.typicalInputValue(spec) for spec in model.inputs}
    risk = scoring.score(model, patient)
    text = display.riskAnnotationText(risk)
    assert f"{100 * risk.probability:.1f}%" in text
    assert risk.model_warning is not None and not risk.validated
    assert risk.model_warning.upper() in text
    assert str(risk.horizon_days) in text


# -- the workflow the Slicer self-test runs --------------------------------------------------
def test_workflow_on_phantom(logic, module, workflow):
    """Same steps as RefractureRiskTest.test_RefractureRiskWorkflow inside Slicer."""
    phantom = logic.generatePhantomStudy(seed=0)
    nodes = logic.addStudyToScene(phantom.study, baseName="phantom")
    messages = workflow.runWorkflowChecks(logic, phantom, nodes)
    assert any(m.startswith("risk") for m in messages)
    assert messages[-1].startswith("rejecting L3")


def test_study_provenance_survives_the_scene(logic, mrml):
    from RefractureRiskLib.core import PatientInfo, SeriesProvenance, Study, StudyProvenance

    grid = _oblique_grid()
    provenance = StudyProvenance(
        vendor="GE",
        field_strength_t=1.494,
        study_uid="1.2.3",
        series={"pdff": SeriesProvenance("pdff", series_uid="1.2.3.4", scaling=("x0.1",))},
    )
    study = Study({"pdff": grid, "r2s": grid}, provenance, PatientInfo(age_years=71.0, sex="F"))
    nodes = logic.addStudyToScene(study, baseName="s")
    back = logic.studyFromNodes({"pdff": nodes["pdff"], "r2s": nodes["r2s"]}, fieldStrengthT=1.5)
    assert back.provenance.vendor == "GE" and back.provenance.study_uid == "1.2.3"
    assert back.provenance.series["pdff"].scaling == ("x0.1",)
    assert back.provenance.field_strength_t == 1.5  # the panel's choice wins
    assert back.patient.age_years == 71.0
    # swapping kinds, or mixing in a volume from elsewhere, drops the loaded study's provenance
    swapped = logic.studyFromNodes({"pdff": nodes["r2s"], "r2s": nodes["pdff"]})
    assert swapped.provenance.vendor == "unknown" and swapped.patient.age_years is None
    other = mrml.updateVolumeNode(grid, name="other")
    mixed = logic.studyFromNodes({"pdff": nodes["pdff"], "r2s": other})
    assert mixed.provenance.study_uid is None


def test_pdff_chart_by_level(logic, env, mrml, display):
    records = [
        {"level": "L2", "map": "pdff", "mean": 55.0},
        {"level": "L2", "map": "r2s", "mean": 61.0},
        {"level": "T12", "map": "pdff", "mean": 41.5},
    ]
    chart = display.updatePdffChart(records)
    assert chart.GetNumberOfPlotSeriesNodes() == 2
    series = chart.GetNthPlotSeriesNode(0)
    table = series.GetTableNode()
    rows = mrml.recordsFromTableNode(table)
    assert [r["level"] for r in rows] == ["T12", "L2"]  # cranial to caudal
    assert [r["pdff_mean_pct"] for r in rows] == [41.5, 55.0]
    assert math.isnan(rows[0]["r2s_mean_per_s"]) and rows[1]["r2s_mean_per_s"] == 61.0
    assert series.GetYColumnName() == "pdff_mean_pct"
    # a second update reuses the nodes
    assert display.updatePdffChart(records[:1]) is chart
    assert env.scene.GetNumberOfNodesByClass("vtkMRMLPlotChartNode") == 1


@pytest.mark.slow
def test_outputs_from_a_dicom_study(logic, module, tmp_path, mrml, workflow):
    """DICOM folder -> panel workflow -> saved files, DICOM SEG/SR and the measurement store.

    The risk the panel computed must equal the one the command-line pipeline writes for the same
    ROIs, model and clinical inputs.
    """
    import json

    pydicom = pytest.importorskip("pydicom")
    pytest.importorskip("sqlalchemy")
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
    from RefractureRiskLib.phantom.dicom_writer import write_dicom_study

    phantom = generate_phantom(PhantomSpec(seed=2))
    write_dicom_study(phantom.study, tmp_path / "dicom", vendor="GE", seed=2)
    study_loaded = logic.loadStudyFromFolder(tmp_path / "dicom")
    assert len(logic.dicomSource[0]) == study_loaded.grid.shape[0]  # one file per PDFF slice
    nodes = logic.addStudyToScene(study_loaded, baseName="dicom")
    study = logic.studyFromNodes({"pdff": nodes["pdff"], "r2s": nodes["r2s"]}, fieldStrengthT=1.5)
    assert study.provenance.study_uid == study_loaded.provenance.study_uid is not None
    points = {
        lv.level: lv.centre_ras
        for lv in phantom.truth.levels
        if lv.level in ("L1", "L2", "L3", "L4")
    }
    result = logic.roisFromPoints(study, points, reader="reader A", indexLevels=("L1",))
    model = logic.loadModel()
    clinical = {
        spec.name: workflow.typicalInputValue(spec) for spec in logic.clinicalInputSpecs(model)
    }
    outcome = logic.computeRisk(study, result, model, clinical, indexLevels=("L1",))

    written = logic.saveResults(outcome, str(tmp_path / "out"))
    names = {p.rsplit("/", 1)[1] for p in written}
    assert {"statistics.csv", "rois.seg.nrrd", "results.json", "report.pdf"} <= names, names
    # the files hold what the panel shows: same ROIs and flags, statistics, summary and risk
    from RefractureRiskLib.io.segmentation import read_roiset

    saved_rois = read_roiset(tmp_path / "out" / "rois.seg.nrrd", reference=study.grid)
    assert np.array_equal(saved_rois.labelmap.array, result.roiset.labelmap.array)
    assert [lv.flags for lv in saved_rois.levels] == [lv.flags for lv in result.roiset.levels]
    import pandas as pd

    saved_stats = pd.read_csv(tmp_path / "out" / "statistics.csv")
    assert np.allclose(saved_stats["mean"], outcome["statistics"]["mean"])
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["risk"]["probability"] == pytest.approx(outcome["risk"].probability, rel=1e-12)
    summary = outcome["summary"]
    assert saved["summary"]["pdff_global_L1L4_pct"] == pytest.approx(summary.pdff_global_L1L4_pct)
    assert saved["provenance"]["study_uid"] == study.provenance.study_uid
    assert saved["provenance"]["reader"] == "reader A"

    # a study built from other volumes cannot reference the loaded DICOM series
    other = mrml.updateVolumeNode(study.pdff, name="copy of pdff")
    foreign = dict(outcome, study=logic.studyFromNodes({"pdff": other}))
    with pytest.raises(InputError, match="not the DICOM series"):
        logic.exportDicom(foreign, str(tmp_path / "export"))
    seg_path, sr_path = logic.exportDicom(outcome, str(tmp_path / "export"))
    seg = pydicom.dcmread(seg_path)
    labels = [s.SegmentLabel.split()[0] for s in seg.SegmentSequence]  # "L1 marrow ROI"
    assert labels == list(result.roiset.level_names)
    assert pydicom.dcmread(sr_path).Modality == "SR"

    store_dir = tmp_path / "store"
    store_dir.mkdir()
    logic.writeToStore(outcome, str(store_dir), "reader A", "SYNTH-0002")
    from RefractureRiskLib.store.measurements import MeasurementStore

    rows = MeasurementStore(str(store_dir)).current_measurements()
    assert len(rows) == len(outcome["statistics"])
    assert {r["reader"] for r in rows} == {"reader A"}
    assert {r["patient_id"] for r in rows} == {"SYNTH-0002"}


def test_clinical_inputs_from_a_cohort_row(logic, tmp_path):
    table = tmp_path / "cohort.csv"
    table.write_text("patient_id,age_years,sex,dxa_l1l4_tscore\nP1,71,F,-2.9\nP2,64,M,\n")
    assert logic.clinicalFromCohortRow(str(table), "P2") == {
        "patient_id": "P2",
        "age_years": 64,
        "sex": "M",
        "dxa_l1l4_tscore": None,
    }
    with pytest.raises(InputError, match="P3"):
        logic.clinicalFromCohortRow(str(table), "P3")


def test_imported_body_segmentation(logic, mrml):
    """Whole-body segments (as another tool would give) -> ROIs placed inside each body."""
    from RefractureRiskLib import phantom as phantom_module
    from RefractureRiskLib.core.levels import level_from_label

    phantom = phantom_module.generate_phantom(phantom_module.PhantomSpec(seed=1))
    nodes = logic.addStudyToScene(phantom.study, baseName="p")
    study = logic.studyFromNodes({"pdff": nodes["pdff"], "r2s": nodes["r2s"]})
    bodies = phantom.truth.body_labels
    present = [int(v) for v in np.unique(bodies.array) if v > 0]
    levels = tuple(
        LevelRoi(level_from_label(v), v) for v in present if level_from_label(v) in ("L2", "L3")
    )
    labels = np.where(np.isin(bodies.array, [lv.label for lv in levels]), bodies.array, 0)
    drawn = RoiSet(bodies.with_array(labels.astype(np.int16)), levels, RoiMethod.IMPORTED_MASK)
    seg = mrml.roiSetToSegmentation(drawn, nodes["pdff"])
    imported = mrml.roiSetFromSegmentation(seg, nodes["pdff"])
    as_bodies = logic.roisFromImportedRoiSet(imported, study, segmentsAreBodies=True)
    as_rois = logic.roisFromImportedRoiSet(imported, study, segmentsAreBodies=False)
    for lv in ("L2", "L3"):
        body = drawn.mask(lv)
        core = as_bodies.roiset.mask(lv)
        assert np.array_equal(as_rois.roiset.mask(lv), body)  # used as drawn
        assert 0 < core.sum() < body.sum() and not (core & ~body).any()  # inside the body
        truth = next(t for t in phantom.truth.levels if t.level == lv)
        if not (truth.fractured or truth.cemented or truth.lesion):
            assert RoiFlag.FRACTURED not in as_bodies.roiset.level(lv).flags


def test_importing_the_module_loads_no_library_or_heavy_package():
    """Run-time counterpart of the static import check, in a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from Testing import slicer_core_bootstrap as boot\n"
        "before = set(sys.modules)\n"
        "boot.load_module()\n"
        "new = sorted(m.split('.')[0] for m in set(sys.modules) - before)\n"
        "print(' '.join(sorted(set(new))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=boot.REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    loaded = set(out[0].split())
    assert not loaded & {"RefractureRiskLib", "pandas", "scipy", "SimpleITK", "pydicom", "qt"}, (
        loaded
    )


def test_dicom_export_from_an_enhanced_mixed_study(logic, module, tmp_path, workflow):
    """Philips enhanced file holding water, fat and PDFF frames: the panel's SEG references
    only the PDFF frames (the frame numbers kept at loading reach the exporter)."""
    pydicom = pytest.importorskip("pydicom")
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
    from RefractureRiskLib.phantom.dicom_writer import write_dicom_study

    phantom = generate_phantom(PhantomSpec(seed=4))
    ws = write_dicom_study(
        phantom.study,
        tmp_path / "dicom",
        vendor="Philips",
        philips_enhanced=True,
        philips_mixed_series=True,
        seed=4,
    )
    study = logic.loadStudyFromFolder(tmp_path / "dicom")
    assert logic.dicomSource[0] == [str(p) for p in ws.by_kind("pdff").files]
    assert len(logic.dicomSource[1]) == study.grid.shape[0]
    points = {lv.level: lv.centre_ras for lv in phantom.truth.levels if lv.level in ("L2", "L3")}
    result = logic.roisFromPoints(study, points, reader="reader A")
    model = logic.loadModel()
    clinical = {
        spec.name: workflow.typicalInputValue(spec) for spec in logic.clinicalInputSpecs(model)
    }
    # tl_junction follows from the index level (the panel no longer asks for it)
    outcome = logic.computeRisk(study, result, model, clinical, indexLevels=("L1",))
    seg_path, _sr_path = logic.exportDicom(outcome, str(tmp_path / "export"))
    seg = pydicom.dcmread(seg_path)
    referenced = {
        int(src.ReferencedFrameNumber)
        for item in seg.PerFrameFunctionalGroupsSequence
        for derivation in item.DerivationImageSequence
        for src in derivation.SourceImageSequence
    }
    assert referenced and referenced <= set(logic.dicomSource[1])


def test_field_strength_is_taken_from_the_images_not_typed(logic, module, workflow):
    """A model with ``mri_field_T`` (trained at one field strength): the panel does not ask
    for it, and the risk uses the study's field strength."""
    from dataclasses import replace

    from RefractureRiskLib.model.terms import InputSpec
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom

    field = InputSpec("mri_field_T", "number", unit="T", soft_range=(1.5, 1.5), missing_value=1.5)
    model = replace(logic.loadModel(), inputs=(*logic.loadModel().inputs, field))
    assert "mri_field_T" not in {spec.name for spec in logic.clinicalInputSpecs(model)}
    clinical = {
        spec.name: workflow.typicalInputValue(spec) for spec in logic.clinicalInputSpecs(model)
    }
    phantom = generate_phantom(PhantomSpec(seed=6, field_strength_t=3.0))
    points = {lv.level: lv.centre_ras for lv in phantom.truth.levels if lv.level in ("L2", "L3")}
    result = logic.roisFromPoints(phantom.study, points, reader="reader A")
    risk = logic.computeRisk(phantom.study, result, model, clinical, indexLevels=("L1",))["risk"]
    assert any("mri_field_T = 3" in w and "extrapolation" in w for w in risk.warnings)
    assert not any("mri_field_T missing" in w for w in risk.warnings)


def test_a_moved_point_takes_the_index_levels_given_now(logic):
    """The one-level update re-derives the QC flags with the index levels the panel gives
    (they may have changed since the ROIs were placed), and only then."""
    phantom = logic.generatePhantomStudy(seed=0)
    truth = {t.level: t.centre_ras for t in phantom.truth.levels if t.level in ("L1", "L2", "L3")}
    result = logic.roisFromPoints(phantom.study, truth, "r", ())
    moved = logic.updateLevel(result, phantom.study, "L2", truth["L2"], ("L1",))
    assert "index" in {str(f) for f in moved.roiset.level("L1").flags}
    again = logic.updateLevel(moved, phantom.study, "L2", truth["L2"], ())
    assert "index" not in {str(f) for f in again.roiset.level("L1").flags}


def test_results_panel_names_summaries_in_words(module, logic, display, workflow):
    """The panel's summaries read as in the report (clinical names, units, levels averaged),
    never as table column names."""
    from RefractureRiskLib.model import modelfile, scoring
    from RefractureRiskLib.stats.summary import PatientSummary

    model = modelfile.load_model(modelfile.bundled_model_path())
    risk = scoring.score(model, {s.name: workflow.typicalInputValue(s) for s in model.inputs})
    summary = PatientSummary(
        51.3, 88.0, float("nan"), 90.5, index_levels=("L1",),
        levels_used={"pdff_global_L1L4_pct": ("L2", "L3", "L4"), "r2s_adjacent_per_s": ("T12",)},
        excluded=(("L1", "index"),), notes=("PDFF adjacent: no adjacent level measured",),
    )  # fmt: skip
    page = display.resultsHtml({"risk": risk, "summary": summary})
    summaries = page.split("<b>Summaries</b>", 1)[1]
    assert "PDFF global L1-L4: 51.3% (mean of L2-L4; L1 excluded: index)" in summaries
    assert "PDFF adjacent: not available" in summaries
    assert "Left out: L1 (index)" in summaries
    assert "_pct" not in summaries and "_per_s" not in summaries
