"""RefractureRisk: re-fracture risk after vertebroplasty from clinical factors and marrow qMRI.

A thin 3D Slicer panel over the pure-Python library ``RefractureRiskLib`` (docs/architecture.md):
the template's five classes live here; MRML conversions, display, level review and the background
runner live in the ``RefractureRiskSlicer`` package beside this file (as DICOMLib does for the
DICOM module). Importing this file does no work and imports nothing beyond the standard library,
Slicer, VTK, numpy and that package: the library and Qt are imported on first use.

Coordinates: every position here is RAS in millimetres (Slicer's convention, and the library's).
"""

import json
import logging
import os
from typing import Annotated

import slicer
import vtk
from RefractureRiskSlicer import display, library, mrml, panel, points, review, studies, workflow
from RefractureRiskSlicer.fatwater import FAT_SPECTRA, PRECESSIONS, Separation
from RefractureRiskSlicer.mrml import LEVELS
from RefractureRiskSlicer.steps import WorkflowSteps
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

#: The oldest Slicer this module runs on: 5.12 brought ``slicer.packaging`` (pip_ensure), which
#: installs the library's packages. Checked when the module loads (CMake checks it at build).
MINIMUM_SLICER_VERSION = (5, 12)


def slicerVersionProblem(version):
    """A message for the user when ``version`` ((major, minor)) is older than the minimum."""
    if tuple(version) >= MINIMUM_SLICER_VERSION:
        return None
    need = ".".join(str(v) for v in MINIMUM_SLICER_VERSION)
    have = ".".join(str(v) for v in version)
    return _(
        "RefractureRisk needs 3D Slicer {need} or later (this is Slicer {have}): it installs its "
        "Python packages with slicer.packaging, new in Slicer {need}. Please update Slicer."
    ).format(need=need, have=have)


#
# RefractureRisk
#


