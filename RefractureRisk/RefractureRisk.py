"""RefractureRisk: re-fracture risk after vertebroplasty from clinical factors and marrow qMRI.

A thin 3D Slicer panel over the pure-Python library ``RefractureRiskLib`` (DESIGN.md §5): the
logic class only moves data between MRML nodes and library types; every computation is in the
library. Importing this file does no work and imports nothing beyond the standard library,
Slicer, VTK and numpy: the library, Qt dialogs and optional packages are imported on first use.

Coordinates: every position here is RAS in millimetres (Slicer's convention, and the library's).
"""

import itertools
import json
import math
import os
import re
import sys
from typing import Annotated

import numpy as np
import slicer
import vtk
from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

#: Vertebral levels in cranio-caudal order; must equal RefractureRiskLib.core.levels (the static
#: test checks it) so the panel can list levels without importing the library.
LEVELS = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")


#: Python packages the library needs that Slicer does not ship; installed on first use after
#: the user confirms (Resources/requirements.txt holds the same list for pip).
REQUIREMENTS_FILE = "requirements.txt"

#: Segment tag names used to carry the library's per-level facts through a segmentation node.
#: They are the tags RefractureRiskLib.io.segmentation writes into .seg.nrrd files, so a
#: segmentation saved from Slicer reads back into the library with its flags.
TAG_LEVEL = "RefractureRisk.Level"
TAG_FLAGS = "RefractureRisk.Flags"  # comma-separated RoiFlag values
TAG_INCLUDE = "RefractureRisk.IncludeOverride"  # "none", "true" or "false"
TAG_METHOD = "RefractureRisk.Method"
TAG_READER = "RefractureRisk.Reader"

#: Statistics columns written to the measurement store (in the unit of the row's map).
STORE_STATISTICS = (
    "n_voxels", "volume_ml", "mean", "sd", "median", "p05", "p25", "p75", "p95", "min", "max",
)  # fmt: skip

#: Node names (one of each per scene).
PDFF_COLOR_NODE_NAME = "RefractureRisk PDFF"
RISK_ANNOTATION_NODE_NAME = "RefractureRisk result"

#: Segment colours (RGB 0-1) for levels that are shown but not measured as usual.
INDEX_LEVEL_COLOR = (0.85, 0.1, 0.85)
EXCLUDED_LEVEL_COLOR = (0.55, 0.55, 0.55)

#: Column name suffix -> unit label shown in the table (columns carry units in their names).
UNIT_SUFFIXES = (("_pct", "%"), ("_per_s", "1/s"), ("_ml", "mL"), ("_mm", "mm"), ("_t", "T"))

#: Words that name map kinds in series or node names (DESIGN.md §3; used only to preselect the
#: kind of already loaded volumes, which the user can correct).
KIND_NAME_TOKENS = (
    ("pdff", ("FATFRAC", "FAT_FRAC", "FAT FRAC", "PDFF", "FF")),
    ("r2s", ("R2STAR", "R2_STAR", "R2*", "R2S")),  # never T2*: its unit needs converting
    ("water", ("WATER", "W")),
    ("fat", ("FAT", "F")),
)


#
# RefractureRisk
#


class RefractureRisk(ScriptedLoadableModule):
    """Module metadata and sample data registration."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Refracture Risk")
        self.parent.categories = ["Quantification"]
        self.parent.dependencies = ["Markups", "Segmentations"]
        self.parent.contributors = ["RefractureRisk developers"]
        self.parent.helpText = _(
            """
Estimates the risk of a new vertebral fracture after vertebroplasty or kyphoplasty from clinical
factors and the bone-marrow proton-density fat fraction (PDFF, %) and R2* (1/s) of the vertebral
bodies T10-L5 measured on chemical-shift-encoded MRI (e.g. GE IDEAL-IQ).
<br><br>
Load a study (DICOM folder, DICOM database or loaded volumes), place one point per level or
detect the vertebrae automatically, enter the index level(s) and clinical inputs, and compute.
<br><br>
<b>The bundled risk model is a demonstration model: it is NOT validated and NOT for clinical
use.</b> No published coefficients exist for this model; load a locally trained and validated
model file to replace it.
"""
        )
        self.parent.acknowledgementText = _(
            """
