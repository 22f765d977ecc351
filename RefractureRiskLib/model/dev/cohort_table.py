"""The cohort table's columns: names, types, units, hard limits (:data:`COHORT_SCHEMA`), and
the :class:`Problem` a check reports. A declarative table; reading and checking a file is
:mod:`.schema` (the public face of both) and :mod:`.cohort_cells`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS
from RefractureRiskLib.core.roiset import RoiFlag

#: Levels with per-level PDFF/R2* columns (T10-L5; S1 is not part of the cohort table).
MEASURED_LEVELS: tuple[str, ...] = tuple(lv for lv in VERTEBRAL_LEVELS if lv != "S1")
#: Levels an index (treated) fracture may be at: T1-T12 and L1-L5.
INDEX_LEVEL_NAMES: tuple[str, ...] = tuple(f"T{i}" for i in range(1, 13)) + tuple(
    f"L{i}" for i in range(1, 6)
)
#: Exclusion codes allowed in ``excl_<level>`` cells: the RoiFlag values.
EXCLUSION_CODES: tuple[str, ...] = tuple(flag.value for flag in RoiFlag)
#: Outcome horizon of the 1-year outcome, days.
HORIZON_DAYS = 365
#: Event codes of the ``event`` column.
EVENT_CENSORED, EVENT_REFRACTURE, EVENT_DEATH = 0, 1, 2
#: The outcome every model is trained and validated on: new vertebral fracture within 365 days
#: (1, 0, or missing = unknown: censored or dead before 365 days without a re-fracture).
OUTCOME = "outcome_1y"
#: Columns :func:`derive_columns` adds (accepted, and recomputed, when present in the input).
DERIVED_COLUMNS: tuple[str, ...] = (OUTCOME, "outcome_1y_status")
#: Earliest plausible surgery date (percutaneous vertebral augmentation in routine use).
EARLIEST_SURGERY_DATE = _dt.date(1990, 1, 1)

DTYPES = ("string", "category", "float", "integer", "boolean", "date", "level_list", "code_list")


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the cohort table.

    ``dtype`` is one of :data:`DTYPES`: ``boolean`` cells are 0/1 (also true/false, yes/no);
    ``level_list`` is vertebral levels separated by ``;`` (e.g. ``T12;L1``); ``code_list`` is
    exclusion codes separated by ``;``. ``min``/``max`` are inclusive hard limits in ``unit``;
    ``allowed`` lists the only accepted values (categories, levels, codes or numbers).
    """

    name: str
    dtype: str
    unit: str
    required: bool
    min: float | None = None
    max: float | None = None
    allowed: tuple[str | float | int, ...] | None = None
    description: str = ""
    group: str = ""

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"column {self.name}: dtype {self.dtype!r} not in {DTYPES}")


def _col(
    name: str,
    dtype: str,
    unit: str,
    required: bool,
    lo: float | None,
    hi: float | None,
    allowed: tuple[str | float | int, ...] | None,
    description: str,
    group: str,
) -> ColumnSpec:
    return ColumnSpec(name, dtype, unit, required, lo, hi, allowed, description, group)


def _per_level_specs() -> tuple[ColumnSpec, ...]:
    group = "Per-level MRI"
    specs: list[ColumnSpec] = []
    for lv in MEASURED_LEVELS:
        # fmt: off
        specs += [
            _col(f"pdff_pct_{lv}", "float", "%", False, 0.0, 100.0, None,
                 f"Mean proton-density fat fraction of the {lv} vertebral-body marrow ROI.", group),
            _col(f"r2s_per_s_{lv}", "float", "1/s", False, 0.0, 1000.0, None,
                 f"Mean R2* of the {lv} vertebral-body marrow ROI (depends on mri_field_T).",
                 group),
            _col(f"excl_{lv}", "code_list", "", False, None, None, EXCLUSION_CODES,
                 f"Why {lv} is excluded from summaries (codes separated by ';'); empty = eligible.",
                 group),
        ]
        # fmt: on
    return tuple(specs)


