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
import math
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from RefractureRiskLib import __version__
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.extras import require
from RefractureRiskLib.core.jsonfile import read_json_file
from RefractureRiskLib.core.levels import TL_JUNCTION_LEVELS, level_index
from RefractureRiskLib.core.roiset import RoiSet
from RefractureRiskLib.core.study import Study, nominal_field_t
from RefractureRiskLib.io.clinical_table import read_patient
from RefractureRiskLib.io.segmentation import write_roiset
from RefractureRiskLib.model.modelfile import RiskModel, bundled_model_path, load_model
from RefractureRiskLib.model.scoring import (
    RiskResult,
    check_inputs,
    is_missing,
    missing_inputs,
    refuse_missing,
    score,
)
from RefractureRiskLib.roi.auto import Anchor, automatic_rois
from RefractureRiskLib.roi.manual import rois_from_labelmap, rois_from_points
from RefractureRiskLib.roi.qc import apply_qc
from RefractureRiskLib.roi.result import RoiResult
from RefractureRiskLib.stats import PatientSummary, roi_statistics, summarize_statistics
from RefractureRiskLib.stats.tables import write_statistics

if TYPE_CHECKING:
    from RefractureRiskLib.io.dicom_load import LoadResult

Progress = Callable[[str], None]

#: Model inputs the pipeline fills from the images (cohort schema names).
IMAGING_INPUTS = {
    "pdff_global_L1L4": "pdff_global_L1L4_pct",
    "r2s_global_L1L4": "r2s_global_L1L4_per_s",
    "pdff_adjacent": "pdff_adjacent_pct",
    "r2s_adjacent": "r2s_adjacent_per_s",
}
#: Every model input taken from the images, not typed in: the summaries and the field strength.
FROM_IMAGES: frozenset[str] = frozenset({*IMAGING_INPUTS, "mri_field_T"})
#: Model inputs the index (treated) levels determine: never typed in when the levels are known.
FROM_INDEX_LEVELS: frozenset[str] = frozenset({"tl_junction", "n_index_levels"})
#: Model inputs the DICOM header may give (age from PatientAge or birth and study dates, sex).
FROM_DICOM: frozenset[str] = frozenset({"age_years", "sex"})
#: Clinical keys (ISO dates, YYYY-MM-DD) from which ``age_years`` is derived when it is absent.
AGE_DATE_KEYS = ("birth_date", "study_date")


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
        points: dict[str, tuple[float, float, float]] = {}
        for markup in data["markups"]:
            lps = markup.get("coordinateSystem", "LPS") == "LPS"
            for cp in markup.get("controlPoints", []):
                x, y, z = (float(v) for v in cp["position"])
                points[str(cp["label"]).upper()] = (-x, -y, z) if lps else (x, y, z)
        return points
    if not isinstance(data, dict):
        raise InputError(p, 'expected {"L1": [x, y, z], ...} in RAS mm')
    try:
        return {str(k).upper(): tuple(float(c) for c in v) for k, v in data.items()}  # type: ignore[misc]
    except (TypeError, ValueError):
        raise InputError(p, "each level needs [x, y, z] numbers in RAS mm") from None


def place_rois(study: Study, options: AnalysisOptions) -> RoiResult:
    """ROIs by the method in ``options.roi``, with QC flags and index levels applied."""
    index = options.index_levels
    if options.roi == "auto":
        anchor = Anchor(options.anchor[0], options.anchor[1]) if options.anchor else None
        result = automatic_rois(study, anchor=anchor, reader=options.reader, index_levels=index)
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


