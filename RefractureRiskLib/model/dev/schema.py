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

:func:`read_cohort` reads CSV, Excel (.xlsx) and Parquet, checks every cell and raises one
:class:`CohortValidationError` listing every problem (row, column, value, rule) at once.
:func:`derive_columns` adds BMI (from height and weight), the thoracolumbar-junction flag (from
the index levels) and the 1-year outcome, where a patient censored or dead before 365 days
without a re-fracture is *unknown* (NaN), not a non-event.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.extras import require_table_reader
from RefractureRiskLib.core.levels import TL_JUNCTION_LEVELS, VERTEBRAL_LEVELS
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
#: Cell text read as missing.
MISSING_TOKENS: tuple[str, ...] = (
    "",
    "NA",
    "N/A",
    "n/a",
    "na",
    "NaN",
    "nan",
    "null",
    "NULL",
    "None",
)
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

_SPECS: dict[str, ColumnSpec] = {spec.name: spec for spec in COHORT_SCHEMA}

#: PDFF-like columns (percent) checked for values given as a fraction 0-1.
PERCENT_FAT_COLUMNS: tuple[str, ...] = tuple(
    s.name for s in COHORT_SCHEMA if s.unit == "%" and s.name.startswith(("pdff", "paraspinal"))
)
#: R2* columns (1/s) checked for values given in 1/ms.
R2S_COLUMNS: tuple[str, ...] = tuple(s.name for s in COHORT_SCHEMA if s.unit == "1/s")


def column_spec(name: str) -> ColumnSpec:
    """The :class:`ColumnSpec` named ``name``; KeyError if it is not a cohort column."""
    return _SPECS[name]


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


# --------------------------------------------------------------------------------------------
# Reading


def read_cohort(
    path_or_df: str | Path | pd.DataFrame,
    *,
    allow_unknown_columns: bool | Iterable[str] = False,
    derive: bool = True,
) -> pd.DataFrame:
    """Read, type-convert and validate a cohort table; optionally add the derived columns.

    ``path_or_df``: a ``.csv``/``.tsv`` (UTF-8), ``.xlsx``/``.xlsm`` (first sheet, via openpyxl) or
    ``.parquet`` file, or a DataFrame. ``allow_unknown_columns``: False (unknown columns are
    errors), True (kept unchanged) or the names of columns to keep. ``derive``: add the columns of
    :func:`derive_columns`.

    Returns one row per patient with typed columns: float columns float64 (NaN = missing);
    optional integer/boolean columns float64 (0/1, NaN = missing); required integer columns int64;
    dates datetime64; strings and categories object (None = missing; categories in their canonical
    spelling, exclusion codes as ``''`` when the level is eligible).

    Raises :class:`CohortValidationError` (an :class:`InputError`) listing every problem.
    """
    source = "<DataFrame>" if isinstance(path_or_df, pd.DataFrame) else str(path_or_df)
    raw = path_or_df.copy() if isinstance(path_or_df, pd.DataFrame) else _load_table(path_or_df)
    typed, problems = _coerce_and_check(raw, allow_unknown_columns)
    if problems:
        raise CohortValidationError(source, problems)
    return derive_columns(typed) if derive else typed


def validate_cohort(
    df: pd.DataFrame, *, allow_unknown_columns: bool | Iterable[str] = False
) -> list[Problem]:
    """Every problem in ``df`` (raw or typed), without raising; an empty list means valid."""
    return _coerce_and_check(df, allow_unknown_columns)[1]


