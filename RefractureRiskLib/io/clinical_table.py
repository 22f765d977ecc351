"""The one reader of clinical tables: one row per patient, from any of the supported file types.

Every path that reads a clinical or cohort table goes through :func:`read_table_text`: one
patient's inputs for an analysis (:func:`read_patient`, ``pipeline.load_clinical``), the clinical
table of a batch (``batch.inputs.read_clinical_text``) and the cohort table of the model's
development side (``model.dev.schema.read_cohort``). So a file is read the same way whichever
command reads it.

The rules
    * File types, by suffix: ``.csv`` and ``.txt`` (comma-separated), ``.tsv`` (tab-separated),
      all UTF-8 with or without a byte-order mark; ``.xlsx``/``.xlsm``/``.xls`` (the first
      sheet); ``.parquet``/``.pq``; ``.json`` (one object of column -> value for one patient, or
      a list of such objects). Any other suffix is refused.
    * Cells are text. Spaces around a cell are dropped; an empty cell or one of
      :data:`MISSING_TOKENS` is missing (``None``). Cells an Excel, Parquet or JSON file stores
      typed are written as text the way a CSV would hold them (:func:`cell_text`): whole numbers
      without a decimal point, other numbers in Python's shortest round-trip form, true/false as
      ``true``/``false``, a date (or a midnight date-time) as ``YYYY-MM-DD``.
    * Column names are stripped; a ``patient_id`` column is required.
    * Where a number is wanted (scoring one patient) a cell is read by :func:`typed_value`:
      an integer, a decimal number, true/false, or else the text itself. ``patient_id`` stays
      text (``007`` is not 7).

Errors are :class:`~RefractureRiskLib.core.errors.InputError` naming the file and, for a bad
cell, its row (1 = the first patient) and column.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.extras import require_table_reader
from RefractureRiskLib.core.jsonfile import read_json_file

if TYPE_CHECKING:
    import pandas as pd

#: Cell text read as missing (compared after stripping surrounding spaces).
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
#: The column that names the patient of each row.
PATIENT_ID = "patient_id"

_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


# --------------------------------------------------------------------------------------------
# Cells


def cell_text(value: Any, where: str = "cell") -> str | None:
    """One cell as text, or None when missing (see the module doc for the rules).

    ``where`` names the cell (file, row, column) in the error a list or an object gets.
    """
    pd = sys.modules.get("pandas")  # pandas' missing values exist only once it is imported
    if value is None or (pd is not None and (value is pd.NA or value is pd.NaT)):
        return None
    if isinstance(value, str):
        text = value.strip()
        return None if text in MISSING_TOKENS else text
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, _dt.datetime):
        midnight = value.time() == _dt.time(0) and value.tzinfo is None
        return value.date().isoformat() if midnight else value.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple | dict | np.ndarray):
        raise InputError(where, f"expected one value, got {type(value).__name__} {value!r}")
    return cell_text(str(value), where)


def typed_value(text: str | None) -> Any:
    """A cell's text as the value it writes: int, float, bool, or the text itself (None stays).

    ``"72"`` -> 72, ``"-2.9"`` -> -2.9, ``"1e3"`` -> 1000.0, ``"true"`` -> True, ``"F"`` -> "F".
    """
    if text is None:
        return None
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        return float(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


# --------------------------------------------------------------------------------------------
# Files


@dataclass(frozen=True)
class _Cells:
    """A table as its reader gave it: column names and, per column, its cells top to bottom."""

    names: list[Any]
    columns: list[list[Any]]
    n_rows: int


def _frame_cells(frame: pd.DataFrame) -> _Cells:
    columns = [list(frame.iloc[:, j]) for j in range(frame.shape[1])]
    return _Cells([str(c) for c in frame.columns], columns, len(frame))


def _read_delimited(path: Path, sep: str) -> _Cells:
    import pandas as pd

    frame = pd.read_csv(
        path,
        sep=sep,
        dtype=str,
        na_filter=False,
        encoding="utf-8-sig",
        skipinitialspace=True,
    )
    return _frame_cells(frame)


def _read_excel(path: Path) -> _Cells:
    import pandas as pd

    return _frame_cells(pd.read_excel(path, sheet_name=0, dtype=object, keep_default_na=False))


def _read_parquet(path: Path) -> _Cells:
    import pandas as pd

    return _frame_cells(pd.read_parquet(path).astype(object))


def _read_json(path: Path) -> _Cells:
    """JSON is read without pandas: one patient's analysis does not wait for its import."""
    data = read_json_file(path, "clinical file")
    rows = [data] if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise InputError(
            path, "expected a JSON object of input name -> value, or a list of such objects"
        )
    names = list(dict.fromkeys(k for row in rows for k in row))
    return _Cells(names, [[row.get(c) for row in rows] for c in names], len(rows))


