"""The workflow's steps as compositions of RefractureRiskLib calls (the way pipeline.py composes
them), mixed into the module's logic class.

None of them touches an MRML node, Qt or logic state other than ``modelPath``, so the panel can
run them off the GUI thread (see :mod:`.tasks`); those taking ``progress`` report to it between
their library calls.
"""

import dataclasses
import os
from typing import NamedTuple

from . import fatwater, tasks
from .library import lib
from .mrml import LEVELS

#: Steps roi.auto.automatic_rois announces (column, bodies, count, segmentation, ROIs).
AUTOMATIC_ROI_STEPS = 5


class ReadStudy(NamedTuple):
    """A study read from DICOM.

    ``source``: (files, frame numbers, series UID) of its PDFF, for SEG/SR export; None for
    maps computed from echoes. ``companions``: volumes computed with it that are no map kind
    ({"fieldmap": Volume in Hz}), or None. ``echoes``: the raw echo images found beside the
    maps read (:func:`.fatwater.echoSeriesIn`), which the panel offers to compute the maps
    from instead; None when there are none."""

    study: object
    source: tuple | None = None
    companions: dict | None = None
    echoes: str | None = None


class WorkflowSteps:
    """Library compositions of the panel's steps (a mixin of RefractureRiskLogic)."""

    modelPath: str | None = None  # file of the last loaded model
    dicomSource: tuple | None = None  # (files, frame numbers, series UID) of the loaded PDFF

    def generatePhantomStudy(self, seed=0):
        """The synthetic IDEAL-IQ spine phantom (``PhantomStudy`` with .study and .truth)."""
        phantom = lib("phantom")
        return phantom.generate_phantom(phantom.PhantomSpec(seed=seed))

    def readDicomFolder(self, folder, progress=None, echoes=False):
        """The :class:`ReadStudy` of a DICOM folder; touches no node or logic state, so it can
        run off the GUI thread. Its ``source`` (files, frame numbers, series UID of the PDFF) is
        what DICOM SEG/SR export references; :meth:`useDicomSource` keeps it.

        A folder of raw multi-echo images instead of maps raises
        :class:`.fatwater.EchoSeriesError`; a folder with maps and echoes is read as maps, the
        echoes described in ``echoes`` of the result. With ``echoes`` true (a
        :class:`.fatwater.Separation`, or True for the defaults) the maps are computed from the
        echoes instead: no ``source`` (nothing to reference), the field map as companion."""
        if echoes:
            separation = echoes if isinstance(echoes, fatwater.Separation) else None
            study, companions = fatwater.computeMaps(folder, progress, separation)
            return ReadStudy(study, None, companions)
        say = progress or (lambda *args: None)
        say("scanning the DICOM headers", 0.0)
        scan = lib("io.dicom_scan").scan_files(folder, tasks.libraryProgress(progress, 0.0, 0.7))
        report = lib("io.dicom_series").build_report(scan)
        found = fatwater.echoSeriesIn(report)
        if found and not fatwater.hasPdffSeries(report):
            raise fatwater.EchoSeriesError(folder, found)
        loaded = lib("io.dicom_load").load_study_with_report(
            folder, report=report, progress=tasks.libraryProgress(progress, 0.7, 0.98)
        )
        say("study read", 1.0)
        files, frames = lib("pipeline").pdff_source(loaded)
        pdff = loaded.study.provenance.series.get("pdff")
        source = ([str(f) for f in files], frames, pdff and pdff.series_uid)
        return ReadStudy(loaded.study, source, echoes=found)

    def loadStudyFromFiles(self, files, progress=None, echoes=False):
        """The :class:`ReadStudy` of DICOM files (e.g. Slicer's DICOM database), through a
        temporary folder of links to them; echo images as in :meth:`readDicomFolder`."""
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="RefractureRisk_dicom_")
        try:
            links = {}
            for index, path in enumerate(files):
                links[os.path.join(folder, f"{index:06d}.dcm")] = path
                try:
                    os.symlink(path, os.path.join(folder, f"{index:06d}.dcm"))
                except OSError:
                    shutil.copyfile(path, os.path.join(folder, f"{index:06d}.dcm"))
            loaded = self.readDicomFolder(folder, progress, echoes)
            if loaded.source is None:  # maps computed from echoes: no source to reference
                return loaded
            sourceFiles, frames, uid = loaded.source
            source = ([links.get(f, f) for f in sourceFiles], frames, uid)
            return loaded._replace(source=source)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def roisFromPoints(self, study, points, reader="unknown", indexLevels=()):
        """ROIs from one point per level, with QC flags (library ``RoiResult``)."""
        result = lib("roi.manual").rois_from_points(
            study, points, reader=reader or "unknown", index_levels=indexLevels
        )
        return lib("roi.qc").apply_qc(result, study, indexLevels)

    def updateLevel(self, roiResult, study, level, pointRas, indexLevels=()):
        """``roiResult`` with one level recomputed from its moved point, QC re-applied: the
        library's one-level update (its other levels kept, equal to a full recomputation);
        ``extras["updated_levels"]`` names the levels whose ROI voxels changed."""
        result = lib("roi.level_update").update_level(roiResult, study, level, pointRas)
        if tuple(indexLevels) != tuple(result.extras.get("index_levels", ())):  # changed since
            result = lib("roi.qc").apply_qc(result, study, indexLevels)
        # the reader's review decisions and include choices survive the move
        roiset = result.roiset
        for lv in roiResult.roiset.levels:
            if lv.include_override is not None and lv.level in roiset.level_names:
                roiset = roiset.with_override(lv.level, lv.include_override)
        extras = {**result.extras, "review": roiResult.extras.get("review", {})}
        return dataclasses.replace(result, roiset=roiset, extras=extras)

    def roisFromImportedRoiSet(
        self, roiSet, study, reader="unknown", indexLevels=(), segmentsAreBodies=False
    ):
        """A ``RoiResult`` from a segmentation the user drew or imported; ``segmentsAreBodies``:
        the segments are whole bodies and the safe-core ROI is placed inside each."""
        result = lib("roi.manual").rois_from_labelmap(
            roiSet.labelmap,
            {lv.label: lv.level for lv in roiSet.levels},
            study,
            drawn="body" if segmentsAreBodies else "roi",
            reader=reader or "unknown",
            index_levels=indexLevels,
        )
        return lib("roi.qc").apply_qc(result, study, indexLevels)

    def detectVertebrae(
        self, study, anchor=None, reader="automatic", indexLevels=(), progress=None
    ):
        """Automatic ROIs with level labels; ``anchor`` = (level, RAS point) fixes the labels."""
        say = progress or (lambda *args: None)
        auto = lib("roi.auto")
        result = auto.automatic_rois(
            study,
            anchor=auto.Anchor(anchor[0], tuple(anchor[1])) if anchor else None,
            reader=reader or "automatic",
            index_levels=indexLevels,
            progress=tasks.libraryProgress(progress, 0.02, 0.9, steps=AUTOMATIC_ROI_STEPS),
        )
        say("checking the levels", 0.9)
        return lib("roi.qc").apply_qc(result, study, indexLevels)

    def levelCentres(self, roiResult):
        """{level: centre RAS} of each placed level (to show editable points)."""
        return {placement.level: tuple(placement.centre_ras) for placement in roiResult.levels}

    def computeStatistics(self, roiResult, study):
        """Per-(level, map) statistics with whole-body volumes (the pipeline's long table)."""
        if not hasattr(roiResult, "body_labels"):  # a bare RoiSet: no bodies
            return lib("stats.roi_statistics").roi_statistics(roiResult, study)
        return lib("pipeline").measure(study, roiResult)[0]

    def updateStatistics(self, statistics, roiResult, study, level):
        """``statistics`` with the rows of the levels whose ROI changed (``level`` and those in
        ``roiResult.extras["updated_levels"]``) measured again, each on its box only, and every
        row's flags and inclusion from ``roiResult`` (QC compares neighbours)."""
        import pandas as pd

        if statistics is None:
            return self.computeStatistics(roiResult, study)
        changed = [level, *roiResult.extras.get("updated_levels", ())]
        changed = [lv for lv in LEVELS if lv in changed and lv in roiResult.roiset.level_names]
        rows = [self._levelStatistics(roiResult, study, lv)[statistics.columns] for lv in changed]
        kept = statistics[~statistics["level"].isin(changed)]
        table = pd.concat([kept, *rows], ignore_index=True)
        table = table.sort_values("level", key=lambda s: s.map(LEVELS.index), kind="stable")
        flags = {lv.level: lv for lv in roiResult.roiset.levels}
        format_flags = lib("stats.roi_statistics").format_flags
        table["flags"] = [format_flags(flags[lv].flags) for lv in table["level"]]
        table["included"] = [bool(flags[lv].included) for lv in table["level"]]
        return table.reset_index(drop=True)

    def _levelStatistics(self, roiResult, study, level):
        """One level's statistics rows, measured on its box only (its ROI lies inside)."""
        core = lib("core")
        box = roiResult.placement(level).box.slices

        def cropped(volume):  # statistics need the voxel size only, not the box's position
            return core.Volume(volume.array[box], volume.ijk_to_ras)

        roi = roiResult.roiset
        crop = core.Study({kind: cropped(volume) for kind, volume in study.maps.items()})
        small = dataclasses.replace(roi, labelmap=cropped(roi.labelmap), levels=(roi.level(level),))
        rows = lib("stats.roi_statistics").roi_statistics(small, crop)
        rows["body_volume_ml"] = roiResult.placement(level).body_volume_ml
        return rows

    def loadModel(self, path=None):
        """A risk model file; None = the bundled demonstration model."""
        modelfile = lib("model.modelfile")
        self.modelPath = str(path or modelfile.bundled_model_path())
        return modelfile.load_model(self.modelPath)

    def clinicalInputSpecs(self, model):
        """The model's inputs the user enters: not the imaging summaries (measured) nor those
        the index levels determine (thoracolumbar junction, number of index levels)."""
        pipeline = lib("pipeline")
        derived = set(pipeline.FROM_IMAGES) | pipeline.FROM_INDEX_LEVELS
        return [spec for spec in model.inputs if spec.name not in derived]

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
        return dict(lib("pipeline").load_clinical(path, patientId or None))

    def computeRisk(
        self, study, roiResult, model, clinicalValues, indexLevels=(), missing="refuse",
        progress=None, statistics=None,
    ):  # fmt: skip
        """Statistics, patient summaries and the risk of one patient (dict of results).

        ``roiResult``: the ``RoiResult`` the panel shows (measured as it is). ``missing``:
        "refuse" (an error naming the missing inputs) or "range" (see model.scoring).
        ``statistics``: the ROIs' statistics when already measured (pipeline.measure's table).
        """
        say = progress or (lambda *args: None)
        pipeline = lib("pipeline")
        say("measuring", 0.1)
        if statistics is None:
            statistics, summary = pipeline.measure(study, roiResult, tuple(indexLevels))
        else:
            summary = lib("stats").summarize_statistics(statistics, tuple(indexLevels))
        say("scoring", 0.8)
        clinical = {k: v for k, v in dict(clinicalValues).items() if v is not None}
        risk = pipeline.score_patient(model, clinical, summary, study, missing=missing)
        return {
            "statistics": statistics, "summary": summary, "risk": risk, "model": model,
            "roiResult": roiResult, "roiSet": roiResult.roiset, "study": study,
            "indexLevels": tuple(indexLevels), "clinical": clinical,
        }  # fmt: skip

    def withIncludeOverride(self, roiResult, level, include):
        """``roiResult`` with a level re-included (True), excluded (False) or reset (None)."""
        return dataclasses.replace(roiResult, roiset=roiResult.roiset.with_override(level, include))

    # -- output -------------------------------------------------------------------------------
    def _provenance(self, outcome):
        pipeline = lib("pipeline")
        options = pipeline.AnalysisOptions(
            roi="Slicer panel",
            index_levels=outcome["indexLevels"],
            reader=outcome["roiSet"].reader,
            model_path=self.modelPath,
        )
        return pipeline.provenance_record(
            outcome["study"], outcome["roiResult"], options, outcome["model"]
        )

    def saveResults(self, outcome, folder):
        """Write exactly what the panel shows (statistics, ROIs, results JSON, report) with the
        library's writer, whole or not at all: the files are staged beside ``folder`` and moved
        in together (core.atomic); an earlier result set there is replaced only by a complete
        new one. Returns the files written."""
        core = lib("core")
        if outcome is None:
            raise core.InputError("results", "compute the risk first")
        if not folder:
            raise core.InputError("output folder", "choose an output folder first")
        with lib("core.atomic").OutputSet(overwrite=True) as outputs:
            staging = outputs.folder(folder, marker="results.json")
            written = lib("pipeline").write_outputs(
                staging, outcome["study"], outcome["roiResult"], outcome["statistics"],
                outcome["summary"], outcome["risk"], self._provenance(outcome),
            )  # fmt: skip
        outcome["files"] = {k: str(outputs.final(p)) for k, p in written.items()}
        return sorted(outcome["files"].values())

    def exportDicom(self, outcome, folder, deidentify=False):
        """DICOM SEG of the ROIs and a TID 1500 SR of their statistics, referencing PDFF."""
        core = lib("core")
        if outcome is None:
            raise core.InputError("results", "compute the risk first")
        if not self.dicomSource or not self.dicomSource[0]:
            raise core.InputError("DICOM export", "the PDFF map was not loaded from DICOM files")
        files, frames, seriesUid = self.dicomSource
        pdffSeries = outcome["study"].provenance.series.get("pdff")
        if pdffSeries is None or pdffSeries.series_uid != seriesUid:
            raise core.InputError(
                "DICOM export", "the PDFF map in use is not the DICOM series loaded last; reload it"
            )
        written = lib("pipeline").export_dicom(
            files, outcome["roiSet"], outcome["statistics"], folder, deidentify, frames
        )
        return [str(written["dicom_seg"]), str(written["dicom_sr"])]

    def writeToStore(self, outcome, storeLocation, reader, patientId):
        """Record the measurements in the measurement store with the submission builder the
        batch uses (store.submission): same statistics, flags and provenance. ``reader``
        names who measured (it replaces the ROIs' reader)."""
        core = lib("core")
        if outcome is None:
            raise core.InputError("results", "compute the risk first")
        if not patientId:
            raise core.InputError("patient ID", "enter the patient's study ID (pseudonym)")
        roiSet = dataclasses.replace(outcome["roiSet"], reader=reader)
        submission = lib("store.submission").study_submission(
            outcome["study"], roiSet, outcome["statistics"], patientId,
            provenance=self._provenance(outcome) | {"reader": reader},
            labelmap_path=outcome.get("files", {}).get("rois"),
        )  # fmt: skip
        return lib("store.measurements").MeasurementStore(storeLocation).record_study(submission)