def _load_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "cohort file not found")
    if path.stat().st_size == 0:
        raise CohortValidationError(path, [Problem(None, None, None, "the file is empty")])
    suffix = path.suffix.lower()
    require_table_reader(suffix)
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            df = pd.read_csv(
                path,
                sep="\t" if suffix == ".tsv" else ",",
                dtype=str,
                keep_default_na=False,
                na_values=list(MISSING_TOKENS),
                encoding="utf-8-sig",
                skipinitialspace=True,
            )
        elif suffix in (".xlsx", ".xlsm"):
            df = pd.read_excel(path, sheet_name=0, engine="openpyxl", dtype=object)
        elif suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            raise InputError(
                path, f"unknown cohort file type {suffix!r}; expected .csv, .tsv, .xlsx or .parquet"
            )
    except InputError:
        raise
    except pd.errors.EmptyDataError as err:
        raise CohortValidationError(path, [Problem(None, None, None, "the file is empty")]) from err
    except Exception as err:  # parser errors of csv/openpyxl/pyarrow: say which file
        raise InputError(
            path, f"cannot read the cohort table ({type(err).__name__}: {err})"
        ) from err
    df.columns = [str(c).strip() for c in df.columns]
    if suffix == ".csv" and len(df.columns) == 1 and ";" in df.columns[0]:
        raise InputError(
            path,
            "the file is separated by ';', expected ',' (save it as CSV with "
            "commas and '.' as the decimal point)",
        )
    return df


# --------------------------------------------------------------------------------------------
# Cell conversion: each returns (value, None) or (None, rule) for one non-missing cell.

_TRUE = {"1", "1.0", "true", "yes", "y"}
_FALSE = {"0", "0.0", "false", "no", "n"}
_SPLIT = re.compile(r"[;,+\s]+")


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in MISSING_TOKENS


def _to_float(value: object) -> tuple[float | None, str | None]:
    if isinstance(value, bool | np.bool_):
        return None, "expected a number, got a true/false value"
    if isinstance(value, int | float | np.integer | np.floating):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            return None, "expected a number (decimal point '.', no units in the cell)"
    else:
        return None, f"expected a number, got {type(value).__name__}"
    if not math.isfinite(x):
        return None, "expected a finite number"
    return x, None


def _convert(spec: ColumnSpec, value: object) -> tuple[object, str | None]:
    dt = spec.dtype
    if dt in ("float", "integer"):
        x, err = _to_float(value)
        if err:
            return None, err
        assert x is not None
        if dt == "integer" and x != round(x):
            return None, "expected a whole number"
        if spec.allowed is not None:
            if not any(abs(x - float(a)) < 1e-6 for a in spec.allowed):
                return None, f"must be one of {', '.join(str(a) for a in spec.allowed)}" + (
                    f" ({spec.unit})" if spec.unit else ""
                )
            return x, None
        if (spec.min is not None and x < spec.min) or (spec.max is not None and x > spec.max):
            return None, f"outside the allowed range {spec.min:g} to {spec.max:g}" + (
                f" {spec.unit}" if spec.unit else ""
            )
        return x, None
    if dt == "boolean":
        if isinstance(value, bool | np.bool_):
            return float(value), None
        text = str(value).strip().lower()
        if isinstance(value, int | float | np.integer | np.floating):
            text = f"{float(value):g}"
        if text in _TRUE:
            return 1.0, None
        if text in _FALSE:
            return 0.0, None
        return None, "expected 0 or 1 (also true/false, yes/no)"
    if dt == "string":
        if isinstance(value, float | np.floating) and float(value).is_integer():
            return str(int(value)), None  # Excel turns 12 into 12.0
        return str(value).strip(), None
    if dt == "category":
        if not isinstance(value, str):
            return None, f"expected one of {', '.join(map(str, spec.allowed or ()))}"
        text = value.strip()
        for a in spec.allowed or ():
            if text.lower() == str(a).lower():
                return a, None
        return None, f"expected one of {', '.join(map(str, spec.allowed or ()))}"
    if dt == "date":
        return _to_date(value)
    if dt in ("level_list", "code_list"):
        if not isinstance(value, str):
            return None, "expected text such as " + (
                "'T12;L1'" if dt == "level_list" else "'index;cemented'"
            )
        tokens = [t for t in _SPLIT.split(value.strip()) if t]
        canon = {str(a).lower(): str(a) for a in spec.allowed or ()}
        out: list[str] = []
        for tok in tokens:
            name = canon.get(tok.lower())
            if name is None:
                return None, f"{tok!r} is not one of {', '.join(canon.values())}"
            if name in out:
                return None, f"{name} is listed twice"
            out.append(name)
        if dt == "level_list":
            if not out:
                return None, "expected at least one level"
            out.sort(key=INDEX_LEVEL_NAMES.index)
        return ";".join(out), None
    raise AssertionError(dt)  # pragma: no cover