Built on 3D Slicer's scripted-module template. The sample data is a synthetic phantom generated
on this computer; it contains no patient data.
"""
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


#
# Sample data: a synthetic phantom generated locally (no download)
#


def registerSampleData():
    """Register the synthetic IDEAL-IQ spine phantom in the Sample Data module."""
    import SampleData

    iconsPath = os.path.join(os.path.dirname(__file__), "Resources", "Icons")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="RefractureRisk",
        sampleName="RefractureRiskPhantom",
        thumbnailFileName=os.path.join(iconsPath, "RefractureRisk.png"),
        # nothing to download: no URIs or files; the custom downloader generates the phantom
        uris=[],
        fileNames=[],
        customDownloader=_loadPhantomSample,
    )


def _loadPhantomSample(source=None):
    """Generate the phantom study (seed 0) and show it in the views (Sample Data button)."""
    _ensureLibraryDependencies()
    logic = RefractureRiskLogic()
    phantom = logic.generatePhantomStudy(seed=0)
    nodes = logic.addStudyToScene(phantom.study, baseName="RefractureRiskPhantom")
    logic.showPdff(nodes["pdff"])
    return nodes


def _ensureLibraryDependencies(extra=(), **pipEnsureOptions):
    """Install RefractureRiskLib's missing Python packages (Resources/requirements.txt).

    ``slicer.packaging.pip_ensure`` asks the user before installing; ``extra``: requirements only
    some actions need (e.g. the measurement store's database driver).
    """
    import slicer.packaging

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Resources", REQUIREMENTS_FILE)
    requirements = slicer.packaging.load_requirements(path)
    slicer.packaging.pip_ensure(
        [*requirements, *extra], requester="RefractureRisk", **pipEnsureOptions
    )


def _ensureLibraryOnPath():
    """Make ``import RefractureRiskLib`` work when the module runs from a source checkout.

    Installed as an extension, CMake puts RefractureRiskLib beside this file (a folder Slicer
    already has on sys.path); from source it is in the extension root, one folder up.
    """
    moduleDir = os.path.dirname(os.path.abspath(__file__))
    for candidate in (moduleDir, os.path.dirname(moduleDir)):
        if (
            os.path.isdir(os.path.join(candidate, "RefractureRiskLib"))
            and candidate not in sys.path
        ):
            sys.path.insert(0, candidate)
            break


def _lib(name):
    """Import ``RefractureRiskLib.<name>`` on first use (never at module import)."""
    import importlib

    _ensureLibraryOnPath()
    return importlib.import_module(f"RefractureRiskLib.{name}")


#
# RefractureRiskParameterNode
#


@parameterNodeWrapper
class RefractureRiskParameterNode:
    """The panel's state, saved with the scene.

    pdffVolume, r2sVolume, waterVolume, fatVolume - the study's maps (PDFF %, R2* 1/s).
    fieldStrengthT - field strength of the acquisition in tesla (R2* depends on it).
    anchorLevel, anchorPoint - optional: one point the user names (e.g. L3) to fix level labels.
    roiPoints - one control point per level, labelled with the level name, RAS mm.
    segmentation - the ROIs, one segment per level.
    statisticsTable - per-level statistics and flags.
    indexLevels - treated level(s), comma separated (e.g. "L1" or "L1, L2").
    liveUpdate - recompute a level's ROI and statistics when its point moves.
    segmentsAreBodies - an imported segmentation holds whole vertebral bodies (else ROIs).
    readerName - who placed/edited the ROIs (stored with the measurements).
    clinicalInputs - JSON object of the model's clinical inputs (the form is built from the model).
    missingAsRange - show the risk as the range over missing inputs (labelled) instead of
      refusing to compute it.
    """

    pdffVolume: vtkMRMLScalarVolumeNode
    r2sVolume: vtkMRMLScalarVolumeNode
    waterVolume: vtkMRMLScalarVolumeNode
    fatVolume: vtkMRMLScalarVolumeNode
    fieldStrengthT: Annotated[float, Choice([1.5, 3.0])] = 1.5
    anchorLevel: Annotated[str, Choice(["none", *LEVELS])] = "none"
    anchorPoint: vtkMRMLMarkupsFiducialNode
    roiPoints: vtkMRMLMarkupsFiducialNode
    segmentation: vtkMRMLSegmentationNode
    statisticsTable: vtkMRMLTableNode
    indexLevels: str = ""
    liveUpdate: bool = True
    segmentsAreBodies: bool = False
    readerName: str = ""
    clinicalInputs: str = "{}"
    missingAsRange: bool = False


#
# RefractureRiskWidget
#


class RefractureRiskWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel. It holds no state of its own beyond caches of the last results."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._roiResult = None  # last RefractureRiskLib.roi RoiResult (for live point updates)
        self._model = None
        self._clinicalEditors = {}
        self._pendingLevel = None
        self._observedPoints = None
        self._lastOutcome = None
        self._chart = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RefractureRisk.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = RefractureRiskLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.loadDicomFolderButton.connect("clicked(bool)", self.onLoadDicomFolder)
        self.ui.loadFromDatabaseButton.connect("clicked(bool)", self.onLoadFromDatabase)
        self.ui.detectKindsButton.connect("clicked(bool)", self.onDetectKinds)
        self.ui.detectVertebraeButton.connect("clicked(bool)", self.onDetectVertebrae)
        self.ui.placeNextLevelButton.connect("clicked(bool)", self.onPlaceNextLevel)
        self.ui.roisFromPointsButton.connect("clicked(bool)", self.onRoisFromPoints)
        self.ui.importSegmentationButton.connect("clicked(bool)", self.onImportSegmentation)
        self.ui.loadModelButton.connect("clicked(bool)", self.onLoadModel)
        self.ui.fillFromCohortButton.connect("clicked(bool)", self.onFillFromCohort)
        self.ui.computeButton.connect("clicked(bool)", self.onCompute)
        self.ui.saveResultsButton.connect("clicked(bool)", self.onSaveResults)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicom)
        self.ui.writeStoreButton.connect("clicked(bool)", self.onWriteStore)
        self.ui.layoutButton.connect("clicked(bool)", self.onSetLayout)
        self.ui.applyOverrideButton.connect("clicked(bool)", self.onApplyOverride)
        self.ui.overrideLevelComboBox.addItems(list(LEVELS))
        self.ui.overrideChoiceComboBox.addItems([_("follow flags"), _("include"), _("exclude")])

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGuiState
            )

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)
        self._roiResult = None

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGuiState
            )
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGuiState
            )
            self._updateGuiState()

    def _updateGuiState(self, caller=None, event=None) -> None:
        p = self._parameterNode
        hasPdff = bool(p and p.pdffVolume)
        self.ui.detectVertebraeButton.enabled = hasPdff
        self.ui.roisFromPointsButton.enabled = hasPdff and bool(p.roiPoints)
        self.ui.importSegmentationButton.enabled = hasPdff and bool(p.segmentation)
        self.ui.computeButton.enabled = hasPdff and bool(p.segmentation)
        self.ui.roiPointsPlaceWidget.setCurrentNode(p.roiPoints if p else None)
        self.ui.anchorPlaceWidget.setCurrentNode(p.anchorPoint if p else None)
        if p and p.roiPoints:
            placed = self.logic.levelPointsFromMarkups(p.roiPoints, strict=False)
            self.ui.nextLevelLabel.text = self.logic.nextLevelToPlace(placed) or _("all placed")
        self._observePoints(p.roiPoints if p else None)

    # -- dependencies -------------------------------------------------------------------------
    def _ensureDependencies(self, extra=()) -> None:
        """Install the library's missing Python packages after the user confirms (first use)."""
        _ensureLibraryDependencies(extra)

    # -- input --------------------------------------------------------------------------------
    def onLoadDicomFolder(self) -> None:
        folder = self.ui.dicomFolderPathLineEdit.currentPath
        with slicer.util.tryWithErrorDisplay(_("Failed to load the study."), waitCursor=True):
            if not folder:
                raise ValueError(_("Choose a DICOM folder first."))
            self._ensureDependencies()
            study = self._withProgress(
                _("Reading DICOM..."), lambda: self.logic.loadStudyFromFolder(folder)
            )
            self._useStudy(study)

    def onLoadFromDatabase(self) -> None:
        import qt

        with slicer.util.tryWithErrorDisplay(_("Failed to load the study."), waitCursor=True):
            db = slicer.dicomDatabase
            if db is None or not db.isOpen:
                raise ValueError(
                    _("The DICOM database is not open: import the study in the DICOM module first.")
                )
            studies = []
            for patient in db.patients():
                for studyUid in db.studiesForPatient(patient):
                    series = db.seriesForStudy(studyUid)
                    description = db.fieldForStudy("StudyDescription", studyUid) or studyUid
                    date = db.fieldForStudy("StudyDate", studyUid)
                    studies.append((f"{date} {description} ({len(series)} series)", studyUid))
            if not studies:
                raise ValueError(_("The DICOM database holds no studies."))
            labels = [label for label, _uid in studies]
            choice = qt.QInputDialog.getItem(
                slicer.util.mainWindow(), _("Load study"), _("Study:"), labels, 0, False
            )
            if not choice:
                return
            studyUid = studies[labels.index(choice)][1]
            files = [f for s in db.seriesForStudy(studyUid) for f in db.filesForSeries(s)]
            self._ensureDependencies()
            study = self._withProgress(
                _("Reading DICOM..."), lambda: self.logic.loadStudyFromFiles(files)
            )
            self._useStudy(study)

    def _useStudy(self, study) -> None:
        nodes = self.logic.addStudyToScene(study)
        p = self._parameterNode
        p.pdffVolume = nodes.get("pdff")
        p.r2sVolume = nodes.get("r2s")
        p.waterVolume = nodes.get("water")
        p.fatVolume = nodes.get("fat")
        fieldStrength = study.provenance.field_strength_t
        if fieldStrength is not None:
            nearest = min((1.5, 3.0), key=lambda t: abs(t - fieldStrength))
            if abs(nearest - fieldStrength) < 0.2:  # scanners report e.g. 1.494 T
                p.fieldStrengthT = nearest
        if nodes.get("pdff"):
            self.logic.showPdff(nodes["pdff"])
        self._prefillFromStudy(study)

    def onDetectKinds(self) -> None:
        volumes = slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
        guesses = self.logic.guessMapKinds(volumes)
        p = self._parameterNode
        for kind, node in guesses.items():
            setattr(p, f"{kind}Volume", node)

    # -- ROIs ---------------------------------------------------------------------------------
    def _study(self):
        p = self._parameterNode
        return self.logic.studyFromNodes(
            {"pdff": p.pdffVolume, "r2s": p.r2sVolume, "water": p.waterVolume, "fat": p.fatVolume},
            fieldStrengthT=p.fieldStrengthT,
        )

    def onDetectVertebrae(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Automatic detection failed."), waitCursor=True):
            self._ensureDependencies()
            p = self._parameterNode
            anchor = None
            if (
                p.anchorLevel != "none"
                and p.anchorPoint
                and p.anchorPoint.GetNumberOfControlPoints()
            ):
                position = [0.0, 0.0, 0.0]
                p.anchorPoint.GetNthControlPointPositionWorld(0, position)
                anchor = (p.anchorLevel, tuple(position))
            study = self._study()
            result = self._withProgress(
                _("Detecting vertebrae..."),
                lambda: self.logic.detectVertebrae(
                    study, anchor=anchor, reader=p.readerName, indexLevels=self._indexLevels()
                ),
            )
            self._showRoiResult(result, study)
            p.roiPoints = self.logic.updateMarkupsFromLevelPoints(
                self.logic.levelCentres(result), p.roiPoints
            )
            reasons = getattr(result, "reasons", ())
            if getattr(result, "uncertain", False):
                slicer.util.warningDisplay(
                    _("Level labels are uncertain; check them before computing:")
                    + "\n"
                    + "\n".join(reasons)
                )

    def onPlaceNextLevel(self) -> None:
        p = self._parameterNode
        if not p.roiPoints:
            p.roiPoints = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLMarkupsFiducialNode", "RefractureRisk points"
            )
        placed = self.logic.levelPointsFromMarkups(p.roiPoints, strict=False)
        self._pendingLevel = self.logic.nextLevelToPlace(placed)
        if self._pendingLevel is None:
            slicer.util.infoDisplay(_("Every level T10-S1 has a point."))
            return
        self.ui.roiPointsPlaceWidget.setCurrentNode(p.roiPoints)
        self.ui.roiPointsPlaceWidget.setPlaceModeEnabled(True)

    def _observePoints(self, markupsNode) -> None:
        if markupsNode is self._observedPoints:
            return
        if self._observedPoints is not None:
            self.removeObserver(
                self._observedPoints,
                slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
                self._onPointDefined,
            )
            self.removeObserver(
                self._observedPoints,
                slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent,
                self._onPointMoved,
            )
        self._observedPoints = markupsNode
        if markupsNode is not None:
            self.addObserver(
                markupsNode,
                slicer.vtkMRMLMarkupsNode.PointPositionDefinedEvent,
                self._onPointDefined,
            )
            self.addObserver(
                markupsNode, slicer.vtkMRMLMarkupsNode.PointEndInteractionEvent, self._onPointMoved
            )

    def _onPointDefined(self, caller, event) -> None:
        """Name a newly placed point with the level "place next level" asked for."""
        if self._pendingLevel is None:
            return
        index = caller.GetNumberOfControlPoints() - 1
        caller.SetNthControlPointLabel(index, self._pendingLevel)
        level, self._pendingLevel = self._pendingLevel, None
        self._updateLevelLive(caller, level)
        self._updateGuiState()

    def _onPointMoved(self, caller, event) -> None:
        # set by Slicer's markups widget while a point is dragged ("" or None otherwise)
        index = caller.GetAttribute("Markups.MovingMarkupIndex")
        if not index:
            return
        self._updateLevelLive(caller, caller.GetNthControlPointLabel(int(index)))

    def _updateLevelLive(self, markupsNode, level) -> None:
        p = self._parameterNode
        if not p.liveUpdate or self._roiResult is None or not p.pdffVolume:
            return
        with slicer.util.tryWithErrorDisplay(
            _("Could not update level {level}.").format(level=level), waitCursor=True
        ):
            points = self.logic.levelPointsFromMarkups(markupsNode, strict=False)
            if level not in points:
                return
            study = self._study()
            result = self.logic.updateLevel(
                self._roiResult, study, level, points[level], indexLevels=self._indexLevels()
            )
            self._showRoiResult(result, study)

    def onRoisFromPoints(self) -> None:
        with slicer.util.tryWithErrorDisplay(
            _("Could not make ROIs from the points."), waitCursor=True
        ):
            self._ensureDependencies()
            p = self._parameterNode
            points = self.logic.levelPointsFromMarkups(p.roiPoints)
            study = self._study()
            result = self._withProgress(
                _("Placing ROIs..."),
                lambda: self.logic.roisFromPoints(
                    study, points, reader=p.readerName, indexLevels=self._indexLevels()
                ),
            )
            self._showRoiResult(result, study)

    def onImportSegmentation(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not use the segmentation."), waitCursor=True):
            self._ensureDependencies()
            p = self._parameterNode
            study = self._study()
            roiSet = self.logic.roiSetFromSegmentation(
                p.segmentation, p.pdffVolume, reader=p.readerName or None
            )
            result = self.logic.roisFromImportedRoiSet(
                roiSet,
                study,
                reader=roiSet.reader,
                indexLevels=self._indexLevels(),
                segmentsAreBodies=p.segmentsAreBodies,
            )
            self._showRoiResult(result, study)

    def _showRoiResult(self, result, study) -> None:
        """Show ROIs coloured by PDFF and the statistics table for a new RoiResult."""
        p = self._parameterNode
        self._roiResult = result
        stats = self.logic.computeStatistics(result.roiset, study)
        p.segmentation = self.logic.roiSetToSegmentation(
            result.roiset,
            p.pdffVolume,
            p.segmentation,
            meanPdffByLevel=self.logic.meanPdffByLevel(stats),
        )
        p.statisticsTable = self.logic.updateTableNode(
            stats, p.statisticsTable, name="RefractureRisk statistics"
        )
        self.ui.statisticsTableView.setMRMLTableNode(p.statisticsTable)
        self._chart = self.logic.updatePdffChart(stats)

    def onApplyOverride(self) -> None:
        """Re-include a flagged level in the summaries, exclude a level, or follow the flags."""
        with slicer.util.tryWithErrorDisplay(_("Could not change the level."), waitCursor=True):
            if self._roiResult is None:
                raise ValueError(_("Place or detect the ROIs first."))
            level = self.ui.overrideLevelComboBox.currentText
            choice = {0: None, 1: True, 2: False}[self.ui.overrideChoiceComboBox.currentIndex]
            result = self.logic.withIncludeOverride(self._roiResult, level, choice)
            self._showRoiResult(result, self._study())

    def _indexLevels(self):
        return self.logic.parseLevels(self._parameterNode.indexLevels)

    # -- model and clinical inputs ------------------------------------------------------------
    def onLoadModel(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not load the model."), waitCursor=True):
            self._ensureDependencies()
            self._model = None
            self._buildClinicalForm(self._ensureModel())

    def _ensureModel(self):
        """The loaded model; loads the chosen file (or the bundled demonstration model) once."""
        if self._model is None:
            path = self.ui.modelPathLineEdit.currentPath
            self._model = self.logic.loadModel(path or None)
            status = _("validated") if self._model.validated else self._model.warning_text
            self.ui.modelInfoLabel.text = f"{self._model.name}: {status}"
            self._buildClinicalForm(self._model)
        return self._model

    def _buildClinicalForm(self, model) -> None:
        """One editor per clinical input of the model, with its unit and allowed range."""
        import qt

        layout = self.ui.clinicalInputsFormWidget.layout()
        while layout.count():
            item = layout.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        self._clinicalEditors = {}
        saved = json.loads(self._parameterNode.clinicalInputs or "{}")
        for spec in self.logic.clinicalInputSpecs(model):
            if spec.kind == "category":
                editor = qt.QComboBox()
                editor.addItems(["", *spec.levels])
                editor.currentText = str(saved.get(spec.name, ""))
            elif spec.kind == "binary":
                editor = qt.QComboBox()
                editor.addItems(["", "no", "yes"])
                value = saved.get(spec.name)
                editor.currentIndex = 0 if value is None else (2 if value else 1)
            else:
                editor = qt.QLineEdit()
                lo, hi = spec.hard_range or (None, None)
                editor.placeholderText = (
                    _("{lo} to {hi}").format(lo=lo, hi=hi) if lo is not None else ""
                )
                if spec.name in saved and saved[spec.name] is not None:
                    editor.text = str(saved[spec.name])
            editor.toolTip = spec.description
            label = spec.name + (f" ({spec.unit})" if spec.unit else "")
            layout.addRow(label, editor)
            self._clinicalEditors[spec.name] = (spec, editor)

    def _clinicalValues(self) -> dict:
        values = {}
        for name, (spec, editor) in self._clinicalEditors.items():
            if spec.kind == "category":
                text = editor.currentText
                values[name] = text or None
            elif spec.kind == "binary":
                values[name] = {0: None, 1: False, 2: True}[editor.currentIndex]
            else:
                text = editor.text.strip()
                try:
                    values[name] = float(text) if text else None
                except ValueError:
                    raise ValueError(f"{name}: {text!r} is not a number") from None
        self._parameterNode.clinicalInputs = json.dumps(values)
        return values

    def _prefillFromStudy(self, study) -> None:
        values = json.loads(self._parameterNode.clinicalInputs or "{}")
        values.update(self.logic.clinicalPrefill(study))
        self._parameterNode.clinicalInputs = json.dumps(values)
        if self._model is not None:
            self._buildClinicalForm(self._model)

    def onFillFromCohort(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not read the cohort row."), waitCursor=True):
            self._ensureDependencies()
            values = self.logic.clinicalFromCohortRow(
                self.ui.cohortPathLineEdit.currentPath, self.ui.cohortRowLineEdit.text.strip()
            )
            saved = json.loads(self._parameterNode.clinicalInputs or "{}")
            saved.update(values)
            self._parameterNode.clinicalInputs = json.dumps(saved, default=str)
            self._buildClinicalForm(self._ensureModel())

    # -- results ------------------------------------------------------------------------------
    def onCompute(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to compute the risk."), waitCursor=True):
            self._ensureDependencies()
            p = self._parameterNode
            model = self._ensureModel()
            study = self._study()
            if self._roiResult is None:  # ROIs drawn or loaded outside the panel
                roiSet = self.logic.roiSetFromSegmentation(
                    p.segmentation, p.pdffVolume, reader=p.readerName or None
                )
                self._roiResult = self.logic.roisFromImportedRoiSet(
                    roiSet,
                    study,
                    reader=roiSet.reader,
                    indexLevels=self._indexLevels(),
                    segmentsAreBodies=p.segmentsAreBodies,
                )
            outcome = self.logic.computeRisk(
                study,
                self._roiResult,
                model,
                self._clinicalValues(),
                indexLevels=self._indexLevels(),
                missing="range" if p.missingAsRange else "refuse",
            )
            self.ui.resultsTextBrowser.setHtml(self.logic.resultsHtml(outcome))
            self.logic.showRiskAnnotation(outcome)
            self._lastOutcome = outcome

    def onSetLayout(self) -> None:
        self.logic.setResultsLayout(self._parameterNode.statisticsTable, self._chart)

    def onSaveResults(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not save the results."), waitCursor=True):
            folder = self.ui.outputFolderPathLineEdit.currentPath
            written = self.logic.saveResults(self._lastOutcome, folder)
            slicer.util.infoDisplay(_("Written:") + "\n" + "\n".join(str(w) for w in written))

    def onExportDicom(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("DICOM SEG/SR export failed."), waitCursor=True):
            folder = self.ui.outputFolderPathLineEdit.currentPath
            written = self.logic.exportDicom(self._lastOutcome, folder)
            slicer.util.infoDisplay(_("Written:") + "\n" + "\n".join(str(w) for w in written))

    def onWriteStore(self) -> None:
        with slicer.util.tryWithErrorDisplay(
            _("Could not write to the measurement store."), waitCursor=True
        ):
            p = self._parameterNode
            if not p.readerName.strip():
                raise ValueError(_("Enter the reader's name first."))
            self._ensureDependencies(extra=("sqlalchemy>=2.0",))
            self.logic.writeToStore(
                self._lastOutcome,
                self.ui.storePathLineEdit.currentPath,
                p.readerName,
                self.ui.cohortRowLineEdit.text.strip(),
            )
            slicer.util.infoDisplay(_("Measurements stored."))

    def _withProgress(self, label, work):
        """Run ``work()`` with a progress dialog (the library calls give no partial progress)."""
        import qt

        dialog = slicer.util.createProgressDialog(labelText=label, maximum=0)
        slicer.app.processEvents(qt.QEventLoop.ExcludeUserInputEvents)
        try:
            return work()
        finally:
            dialog.close()


#
# RefractureRiskLogic
#


class RefractureRiskLogic(ScriptedLoadableModuleLogic):
    """MRML nodes <-> RefractureRiskLib types, and the workflow steps; no GUI.

    Every method works on ``slicer.mrmlScene`` without the application (the slicer-core tests run
    them), except where a docstring says it needs the application (layouts).
    """

    #: Studies loaded into the scene, by the key stored in their nodes' "RefractureRisk.StudyKey"
    #: attribute (shared by all logic instances, e.g. the sample-data loader's and the panel's).
    _loadedStudies: dict = {}  # noqa: RUF012

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.sourcePdffFiles = []  # DICOM files of the loaded PDFF series (for SEG/SR export)
        self.sourcePdffFrames = None  # its PDFF frame numbers when it is one enhanced file
        self.sourcePdffSeriesUid = None  # ... and that series' UID
        self.modelPath = None  # file of the last loaded model

    def getParameterNode(self):
        return RefractureRiskParameterNode(super().getParameterNode())

    # -- volumes ------------------------------------------------------------------------------
    def volumeFromNode(self, volumeNode):
        """A library ``Volume`` (array [k, j, i], IJK-to-RAS) copied from a scalar volume node.

        Refuses a volume under a transform: the library needs the grid in patient RAS, so the
        user must harden the transform first (guessing it would give wrong positions silently).
        """
        core = _lib("core")
        if volumeNode is None or volumeNode.GetImageData() is None:
            raise core.InputError(_nodeName(volumeNode), "no image data in the volume node")
        if volumeNode.GetParentTransformNode() is not None:
            raise core.InputError(
                _nodeName(volumeNode), "the volume is under a transform; harden the transform first"
            )
        matrix = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(matrix)
        array = np.array(slicer.util.arrayFromVolume(volumeNode), copy=True)
        return core.Volume(array, slicer.util.arrayFromVTKMatrix(matrix))

    def updateVolumeNode(self, volume, volumeNode=None, name="Volume", labelmap=False):
        """Write a library ``Volume`` into a (new) scalar or label-map volume node, geometry exact.

        MRML stores a grid as spacing, origin and direction cosines, so a sheared IJK-to-RAS
        (non-orthogonal axes) cannot be represented and is refused rather than approximated.
        """
        core = _lib("core")
        matrix = np.asarray(volume.ijk_to_ras, float)
        axes = matrix[:3, :3] / np.linalg.norm(matrix[:3, :3], axis=0)
        if not np.allclose(axes.T @ axes, np.eye(3), atol=1e-6):
            raise core.InputError(
                name, "the grid axes are not orthogonal; MRML cannot store this geometry"
            )
        array = np.asarray(volume.array)
        if array.dtype == np.bool_:
            array = array.astype(np.uint8)
        elif array.dtype in (np.int64, np.uint64):
            if array.size and (
                array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max
            ):
                raise core.InputError(name, "integer values do not fit in 32 bits")
            array = array.astype(np.int32)  # VTK cannot show 64-bit integer volumes
        if volumeNode is None:
            className = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
            volumeNode = slicer.mrmlScene.AddNewNodeByClass(className, name)
        slicer.util.updateVolumeFromArray(volumeNode, np.ascontiguousarray(array))
        volumeNode.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
        return volumeNode

    def addStudyToScene(self, study, baseName="RefractureRisk"):
        """One scalar volume node per map of ``study``; returns {kind: node}.

        The study is remembered with its nodes, so :meth:`studyFromNodes` keeps its provenance
        (vendor, UIDs, scaling) and non-identifying patient facts when those nodes are chosen.
        """
        import uuid

        key = uuid.uuid4().hex
        RefractureRiskLogic._loadedStudies[key] = study
        nodes = {}
        for kind, volume in study.maps.items():
            node = self.updateVolumeNode(volume, name=f"{baseName} {kind}")
            node.SetAttribute("RefractureRisk.MapKind", kind)
            node.SetAttribute("RefractureRisk.StudyKey", key)
            nodes[kind] = node
        return nodes

    def studyFromNodes(self, nodesByKind, fieldStrengthT=None):
        """A library ``Study`` from volume nodes chosen per kind (None entries are skipped).

        ``fieldStrengthT`` (T) is the panel's value; it replaces the loaded study's.
        """
        import dataclasses

        core = _lib("core")
        chosen = {kind: node for kind, node in nodesByKind.items() if node is not None}
        if "pdff" not in chosen:
            raise core.InputError("PDFF volume", "choose the PDFF map (percent) first")
        maps = {kind: self.volumeFromNode(node) for kind, node in chosen.items()}
        keys = {node.GetAttribute("RefractureRisk.StudyKey") for node in chosen.values()}
        loaded = self._loadedStudies.get(keys.pop()) if len(keys) == 1 else None
        sameKinds = loaded is not None and all(
            node.GetAttribute("RefractureRisk.MapKind") == kind for kind, node in chosen.items()
        )
        if sameKinds:
            series = {k: v for k, v in loaded.provenance.series.items() if k in chosen}
            provenance = dataclasses.replace(
                loaded.provenance,
                field_strength_t=fieldStrengthT or loaded.provenance.field_strength_t,
                series=series,
            )
            patient = loaded.patient
        else:
            series = {
                kind: core.SeriesProvenance(
                    kind=kind,
                    source=f"Slicer volume node {node.GetName()}",
                    classified_by="chosen in the Slicer panel",
                )
                for kind, node in chosen.items()
            }
            provenance = core.StudyProvenance(
                vendor="unknown", field_strength_t=fieldStrengthT, series=series
            )
            patient = core.PatientInfo()
        try:
            return core.Study(maps=maps, provenance=provenance, patient=patient)
        except ValueError as err:
            raise core.InputError("selected volumes", str(err)) from None

    def guessMapKinds(self, volumeNodes):
        """{kind: node} guessed from node names (the user can correct the choice)."""
        found = {}
        for node in volumeNodes:
            kind = node.GetAttribute("RefractureRisk.MapKind") or guessKindFromName(node.GetName())
            if kind and kind not in found:
                found[kind] = node
        return found

    def showPdff(self, pdffNode):
        """Show PDFF with the fat-fraction colour map, window 0-100 %."""
        pdffNode.CreateDefaultDisplayNodes()
        display = pdffNode.GetDisplayNode()
        display.SetAndObserveColorNodeID(self.pdffColorNode().GetID())
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(0.0, 100.0)
        if (
            hasattr(slicer, "app")
            and slicer.app is not None
            and hasattr(slicer.app, "layoutManager")
        ):
            slicer.util.setSliceViewerLayers(background=pdffNode, fit=True)
        return display

    def pdffColorNode(self):
        """A 256-entry colour table for PDFF 0-100 % (dark blue: water, yellow: fat)."""
        node = slicer.mrmlScene.GetFirstNodeByName(PDFF_COLOR_NODE_NAME)
        if node is not None:
            return node
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLColorTableNode", PDFF_COLOR_NODE_NAME)
        node.SetTypeToUser()
        node.SetNumberOfColors(256)
        for i in range(256):
            r, g, b = pdffColor(100.0 * i / 255.0)
            node.SetColor(i, f"{100.0 * i / 255.0:.1f}%", r, g, b, 1.0)
        return node

    # -- ROIs <-> segmentation ----------------------------------------------------------------
    def roiSetToSegmentation(
        self, roiSet, referenceVolumeNode, segmentationNode=None, meanPdffByLevel=None
    ):
        """Show a ``RoiSet`` as a segmentation: one segment per level, named by the level.

        Colours: index levels magenta, other excluded levels grey, included levels by their mean
        PDFF (``meanPdffByLevel``, %) on the PDFF colour map, or the library's level colour before
        statistics exist. Flags, the user's include choice, method and reader travel as segment
        tags, the same tags RefractureRiskLib writes into .seg.nrrd files.
        """
        if segmentationNode is None:
            segmentationNode = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLSegmentationNode", "RefractureRisk ROIs"
            )
        segmentationNode.CreateDefaultDisplayNodes()
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolumeNode)
        segmentation = segmentationNode.GetSegmentation()
        segmentation.RemoveAllSegments()
        labels = np.asarray(roiSet.labelmap.array)
        levelColors = _lib("io.segmentation").LEVEL_COLORS
        means = meanPdffByLevel or {}
        temp = slicer.mrmlScene.AddNewNodeByClass(
            "vtkMRMLLabelMapVolumeNode", "__RefractureRisk_temp"
        )
        try:
            for level in roiSet.levels:
                mask = (labels == level.label).astype(np.uint8)
                self.updateVolumeNode(roiSet.labelmap.with_array(mask), temp, name=level.level)
                color = levelColor(level, means.get(level.level), levelColors.get(level.level))
                segmentId = segmentation.AddEmptySegment(
                    f"Segment_{level.level}", level.level, color
                )
                ids = vtk.vtkStringArray()
                ids.InsertNextValue(segmentId)
                if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
                    temp, segmentationNode, ids
                ):
                    raise RuntimeError(
                        f"importing the ROI of {level.level} into the segmentation failed"
                    )
                segment = segmentation.GetSegment(segmentId)
                override = level.include_override
                segment.SetTag(TAG_LEVEL, level.level)
                segment.SetTag(TAG_FLAGS, ",".join(sorted(str(f) for f in level.flags)))
                segment.SetTag(TAG_INCLUDE, "none" if override is None else str(override).lower())
                segment.SetTag(TAG_METHOD, str(roiSet.method))
                segment.SetTag(TAG_READER, roiSet.reader)
                if not level.included:
                    segmentationNode.GetDisplayNode().SetSegmentOpacity2DFill(segmentId, 0.1)
        finally:
            slicer.mrmlScene.RemoveNode(temp)
        return segmentationNode

    def roiSetFromSegmentation(self, segmentationNode, referenceVolumeNode, reader=None):
        """A ``RoiSet`` on the reference volume's grid from a segmentation, one segment per level.

        The level comes from the segment's level tag, else from its name ("L1", "L1 vertebra",
        "vertebrae_L1"); a segment that names no level, or two segments naming one level, is
        refused with the segment's name. Label values follow the product's table (T10=1 ... S1=9).
        Method and reader come from the segments' tags (written by :meth:`roiSetToSegmentation`);
        untagged segments are an imported mask. ``reader`` overrides the stored reader.
        """
        core = _lib("core")
        if segmentationNode is None:
            raise core.InputError("segmentation", "choose a segmentation first")
        grid = self.volumeFromNode(referenceVolumeNode)
        segmentation = segmentationNode.GetSegmentation()
        labels = np.zeros(grid.shape, np.int16)
        levels = []
        seen = {}
        methods = set()
        readers = set()
        for index in range(segmentation.GetNumberOfSegments()):
            segmentId = segmentation.GetNthSegmentID(index)
            segment = segmentation.GetSegment(segmentId)
            name = segment.GetName()
            levelName = _segmentTag(segment, TAG_LEVEL) or levelFromName(name)
            if levelName is None:
                raise core.InputError(
                    f"segment {name!r}", f"the name names no vertebral level ({', '.join(LEVELS)})"
                )
            if levelName in seen:
                raise core.InputError(
                    f"segment {name!r}", f"level {levelName} is also segment {seen[levelName]!r}"
                )
            seen[levelName] = name
            mask = self._segmentMask(segmentationNode, segmentId, referenceVolumeNode)
            label = core.level_label(levelName)
            overlap = mask & (labels != 0)
            if overlap.any():
                raise core.InputError(
                    f"segment {name!r}", f"overlaps another level in {int(overlap.sum())} voxels"
                )
            labels[mask] = label
            flags = [f for f in re.split(r"[,;]", _segmentTag(segment, TAG_FLAGS) or "") if f]
            override = (_segmentTag(segment, TAG_INCLUDE) or "none").lower()
            methods.add(_segmentTag(segment, TAG_METHOD) or str(core.RoiMethod.IMPORTED_MASK))
            readers.add(_segmentTag(segment, TAG_READER) or "unknown")
            levels.append(
                core.LevelRoi(
                    level=levelName,
                    label=label,
                    flags=frozenset(flags),
                    include_override=None if override == "none" else override == "true",
                )
            )
        if not levels:
            raise core.InputError(_nodeName(segmentationNode), "the segmentation has no segments")
        method = methods.pop() if len(methods) == 1 else core.RoiMethod.IMPORTED_MASK
        if reader is None:
            reader = readers.pop() if len(readers) == 1 else "unknown"
        return core.RoiSet(
            labelmap=grid.with_array(labels), levels=tuple(levels), method=method, reader=reader
        )

    def _segmentMask(self, segmentationNode, segmentId, referenceVolumeNode):
        """Boolean [k, j, i] mask of one segment on the reference volume's grid."""
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segmentId)
        temp = slicer.mrmlScene.AddNewNodeByClass(
            "vtkMRMLLabelMapVolumeNode", "__RefractureRisk_temp"
        )
        try:
            ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentationNode, ids, temp, referenceVolumeNode
            )
            if not ok:
                raise RuntimeError(f"exporting segment {segmentId} failed")
            return np.array(slicer.util.arrayFromVolume(temp)) != 0
        finally:
            slicer.mrmlScene.RemoveNode(temp)

    # -- statistics -> table ------------------------------------------------------------------
    def updateTableNode(self, records, tableNode=None, name="RefractureRisk table"):
        """Fill a table node from a DataFrame or a sequence of dicts (pandas is not needed).

        Numeric columns (int, float, bool; None/NaN as missing) become double columns, the rest
        string columns. Units are read from the column names' suffixes (``_pct`` -> %).
        """
        rows = _records(records)
        columns = []
        for row in rows:
            for key in row:
                if key not in columns:
                    columns.append(key)
        if tableNode is None:
            tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", name)
        wasModifying = tableNode.StartModify()
        try:
            tableNode.RemoveAllColumns()
            table = tableNode.GetTable()
            for column in columns:
                values = [row.get(column) for row in rows]
                if all(_isNumberOrMissing(v) for v in values) and any(
                    v is not None for v in values
                ):
                    array = vtk.vtkDoubleArray()
                    for v in values:
                        array.InsertNextValue(math.nan if v is None else float(v))
                else:
                    array = vtk.vtkStringArray()
                    for v in values:
                        array.InsertNextValue("" if v is None or _isNan(v) else str(v))
                array.SetName(str(column))
                table.AddColumn(array)
                unit = unitFromColumnName(str(column))
                if unit:
                    tableNode.SetColumnUnitLabel(str(column), unit)
            table.Modified()
        finally:
            tableNode.EndModify(wasModifying)
        return tableNode

    def recordsFromTableNode(self, tableNode):
        """The table node as a list of dicts (numbers as float, NaN for missing)."""
        table = tableNode.GetTable()
        names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
        rows = []
        for r in range(table.GetNumberOfRows()):
            row = {}
            for c, column in enumerate(names):
                array = table.GetColumn(c)
                row[column] = (
                    array.GetValue(r)
                    if isinstance(array, vtk.vtkStringArray)
                    else array.GetTuple1(r)
                )
            rows.append(row)
        return rows

    def meanPdffByLevel(self, statistics):
        """{level: mean PDFF %} from the long statistics table (rows with map == "pdff")."""
        return {
            row["level"]: float(row["mean"])
            for row in _records(statistics)
            if row.get("map") == "pdff"
            and _isNumberOrMissing(row.get("mean"))
            and row.get("mean") is not None
        }

    # -- markups <-> level points -------------------------------------------------------------
    def levelPointsFromMarkups(self, markupsNode, strict=True):
        """{level: (R, A, S) mm} from control points labelled with level names (world coordinates).

        ``strict``: a point whose label names no level, or two points of one level, is an error
        naming the point; otherwise such points are skipped (used while the user is placing).
        """
        core = _lib("core") if strict else None
        points = {}
        if markupsNode is None:
            if strict:
                raise core.InputError("ROI points", "choose or place the point list first")
            return points
        for index in range(markupsNode.GetNumberOfControlPoints()):
            label = markupsNode.GetNthControlPointLabel(index)
            level = levelFromName(label)
            if level is None or level in points:
                if strict:
                    reason = (
                        "names no vertebral level" if level is None else f"repeats level {level}"
                    )
                    raise core.InputError(
                        f"point {label!r}", f"{reason}; name each point by its level (e.g. L1)"
                    )
                continue
            position = [0.0, 0.0, 0.0]
            markupsNode.GetNthControlPointPositionWorld(index, position)
            points[level] = tuple(float(x) for x in position)
        if strict and not points:
            raise core.InputError(
                _nodeName(markupsNode), "has no points; place one point per level"
            )
        return points

    def updateMarkupsFromLevelPoints(self, points, markupsNode=None, name="RefractureRisk points"):
        """Write {level: RAS point} into a point list (one control point per level, labelled)."""
        if markupsNode is None:
            markupsNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
        wasModifying = markupsNode.StartModify()
        try:
            markupsNode.RemoveAllControlPoints()
            for level in sorted(points, key=LEVELS.index):
                markupsNode.AddControlPoint(vtk.vtkVector3d(*points[level]), level)
        finally:
            markupsNode.EndModify(wasModifying)
        return markupsNode

    def nextLevelToPlace(self, placedLevels):
        """The level "place next level" asks for (None when every level has a point).

        L1 first; then the level below (caudal to) the lowest placed one; once S1 has a point,
        the lowest level still missing.
        """
        placed = sorted(LEVELS.index(lv) for lv in placedLevels)
        if not placed:
            return "L1"
        if placed[-1] + 1 < len(LEVELS):
            return LEVELS[placed[-1] + 1]
        missing = [lv for i, lv in enumerate(LEVELS) if i not in placed]
        return missing[-1] if missing else None

    @staticmethod
    def parseLevels(text):
        """Level names from "L1, L2" or "l1 l2"; anything else (e.g. "L1-L2") is refused."""
        levels = []
        for part in re.split(r"[,;\s]+", text or ""):
            if not part:
                continue
            level = part.upper() if part.upper() in LEVELS else None
            if level is None:
                raise _lib("core").InputError(
                    "index levels", f"{part!r} is not a level ({', '.join(LEVELS)})"
                )
            levels.append(level)
        return tuple(levels)

    # -- library adapters ---------------------------------------------------------------------
    # Each is a few lines composing public RefractureRiskLib calls, the way pipeline.py does.
    def generatePhantomStudy(self, seed=0):
        """The synthetic IDEAL-IQ spine phantom (``PhantomStudy`` with .study and .truth)."""
        phantom = _lib("phantom")
        return phantom.generate_phantom(phantom.PhantomSpec(seed=seed))

    def loadStudyFromFolder(self, folder):
        """Read a study (PDFF, R2*, water, fat, ...) from a DICOM folder (library loader).

        Remembers the PDFF series' files for DICOM SEG/SR export.
        """
        loaded = _lib("io.dicom_load").load_study_with_report(folder)
        files, self.sourcePdffFrames = _lib("pipeline").pdff_source(loaded)
        self.sourcePdffFiles = [str(f) for f in files]
        pdffSeries = loaded.study.provenance.series.get("pdff")
        self.sourcePdffSeriesUid = None if pdffSeries is None else pdffSeries.series_uid
        return loaded.study

    def loadStudyFromFiles(self, files):
        """Read a study from DICOM files (e.g. Slicer's DICOM database) via a folder of links."""
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="RefractureRisk_dicom_")
        try:
            for index, path in enumerate(files):
                target = os.path.join(folder, f"{index:06d}.dcm")
                try:
                    os.symlink(path, target)
                except OSError:
                    shutil.copyfile(path, target)
            study = self.loadStudyFromFolder(folder)
            links = {os.path.join(folder, f"{i:06d}.dcm"): p for i, p in enumerate(files)}
            self.sourcePdffFiles = [links.get(f, f) for f in self.sourcePdffFiles]
            return study
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def roisFromPoints(self, study, points, reader="unknown", indexLevels=()):
        """ROIs from one point per level, with QC flags (library ``RoiResult``)."""
        result = _lib("roi.manual").rois_from_points(
            study, points, reader=reader or "unknown", index_levels=indexLevels
        )
        return _lib("roi.qc").apply_qc(result, study, indexLevels)

    def updateLevel(self, roiResult, study, level, pointRas, indexLevels=()):
        """``roiResult`` with one level recomputed from its moved point, QC re-applied."""
        result = _lib("roi.manual").update_level(roiResult, study, level, pointRas)
        return _lib("roi.qc").apply_qc(result, study, indexLevels)

    def roisFromImportedRoiSet(
        self, roiSet, study, reader="unknown", indexLevels=(), segmentsAreBodies=False
    ):
        """A ``RoiResult`` from a segmentation the user drew or imported.

        ``segmentsAreBodies``: the segments are whole vertebral bodies (e.g. from another
        segmentation tool) and the safe-core ROI is placed inside each; otherwise they are the
        measurement ROIs, used as drawn.
        """
        table = {lv.label: lv.level for lv in roiSet.levels}
        result = _lib("roi.manual").rois_from_labelmap(
            roiSet.labelmap,
            table,
            study,
            drawn="body" if segmentsAreBodies else "roi",
            reader=reader or "unknown",
            index_levels=indexLevels,
        )
        return _lib("roi.qc").apply_qc(result, study, indexLevels)

    def detectVertebrae(self, study, anchor=None, reader="automatic", indexLevels=()):
        """Automatic ROIs with level labels; ``anchor`` = (level, RAS point) fixes the labels."""
        auto = _lib("roi.auto")
        anchorPoint = auto.Anchor(anchor[0], tuple(anchor[1])) if anchor else None
        result = auto.automatic_rois(
            study, anchor=anchorPoint, reader=reader or "automatic", index_levels=indexLevels
        )
        return _lib("roi.qc").apply_qc(result, study, indexLevels)

    def levelCentres(self, roiResult):
        """{level: centre RAS} of each placed level (to show editable points)."""
        return {placement.level: tuple(placement.centre_ras) for placement in roiResult.levels}

    def computeStatistics(self, roiSet, study):
        """Per-(level, map) statistics (the library's long table)."""
        return _lib("stats.roi_statistics").roi_statistics(roiSet, study)

    def loadModel(self, path=None):
        """A risk model file; None = the bundled demonstration model."""
        modelfile = _lib("model.modelfile")
        self.modelPath = str(path or modelfile.bundled_model_path())
        return modelfile.load_model(self.modelPath)

    def clinicalInputSpecs(self, model):
        """The model's inputs the user enters: not the imaging summaries (measured) nor those
        the index levels determine (thoracolumbar junction, number of index levels)."""
        derived = set(self.imagingInputNames(model)) | _lib("pipeline").FROM_INDEX_LEVELS
        return [spec for spec in model.inputs if spec.name not in derived]

    @staticmethod
    def imagingInputNames(model):
        """Model inputs the pipeline fills from the images (PDFF/R2* summaries, field strength)."""
        imaging = _lib("pipeline").FROM_IMAGES
        return [spec.name for spec in model.inputs if spec.name in imaging]

    def clinicalPrefill(self, study):
        """Clinical inputs known from the DICOM header (age, sex); never identifying."""
        values = {}
        if study.patient.age_years is not None:
            values["age_years"] = study.patient.age_years
        if study.patient.sex in ("F", "M"):
            values["sex"] = study.patient.sex
        return values

    def clinicalFromCohortRow(self, path, patientId):
        """Clinical inputs from a cohort table row (CSV, Excel, Parquet) or a JSON object."""
        return dict(_lib("pipeline").load_clinical(path, patientId or None))

    def computeRisk(
        self, study, roiResult, model, clinicalValues, indexLevels=(), missing="refuse"
    ):
        """Statistics, patient summaries and the risk of one patient (dict of results).

        ``roiResult``: the library's ``RoiResult`` the panel shows (its RoiSet is measured).
        ``missing``: "refuse" (an error naming the missing inputs) or "range" (see scoring).
        """
        roiSet = roiResult.roiset
        pipeline = _lib("pipeline")
        statistics, summary = pipeline.measure(study, roiResult, tuple(indexLevels))
        clinical = {k: v for k, v in dict(clinicalValues).items() if v is not None}
        risk = pipeline.score_patient(model, clinical, summary, study, missing=missing)
        return {
            "statistics": statistics,
            "summary": summary,
            "risk": risk,
            "model": model,
            "roiResult": roiResult,
            "roiSet": roiSet,
            "study": study,
            "indexLevels": tuple(indexLevels),
            "clinical": clinical,
        }

    # -- result display -----------------------------------------------------------------------
    def riskAnnotationText(self, risk):
        """One-paragraph risk text for the views: percent, 95% interval, horizon, warning."""
        lines = [f"Re-fracture risk ({risk.horizon_days} days): {risk.risk_text()}"]
        if risk.is_range:
            lines.append(f"missing: {', '.join(risk.missing_inputs)}")
        elif risk.interval is not None:
            lo, hi = risk.interval
            lines.append(f"95% interval {100.0 * lo:.1f}-{100.0 * hi:.1f}%")
        else:
            lines.append(f"no interval: {risk.interval_note}")
        lines.append(f"Model: {risk.model_name}")
        if risk.model_warning:
            lines.append(risk.model_warning.upper())
        return "\n".join(lines)

    def showRiskAnnotation(self, outcome):
        """Show the risk beside the spine: a locked, labelled point anterior to the index level.

        The point sits 60 mm anterior to the index level's ROI centre (else the centre of all
        ROIs); its label is :meth:`riskAnnotationText`, so it appears in every view showing it.
        """
        risk = outcome["risk"]
        roiSet = outcome["roiSet"]
        labels = np.asarray(roiSet.labelmap.array)
        index = [lv for lv in roiSet.levels if "index" in {str(f) for f in lv.flags}]
        chosen = index[0].label if index else None
        kji = np.argwhere(labels == chosen) if chosen is not None else np.argwhere(labels > 0)
        middleIjk = kji[:, ::-1].mean(axis=0) if len(kji) else np.asarray(labels.shape[::-1]) / 2.0
        centre = roiSet.labelmap.ijk_to_ras_points(middleIjk)[0]
        position = centre + np.array([0.0, 60.0, 0.0])  # +A: anterior
        node = slicer.mrmlScene.GetFirstNodeByName(RISK_ANNOTATION_NODE_NAME)
        if node is None:
            node = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLMarkupsFiducialNode", RISK_ANNOTATION_NODE_NAME
            )
        node.RemoveAllControlPoints()
        node.AddControlPoint(vtk.vtkVector3d(*position), self.riskAnnotationText(risk))
        node.SetLocked(True)
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        if display is not None:
            display.SetTextScale(3.0)
            display.SetGlyphScale(1.0)
            color = (1.0, 0.3, 0.1) if not risk.validated else (0.2, 1.0, 0.4)
            display.SetSelectedColor(*color)
            display.SetColor(*color)
        return node

    def resultsHtml(self, outcome):
        """The results panel text: risk, interval, contributions, summaries, warnings, model."""
        import html

        risk = outcome["risk"]
        parts = [f"<h3>{html.escape(self.riskAnnotationText(risk)).replace(chr(10), '<br>')}</h3>"]
        if risk.model_warning:
            parts.append(f"<p style='color:#c00'><b>{html.escape(risk.model_warning)}</b></p>")
        scoring = _lib("model.scoring")
        parts.append(
            "<table border='1' cellspacing='0' cellpadding='2'><tr><th>factor</th>"
            "<th>effect</th><th>log-odds</th></tr>"
        )
        for c in risk.contributions:
            parts.append(
                f"<tr><td>{html.escape(scoring.factor_text(c))}</td>"
                f"<td>{html.escape(scoring.direction_text(c))}</td>"
                f"<td>{html.escape(scoring.format_log_odds(c))}</td></tr>"
            )
        parts.append("</table><p><b>Summaries</b><br>")
        for key, value in outcome["summary"].as_record().items():
            parts.append(f"{html.escape(str(key))}: {html.escape(_formatValue(value))}<br>")
        parts.append("</p>")
        if risk.warnings:
            parts.append(
                "<p><b>Warnings</b><br>"
                + "<br>".join(html.escape(w) for w in risk.warnings)
                + "</p>"
            )
        return "".join(parts)

    def setResultsLayout(self, tableNode=None, chartNode=None):
        """Slice views (sagittal, axial, coronal), the table and the chart (needs the app)."""
        slicer.app.layoutManager().setLayout(
            slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView
        )
        appLogic = slicer.app.applicationLogic()
        if tableNode is not None:
            appLogic.GetSelectionNode().SetActiveTableID(tableNode.GetID())
            appLogic.PropagateTableSelection()
        if chartNode is not None:
            appLogic.GetSelectionNode().SetActivePlotChartID(chartNode.GetID())
            appLogic.PropagatePlotChartSelection()

    def updatePdffChart(self, statistics, chartNode=None):
        """A chart of mean PDFF (%) and R2* (1/s) per level, cranial to caudal.

        Its table has one row per level: ``level``, ``position`` (1 = most cranial level shown),
        ``pdff_mean_pct`` and ``r2s_mean_per_s`` (NaN when the map was not measured).
        """
        rows = {}
        for row in _records(statistics):
            entry = rows.setdefault(row["level"], {"level": row["level"]})
            if row.get("map") in ("pdff", "r2s") and _isNumberOrMissing(row.get("mean")):
                unit = "pct" if row["map"] == "pdff" else "per_s"
                entry[f"{row['map']}_mean_{unit}"] = row["mean"]
        ordered = [rows[lv] for lv in LEVELS if lv in rows]
        for position, entry in enumerate(ordered, start=1):
            entry["position"] = position
            entry.setdefault("pdff_mean_pct", None)
            entry.setdefault("r2s_mean_per_s", None)
        table = slicer.mrmlScene.GetFirstNodeByName("RefractureRisk PDFF by level")
        table = self.updateTableNode(ordered, table, name="RefractureRisk PDFF by level")
        if chartNode is None:
            chartNode = slicer.mrmlScene.GetFirstNodeByName("RefractureRisk chart")
        if chartNode is None:
            chartNode = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLPlotChartNode", "RefractureRisk chart"
            )
        chartNode.RemoveAllPlotSeriesNodeIDs()
        for column, name, color in (
            ("pdff_mean_pct", "PDFF (%)", (0.95, 0.75, 0.1)),
            ("r2s_mean_per_s", "R2* (1/s)", (0.3, 0.6, 1.0)),
        ):
            series = slicer.mrmlScene.GetFirstNodeByName(f"RefractureRisk {name}")
            if series is None:
                series = slicer.mrmlScene.AddNewNodeByClass(
                    "vtkMRMLPlotSeriesNode", f"RefractureRisk {name}"
                )
            series.SetAndObserveTableNodeID(table.GetID())
            series.SetXColumnName("position")
            series.SetYColumnName(column)
            series.SetLabelColumnName("level")
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
            series.SetColor(*color)
            chartNode.AddAndObservePlotSeriesNodeID(series.GetID())
        chartNode.SetTitle("Marrow PDFF and R2* by level (cranial to caudal)")
        chartNode.SetXAxisTitle("level position (cranial to caudal)")
        chartNode.SetYAxisTitle("PDFF (%) / R2* (1/s)")
        return chartNode

    def withIncludeOverride(self, roiResult, level, include):
        """``roiResult`` with a level re-included (True), excluded (False) or reset (None)."""
        import dataclasses

        return dataclasses.replace(roiResult, roiset=roiResult.roiset.with_override(level, include))

    # -- output -------------------------------------------------------------------------------
    def saveResults(self, outcome, folder):
        """Write the panel's results: statistics, ROIs, results JSON (with provenance), report.

        Exactly what the panel shows is written (the ROIs are not re-derived), with the library's
        writers and the same file names as ``refracture-risk analyze``. Returns the files written.
        """
        core = _lib("core")
        if outcome is None:
            raise core.InputError("results", "compute the risk first")
        if not folder:
            raise core.InputError("output folder", "choose an output folder first")
        os.makedirs(folder, exist_ok=True)
        pipeline = _lib("pipeline")
        roiResult, risk, summary = outcome["roiResult"], outcome["risk"], outcome["summary"]
        options = pipeline.AnalysisOptions(
            roi="Slicer panel",
            index_levels=outcome["indexLevels"],
            reader=outcome["roiSet"].reader,
            model_path=self.modelPath,
        )
        provenance = pipeline.provenance_record(
            outcome["study"], roiResult, options, outcome["model"]
        )
        written = pipeline.write_outputs(
            folder,
            outcome["study"],
            roiResult,
            outcome["statistics"],
            summary,
            risk,
            provenance,
        ).values()
        return sorted(str(path) for path in written)

    def exportDicom(self, outcome, folder, deidentify=False):
        """DICOM SEG of the ROIs and a TID 1500 SR of their statistics, referencing PDFF."""
        core = _lib("core")
        if outcome is None:
            raise core.InputError("results", "compute the risk first")
        files = self.sourcePdffFiles
        if not files:
            raise core.InputError("DICOM export", "the PDFF map was not loaded from DICOM files")
        pdffSeries = outcome["study"].provenance.series.get("pdff")
        if pdffSeries is None or pdffSeries.series_uid != self.sourcePdffSeriesUid:
            raise core.InputError(
                "DICOM export", "the PDFF map in use is not the DICOM series loaded last; reload it"
            )
        written = _lib("pipeline").export_dicom(
            files, outcome["roiSet"], outcome["statistics"], folder, deidentify,
            self.sourcePdffFrames,
        )  # fmt: skip
        return [str(written["dicom_seg"]), str(written["dicom_sr"])]

    def writeToStore(self, outcome, storeLocation, reader, patientId):
        """Record the measurements with the reader's name in the measurement store."""
        core = _lib("core")
        if outcome is None:
            raise core.InputError("results", "compute the risk first")
        if not patientId:
            raise core.InputError("patient ID", "enter the patient's study ID (pseudonym)")
        store = _lib("store.measurements")
        study = outcome["study"]
        measurements = []
        for row in _records(outcome["statistics"]):
            series = study.provenance.series.get(row["map"])
            measurements.append(
                store.Measurement(
                    level=row["level"],
                    map=row["map"],
                    unit=row["unit"],
                    statistics={k: float(row[k]) for k in STORE_STATISTICS if k in row},
                    flags=tuple(f for f in str(row.get("flags") or "").split(";") if f),
                    included=bool(row["included"]),
                    series_uid=None if series is None else series.series_uid,
                )
            )
        submission = store.StudySubmission(
            patient_id=patientId,
            study_uid=study.provenance.study_uid or "unknown",
            reader=reader,
            roi_method=outcome["roiSet"].method.value,
            measurements=tuple(measurements),
        )
        return store.MeasurementStore(storeLocation).record_study(submission)


