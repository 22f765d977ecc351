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

import json
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from RefractureRiskLib import __version__
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.extras import require
from RefractureRiskLib.core.jsonfile import read_json_file
from RefractureRiskLib.core.levels import level_index
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.io.clinical_table import read_patient
from RefractureRiskLib.model.modelfile import RiskModel, bundled_model_path, load_model
from RefractureRiskLib.model.scoring import RiskResult, check_inputs, missing_inputs, refuse_missing
from RefractureRiskLib.pipeline_files import export_dicom, pdff_source, write_outputs
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
from RefractureRiskLib.stats import PatientSummary, roi_statistics, summarize_statistics

if TYPE_CHECKING:
    import pandas as pd

#: The pipeline's public names, with those of its parts: the model's inputs
#: (:mod:`.pipeline_risk`) and the result files (:mod:`.pipeline_files`).
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
    """Everything one analysis produced, in memory and on disk."""

    study: Study
    rois: RoiResult
    statistics: pd.DataFrame
    summary: PatientSummary
    risk: RiskResult | None
    provenance: Mapping[str, Any]
    files: Mapping[str, Path] = field(default_factory=dict)
    timings_s: Mapping[str, float] = field(default_factory=dict)


def parse_anchor(text: str) -> tuple[str, tuple[float, float, float]]:
    """``"L3:12.5,-30,104"`` -> ("L3", (12.5, -30.0, 104.0)) (RAS mm)."""
    try:
        level, coords = text.split(":", 1)
        x, y, z = (float(v) for v in coords.split(","))
        level_index(level)
    except ValueError:
        raise InputError(
            "--anchor", f"{text!r}; expected LEVEL:x,y,z (RAS mm), e.g. L3:0,-20,40"
        ) from None
    return level.strip().upper(), (x, y, z)


def load_clinical(path: str | Path, patient_id: str | None = None) -> dict[str, Any]:
    """Clinical inputs of one patient: a JSON object, or a row of a clinical table.

    Read by the one clinical-table reader (``io/clinical_table.py`` ``read_patient``: file
    types, missing cells, numbers), the same reader as ``batch`` and the cohort table's.
    """
    return read_patient(path, patient_id)


def load_points(path: str | Path) -> dict[str, tuple[float, float, float]]:
    """Manual ROI points: JSON ``{"L1": [x, y, z], ...}`` (RAS mm) or a Slicer markups JSON."""
    p = Path(path)
    try:
        data = read_json_file(p, "points file")
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(p, f"cannot read points JSON ({err})") from None
    if isinstance(data, dict) and "markups" in data:  # Slicer .mrk.json: LPS or RAS per file
        return _markups_points(p, data["markups"])
    if not isinstance(data, dict):
        raise InputError(p, 'expected {"L1": [x, y, z], ...} in RAS mm')
    try:
        return {str(k).upper(): tuple(float(c) for c in v) for k, v in data.items()}  # type: ignore[misc]
    except (TypeError, ValueError):
        raise InputError(p, "each level needs [x, y, z] numbers in RAS mm") from None


def _markups_points(p: Path, markups: object) -> dict[str, tuple[float, float, float]]:
    """The labelled control points of a Slicer markups JSON's ``markups`` list, in RAS mm."""
    bad = 'expected "markups": [{"controlPoints": [{"label": "L1", "position": [x, y, z]}]}]'
    if not isinstance(markups, list) or not all(isinstance(m, dict) for m in markups):
        raise InputError(p, bad)
    points: dict[str, tuple[float, float, float]] = {}
    for markup in markups:
        system = markup.get("coordinateSystem", "LPS")
        if system not in ("LPS", "RAS"):
            raise InputError(p, f'coordinateSystem must be "LPS" or "RAS", got {system!r}')
        cps = markup.get("controlPoints", [])
        for n, cp in enumerate(cps if isinstance(cps, list) else [None]):
            pos = cp.get("position") if isinstance(cp, dict) else None
            if not isinstance(pos, list) or len(pos) != 3 or "label" not in cp:
                raise InputError(p, f"control point {n + 1}: {bad}")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pos):
                raise InputError(p, f"control point {n + 1}: position must be 3 numbers")
            x, y, z = (float(v) for v in pos)
            points[str(cp["label"]).upper()] = (-x, -y, z) if system == "LPS" else (x, y, z)
    return points


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
        stats, summary = measure(study, rois, options.index_levels)
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
                pdff_files, rois.roiset, stats, out / "dicom", options.deidentify,
                pdff_frame_numbers,
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
    stats = _add_body_volumes(roi_statistics(rois.roiset, study), rois)
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


def _add_body_volumes(stats: pd.DataFrame, rois: RoiResult) -> pd.DataFrame:
    volumes = {lv.level: lv.body_volume_ml for lv in rois.levels}
    out = stats.copy()
    out["body_volume_ml"] = out["level"].map(volumes).astype(float)
    return out