#: Suffix -> the reader of that file type.
_READERS: dict[str, Callable[[Path], _Cells]] = {
    ".csv": lambda p: _read_delimited(p, ","),
    ".txt": lambda p: _read_delimited(p, ","),
    ".tsv": lambda p: _read_delimited(p, "\t"),
    ".xlsx": _read_excel,
    ".xlsm": _read_excel,
    ".xls": _read_excel,
    ".parquet": _read_parquet,
    ".pq": _read_parquet,
    ".json": _read_json,
}
#: The file types a clinical table may have.
TABLE_SUFFIXES: tuple[str, ...] = tuple(_READERS)


def read_table_text(
    path: str | Path, what: str = "clinical table", *, need_patient_id: bool = True
) -> pd.DataFrame:
    """The table at ``path`` with every cell as text or None (see the module doc for the rules).

    ``what`` names the table in messages ("clinical table", "cohort file"). Columns are
    ``object``; the row index is 0, 1, ... (row ``i`` is the patient in row ``i + 1``).
    ``need_patient_id``: refuse a table without a ``patient_id`` column.
    """
    import pandas as pd

    cells = _text_cells(path, what, need_patient_id)
    text = pd.DataFrame(index=pd.RangeIndex(cells.n_rows), dtype=object)
    for j, (name, column) in enumerate(zip(cells.names, cells.columns, strict=True)):
        series = pd.Series(column, index=text.index, dtype=object)
        text.insert(j, name, series, allow_duplicates=True)
    return text


def _text_cells(path: str | Path, what: str, need_patient_id: bool) -> _Cells:
    """:func:`read_table_text`'s cells (stripped names, text cells), without a DataFrame."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, f"{what} is not a regular file" if p.exists() else f"{what} not found")
    suffix = p.suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        raise InputError(
            p, f"unknown {what} file type {suffix!r}; expected {', '.join(TABLE_SUFFIXES)}"
        )
    require_table_reader(suffix)
    try:
        raw = reader(p)
    except InputError:
        raise
    except Exception as err:  # parser errors of csv/openpyxl/xlrd/pyarrow: say which file
        if type(err).__name__ == "EmptyDataError":  # pandas': imported only for such files
            raise InputError(p, "the file is empty") from None
        raise InputError(p, f"cannot read the {what} ({type(err).__name__}: {err})") from None
    names = [str(c).strip() for c in raw.names]
    if suffix in (".csv", ".txt") and len(names) == 1 and ";" in names[0]:
        raise InputError(
            p,
            "the file is separated by ';', expected ',' (save it as CSV with "
            "commas and '.' as the decimal point)",
        )
    if need_patient_id and PATIENT_ID not in names:
        raise InputError(p, f"the {what} needs a '{PATIENT_ID}' column")
    columns = [
        [cell_text(v, f"{p} row {i + 1}, column {name!r}") for i, v in enumerate(column)]
        for name, column in zip(names, raw.columns, strict=True)
    ]
    return _Cells(names, columns, raw.n_rows)


# --------------------------------------------------------------------------------------------
# One patient


def patient_row(
    table: pd.DataFrame, source: str | Path, patient_id: str | None = None
) -> dict[str, str | None]:
    """The row of ``patient_id`` (text cells), or the only row when ``patient_id`` is None.

    Refuses a table of several rows without a ``patient_id``, an id not in the table and an id
    given more than once, naming ``source``.
    """
    return _patient_cells(_frame_cells(table), source, patient_id)


def _patient_cells(
    cells: _Cells, source: str | Path, patient_id: str | None
) -> dict[str, str | None]:
    """:func:`patient_row` on a table's cells."""
    if patient_id is None:
        if cells.n_rows != 1:
            raise InputError(source, f"{cells.n_rows} rows; name the patient (patient_id) to use")
        rows = [0]
    else:
        ids = cells.columns[cells.names.index(PATIENT_ID)]
        rows = [i for i, v in enumerate(ids) if v == str(patient_id).strip()]
        if not rows:
            raise InputError(source, f"patient_id {patient_id!r} not in the clinical table")
        if len(rows) > 1:
            raise InputError(source, f"patient_id {patient_id!r} appears {len(rows)} times")
    return {name: column[rows[0]] for name, column in zip(cells.names, cells.columns, strict=True)}


def read_patient(path: str | Path, patient_id: str | None = None) -> dict[str, Any]:
    """One patient's inputs from a clinical table: numbers as numbers (:func:`typed_value`).

    Without ``patient_id`` the table must have one row, and then needs no ``patient_id``
    column (a JSON object of one patient's inputs). ``patient_id`` itself stays text.
    """
    cells = _text_cells(path, "clinical file", need_patient_id=patient_id is not None)
    row = _patient_cells(cells, path, patient_id)
    return {k: (v if k == PATIENT_ID else typed_value(v)) for k, v in row.items()}
