"""The cohort table: one row per patient, its columns, units, hard limits, reading and validation.

:data:`COHORT_SCHEMA` is the single definition of the table the training, validation and
description tools read. It doubles as documentation: ``docs/cohort_schema.md`` is generated from
it by :func:`cohort_schema_markdown` (a test checks that the file is up to date).

Conventions
    * PDFF is percent (0-100), R2* is 1/s, times are days since the index surgery.
    * Per-level columns exist for T10-L5 (``pdff_pct_L1``, ``r2s_per_s_L1``, ``excl_L1``); an
      exclusion code is one or more :class:`~RefractureRiskLib.core.roiset.RoiFlag` values
      separated by ``;`` (``fractured``, ``cemented``, ``index``, ``lesion``, ``artefact``,
      ``low_coverage``); empty means the level is eligible.
    * ``required`` columns must be present and filled in every row; optional columns may be absent
      or have empty cells (missing predictors are imputed by the training pipeline).
    * Hard limits (``min``/``max``/``allowed``) are refused, never clipped.

:func:`read_cohort` reads CSV/TSV, Excel, Parquet and JSON (by ``io/clinical_table.py``, the one
reader of clinical tables), checks every cell and raises one :class:`CohortValidationError`
listing every problem (row, column, value, rule) at once.
:func:`derive_columns` adds BMI (from height and weight), the thoracolumbar-junction flag (from
the index levels) and the 1-year outcome, where a patient censored or dead before 365 days
without a re-fracture is *unknown* (NaN), not a non-event.

This module is the public face of the cohort table: the column definitions live in
:mod:`.cohort_table` (a declarative table), the cell-by-cell checks in :mod:`.cohort_cells`;
both are re-exported here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import TL_JUNCTION_LEVELS
from RefractureRiskLib.io.clinical_table import MISSING_TOKENS, read_table_text
from RefractureRiskLib.model.dev.cohort_cells import coerce_and_check
from RefractureRiskLib.model.dev.cohort_table import (
    COHORT_SCHEMA,
    COLUMNS_BY_NAME,
    DERIVED_COLUMNS,
    DTYPES,
    EARLIEST_SURGERY_DATE,
    EVENT_CENSORED,
    EVENT_DEATH,
    EVENT_REFRACTURE,
    EXCLUSION_CODES,
    HORIZON_DAYS,
    INDEX_LEVEL_NAMES,
    MEASURED_LEVELS,
    OUTCOME,
    PERCENT_FAT_COLUMNS,
    R2S_COLUMNS,
    CohortValidationError,
    ColumnSpec,
    Problem,
    column_spec,
    problems_frame,
)

#: The public face of the cohort table: its definition (:mod:`.cohort_table`), reading,
#: derived columns and documentation.
__all__ = [
    "COHORT_SCHEMA",
    "COLUMNS_BY_NAME",
    "DERIVED_COLUMNS",
    "DTYPES",
    "EARLIEST_SURGERY_DATE",
    "EVENT_CENSORED",
    "EVENT_DEATH",
    "EVENT_REFRACTURE",
    "EXCLUSION_CODES",
    "HORIZON_DAYS",
    "INDEX_LEVEL_NAMES",
    "MEASURED_LEVELS",
    "MISSING_TOKENS",
    "OUTCOME",
    "OUTCOME_NOTE",
    "PERCENT_FAT_COLUMNS",
    "R2S_COLUMNS",
    "TL_JUNCTION_LEVELS",
    "CohortValidationError",
    "ColumnSpec",
    "Problem",
    "cohort_schema_markdown",
    "column_spec",
    "derive_columns",
    "outcome_1y",
    "problems_frame",
    "read_cohort",
    "validate_cohort",
    "write_cohort_schema_doc",
]


# --------------------------------------------------------------------------------------------
# Reading


def read_cohort(
    path_or_df: str | Path | pd.DataFrame,
    *,
    allow_unknown_columns: bool | Iterable[str] = False,
    derive: bool = True,
) -> pd.DataFrame:
    """Read, type-convert and validate a cohort table; optionally add the derived columns.

    ``path_or_df``: a table file of any type ``io/clinical_table.py`` reads (``.csv``/``.tsv``
    UTF-8, ``.xlsx``/``.xls`` first sheet, ``.parquet``, ``.json``), or a DataFrame.
    ``allow_unknown_columns``: False (unknown columns are errors), True (kept unchanged) or the
    names of columns to keep. ``derive``: add the columns of :func:`derive_columns`.

    Returns one row per patient with typed columns: float columns float64 (NaN = missing);
    optional integer/boolean columns float64 (0/1, NaN = missing); required integer columns int64;
    dates datetime64; strings and categories object (None = missing; categories in their canonical
    spelling, exclusion codes as ``''`` when the level is eligible).

    Raises :class:`CohortValidationError` (an :class:`InputError`) listing every problem.
    """
    source = "<DataFrame>" if isinstance(path_or_df, pd.DataFrame) else str(path_or_df)
    raw = path_or_df.copy() if isinstance(path_or_df, pd.DataFrame) else _load_table(path_or_df)
    typed, problems = coerce_and_check(raw, allow_unknown_columns)
    if problems:
        raise CohortValidationError(source, problems)
    return derive_columns(typed) if derive else typed


def validate_cohort(
    df: pd.DataFrame, *, allow_unknown_columns: bool | Iterable[str] = False
) -> list[Problem]:
    """Every problem in ``df`` (raw or typed), without raising; an empty list means valid."""
    return coerce_and_check(df, allow_unknown_columns)[1]


def _load_table(path: str | Path) -> pd.DataFrame:
    """The cohort file's cells as text, by the one clinical-table reader (``io/clinical_table.py``).

    An empty file is a cohort problem like any other (reported in a CohortValidationError); a
    table without ``patient_id`` is left to the column checks, which name every missing column.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise CohortValidationError(path, [Problem(None, None, None, "the file is empty")])
    try:
        return read_table_text(path, "cohort table", need_patient_id=False)
    except InputError as err:
        if err.reason == "the file is empty":
            raise CohortValidationError(path, [Problem(None, None, None, err.reason)]) from None
        raise