#
# Pure helpers (no MRML)
#


def levelFromName(name):
    """The vertebral level a name refers to ("L1", "l1 vertebra", "vertebrae_L1"), else None."""
    match = re.search(
        r"(?<![A-Za-z0-9])(T1[0-2]|L[1-5]|S1)(?![0-9])", (name or "").upper().replace("_", " ")
    )
    if match and match.group(1) in LEVELS:
        return match.group(1)
    return None


def guessKindFromName(name):
    """Map kind a node/series name suggests ("FatFrac: ..." -> "pdff"), else None."""
    words = re.split(r"[\s:_\-/()]+", (name or "").upper())
    text = (name or "").upper()
    for kind, tokens in KIND_NAME_TOKENS:
        for token in tokens:
            if (len(token) > 2 and token in text) or token in words:
                return kind
    return None


def pdffColor(pdffPct):
    """RGB (0-1) of a PDFF value on the panel's colour map: 0 % dark blue -> 100 % yellow."""
    t = min(max(float(pdffPct) / 100.0, 0.0), 1.0)
    anchors = (
        (0.0, (0.05, 0.03, 0.35)),
        (0.35, (0.1, 0.45, 0.75)),
        (0.65, (0.45, 0.8, 0.35)),
        (1.0, (1.0, 0.92, 0.2)),
    )
    for (t0, c0), (t1, c1) in itertools.pairwise(anchors):
        if t <= t1:
            w = (t - t0) / (t1 - t0)
            return tuple(a + w * (b - a) for a, b in zip(c0, c1, strict=True))
    return anchors[-1][1]


