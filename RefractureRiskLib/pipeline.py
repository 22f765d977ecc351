"""One patient end to end: load -> ROIs -> statistics -> summaries -> risk -> files.

This module only composes library calls (like ``cli.py``); every step's logic lives in its layer.
It writes into ``out_dir``:

- ``statistics.csv`` (one row per level and map, units in the columns),
- ``rois.seg.nrrd`` (the ROI label map with Slicer segmentation metadata),
- ``bodies.seg.nrrd`` (whole vertebral bodies, for volumes),
- ``results.json`` (summaries, risk, flags, uncertainty and full provenance),
- ``report.html``, ``report.pdf``, ``report.png`` (the one-page report),
- optionally ``dicom/seg.dcm`` and ``dicom/sr.dcm`` (DICOM SEG and TID 1500 SR).
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from RefractureRiskLib import __version__
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.extras import require
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.model.modelfile import RiskModel, bundled_model_path, load_model
from RefractureRiskLib.model.scoring import RiskResult, check_inputs, missing_inputs, refuse_missing
from RefractureRiskLib.pipeline_files import (
    MEASURED_COLUMNS,
    export_dicom,
    pdff_source,
    write_outputs,
)
from RefractureRiskLib.pipeline_inputs import load_clinical, load_points, parse_anchor
from RefractureRiskLib.pipeline_risk import (
    AGE_DATE_KEYS,
    FROM_DICOM,
    FROM_IMAGES,
    FROM_INDEX_LEVELS,
    IMAGING_INPUTS,
    derive_inputs,
    model_inputs,
    score_patient,
)
from RefractureRiskLib.roi.auto import Anchor, automatic_rois
from RefractureRiskLib.roi.manual import rois_from_labelmap, rois_from_points
from RefractureRiskLib.roi.qc import apply_qc
from RefractureRiskLib.roi.result import RoiResult
from RefractureRiskLib.stats import PatientSummary, summarize_statistics
from RefractureRiskLib.stats.records import Record, records_frame
from RefractureRiskLib.stats.roi_statistics import roi_statistics_records

if TYPE_CHECKING:
    import pandas as pd

#: The pipeline's public names, with those of its parts: the model's inputs
#: (:mod:`.pipeline_risk`), the user's other inputs (:mod:`.pipeline_inputs`) and the result
#: files (:mod:`.pipeline_files`).
__all__ = [
    "AGE_DATE_KEYS",
    "FROM_DICOM",
    "FROM_IMAGES",
    "FROM_INDEX_LEVELS",
    "IMAGING_INPUTS",
    "AnalysisOptions",
    "AnalysisResult",
    "Progress",
    "analyze_study",
    "check_clinical",
    "export_dicom",
    "load_clinical",
    "load_points",
    "measure",
    "measure_records",
    "model_inputs",
    "parse_anchor",
    "pdff_source",
    "place_rois",
    "provenance_record",
    "score_patient",
    "write_outputs",
]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class AnalysisOptions:
    """How to analyse one study.

    ``roi``: "auto", a points file (JSON ``{"L1": [x, y, z], ...}`` in RAS mm) or a label map /
    segmentation file. ``anchor``: (level, RAS point) fixing automatic labels. ``study`` and
    ``pdff_series`` choose among several studies / PDFF series in one folder (index or UID, as
    ``refracture-risk inspect`` lists them).
    """

    roi: str = "auto"
    study: int | str | None = None
    pdff_series: str | int | None = None
    anchor: tuple[str, tuple[float, float, float]] | None = None
    index_levels: tuple[str, ...] = ()
    reader: str = "automatic"
    model_path: Path | None = None
    pdff_unit: str | None = None
    r2s_unit: str | None = None
    #: A missing model input: "refuse" (no risk, the inputs named) or "range" (the risk as the
    #: range over their plausible values, labelled so everywhere); see model.scoring.
    missing: str = "refuse"
    export_dicom: bool = False
    deidentify: bool = False
    report: bool = True
    #: (label image, its numbering scheme) to cross-check the level labels against (roi/external).
    external_labels: tuple[Path, str] | None = None


@dataclass(frozen=True, eq=False)
class AnalysisResult:
    """Everything one analysis produced, in memory and on disk.

    ``statistics_records``: the long statistics table (with whole-body volumes) as records
    (``stats/records.py``); :attr:`statistics` is the same table as a DataFrame.
    """

    study: Study
    rois: RoiResult
    statistics_records: list[Record]
    summary: PatientSummary
    risk: RiskResult | None
    provenance: Mapping[str, Any]
    files: Mapping[str, Path] = field(default_factory=dict)
    timings_s: Mapping[str, float] = field(default_factory=dict)

    @cached_property
    def statistics(self) -> pd.DataFrame:
        """The statistics table as a DataFrame, built on first use (pandas is imported then:
        the analysis itself does without)."""
        return records_frame(self.statistics_records, MEASURED_COLUMNS)


def place_rois(
    study: Study, options: AnalysisOptions, progress: Progress | None = None
) -> RoiResult:
    """ROIs by the method in ``options.roi``, with QC flags and index levels applied
    (``progress``: the automatic method's steps)."""
    index = options.index_levels
    if options.roi == "auto":
        anchor = Anchor(options.anchor[0], options.anchor[1]) if options.anchor else None
        result = automatic_rois(
            study, anchor=anchor, reader=options.reader, index_levels=index, progress=progress
        )
    else:
        path = Path(options.roi)
        if not path.is_file():
            raise InputError(path, "ROI file not found (use 'auto', a points JSON or a label map)")
        if path.suffix.lower() == ".json":
            result = rois_from_points(
                study, load_points(path), reader=options.reader, index_levels=index
            )
        else:
            from RefractureRiskLib.io.segmentation import read_roiset

            drawn = read_roiset(path, reference=study.grid, reader=options.reader)
            table = {lv.label: lv.level for lv in drawn.levels}
            result = rois_from_labelmap(
                drawn.labelmap, table, study, reader=options.reader, index_levels=index
            )
            # QC cannot judge everything from drawn ROIs (a fracture needs the whole body's
            # height): flags stored in the file (an earlier run or a reader) are kept, and the
            # reader's explicit include/exclude choices win.
            prior = {lv.level: lv.flags for lv in drawn.levels}
            result = apply_qc(result, study, index, prior_flags=prior)
            roiset = result.roiset
            for lv in drawn.levels:
                if lv.include_override is not None and lv.level in roiset.level_names:
                    roiset = roiset.with_override(lv.level, lv.include_override)
            return replace(result, roiset=roiset)
    return apply_qc(result, study, index)


def provenance_record(
    study: Study, rois: RoiResult, options: AnalysisOptions, model: RiskModel | None
) -> dict[str, Any]:
    """Who/what/how of one result: software, inputs (UIDs only, no PHI), ROI method, model."""
    prov = study.provenance
    return {
        "software": f"RefractureRiskLib {__version__}",
        "python": platform.python_version(),
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "vendor": prov.vendor,
        "model_name_scanner": prov.manufacturer_model,
        "field_strength_t": prov.field_strength_t,
        "study_uid": prov.study_uid,
        "series": {
            kind: {
                "series_uid": s.series_uid,
                "classified_by": s.classified_by,
                "scaling": list(s.scaling),
                "resampled": s.resampled,
            }
            for kind, s in prov.series.items()
        },
        "roi_method": rois.roiset.method.value,
        "roi_source": options.roi,
        "reader": rois.roiset.reader,
        "labels_uncertain": rois.uncertain,
        "external_labels": options.external_labels,  # [label image, numbering scheme]
        "risk_model": None if model is None else model.name,
        "risk_model_validated": None if model is None else model.validated,
    }


def analyze_study(
    study_source: str | Path | Study,
    clinical: Mapping[str, Any] | None,
    out_dir: str | Path,
    options: AnalysisOptions = AnalysisOptions(),
    progress: Progress | None = None,
    patient_label: str = "anonymous",
    clinical_source: str = "clinical inputs",
) -> AnalysisResult:
    """Run the whole pipeline on one study and write its files into ``out_dir``.

    ``clinical=None`` skips the risk (measurements only). The model file and the given clinical
    values are checked first, so bad input fails before the long steps; ``clinical_source``
    names where the values came from in messages.
    """
    say = progress or (lambda _msg: None)
    model = _check_before_work(clinical, out_dir, options, clinical_source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with _timed(timings, "load_s"):
        study, pdff_files, pdff_frame_numbers = _load(study_source, options, say)
    say("placing vertebral ROIs")
    with _timed(timings, "rois_s"):
        rois = place_rois(study, options, say)
        if options.external_labels is not None:  # SimpleITK is loaded only then
            from RefractureRiskLib.roi.external import check_external_labels

            rois = check_external_labels(rois, *options.external_labels)
    say("computing statistics")
    with _timed(timings, "statistics_s"):
        stats, summary = measure_records(study, rois, options.index_levels)
    risk: RiskResult | None = None
    with _timed(timings, "risk_s"):
        if model is not None and clinical is not None:
            say("scoring the risk")
            risk = score_patient(
                model, clinical, summary, study, source=clinical_source, missing=options.missing
            )
    provenance = provenance_record(study, rois, options, model)
    say("writing results")
    with _timed(timings, "write_s"):
        files = write_outputs(
            out, study, rois, stats, summary, risk, provenance, options.report, patient_label
        )
        if options.export_dicom:
            if not pdff_files:
                raise InputError("DICOM export", "the PDFF map did not come from DICOM files")
            files |= export_dicom(
                pdff_files, rois.roiset, records_frame(stats, MEASURED_COLUMNS), out / "dicom",
                options.deidentify, pdff_frame_numbers,
            )  # fmt: skip
    timings["total_s"] = time.perf_counter() - t0
    return AnalysisResult(study, rois, stats, summary, risk, provenance, files, timings)


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Record the seconds the ``with`` block took in ``timings[key]``."""
    t = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - t


def _check_before_work(
    clinical: Mapping[str, Any] | None,
    out_dir: str | Path,
    options: AnalysisOptions,
    clinical_source: str,
) -> RiskModel | None:
    """What can be refused before the long steps: a missing export extra, an output folder that
    is a file, the model file and the clinical values. Returns the model (None: no risk)."""
    if options.export_dicom:
        require("highdicom", what="DICOM SEG/SR export (--export-dicom)")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "output folder is an existing file")
    if clinical is None:
        return None
    model = load_model(options.model_path or bundled_model_path())
    check_clinical(model, clinical, options, source=clinical_source)
    return model


def _load(
    study_source: str | Path | Study, options: AnalysisOptions, say: Progress
) -> tuple[Study, list[Path], list[int] | None]:
    """The study, with the PDFF's DICOM files and frame numbers (none for a given Study)."""
    if isinstance(study_source, Study):
        return study_source, [], None
    from RefractureRiskLib.io.dicom_load import load_study_with_report

    say(f"loading {study_source}")
    loaded = load_study_with_report(
        study_source,
        study=options.study,
        pdff_unit=options.pdff_unit,
        r2s_unit=options.r2s_unit,
        pdff_series=options.pdff_series,
    )
    return (loaded.study, *pdff_source(loaded))


def measure(
    study: Study, rois: RoiResult, index_levels: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, PatientSummary]:
    """Per-level statistics (with whole-body volumes) and the patient summaries."""
    records, summary = measure_records(study, rois, index_levels)
    return records_frame(records, MEASURED_COLUMNS), summary


def measure_records(
    study: Study, rois: RoiResult, index_levels: tuple[str, ...] = ()
) -> tuple[list[Record], PatientSummary]:
    """:func:`measure` with the statistics as records (``stats/records.py``: no pandas)."""
    volumes = {lv.level: lv.body_volume_ml for lv in rois.levels}
    stats = roi_statistics_records(rois.roiset, study)
    for r in stats:
        volume = volumes.get(r["level"])
        r["body_volume_ml"] = math.nan if volume is None else float(volume)
    return stats, summarize_statistics(stats, index_levels)


def check_clinical(
    model: RiskModel,
    clinical: Mapping[str, Any],
    options: AnalysisOptions,
    source: str = "clinical inputs",
) -> None:
    """Refuse bad clinical input before the long steps.

    Every given value is checked (kind, limits, unit); with ``options.missing == "refuse"`` a
    model input that nothing later can supply — not measured on the images, not derived from the
    index levels, not in the DICOM header — is refused now, naming every such input.
    """
    check_inputs(model, clinical, source=source)
    derived = derive_inputs(model, clinical, options.index_levels, source)
    if options.missing == "refuse":
        later = FROM_IMAGES | FROM_DICOM | (FROM_INDEX_LEVELS if options.index_levels else set())
        absent = [n for n in missing_inputs(model, derived) if n not in later]
        refuse_missing(absent, source)