def model_inputs(
    model: RiskModel, clinical: Mapping[str, Any], summary: PatientSummary
) -> dict[str, Any]:
    """Clinical inputs plus the imaging summaries the model uses, measured on the images.

    An imaging input is never typed in nor stood in for: when a summary the model needs could
    not be measured (no column found, too few eligible levels), no risk is computed and the
    error says which summary and why; placing the ROIs by hand is the way out.
    """
    inputs = dict(clinical)
    used = {spec.name for spec in model.inputs}
    missing = []
    for name, attr in IMAGING_INPUTS.items():
        if name not in used:
            continue
        value = float(getattr(summary, attr))
        if not math.isfinite(value):
            missing.append(attr)
        inputs[name] = value
    if missing:
        why = "; ".join(summary.notes) or "no eligible vertebral levels were measured"
        raise InputError(
            "images",
            f"the model needs {', '.join(missing)}, which could not be measured ({why}); "
            "no risk computed: place the vertebral ROIs by hand (points or a segmentation) "
            "or check the level labels",
        )
    return inputs


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
    if options.export_dicom:
        require("highdicom", what="DICOM SEG/SR export (--export-dicom)")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(out, "output folder is an existing file")
    model: RiskModel | None = None
    if clinical is not None:
        model = load_model(options.model_path or bundled_model_path())
        check_clinical(model, clinical, options, source=clinical_source)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    pdff_files: list[Path] = []
    pdff_frame_numbers: list[int] | None = None
    if isinstance(study_source, Study):
        study = study_source
    else:
        from RefractureRiskLib.io.dicom_load import load_study_with_report

        say(f"loading {study_source}")
        loaded = load_study_with_report(
            study_source,
            study=options.study,
            pdff_unit=options.pdff_unit,
            r2s_unit=options.r2s_unit,
            pdff_series=options.pdff_series,
        )
        study = loaded.study
        pdff_files, pdff_frame_numbers = pdff_source(loaded)
    timings["load_s"] = time.perf_counter() - t0

    say("placing vertebral ROIs")
    t = time.perf_counter()
    rois = place_rois(study, options)
    timings["rois_s"] = time.perf_counter() - t

    say("computing statistics")
    t = time.perf_counter()
    stats, summary = measure(study, rois, options.index_levels)
    timings["statistics_s"] = time.perf_counter() - t

    risk: RiskResult | None = None
    t = time.perf_counter()
    if model is not None and clinical is not None:
        say("scoring the risk")
        risk = score_patient(
            model, clinical, summary, study, source=clinical_source, missing=options.missing
        )
    timings["risk_s"] = time.perf_counter() - t

    provenance = provenance_record(study, rois, options, model)
    say("writing results")
    t = time.perf_counter()
    files = write_outputs(
        out, study, rois, stats, summary, risk, provenance, options.report, patient_label
    )
    if options.export_dicom:
        if not pdff_files:
            raise InputError("DICOM export", "the PDFF map did not come from DICOM files")
        files |= export_dicom(
            pdff_files,
            rois.roiset,
            stats,
            out / "dicom",
            options.deidentify,
            pdff_frame_numbers,
        )
    timings["write_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    return AnalysisResult(study, rois, stats, summary, risk, provenance, files, timings)


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
    derived = _derive_inputs(model, clinical, options.index_levels, source)
    if options.missing == "refuse":
        later = FROM_IMAGES | FROM_DICOM | (FROM_INDEX_LEVELS if options.index_levels else set())
        absent = [n for n in missing_inputs(model, derived) if n not in later]
        refuse_missing(absent, source)


def score_patient(
    model: RiskModel,
    clinical: Mapping[str, Any],
    summary: PatientSummary,
    study: Study,
    source: str = "clinical inputs",
    missing: str = "refuse",
) -> RiskResult:
    """The risk from clinical inputs and the images; nothing guessed.

    Filled in (never over a given value, which must agree instead): the imaging summaries and
    the field strength from the images; ``tl_junction`` and ``n_index_levels`` from the index
    levels (``summary.index_levels``); age from ``birth_date`` and ``study_date`` when given,
    else age and sex from the DICOM header. Whatever is still missing is refused, or shown as a
    range with ``missing="range"`` (see :func:`RefractureRiskLib.model.scoring.score`).
    """
    derived = _derive_inputs(model, clinical, summary.index_levels, source)
    filled = _prefill_from_dicom(derived, study)
    inputs = model_inputs(model, filled, summary)
    if any(spec.name == "mri_field_T" for spec in model.inputs):  # see FROM_IMAGES
        _field_strength_from_images(inputs, study, source)
    underivable = [n for n in missing_inputs(model, inputs) if n in FROM_INDEX_LEVELS]
    if underivable and missing == "refuse":
        raise InputError(
            source,
            f"missing model input(s) {', '.join(underivable)}: they follow from the index "
            "(treated) levels; give the index levels (e.g. --index-levels L1)",
        )
    return score(model, inputs, source=source, missing=missing)


def _derive_inputs(
    model: RiskModel, clinical: Mapping[str, Any], index_levels: Sequence[str], source: str
) -> dict[str, Any]:
    """The model's inputs the data determine: from the index levels, from birth and study dates.

    A given value that contradicts the derived one is refused (naming both), never overridden.
    """
    out = dict(clinical)
    if index_levels:
        levels = sorted({str(lv).upper() for lv in index_levels}, key=level_index)
        derived = {
            "tl_junction": int(bool(set(levels) & TL_JUNCTION_LEVELS)),
            "n_index_levels": len(levels),
        }
        used = {spec.name for spec in model.inputs}
        for name, value in derived.items():
            if name not in used:
                continue
            given = out.get(name)
            if not is_missing(given) and not _same_number(given, value):
                raise InputError(
                    f"{source}: {name}",
                    f"is {given!r} but the index level(s) {', '.join(levels)} give {value}"
                    + (" (thoracolumbar junction: T11-L2)" if name == "tl_junction" else ""),
                )
            out[name] = value
    dates = [out.pop(key, None) for key in AGE_DATE_KEYS]
    if all(not is_missing(d) for d in dates):
        age = _age_years(str(dates[0]), str(dates[1]), source)
        given = out.get("age_years")
        if not is_missing(given) and not _same_number(given, age, abs_tol=1.0):
            raise InputError(
                f"{source}: age_years",
                f"is {given!r} but birth_date and study_date give {age:.1f} years",
            )
        if is_missing(given):
            out["age_years"] = age
    elif any(not is_missing(d) for d in dates):
        raise InputError(source, "age from dates needs both birth_date and study_date")
    return out


def _age_years(birth: str, when: str, source: str) -> float:
    """Age in whole years at ``when`` (ISO dates YYYY-MM-DD; YYYYMMDD as in DICOM also read)."""
    parsed = []
    for key, text in zip(AGE_DATE_KEYS, (birth, when), strict=True):
        digits = text.strip().replace("-", "")
        try:
            parsed.append(datetime.strptime(digits[:8], "%Y%m%d").date())
        except ValueError:
            raise InputError(f"{source}: {key}", f"{text!r} is not a date (YYYY-MM-DD)") from None
    b, w = parsed
    if w < b:
        raise InputError(f"{source}: study_date", f"{when!r} is before birth_date {birth!r}")
    return float(w.year - b.year - ((w.month, w.day) < (b.month, b.day)))


def write_outputs(
    out_dir: str | Path,
    study: Study,
    rois: RoiResult,
    stats: pd.DataFrame,
    summary: PatientSummary,
    risk: RiskResult | None,
    provenance: Mapping[str, Any],
    report: bool = True,
    patient_label: str = "anonymous",
) -> dict[str, Path]:
    """Write statistics, ROI and body segmentations, results JSON and (optionally) the report.

    The one writer of a result folder: the command line and the Slicer panel both use it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {
        "statistics": write_statistics(stats, out / "statistics.csv"),
        "rois": write_roiset(rois.roiset, out / "rois.seg.nrrd"),
        "bodies": write_roiset(_bodies_roiset(rois), out / "bodies.seg.nrrd"),
        "results": _write_results_json(out / "results.json", rois, summary, risk, provenance),
    }
    if report:
        # Imported here: matplotlib is loaded only when a report is written.
        from RefractureRiskLib.report.onepage import render_report

        rep = render_report(
            out, study, rois, stats, summary, risk, _report_provenance(provenance),
            patient_label=patient_label,
        )  # fmt: skip
        files |= {"report_html": rep.html, "report_pdf": rep.pdf, "report_png": rep.png}
    return files


def _prefill_from_dicom(clinical: Mapping[str, Any], study: Study) -> dict[str, Any]:
    """Age and sex from the DICOM header where the clinical inputs lack them (given values win).

    The header's age comes from PatientAge, else PatientBirthDate and StudyDate (io.dicom_scan).
    """
    filled = dict(clinical)
    if is_missing(filled.get("age_years")) and study.patient.age_years is not None:
        filled["age_years"] = study.patient.age_years
    if is_missing(filled.get("sex")) and study.patient.sex is not None:
        filled["sex"] = study.patient.sex
    return filled


def _field_strength_from_images(inputs: dict[str, Any], study: Study, source: str) -> None:
    """``mri_field_T`` from the images (nominal); a typed-in value must agree with them."""
    measured = nominal_field_t(study.provenance.field_strength_t)
    given = inputs.get("mri_field_T")
    if measured is None:
        return
    if given is not None and not _same_number(given, measured):
        raise InputError(
            f"{source}: mri_field_T",
            f"is {given!r} but the images were acquired at {measured:g} T (MagneticFieldStrength)",
        )
    inputs["mri_field_T"] = measured


def _same_number(value: Any, number: float, abs_tol: float = 1e-6) -> bool:
    try:
        return math.isclose(float(value), number, abs_tol=abs_tol)
    except (TypeError, ValueError):
        return False


def _add_body_volumes(stats: pd.DataFrame, rois: RoiResult) -> pd.DataFrame:
    volumes = {lv.level: lv.body_volume_ml for lv in rois.levels}
    out = stats.copy()
    out["body_volume_ml"] = out["level"].map(volumes).astype(float)
    return out


def _bodies_roiset(rois: RoiResult) -> RoiSet:
    return replace(rois.roiset, labelmap=rois.body_labels)


def pdff_source(loaded: LoadResult) -> tuple[list[Path], list[int] | None]:
    """The chosen PDFF series' DICOM files and, for an enhanced (multi-frame) file, its PDFF
    frame numbers (1-based; the file may also hold water/fat frames), for :func:`export_dicom`."""
    frames = loaded.chosen["pdff"].frames
    files = sorted({f.path for f in frames})
    if not any(f.frame_index is not None for f in frames):
        return files, None
    return files, sorted(f.frame_index + 1 for f in frames if f.frame_index is not None)


def export_dicom(
    pdff_files: Sequence[str | Path],
    roiset: RoiSet,
    stats: pd.DataFrame,
    out: str | Path,
    deidentify: bool,
    pdff_frame_numbers: Sequence[int] | None = None,
) -> dict[str, Path]:
    """DICOM SEG of the ROIs and TID 1500 SR of ``stats`` in ``out``, referencing the PDFF
    source (``pdff_files``/``pdff_frame_numbers`` as given by :func:`pdff_source`)."""
    out = Path(out)
    from RefractureRiskLib.export.dicom_export import export_seg, export_sr, read_source_series

    source = read_source_series(pdff_files)
    seg_path, seg = export_seg(
        roiset,
        source,
        out / "seg.dcm",
        deidentify=deidentify,
        source_frame_numbers=pdff_frame_numbers,
    )
    sr_path = export_sr(seg, roiset, stats, source, out / "sr.dcm", deidentify=deidentify)
    return {"dicom_seg": seg_path, "dicom_sr": sr_path}


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset, tuple)):
        return sorted(o) if isinstance(o, (set, frozenset)) else list(o)
    return str(o)


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def _write_results_json(
    path: Path,
    rois: RoiResult,
    summary: PatientSummary,
    risk: RiskResult | None,
    provenance: Mapping[str, Any],
) -> Path:
    doc = {
        "levels": rois.level_rows(),
        "labels_uncertain": rois.uncertain,
        "uncertainty_reasons": list(rois.reasons),
        "summary": summary.as_record(),
        "risk": None if risk is None else risk.to_dict(),
        "provenance": dict(provenance),
    }
    text = json.dumps(_nan_to_none(json.loads(json.dumps(doc, default=_json_default))), indent=2)
    path.write_text(text)
    return path


def _report_provenance(provenance: Mapping[str, Any]) -> dict[str, Any]:
    series = provenance.get("series", {})
    uids = ", ".join(
        f"{k}={v.get('series_uid')}"
        for k, v in series.items()
        if k in ("pdff", "r2s") and v.get("series_uid")
    )
    keep = ("software", "created_utc", "study_uid", "roi_method", "reader", "risk_model")
    out = {k: provenance[k] for k in keep if k in provenance}
    if not out.get("study_uid"):  # generated, or read from NIfTI/NRRD: no DICOM identifier
        out["study_uid"] = "not from DICOM"
    out["series"] = uids or "not from DICOM"
    if provenance.get("labels_uncertain"):
        out["labels"] = "UNCERTAIN: check the level labels"
    return out