def _to_date(value: object) -> tuple[object, str | None]:
    rule = "expected a date as YYYY-MM-DD"
    if isinstance(value, pd.Timestamp | _dt.datetime):
        d = pd.Timestamp(value).date()
    elif isinstance(value, _dt.date):
        d = value
    elif isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?", text):
            return None, rule
        try:
            d = _dt.datetime.fromisoformat(text).date()
        except ValueError:
            return None, rule + " (not a calendar date)"
    else:
        return None, rule
    if d < EARLIEST_SURGERY_DATE:
        return None, f"date before {EARLIEST_SURGERY_DATE.isoformat()}"
    if d > _dt.date.today():
        return None, "date in the future"
    return pd.Timestamp(d), None


# --------------------------------------------------------------------------------------------
# Table checks


def _coerce_and_check(
    raw: pd.DataFrame, allow_unknown_columns: bool | Iterable[str]
) -> tuple[pd.DataFrame, list[Problem]]:
    problems: list[Problem] = []
    raw = raw.reset_index(drop=True)
    raw.columns = [str(c).strip() for c in raw.columns]
    if raw.columns.duplicated().any():
        for name in sorted(set(raw.columns[raw.columns.duplicated()])):
            problems.append(Problem(None, name, None, "column appears more than once"))
        raw = raw.loc[:, ~raw.columns.duplicated()]
    if len(raw) == 0:
        problems.append(Problem(None, None, None, "the cohort has no patient rows"))

    if allow_unknown_columns is True:
        keep_extra = set(raw.columns)
    elif allow_unknown_columns is False:
        keep_extra = set()
    else:
        keep_extra = set(allow_unknown_columns)
    extra = [c for c in raw.columns if c not in _SPECS and c not in DERIVED_COLUMNS]
    for name in extra:
        if name not in keep_extra:
            close = difflib.get_close_matches(name, list(_SPECS), n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                Problem(None, name, None, f"unknown column{hint}; see docs/cohort_schema.md")
            )

    out: dict[str, pd.Series] = {}
    for spec in COHORT_SCHEMA:
        if spec.name not in raw.columns:
            if spec.required:
                problems.append(Problem(None, spec.name, None, "required column is missing"))
            continue
        values: list[object] = []
        for i, cell in enumerate(raw[spec.name].tolist()):
            if _is_missing(cell):
                if spec.required:
                    problems.append(Problem(i + 1, spec.name, None, "required value is empty"))
                values.append("" if spec.dtype == "code_list" else None)
                continue
            val, err = _convert(spec, cell)
            if err:
                problems.append(Problem(i + 1, spec.name, cell, err))
            values.append(val)
        out[spec.name] = _typed_series(spec, values)
    for name in extra:
        if name in keep_extra:
            out[name] = raw[name]
    typed = pd.DataFrame(out, index=raw.index)
    problems += _table_rules(typed)
    return typed, problems


def _typed_series(spec: ColumnSpec, values: list[object]) -> pd.Series:
    if spec.dtype in ("float", "integer", "boolean"):
        arr = np.array([np.nan if v is None else v for v in values], dtype=float)
        if spec.required and spec.dtype == "integer" and not np.isnan(arr).any():
            return pd.Series(arr.astype(np.int64))
        return pd.Series(arr)
    if spec.dtype == "date":
        return pd.Series(pd.to_datetime(pd.Series([pd.NaT if v is None else v for v in values])))
    return pd.Series(values, dtype=object)