class RefractureRisk(ScriptedLoadableModule):
    """Module metadata, version check and sample data registration."""

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
        problem = slicerVersionProblem((slicer.app.majorVersion, slicer.app.minorVersion))
        if problem:
            logging.error(problem)
            self.parent.helpText = (
                f"<p style='color:#c00'><b>{problem}</b></p>" + self.parent.helpText
            )
            return
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Register the synthetic IDEAL-IQ spine phantom in the Sample Data module (no download)."""
    import SampleData

    iconsPath = os.path.join(os.path.dirname(__file__), "Resources", "Icons")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="RefractureRisk",
        sampleName="RefractureRiskPhantom",
        thumbnailFileName=os.path.join(iconsPath, "RefractureRisk.png"),
        uris=[],  # nothing to download: the custom downloader generates the phantom
        fileNames=[],
        customDownloader=_loadPhantomSample,
    )


def _loadPhantomSample(source=None):
    """Generate the phantom study (seed 0) and show it (Sample Data button).

    Sample Data only logs a downloader's exception, so every failure (a declined install, a
    library error) is shown to the user here, then raised for Sample Data's log.
    """
    with slicer.util.tryWithErrorDisplay(_("Could not create the RefractureRisk phantom.")):
        _ensureLibraryDependencies()
        logic = RefractureRiskLogic()
        phantom = logic.generatePhantomStudy(seed=0)
        nodes = logic.addStudyToScene(phantom.study, baseName="RefractureRiskPhantom")
        display.showPdff(nodes["pdff"])
        return nodes


def _ensureLibraryDependencies(extra=()):
    """Install the library's missing packages after the user confirms (slicer.packaging)."""
    library.ensureLibraryDependencies(extra)


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
    fatSpectrum, precession - fat-water separation of echoes (the CLI's --spectrum, --precession).
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
    fatSpectrum: Annotated[str, Choice(list(FAT_SPECTRA))] = "ismrm-6peak"
    precession: Annotated[str, Choice(list(PRECESSIONS))] = "auto"


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
        self._clinicalEditors = {}
        self._levelPoints = None  # names placed points, follows moves (RefractureRiskSlicer)
        self._shownTable = None
        self._model = None
        self.clearResults()

    def clearResults(self) -> None:
        """Forget the last study's results (scene closed, another study loaded)."""
        self._roiResult = None  # the RoiResult shown (for live point moves and review)
        self._statistics = None  # its statistics (a live move re-measures one level)
        self._lastOutcome = None
        self._chart = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        problem = slicerVersionProblem((slicer.app.majorVersion, slicer.app.minorVersion))
        if problem:
            import qt

            self.layout.addWidget(qt.QLabel(problem))
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RefractureRisk.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = RefractureRiskLogic()
        self.observeApplication()
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

    def observeApplication(self) -> None:
        """Scene close; the level points and place mode (RefractureRiskSlicer.points)."""
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self._levelPoints = points.LevelPoints(self._onLevelPointChanged)

    def cleanup(self) -> None:
        self.removeObservers()
        if self._levelPoints is not None:
            self._levelPoints.removeObservers()

    def enter(self) -> None:
        if self.logic is not None:  # None: Slicer too old, the panel shows why
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
        self._levelPoints.request(None)
        self.clearResults()
        self.logic.clearCaches()

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
        table = p.statisticsTable if p else None
        if table is not self._shownTable:  # also when the user picks another table
            self.ui.statisticsTableView.setMRMLTableNode(table)
            self._shownTable = table
        if p and p.roiPoints:
            placed = mrml.levelPointsFromMarkups(p.roiPoints, strict=False)
            self.ui.nextLevelLabel.text = mrml.nextLevelToPlace(placed) or _("all placed")
        self._levelPoints.observe(p.roiPoints if p else None)

    def _ensureDependencies(self, extra=()) -> None:
        _ensureLibraryDependencies(extra)

    # -- input --------------------------------------------------------------------------------
    def onLoadDicomFolder(self) -> None:
        folder = self.ui.dicomFolderPathLineEdit.currentPath
        with panel.step(_("Failed to load the study.")):
            if not folder:
                raise ValueError(_("Choose a DICOM folder first."))
            self._ensureDependencies()
            self._readStudy(
                lambda progress, echoes: self.logic.readDicomFolder(folder, progress, echoes)
            )

    def onLoadFromDatabase(self) -> None:
        with panel.step(_("Failed to load the study.")):
            db = getattr(slicer, "dicomDatabase", None)  # absent when the DICOM module is off
            if db is None or not db.isOpen:
                raise ValueError(
                    _("The DICOM database is not available: enable the DICOM module (Edit > "
                      "Application Settings > Modules) and import the study there first.")
                )  # fmt: skip
            studies = panel.databaseStudies(db)
            if not studies:
                raise ValueError(_("The DICOM database holds no studies."))
            index = panel.chooseItem(_("Load study"), _("Study:"), [text for text, _u in studies])
            if index is None:
                return  # Cancel
            files = [f for s in db.seriesForStudy(studies[index][1]) for f in db.filesForSeries(s)]
            self._ensureDependencies()
            self._readStudy(
                lambda progress, echoes: self.logic.loadStudyFromFiles(files, progress, echoes)
            )

    def _readStudy(self, read) -> None:
        """``read(progress, echoes)`` off the GUI thread; echo images: panel.readMapsOrEchoes."""
        p = self._parameterNode
        for loaded in panel.readMapsOrEchoes(read, Separation(p.fatSpectrum, p.precession)):
            self._useStudy(self.logic.useDicomSource(loaded))

    def _useStudy(self, study) -> None:
        self.clearResults()
        nodes = self.logic.addStudyToScene(study)
        p = self._parameterNode
        for kind in ("pdff", "r2s", "water", "fat"):
            setattr(p, f"{kind}Volume", nodes.get(kind))
        fieldStrength = studies.panelFieldStrength(study)  # 1.5 or 3.0 T; None: neither
        if fieldStrength is not None:
            p.fieldStrengthT = fieldStrength
        if nodes.get("pdff"):
            display.showPdff(nodes["pdff"])
        values = json.loads(p.clinicalInputs or "{}")
        values.update(self.logic.clinicalPrefill(study))
        p.clinicalInputs = json.dumps(values)
        if self._model is not None:
            self._buildClinicalForm(self._model)

    def onDetectKinds(self) -> None:
        volumes = slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
        for kind, node in mrml.guessMapKinds(volumes).items():
            setattr(self._parameterNode, f"{kind}Volume", node)

    # -- ROIs ---------------------------------------------------------------------------------
    def _study(self):
        p = self._parameterNode
        return self.logic.studyFromNodes(
            {"pdff": p.pdffVolume, "r2s": p.r2sVolume, "water": p.waterVolume, "fat": p.fatVolume},
            fieldStrengthT=p.fieldStrengthT,
        )

    def _indexLevels(self):
        return mrml.parseLevels(self._parameterNode.indexLevels)

    def onDetectVertebrae(self) -> None:
        with panel.step(_("Automatic detection failed.")):
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
            study, reader, index = self._study(), p.readerName, self._indexLevels()

            def work(progress):
                result = self.logic.detectVertebrae(study, anchor, reader, index, progress)
                return result, self.logic.computeStatistics(result, study)

            result, statistics = panel.runLong(_("Detecting vertebrae..."), work)
            self._showRoiResult(result, study, statistics)
            self._writeLevelPoints(result)

    def _writeLevelPoints(self, result) -> None:
        """The ROIs' centres as the level points (a request to place a level ends here)."""
        self._levelPoints.request(None)
        p = self._parameterNode
        p.roiPoints = mrml.updateMarkupsFromLevelPoints(
            self.logic.levelCentres(result), p.roiPoints
        )

    def onPlaceNextLevel(self) -> None:
        p = self._parameterNode
        if not p.roiPoints:
            p.roiPoints = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLMarkupsFiducialNode", "RefractureRisk points"
            )
        level = mrml.nextLevelToPlace(mrml.levelPointsFromMarkups(p.roiPoints, strict=False))
        if level is None:
            slicer.util.infoDisplay(_("Every level T10-S1 has a point."))
            return
        self._levelPoints.observe(p.roiPoints)
        self._levelPoints.request(level)
        self.ui.roiPointsPlaceWidget.setCurrentNode(p.roiPoints)
        self.ui.roiPointsPlaceWidget.setPlaceModeEnabled(True)

    def _onLevelPointChanged(self, markupsNode, level) -> None:
        """A level's point was placed or moved: recompute that level only (live update)."""
        self._updateGuiState()
        p = self._parameterNode
        if not p.liveUpdate or self._roiResult is None or not p.pdffVolume:
            return
        with panel.step(_("Could not update level {level}.").format(level=level)):
            placed = mrml.levelPointsFromMarkups(markupsNode, strict=False)
            if level not in placed:
                return
            study = self._study()  # cached: the maps are not copied again
            before, stats, index = self._roiResult, self._statistics, self._indexLevels()

            def work(progress):
                result = self.logic.updateLevel(before, study, level, placed[level], index)
                return result, self.logic.updateStatistics(stats, result, study, level)

            label = _("Updating {level}...").format(level=level)
            result, stats = panel.runLong(label, work, showAfterMs=500)
            changed = result.extras.get("updated_levels", (level,))
            self._showRoiResult(result, study, stats, changedLevels=changed)

    def onRoisFromPoints(self) -> None:
        with panel.step(_("Could not make ROIs from the points.")):
            self._ensureDependencies()
            p = self._parameterNode
            placed = mrml.levelPointsFromMarkups(p.roiPoints)
            study, reader, index = self._study(), p.readerName, self._indexLevels()

            def work(progress):
                result = self.logic.roisFromPoints(study, placed, reader, index)
                return result, self.logic.computeStatistics(result, study)

            result, statistics = panel.runLong(_("Placing ROIs..."), work)
            self._showRoiResult(result, study, statistics)

    def onImportSegmentation(self) -> None:
        with panel.step(_("Could not use the segmentation.")):
            self._ensureDependencies()
            self._showRoiResult(self._importedRoiResult(), self._study())

    def _importedRoiResult(self):
        p = self._parameterNode
        roiSet = mrml.roiSetFromSegmentation(p.segmentation, p.pdffVolume, p.readerName or None)
        return self.logic.roisFromImportedRoiSet(
            roiSet, self._study(), roiSet.reader, self._indexLevels(), p.segmentsAreBodies
        )

    def _showRoiResult(self, result, study, statistics=None, changedLevels=None) -> None:
        """Show ROIs coloured by PDFF, the statistics table, the chart and the levels to check;
        a computed risk follows at once. ``changedLevels``: only their segments are rebuilt."""
        p = self._parameterNode
        self._roiResult = result
        if statistics is None:
            statistics = self.logic.computeStatistics(result, study)
        self._statistics = statistics
        records = mrml.records_(statistics)  # the table as dicts once, not once per view
        colors = display.levelColors(result.roiset, mrml.meanPdffByLevel(records))
        p.segmentation = mrml.roiSetToSegmentation(  # each level's voxels are in its box
            result.roiset, p.pdffVolume, p.segmentation, colors, changedLevels,
            panel.processEvents, {lv.level: lv.box.slices for lv in result.levels},
        )  # fmt: skip
        p.statisticsTable = mrml.updateTableNode(
            records, p.statisticsTable, name="RefractureRisk statistics"
        )
        self._chart = display.updatePdffChart(records)
        rows = review.reviewRows(result)
        pending = ", ".join(row["level"] for row in rows if not row["decision"]) or _("none")
        self.ui.levelReviewLabel.text = _("Levels to check: {levels}").format(levels=pending)
        panel.fillLevelReview(
            self.ui.levelReviewTable,
            rows,
            self.onAcceptLevel,
            self.onRejectLevel,
            self.onRelabelLevel,
        )
        if self._lastOutcome is not None:
            self._computeRisk(study, statistics)

    def onApplyOverride(self) -> None:
        """Re-include a flagged level in the summaries, exclude a level, or follow the flags."""
        with panel.step(_("Could not change the level.")):
            if self._roiResult is None:
                raise ValueError(_("Place or detect the ROIs first."))
            level = self.ui.overrideLevelComboBox.currentText
            choice = {0: None, 1: True, 2: False}[self.ui.overrideChoiceComboBox.currentIndex]
            result = self.logic.withIncludeOverride(self._roiResult, level, choice)
            self._showRoiResult(result, self._study())

    # -- level review: one click per uncertain level, the risk follows ------------------------
    def onAcceptLevel(self, level) -> None:
        with panel.step(_("Could not accept level {level}.").format(level=level)):
            self._showRoiResult(review.accept(self._roiResult, level), self._study())

    def onRejectLevel(self, level) -> None:
        with panel.step(_("Could not reject level {level}.").format(level=level)):
            self._showRoiResult(review.reject(self._roiResult, level), self._study())

    def onRelabelLevel(self, level, newLevel) -> None:
        if newLevel not in LEVELS:
            return  # the list's prompt
        with panel.step(_("Could not relabel level {level}.").format(level=level)):
            result = review.relabel(self._roiResult, level, newLevel, self._indexLevels())
            self._showRoiResult(result, self._study())
            self._writeLevelPoints(result)

    # -- model and clinical inputs ------------------------------------------------------------
    def onLoadModel(self) -> None:
        with panel.step(_("Could not load the model.")):
            self._ensureDependencies()
            self._model = None
            self._ensureModel()

    def _ensureModel(self):
        """The loaded model; loads the chosen file (or the bundled demonstration model) once."""
        if self._model is None:
            self._model = self.logic.loadModel(self.ui.modelPathLineEdit.currentPath or None)
            status = _("validated") if self._model.validated else self._model.warning_text
            self.ui.modelInfoLabel.text = f"{self._model.name}: {status}"
            self._buildClinicalForm(self._model)
        return self._model

    def _buildClinicalForm(self, model) -> None:
        saved = json.loads(self._parameterNode.clinicalInputs or "{}")
        specs = self.logic.clinicalInputSpecs(model)
        self._clinicalEditors = panel.buildClinicalForm(
            self.ui.clinicalInputsFormWidget, specs, saved
        )

    def _clinicalValues(self) -> dict:
        values = panel.clinicalValues(self._clinicalEditors)
        self._parameterNode.clinicalInputs = json.dumps(values)
        return values

    def onFillFromCohort(self) -> None:
        with panel.step(_("Could not read the cohort row.")):
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
        with panel.step(_("Failed to compute the risk.")):
            self._ensureDependencies()
            study = self._study()
            if self._roiResult is None:  # ROIs drawn or loaded outside the panel
                self._roiResult = self._importedRoiResult()
            self._computeRisk(study)

    def _computeRisk(self, study, statistics=None) -> None:
        """The risk of the shown ROIs (off the GUI thread unless ``statistics`` are measured)."""
        p = self._parameterNode
        model, clinical, index = self._ensureModel(), self._clinicalValues(), self._indexLevels()
        missing, roiResult = ("range" if p.missingAsRange else "refuse"), self._roiResult

        def work(progress):
            return self.logic.computeRisk(
                study, roiResult, model, clinical, index, missing, progress, statistics
            )

        if statistics is None:
            outcome = panel.runLong(_("Computing the risk..."), work)
        else:
            outcome = work(None)
        self.ui.resultsTextBrowser.setHtml(display.resultsHtml(outcome))
        display.showRiskAnnotation(outcome)
        self._lastOutcome = outcome

    def onSetLayout(self) -> None:
        display.setResultsLayout(self._parameterNode.statisticsTable, self._chart)

    def onSaveResults(self) -> None:
        with panel.step(_("Could not save the results.")):
            folder = self.ui.outputFolderPathLineEdit.currentPath
            written = self.logic.saveResults(self._lastOutcome, folder)
            slicer.util.infoDisplay(_("Written:") + "\n" + "\n".join(written))

    def onExportDicom(self) -> None:
        with panel.step(_("DICOM SEG/SR export failed.")):
            folder = self.ui.outputFolderPathLineEdit.currentPath
            written = self.logic.exportDicom(self._lastOutcome, folder)
            slicer.util.infoDisplay(_("Written:") + "\n" + "\n".join(written))

    def onWriteStore(self) -> None:
        with panel.step(_("Could not write to the measurement store.")):
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