def levelColor(levelRoi, meanPdffPct=None, fallback=None):
    """Segment colour of one level (see :meth:`RefractureRiskLogic.roiSetToSegmentation`).

    ``fallback``: the level's colour before statistics exist (the library's level palette).
    """
    flags = {str(f) for f in levelRoi.flags}
    if "index" in flags:
        return INDEX_LEVEL_COLOR
    if not levelRoi.included:
        return EXCLUDED_LEVEL_COLOR
    if meanPdffPct is not None and not _isNan(meanPdffPct):
        return pdffColor(meanPdffPct)
    if fallback is not None:
        return tuple(fallback)
    i = LEVELS.index(levelRoi.level)
    return pdffColor(20.0 + 60.0 * i / (len(LEVELS) - 1))


def unitFromColumnName(column):
    """Unit label of a table column from its name's suffix, or "" when it has none."""
    for suffix, unit in UNIT_SUFFIXES:
        if column.endswith(suffix):
            return unit
    return ""


def _records(records):
    """A list of dicts from a DataFrame (duck-typed: no pandas import) or an iterable of dicts."""
    if hasattr(records, "to_dict") and hasattr(records, "columns"):
        records = records.to_dict("records")
    rows = []
    for row in records:
        rows.append(
            {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in dict(row).items()}
        )
    return rows


