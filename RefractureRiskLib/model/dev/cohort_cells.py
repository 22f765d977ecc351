"""Checking a cohort table cell by cell and as a whole against :data:`COHORT_SCHEMA`.

:func:`coerce_and_check` converts every cell to its column's type and collects every
:class:`~.cohort_table.Problem` (row, column, value, rule) instead of stopping at the first;
:func:`~.schema.read_cohort` raises them together.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import math
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from RefractureRiskLib.io.clinical_table import MISSING_TOKENS
from RefractureRiskLib.model.dev.cohort_table import (
    COHORT_SCHEMA,
    COLUMNS_BY_NAME,
    DERIVED_COLUMNS,
    EARLIEST_SURGERY_DATE,
    EVENT_REFRACTURE,
    INDEX_LEVEL_NAMES,
    PERCENT_FAT_COLUMNS,
    R2S_COLUMNS,
    ColumnSpec,
    Problem,
)

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


def _to_number(spec: ColumnSpec, value: object) -> tuple[object, str | None]:
    """A float or integer cell, checked against the allowed values or the range."""
    dt = spec.dtype
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


def _to_boolean(spec: ColumnSpec, value: object) -> tuple[object, str | None]:
    """0/1, true/false, yes/no (any case) as 1.0 or 0.0."""
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


def _to_string(spec: ColumnSpec, value: object) -> tuple[object, str | None]:
    """Text; a whole number Excel stored as a float loses its ".0"."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value)), None  # Excel turns 12 into 12.0
    return str(value).strip(), None


def _to_category(spec: ColumnSpec, value: object) -> tuple[object, str | None]:
    """One of the allowed values, any case, in its canonical spelling."""
    if not isinstance(value, str):
        return None, f"expected one of {', '.join(map(str, spec.allowed or ()))}"
    text = value.strip()
    for a in spec.allowed or ():
        if text.lower() == str(a).lower():
            return a, None
    return None, f"expected one of {', '.join(map(str, spec.allowed or ()))}"


def _to_list(spec: ColumnSpec, value: object) -> tuple[object, str | None]:
    """Levels or exclusion codes separated by ";", "," "+" or spaces; canonical, no repeats."""
    dt = spec.dtype
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


#: The conversion of a non-missing cell per column type.
_CONVERTERS = {
    "float": _to_number,
    "integer": _to_number,
    "boolean": _to_boolean,
    "string": _to_string,
    "category": _to_category,
    "date": lambda spec, value: _to_date(value),
    "level_list": _to_list,
    "code_list": _to_list,
}


def _convert(spec: ColumnSpec, value: object) -> tuple[object, str | None]:
    """(value, None) or (None, rule) for one non-missing cell of ``spec``'s column."""
    return _CONVERTERS[spec.dtype](spec, value)


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


def coerce_and_check(
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
    extra = [c for c in raw.columns if c not in COLUMNS_BY_NAME and c not in DERIVED_COLUMNS]
    for name in extra:
        if name not in keep_extra:
            close = difflib.get_close_matches(name, list(COLUMNS_BY_NAME), n=1, cutoff=0.75)
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


def _unique_patient_ids(df: pd.DataFrame) -> list[Problem]:
    """patient_id unique."""
    problems: list[Problem] = []
    if "patient_id" in df:
        ids = df["patient_id"]
        dup = ids.notna() & ids.duplicated(keep=False)
        for i in np.flatnonzero(dup.to_numpy()):
            problems.append(Problem(i + 1, "patient_id", ids.iloc[i], "patient_id is not unique"))
    return problems


def _plausible_units(df: pd.DataFrame) -> list[Problem]:
    """Whole columns in the wrong unit: fat fractions as 0-1, R2* in 1/ms, follow-up not in days."""
    problems: list[Problem] = []
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
    return problems


def _field_strength_with_r2s(df: pd.DataFrame) -> list[Problem]:
    """The field strength wherever R2* is given (R2* depends on it)."""
    problems: list[Problem] = []
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
    return problems


def _consistent_columns(df: pd.DataFrame) -> list[Problem]:
    """Columns that must agree: refracture and event, index levels and their count, BMI."""
    problems: list[Problem] = []
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


#: Rules across cells and columns, in the order their problems are listed.
_TABLE_RULES = (
    _unique_patient_ids,
    _plausible_units,
    _field_strength_with_r2s,
    _consistent_columns,
)


def _table_rules(df: pd.DataFrame) -> list[Problem]:
    """Rules across cells and columns (unit checks, uniqueness, consistency)."""
    return [problem for rule in _TABLE_RULES for problem in rule(df)]