#
# RefractureRiskLogic
#


class RefractureRiskLogic(WorkflowSteps, ScriptedLoadableModuleLogic):
    """The workflow steps as compositions of RefractureRiskLib calls, on MRML nodes; no GUI.

    Node conversions are in RefractureRiskSlicer.mrml. Steps that take ``progress`` run off the
    GUI thread in the panel (RefractureRiskSlicer.tasks): they touch no MRML node.
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.dicomSource = None  # (files, frames, series UID) of the loaded PDFF, for SEG/SR
        self.modelPath = None  # file of the last loaded model (for provenance)

    def getParameterNode(self):
        return RefractureRiskParameterNode(super().getParameterNode())

    def clearCaches(self) -> None:
        """Forget loaded studies and cached arrays (scene closed)."""
        studies.clear()
        self.dicomSource = None

    def addStudyToScene(self, study, baseName="RefractureRisk"):
        """One scalar volume node per map of ``study`` ({kind: node}); see studies.addToScene."""
        return studies.addToScene(study, baseName)

    def studyFromNodes(self, nodesByKind, fieldStrengthT=None):
        """A library ``Study`` from volume nodes chosen per kind; see studies.fromNodes."""
        return studies.fromNodes(nodesByKind, fieldStrengthT)

    def useDicomSource(self, loaded):
        """Keep a steps.ReadStudy's PDFF source (SEG/SR) and companion volumes; its study."""
        self.dicomSource = loaded.source
        studies.keepCompanions(loaded.study, loaded.companions)
        return loaded.study

    def loadStudyFromFolder(self, folder):
        """Read a study from a DICOM folder and keep its PDFF source (on this thread)."""
        return self.useDicomSource(self.readDicomFolder(folder))


#
# RefractureRiskTest
#


class RefractureRiskTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer, offline: the workflow of Testing/test_slicer_core_logic.py
    (``workflow.runWorkflowChecks`` on the sample-data phantom, seed 0)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_RefractureRiskWorkflow()

    def test_RefractureRiskWorkflow(self):
        # Never installs (no network in testing): a missing package fails with its name.
        library.requireLibraryDependencies()
        registerSampleData()
        self.delayDisplay("Generating the synthetic phantom (the sample data, seed 0)")
        logic = RefractureRiskLogic()
        phantom = logic.generatePhantomStudy(seed=0)
        nodes = logic.addStudyToScene(phantom.study, baseName="RefractureRiskPhantom")
        for message in workflow.runWorkflowChecks(logic, phantom, nodes):
            self.delayDisplay(message)
        self.delayDisplay("Test passed")