def _isNan(value):
    return isinstance(value, float) and math.isnan(value)


def _isNumberOrMissing(value):
    if value is None:
        return True
    return isinstance(value, (bool, int, float, np.integer, np.floating))


def _formatValue(value):
    if isinstance(value, float):
        return "missing" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def _segmentTag(segment, tag):
    value = vtk.reference("")
    if segment.GetTag(tag, value):
        return str(value)
    return None


def _nodeName(node):
    return node.GetName() if node is not None else "(no node)"


#
# RefractureRiskTest
#


class RefractureRiskTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: the steps of Testing/test_slicer_core_logic.py::test_workflow_on_phantom.

    Both call :func:`runWorkflowChecks` on the sample-data phantom (seed 0), so the steps that run
    here against slicer-core are the ones the self-test runs inside Slicer.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_RefractureRiskWorkflow()

    def test_RefractureRiskWorkflow(self):
        # The self-test needs the library's packages: install them without asking, also when
        # Slicer runs in testing mode (ctest), where pip_ensure would otherwise skip them.
        _ensureLibraryDependencies(prompt_install=False, skip_in_testing=False)
        registerSampleData()
        self.delayDisplay("Generating the synthetic phantom (the sample data, seed 0)")
        logic = RefractureRiskLogic()
        phantom = logic.generatePhantomStudy(seed=0)
        nodes = logic.addStudyToScene(phantom.study, baseName="RefractureRiskPhantom")
        check = runWorkflowChecks(logic, phantom, nodes)
        for message in check:
            self.delayDisplay(message)
        self.delayDisplay("Test passed")