# --------------------------------------------------------------------------------------------
# Derived columns

OUTCOME_NOTE = (
    "outcome_1y: 1 = new vertebral fracture within 365 days; 0 = followed 365 days or more "
    "without one (including deaths after 365 days); NaN = censored or died before 365 days "
    "without a re-fracture (unknown, not a non-event). Death is a competing event: patients "
    "who died before 365 days are counted in outcome_1y_status as 'died_before_horizon'."
)


def derive_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add derived columns to a typed cohort (as returned by ``read_cohort(..., derive=False)``).

    * ``bmi_kg_m2`` filled from ``weight_kg / (height_cm/100)^2`` where empty.
    * ``tl_junction`` filled from ``index_levels`` (any level in T11-L2) where empty.
    * ``refracture`` filled from ``event`` (1 if event == 1) where empty.
    * ``outcome_1y`` (float: 1.0, 0.0 or NaN) and ``outcome_1y_status`` (``event``,
      ``no_event``, ``censored_before_horizon``, ``died_before_horizon``):
      event 1 with time_days <= 365 -> 1; any patient followed beyond 365 days without a
      re-fracture by then (time_days >= 365 and not an event within 365) -> 0; censored (event 0)
      or dead (event 2, a competing event) before 365 days -> NaN.

    The note :data:`OUTCOME_NOTE` is stored in ``df.attrs["outcome_1y_note"]``.
    """
    out = df.copy()
    if {"height_cm", "weight_kg"} <= set(out.columns):
        calc = out["weight_kg"] / (out["height_cm"] / 100.0) ** 2
        if "bmi_kg_m2" in out:
            out["bmi_kg_m2"] = out["bmi_kg_m2"].fillna(calc)
        else:
            out["bmi_kg_m2"] = calc
    if "index_levels" in out:
        tl = (
            out["index_levels"]
            .map(lambda s: np.nan if not s else float(bool(set(s.split(";")) & TL_JUNCTION_LEVELS)))
            .astype(float)
        )
        out["tl_junction"] = out["tl_junction"].fillna(tl) if "tl_junction" in out else tl
    event = out["event"].to_numpy(dtype=float)
    time = out["time_days"].to_numpy(dtype=float)
    refr = (event == EVENT_REFRACTURE).astype(float)
    refr[np.isnan(event)] = np.nan
    out["refracture"] = (
        out["refracture"].fillna(pd.Series(refr, index=out.index))
        if ("refracture" in out)
        else refr
    )
    outcome, status = outcome_1y(time, event)
    out["outcome_1y"] = outcome
    out["outcome_1y_status"] = pd.Series(status, index=out.index, dtype=object)
    out.attrs["outcome_1y_note"] = OUTCOME_NOTE
    schema_cols = [s.name for s in COHORT_SCHEMA if s.name in out.columns]
    extra = [c for c in out.columns if c not in COLUMNS_BY_NAME and c not in DERIVED_COLUMNS]
    return out[schema_cols + extra + list(DERIVED_COLUMNS)]


def outcome_1y(
    time_days: np.ndarray, event: np.ndarray, horizon_days: float = HORIZON_DAYS
) -> tuple[np.ndarray, np.ndarray]:
    """Binary outcome at ``horizon_days`` from follow-up time and event code (see derive_columns).

    Returns (outcome as float with NaN for unknown, status strings).
    """
    t = np.asarray(time_days, dtype=float)
    e = np.asarray(event, dtype=float)
    outcome = np.full(t.shape, np.nan)
    status = np.full(t.shape, "unknown", dtype=object)
    is_event = (e == EVENT_REFRACTURE) & (t <= horizon_days)
    outcome[is_event] = 1.0
    status[is_event] = "event"
    free = ~is_event & (t >= horizon_days) & np.isin(e, (0, 1, 2))
    outcome[free] = 0.0
    status[free] = "no_event"
    early = ~is_event & ~free & (t < horizon_days)
    status[early & (e == EVENT_CENSORED)] = "censored_before_horizon"
    status[early & (e == EVENT_DEATH)] = "died_before_horizon"
    return outcome, status


# --------------------------------------------------------------------------------------------
# Documentation


def cohort_schema_markdown(schema: Iterable[ColumnSpec] = COHORT_SCHEMA) -> str:
    """The cohort schema as Markdown (the content of ``docs/cohort_schema.md``)."""
    lines = [
        "# Cohort table schema",
        "",
        "<!-- Generated from RefractureRiskLib.model.dev.schema.COHORT_SCHEMA by",
        "     `python -m RefractureRiskLib.model.dev.schema docs/cohort_schema.md`;",
        "     do not edit. -->",
        "",
        "One row per patient. Files: CSV (UTF-8, comma-separated, '.' as decimal point), TSV,",
        "Excel (.xlsx/.xls, first sheet), Parquet or JSON (a list of row objects), read like every",
        "clinical table (`io/clinical_table.py`). Empty cells (or NA, N/A, null, NaN) are missing.",
        "Required columns must be present and filled in every row; optional columns may be absent",
        "or partly empty. Values outside the hard limits are refused (never clipped), and every",
        "problem is reported at once with its row, column, value and rule. Columns not listed here",
        "are refused unless explicitly allowed.",
        "",
        "Units: PDFF and other fat fractions in percent (0-100; a column whose values all lie in",
        "0-1 is refused as a likely fraction), R2* in 1/s (values all below 5 are refused as a",
        "likely 1/ms), times in days since the index surgery (follow-up times all under 30",
        "days are refused as likely months or years). Per-level columns exist for",
        f"{', '.join(MEASURED_LEVELS)}. Exclusion codes: {', '.join(EXCLUSION_CODES)}",
        "(several separated by ';'; empty = eligible).",
        "",
        "Derived on reading: `bmi_kg_m2` from height and weight where empty, `tl_junction` from",
        "`index_levels` (T11-L2) where empty, `refracture` from `event` where empty, and",
        f"`outcome_1y`: {OUTCOME_NOTE.split(': ', 1)[1]}",
        "",
    ]
    for group, specs in itertools.groupby(schema, key=lambda s: s.group):
        lines += [
            f"## {group}",
            "",
            "| column | type | unit | required | limits / allowed values | description |",
            "|---|---|---|---|---|---|",
        ]
        for spec in specs:
            if spec.allowed is not None:
                limits = ", ".join(str(a) for a in spec.allowed)
            elif spec.min is not None or spec.max is not None:
                limits = f"{spec.min:g} to {spec.max:g}"
            elif spec.dtype == "boolean":
                limits = "0, 1"
            else:
                limits = ""
            lines.append(
                f"| `{spec.name}` | {spec.dtype} | {spec.unit} | "
                f"{'yes' if spec.required else 'no'} | {limits} | {spec.description} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def write_cohort_schema_doc(path: str | Path) -> Path:
    """Write :func:`cohort_schema_markdown` to ``path`` (normally docs/cohort_schema.md)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cohort_schema_markdown(), encoding="utf-8")
    return path


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(write_cohort_schema_doc(sys.argv[1] if len(sys.argv) > 1 else "docs/cohort_schema.md"))
