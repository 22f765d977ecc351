"""The cohort table: the clinical table with the imaging columns of the model's schema, computed
from the measurement store's current rows of one reader."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from RefractureRiskLib.batch.inputs import _index_levels, read_clinical_text
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.study import nominal_field_t
from RefractureRiskLib.model.dev.schema import (
    COHORT_SCHEMA,
    DERIVED_COLUMNS,
    MEASURED_LEVELS,
    Problem,
    column_spec,
    validate_cohort,
)
from RefractureRiskLib.pipeline import IMAGING_INPUTS
from RefractureRiskLib.stats import summarize_statistics
from RefractureRiskLib.stats.roi_statistics import FLAG_SEPARATOR
from RefractureRiskLib.store.measurements import MeasurementStore

#: Columns of the cohort table the batch fills from the store (all others come from the clinic).
IMAGING_COLUMNS: tuple[str, ...] = (
    "mri_field_T",
    "mri_vendor",
    "reader_id",
    *(f"{p}_{lv}" for lv in MEASURED_LEVELS for p in ("pdff_pct", "r2s_per_s", "excl")),
    "pdff_global_L1L4",
    "r2s_global_L1L4",
    "pdff_adjacent",
    "r2s_adjacent",
    "body_volume_ml_L1L4",
)


@dataclass(frozen=True)
class CohortBuild:
    """The cohort table, its schema problems and notes on how it was built."""

    table: pd.DataFrame
    problems: tuple[Problem, ...]
    notes: tuple[str, ...]


def _patient_statistics(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Store rows of one patient -> the long statistics table :func:`summarize_statistics` reads."""
    records = []
    for r in rows:
        stats = json.loads(r["statistics_json"] or "{}")
        flags = [f for f in str(r["flags"] or "").split(",") if f]
        records.append(
            {
                "level": r["level"],
                "map": r["map"],
                "mean": _num(r["mean"]),
                "n_voxels": _num(stats.get("n_voxels")),
                "body_volume_ml": _num(stats.get("body_volume_ml")),
                "flags": FLAG_SEPARATOR.join(sorted(flags)),
                "included": bool(r["included"]),
            }
        )
    return pd.DataFrame(records)


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


#: Manufacturer name prefixes (upper case) -> the cohort schema's vendor categories.
_VENDOR_PREFIXES = {
    "GE": "GE",
    "SIEMENS": "Siemens",
    "PHILIPS": "Philips",
    "CANON": "Canon",
    "TOSHIBA": "Canon",
    "UIH": "United Imaging",
    "UNITED IMAGING": "United Imaging",
}


def _vendor(value: Any) -> str | None:
    """The cohort's ``mri_vendor`` category of a manufacturer name ("other" when unknown)."""
    if not value:
        return None
    allowed = column_spec("mri_vendor").allowed or ()
    if value in allowed:
        return str(value)
    name = str(value).strip().upper()
    return next((v for p, v in _VENDOR_PREFIXES.items() if name.startswith(p)), "other")


def imaging_columns(
    rows: Sequence[Mapping[str, Any]],
    provenance: Mapping[str, Any],
    reader: str,
    index_levels: Sequence[str] = (),
) -> dict[str, Any]:
    """The cohort's imaging cells of one patient from its current store rows (one study).

    Per level: mean PDFF (%) and R2* (1/s) and the exclusion codes (the level's flags when it
    is excluded from summaries, empty when eligible); summaries recomputed from these rows with
    :func:`summarize_statistics`; field strength (nominal 1.5/3 T) and vendor from the study's
    provenance.
    """
    stats = _patient_statistics(list(rows))
    cells: dict[str, Any] = {"reader_id": reader}
    cells["mri_field_T"] = nominal_field_t(provenance.get("field_strength_t"))
    cells["mri_vendor"] = _vendor(provenance.get("vendor"))
    for r in stats.to_dict("records"):
        level = str(r["level"])
        if level not in MEASURED_LEVELS:
            continue
        name = "pdff_pct" if r["map"] == "pdff" else "r2s_per_s" if r["map"] == "r2s" else None
        if name is not None and math.isfinite(r["mean"]):
            cells[f"{name}_{level}"] = round(r["mean"], 3)
        cells[f"excl_{level}"] = "" if r["included"] else r["flags"]
    summary = summarize_statistics(stats, tuple(index_levels))
    for column, attr in IMAGING_INPUTS.items():
        value = float(getattr(summary, attr))
        cells[column] = round(value, 3) if math.isfinite(value) else None
    volumes = stats[
        (stats["map"] == "pdff") & stats["included"] & stats["level"].isin(["L1", "L2", "L3", "L4"])
    ]["body_volume_ml"].dropna()
    cells["body_volume_ml_L1L4"] = round(float(volumes.mean()), 2) if len(volumes) >= 2 else None
    return cells


def cohort_table(
    store: MeasurementStore, clinical: pd.DataFrame | str | Path, reader: str
) -> CohortBuild:
    """The cohort table: every clinical row, with imaging columns from the store (``reader``).

    Clinical cells are kept as written; columns of :data:`IMAGING_COLUMNS` come from the store
    only (a clinical column of the same name is replaced). When a patient has several studies
    or sessions in the store, the most recently recorded one is used.
    """
    table = clinical if isinstance(clinical, pd.DataFrame) else read_clinical_text(clinical)
    table = table.copy()
    notes: list[str] = []
    replaced = [c for c in IMAGING_COLUMNS if c in table.columns]
    if replaced:
        notes.append(
            f"clinical column(s) {', '.join(replaced[:6])}{' ...' if len(replaced) > 6 else ''}"
            " replaced by the measurements in the store"
        )
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for row in store.current_measurements(readers=[reader], with_run_provenance=True):
        by_patient.setdefault(str(row["patient_id"]), []).append(row)
    imaging: dict[str, dict[str, Any]] = {}
    index_by_patient = {
        str(pid): _index_levels({"index_levels": lv}, ())
        for pid, lv in zip(
            table["patient_id"],
            table["index_levels"] if "index_levels" in table else [None] * len(table),
            strict=True,
        )
    }
    for pid, rows in by_patient.items():
        if pid not in index_by_patient:
            continue
        latest = max(rows, key=lambda r: r["measurement_id"])
        key = (latest["study_uid"], latest["session"])
        mine = [r for r in rows if (r["study_uid"], r["session"]) == key]
        if len({(r["study_uid"], r["session"]) for r in rows}) > 1:
            notes.append(f"{pid}: several studies/sessions in the store; the latest is used")
        prov = json.loads(latest["run_provenance_json"] or "{}")
        try:
            imaging[pid] = imaging_columns(mine, prov, reader, index_by_patient[pid])
        except InputError as err:
            notes.append(f"{pid}: imaging columns left empty ({err})")
    columns = {
        c: [imaging.get(pid, {}).get(c) for pid in table["patient_id"]] for c in IMAGING_COLUMNS
    }
    for c, values in columns.items():
        table[c] = pd.Series(values, index=table.index, dtype=object)
    schema_order = [s.name for s in COHORT_SCHEMA if s.name in table.columns]
    derived = [c for c in DERIVED_COLUMNS if c in table.columns]
    extra = [c for c in table.columns if c not in schema_order and c not in derived]
    table = table[schema_order + extra + derived]
    n_img = sum(pid in imaging for pid in table["patient_id"])
    notes.insert(0, f"{len(table)} clinical row(s), {n_img} with imaging from reader {reader!r}")
    problems = validate_cohort(table)
    return CohortBuild(table, tuple(problems), tuple(notes))