def runWorkflowChecks(logic, phantom, nodes):
    """The workflow both the Slicer self-test and the slicer-core test run; raises on failure.

    Automatic detection with an anchor; points at the phantom's true body centres -> ROIs ->
    segmentation round trip -> a moved point updates only its level -> statistics table and chart
    -> summaries -> risk with the bundled demonstration model, shown beside the spine.
    Returns progress messages.
    """
    messages = []
    index = ("L1",)
    study = logic.studyFromNodes(
        {k: nodes.get(k) for k in ("pdff", "r2s", "water", "fat")}, fieldStrengthT=1.5
    )
    truth = {lv.level: lv for lv in phantom.truth.levels if lv.level != "S1"}

    anchor = ("L3", tuple(truth["L3"].centre_ras))
    detected = logic.detectVertebrae(study, anchor=anchor, reader="selftest", indexLevels=index)
    for level, centre in logic.levelCentres(detected).items():
        if level in truth:
            offset = np.linalg.norm(np.subtract(centre, truth[level].centre_ras))
            assert offset < 5.0, (level, offset)
    messages.append(f"detected {len(detected.levels)} levels at their true positions")

    points = logic.updateMarkupsFromLevelPoints({lv: t.centre_ras for lv, t in truth.items()})
    placed = logic.levelPointsFromMarkups(points)
    assert set(placed) == set(truth), (sorted(placed), sorted(truth))
    messages.append(f"{len(placed)} points placed")

    result = logic.roisFromPoints(study, placed, reader="selftest", indexLevels=index)
    segmentation = logic.roiSetToSegmentation(result.roiset, nodes["pdff"])
    back = logic.roiSetFromSegmentation(segmentation, nodes["pdff"])
    for lv in result.roiset.levels:
        assert int(back.mask(lv.level).sum()) == int(result.roiset.mask(lv.level).sum()), lv.level
        assert back.level(lv.level).flags == lv.flags, lv.level
    messages.append("ROIs round-tripped through the segmentation")

    moved = np.add(placed["L2"], (0.0, 2.5, 2.5))
    points.SetNthControlPointPosition(points.GetControlPointIndexByLabel("L2"), *moved)
    movedRas = logic.levelPointsFromMarkups(points)["L2"]
    updated = logic.updateLevel(result, study, "L2", movedRas, index)
    assert np.allclose(updated.extras["points_ras"]["L2"], moved)
    assert updated.roiset.mask("L2").sum() > 0
    for lv in ("T12", "L1", "L3"):
        assert np.array_equal(updated.roiset.mask(lv), result.roiset.mask(lv)), lv
    outside = np.add(placed["L2"], (0.0, 80.0, 0.0))  # in front of the spine: no marrow there
    try:
        logic.updateLevel(result, study, "L2", tuple(outside), index)
    except ValueError as err:  # the library's InputError names the level
        assert "L2" in str(err), err
    else:
        raise AssertionError("a point outside the vertebral body was accepted")
    messages.append("moving the L2 point updates only L2; a point off the spine is refused")

    statistics = logic.computeStatistics(result.roiset, study)
    table = logic.updateTableNode(statistics, name="RefractureRisk statistics")
    assert table.GetNumberOfRows() == len(statistics)
    logic.updatePdffChart(statistics)
    means = logic.meanPdffByLevel(statistics)
    for level, true in truth.items():
        if level in means and not true.fractured and not true.cemented and not true.lesion:
            assert abs(means[level] - true.marrow_pdff_pct) < 5.0, (level, means[level])
    messages.append("statistics match the phantom's true marrow PDFF")

    model = logic.loadModel()
    clinical = {spec.name: _typicalInputValue(spec) for spec in logic.clinicalInputSpecs(model)}
    outcome = logic.computeRisk(study, result, model, clinical, indexLevels=index)
    summary, risk = outcome["summary"], outcome["risk"]
    used = summary.levels_used["pdff_global_L1L4_pct"]
    assert "L1" not in used and len(used) >= 2, used  # the index level is not in the summary
    expected = float(np.mean([means[lv] for lv in used]))
    assert abs(summary.pdff_global_L1L4_pct - expected) < 1e-6, (summary, expected)
    assert 0.0 < risk.probability < 1.0
    text = logic.riskAnnotationText(risk)
    assert (risk.model_warning is not None) == (not risk.validated)
    assert risk.validated or risk.model_warning.upper() in text
    html = logic.resultsHtml(outcome)
    assert f"{100 * risk.probability:.1f}%" in html and risk.model_name in html
    assert "points" not in html
    partial = {k: v for k, v in clinical.items() if k != "age_years"}
    try:
        logic.computeRisk(study, result, model, partial, indexLevels=index)
    except ValueError as err:  # the library's InputError names the missing input
        assert "age_years" in str(err), err
    else:
        if study.patient.age_years is None:
            raise AssertionError("a missing age was not refused")
    ranged = logic.computeRisk(study, result, model, partial, indexLevels=index, missing="range")
    if ranged["risk"].is_range:
        assert "range over missing inputs" in logic.riskAnnotationText(ranged["risk"])
    messages.append("a missing input is refused, or shown as a labelled range on request")
    annotation = logic.showRiskAnnotation(outcome)
    assert annotation.GetNthControlPointLabel(0) == text
    messages.append(f"risk {100 * risk.probability:.1f}% shown")
    return messages


def _typicalInputValue(spec):
    """A plausible test value for a model input: its missing-value substitute, else mid-range."""
    if spec.missing_value is not None:
        return spec.missing_value
    if spec.kind == "category":
        return spec.levels[0]
    if spec.kind == "binary":
        return 0
    lo, hi = spec.soft_range or spec.hard_range
    return 0.5 * (lo + hi)