# fmt: off
# Columns grouped as in docs/cohort_schema.md:
#   name, dtype, unit, required, min, max, allowed values, description.
COHORT_SCHEMA: tuple[ColumnSpec, ...] = (
    # Identification
    _col("patient_id", "string", "", True, None, None, None,
         "Pseudonymised patient identifier, unique in the table (no names, no hospital numbers).",
         "Identification"),
    _col("centre_id", "string", "", True, None, None, None,
         "Recruiting centre (used for leave-one-centre-out validation).", "Identification"),
    _col("surgery_date", "date", "YYYY-MM-DD", True, None, None, None,
         "Date of the index vertebroplasty/kyphoplasty (ISO 8601, not in the future, not before "
         "1990).", "Identification"),
    # Clinical
    _col("age_years", "float", "years", True, 40.0, 110.0, None,
         "Age at the index surgery.", "Clinical"),
    _col("sex", "category", "", True, None, None, ("F", "M"),
         "Sex: F (female) or M (male).", "Clinical"),
    _col("height_cm", "float", "cm", False, 120.0, 220.0, None,
         "Body height; with weight_kg used to derive bmi_kg_m2 when that is empty.", "Clinical"),
    _col("weight_kg", "float", "kg", False, 25.0, 250.0, None,
         "Body weight; with height_cm used to derive bmi_kg_m2 when that is empty.", "Clinical"),
    _col("bmi_kg_m2", "float", "kg/m^2", False, 12.0, 60.0, None,
         "Body-mass index (derived from height_cm and weight_kg when empty; must agree with them"
         " within 1 kg/m^2 when all are given).", "Clinical"),
    _col("smoking", "boolean", "", False, None, None, None,
         "Current smoker (1) or not (0).", "Clinical"),
    _col("glucocorticoid_use", "boolean", "", False, None, None, None,
         "Systemic glucocorticoid use for 3 months or more (1) or not (0).", "Clinical"),
    _col("diabetes", "boolean", "", False, None, None, None,
         "Diabetes mellitus, type 1 or 2 (1) or not (0).", "Clinical"),
    _col("n_prevalent_vertebral_fractures", "integer", "count", False, 0, 20, None,
         "Vertebral fractures present at baseline other than the index fracture(s).", "Clinical"),
    # Bone density
    _col("dxa_l1l4_tscore", "float", "SD", False, -6.0, 4.0, None,
         "DXA T-score of L1-L4 (standard deviations from the young-adult mean).", "Bone density"),
    _col("ct_hu_l1", "float", "HU", False, -100.0, 600.0, None,
         "Trabecular attenuation of L1 on CT, Hounsfield units.", "Bone density"),
    # Procedure
    _col("n_index_levels", "integer", "count", True, 1, 9, None,
         "Number of treated (index) levels; must equal the number of levels in index_levels.",
         "Procedure"),
    _col("index_levels", "level_list", "", True, None, None, INDEX_LEVEL_NAMES,
         "Treated levels separated by ';' (T1-T12, L1-L5), e.g. 'T12;L1'.", "Procedure"),
    _col("tl_junction", "boolean", "", False, None, None, None,
         "An index level at the thoracolumbar junction T11-L2 (1) or not (0); derived from "
         "index_levels when empty.", "Procedure"),
    _col("procedure", "category", "", True, None, None, ("PVP", "PKP"),
         "PVP (percutaneous vertebroplasty) or PKP (percutaneous kyphoplasty).", "Procedure"),
    _col("cement_volume_ml", "float", "mL", False, 0.0, 40.0, None,
         "Total injected cement volume over all index levels.", "Procedure"),
    _col("cement_leak_disc", "boolean", "", False, None, None, None,
         "Cement leakage into an adjacent disc (1) or not (0).", "Procedure"),
    _col("antiop_post", "boolean", "", False, None, None, None,
         "Anti-osteoporosis treatment started or continued after surgery (1) or not (0).",
         "Procedure"),
    # MRI acquisition
    _col("mri_field_T", "float", "T", False, None, None, (1.5, 3.0),
         "MRI field strength, 1.5 or 3.0 T; required in every row that has an R2* value (R2* "
         "roughly doubles at 3 T).", "MRI acquisition"),
    _col("mri_vendor", "category", "", False, None, None,
         ("GE", "Siemens", "Philips", "Canon", "United Imaging", "other"),
         "MRI scanner manufacturer.", "MRI acquisition"),
    _col("reader_id", "string", "", False, None, None, None,
         "Pseudonymised identifier of the reader who placed the ROIs.", "MRI acquisition"),
    *_per_level_specs(),
    # MRI summaries
    _col("pdff_global_L1L4", "float", "%", False, 0.0, 100.0, None,
         "Mean PDFF over the eligible L1-L4 levels (at least two).", "MRI summaries"),
    _col("r2s_global_L1L4", "float", "1/s", False, 0.0, 1000.0, None,
         "Mean R2* over the eligible L1-L4 levels (at least two).", "MRI summaries"),
    _col("pdff_adjacent", "float", "%", False, 0.0, 100.0, None,
         "Mean PDFF of the eligible levels adjacent to the index level(s).", "MRI summaries"),
    _col("r2s_adjacent", "float", "1/s", False, 0.0, 1000.0, None,
         "Mean R2* of the eligible levels adjacent to the index level(s).", "MRI summaries"),
    _col("paraspinal_fat_pct_L3L4", "float", "%", False, 0.0, 100.0, None,
         "Fat fraction of the paraspinal muscles at L3-L4.", "MRI summaries"),
    _col("body_volume_ml_L1L4", "float", "mL", False, 5.0, 150.0, None,
         "Mean vertebral-body volume of the eligible L1-L4 levels.", "MRI summaries"),
    # Outcome
    _col("refracture", "boolean", "", False, None, None, None,
         "A new vertebral fracture during follow-up (1) or not (0); must agree with event.",
         "Outcome"),
    _col("time_days", "float", "days", True, 0.0, 7300.0, None,
         "Days from the index surgery to the first new vertebral fracture, death or last follow-"
         "up, whichever came first.", "Outcome"),
    _col("event", "integer", "", True, None, None, (0, 1, 2),
         "What ended follow-up at time_days: 0 censored (alive, no new fracture), 1 new "
         "vertebral fracture, 2 death (a competing event).", "Outcome"),
)
# fmt: on

