"""The rows a study submission becomes in the measurement store's tables.

A :class:`~RefractureRiskLib.store.measurements.StudySubmission` in, plain dicts out
(``study_runs`` and ``measurements`` rows, see :mod:`RefractureRiskLib.store.schema`); pure but
for the clock (``_now``). The store writes them in one transaction. Non-finite statistics become
NULL; JSON columns have sorted keys.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from RefractureRiskLib import __version__

if TYPE_CHECKING:
    from RefractureRiskLib.store.measurements import Measurement, StudySubmission


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def _json(obj: Any) -> str:
    def default(o: Any) -> Any:
        if hasattr(o, "item"):
            return o.item()
        return str(o)

    return json.dumps(obj, sort_keys=True, default=default, allow_nan=True)


def run_row(run_id: str, submission: StudySubmission, now: str) -> dict[str, Any]:
    """The ``study_runs`` row of one submission."""
    return {
        "run_id": run_id,
        "patient_id": submission.patient_id,
        "study_uid": submission.study_uid,
        "reader": submission.reader,
        "session": submission.session,
        "roi_method": submission.roi_method,
        "software_version": __version__,
        "recorded_at_utc": now,
        "n_measurements": len(submission.measurements),
        "provenance_json": _json(dict(submission.provenance)),
    }


def measurement_row(
    m: Measurement,
    run_id: str,
    submission: StudySubmission,
    labelmap_sha256: str | None,
    now: str,
    supersedes_id: int | None,
) -> dict[str, Any]:
    """The ``measurements`` row of one measurement (non-finite statistics stored as NULL)."""
    stats = {k: _finite_or_none(v) for k, v in m.statistics.items()}
    return {
        "run_id": run_id,
        "patient_id": submission.patient_id,
        "study_uid": submission.study_uid,
        "series_uid": m.series_uid,
        "level": m.level,
        "map": m.map,
        "unit": m.unit,
        "reader": submission.reader,
        "session": submission.session,
        "roi_method": submission.roi_method,
        "roi_geometry_json": _json(m.roi_geometry) if m.roi_geometry else None,
        "labelmap_path": submission.labelmap_path,
        "labelmap_sha256": labelmap_sha256,
        "flags": ",".join(sorted(m.flags)),
        "included": bool(m.included),
        "n_voxels": int(stats["n_voxels"]) if stats.get("n_voxels") else None,
        "mean": stats.get("mean"),
        "sd": stats.get("sd"),
        "median": stats.get("median"),
        "statistics_json": _json(stats),
        "recorded_at_utc": now,
        "software_version": __version__,
        "supersedes_id": supersedes_id,
    }
