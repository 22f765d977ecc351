"""One study's measurements as a store submission: the one builder every writer uses.

``refracture-risk batch`` (RefractureRiskLib.batch.workers) and the Slicer panel's "Write to
measurement store" both call :func:`study_submission`, so a cohort measured partly in Slicer and
partly in batch holds the same statistics, flags and provenance for the same study.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from RefractureRiskLib.core.roiset import RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.stats import STATISTICS
from RefractureRiskLib.stats.roi_statistics import FLAG_SEPARATOR
from RefractureRiskLib.store.measurements import Measurement, StudySubmission

#: Statistics kept per measurement in the store (the registry's, plus the whole-body volume).
STORE_STATISTICS: tuple[str, ...] = (*STATISTICS, "body_volume_ml")


def study_submission(
    study: Study,
    roiset: RoiSet,
    statistics: Any,
    patient_id: str,
    provenance: Mapping[str, Any] | None = None,
    labelmap_path: str | Path | None = None,
) -> StudySubmission:
    """One store measurement per (level, map) row of ``statistics`` (the long table of
    :func:`RefractureRiskLib.pipeline.measure`, a DataFrame or a list of row dicts).

    Statistics are those of :data:`STORE_STATISTICS` (missing ones are left out); flags are the
    level's RoiFlag values; reader and ROI method are the RoiSet's; ``provenance`` is the
    result's provenance record (``pipeline.provenance_record``).
    """
    rows = statistics.to_dict("records") if hasattr(statistics, "to_dict") else list(statistics)
    series_of = study.provenance.series
    measurements = []
    for row in rows:
        series = series_of.get(str(row["map"]))
        flags = tuple(f for f in str(row.get("flags") or "").split(FLAG_SEPARATOR) if f)
        stats = {k: float(row[k]) for k in STORE_STATISTICS if k in row and row[k] is not None}
        measurements.append(
            Measurement(
                level=str(row["level"]),
                map=str(row["map"]),
                unit=str(row["unit"]),
                statistics=stats,
                flags=flags,
                included=bool(row["included"]),
                series_uid=None if series is None else series.series_uid,
            )
        )
    return StudySubmission(
        patient_id=patient_id,
        study_uid=study.provenance.study_uid or "unknown",
        reader=roiset.reader,
        roi_method=roiset.method.value,
        measurements=tuple(measurements),
        labelmap_path=None if labelmap_path is None else str(labelmap_path),
        provenance=dict(provenance or {}),
    )