#: Every cohort column by name.
COLUMNS_BY_NAME: dict[str, ColumnSpec] = {spec.name: spec for spec in COHORT_SCHEMA}

#: PDFF-like columns (percent) checked for values given as a fraction 0-1.
PERCENT_FAT_COLUMNS: tuple[str, ...] = tuple(
    s.name for s in COHORT_SCHEMA if s.unit == "%" and s.name.startswith(("pdff", "paraspinal"))
)
#: R2* columns (1/s) checked for values given in 1/ms.
R2S_COLUMNS: tuple[str, ...] = tuple(s.name for s in COHORT_SCHEMA if s.unit == "1/s")


def column_spec(name: str) -> ColumnSpec:
    """The :class:`ColumnSpec` named ``name``; KeyError if it is not a cohort column."""
    return COLUMNS_BY_NAME[name]


@dataclass(frozen=True)
class Problem:
    """One validation finding.

    ``row`` is the 1-based data row (the header is not counted, so in a spreadsheet the row is on
    line ``row + 1``); None for problems with a whole column or file. ``value`` is the cell as read.
    """

    row: int | None
    column: str | None
    value: object
    rule: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "all rows"
        col = f", column {self.column}" if self.column else ""
        val = "" if self.value is None else f", value {_short_repr(self.value)}"
        return f"{where}{col}{val}: {self.rule}"


class CohortValidationError(InputError):
    """The cohort has problems; ``problems`` lists every one of them (row, column, value, rule)."""

    MAX_LISTED = 200

    def __init__(self, source: str | Path | None, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        lines = [str(p) for p in self.problems[: self.MAX_LISTED]]
        more = len(self.problems) - len(lines)
        if more > 0:
            lines.append(f"... and {more} more (see CohortValidationError.problems)")
        n = len(self.problems)
        super().__init__(
            source, f"{n} problem{'s' if n != 1 else ''} in the cohort:\n  " + "\n  ".join(lines)
        )


def problems_frame(problems: Iterable[Problem]) -> pd.DataFrame:
    """Problems as a table (columns row, column, value, rule), e.g. to write next to a report."""
    return pd.DataFrame(
        [(p.row, p.column, _short_repr(p.value), p.rule) for p in problems],
        columns=["row", "column", "value", "rule"],
    )


def _short_repr(value: object, limit: int = 40) -> str:
    if isinstance(value, np.generic):
        value = value.item()  # 1.0, not np.float64(1.0)
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