def _table_rules(df: pd.DataFrame) -> list[Problem]:
    """Rules across cells and columns (unit checks, uniqueness, consistency)."""
    problems: list[Problem] = []
    if "patient_id" in df:
        ids = df["patient_id"]
        dup = ids.notna() & ids.duplicated(keep=False)
        for i in np.flatnonzero(dup.to_numpy()):
            problems.append(Problem(i + 1, "patient_id", ids.iloc[i], "patient_id is not unique"))
    for name in PERCENT_FAT_COLUMNS:
        if name in df:
            x = df[name].dropna()
            if len(x) and x.max() <= 1.0 and x.max() > 0:
                problems.append(
                    Problem(
                        None,
                        name,
                        f"max {x.max():g}",
                        "values look like a fraction 0-1; "
                        "fat fractions must be percent 0-100 (multiply by 100)",
                    )
                )
    for name in R2S_COLUMNS:
        if name in df:
            x = df[name].dropna()
            if len(x) and 0 < x.max() < 5.0:
                problems.append(
                    Problem(
                        None,
                        name,
                        f"max {x.max():g}",
                        "values look like 1/ms; R2* must be "
                        "in 1/s (multiply by 1000; from T2* in ms use 1000/T2*)",
                    )
                )
    if "time_days" in df:
        t = df["time_days"].dropna()
        if len(t) >= 5 and t.max() < 30:
            problems.append(
                Problem(
                    None,
                    "time_days",
                    f"max {t.max():g}",
                    "every follow-up is under 30 "
                    "days: values look like months or years; time_days must be days",
                )
            )
    if any(c in df for c in R2S_COLUMNS):
        has_r2s = np.zeros(len(df), dtype=bool)
        for name in R2S_COLUMNS:
            if name in df:
                has_r2s |= df[name].notna().to_numpy()
        field = df["mri_field_T"] if "mri_field_T" in df else pd.Series(np.nan, index=df.index)
        for i in np.flatnonzero(has_r2s & field.isna().to_numpy()):
            problems.append(
                Problem(i + 1, "mri_field_T", None, "field strength is required where R2* is given")
            )
    if "refracture" in df and "event" in df:
        ev = pd.to_numeric(df["event"], errors="coerce")
        rf = df["refracture"]
        bad = rf.notna() & ev.notna() & ((rf == 1) != (ev == EVENT_REFRACTURE))
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(
                Problem(
                    i + 1,
                    "refracture",
                    rf.iloc[i],
                    f"disagrees with event={int(ev.iloc[i])} (1 = re-fracture)",
                )
            )
    if "n_index_levels" in df and "index_levels" in df:
        for i, (n, levels) in enumerate(zip(df["n_index_levels"], df["index_levels"], strict=True)):
            if levels and not pd.isna(n) and len(levels.split(";")) != int(n):
                problems.append(
                    Problem(i + 1, "n_index_levels", n, f"does not match index_levels {levels!r}")
                )
    if {"bmi_kg_m2", "height_cm", "weight_kg"} <= set(df.columns):
        calc = df["weight_kg"] / (df["height_cm"] / 100.0) ** 2
        bad = (df["bmi_kg_m2"] - calc).abs() > 1.0
        for i in np.flatnonzero(bad.to_numpy()):
            problems.append(
                Problem(
                    i + 1,
                    "bmi_kg_m2",
                    df["bmi_kg_m2"].iloc[i],
                    f"disagrees with weight/height^2 = {calc.iloc[i]:.1f} kg/m^2",
                )
            )
    return problems


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
    extra = [c for c in out.columns if c not in _SPECS and c not in DERIVED_COLUMNS]
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
        "One row per patient. Files: CSV (UTF-8, comma-separated, '.' as decimal point), Excel",
        "(.xlsx, first sheet) or Parquet. Empty cells (or NA, N/A, null, NaN) are missing values.",
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


def _short_repr(value: object, limit: int = 40) -> str:
    if isinstance(value, np.generic):
        value = value.item()  # 1.0, not np.float64(1.0)
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(write_cohort_schema_doc(sys.argv[1] if len(sys.argv) > 1 else "docs/cohort_schema.md"))
