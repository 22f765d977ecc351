"""The files of one result: statistics table, ROI and body segmentations, ``results.json`` with
its provenance record, the one-page report and, on request, DICOM SEG + SR.

Part of the one-study pipeline (:mod:`RefractureRiskLib.pipeline`, which re-exports these
names); the command line and the Slicer panel write a result folder only through
:func:`write_outputs`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from RefractureRiskLib.core.roiset import RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.io.segmentation import write_roiset
from RefractureRiskLib.model.scoring import RiskResult
from RefractureRiskLib.roi.result import RoiResult
from RefractureRiskLib.stats import PatientSummary
from RefractureRiskLib.stats.roi_statistics import statistics_columns
from RefractureRiskLib.stats.tables import write_statistics

if TYPE_CHECKING:
    import pandas as pd

    from RefractureRiskLib.io.dicom_load import LoadResult

#: Columns of the analysis' statistics table: :func:`roi_statistics`' and the body's volume.
MEASURED_COLUMNS = (*statistics_columns(), "body_volume_ml")


def write_outputs(
    out_dir: str | Path,
    study: Study,
    rois: RoiResult,
    stats: Any,
    summary: PatientSummary,
    risk: RiskResult | None,
    provenance: Mapping[str, Any],
    report: bool = True,
    patient_label: str = "anonymous",
) -> dict[str, Path]:
    """Write statistics, ROI and body segmentations, results JSON and (optionally) the report.

    The one writer of a result folder: the command line and the Slicer panel both use it.
    ``stats``: the statistics table, a DataFrame or records (``stats/records.py``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {
        "statistics": write_statistics(stats, out / "statistics.csv", _columns(stats)),
        "rois": write_roiset(rois.roiset, out / "rois.seg.nrrd"),
        "bodies": write_roiset(_bodies_roiset(rois), out / "bodies.seg.nrrd"),
        "results": _write_results_json(out / "results.json", rois, summary, risk, provenance),
    }
    if report:
        # Imported here: Pillow and the report are loaded only when a report is written.
        from RefractureRiskLib.report.onepage import render_report

        rep = render_report(
            out, study, rois, stats, summary, risk, _report_provenance(provenance),
            patient_label=patient_label,
        )  # fmt: skip
        files |= {"report_html": rep.html, "report_pdf": rep.pdf, "report_png": rep.png}
    return files


def _columns(stats: Any) -> Sequence[str] | None:
    """The columns to write: :data:`MEASURED_COLUMNS` for records without rows (no ROI), so the
    file keeps its header; else what the table has."""
    return MEASURED_COLUMNS if isinstance(stats, list | tuple) and not stats else None


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
