"""Statistics tables to and from CSV and Parquet (chosen by file suffix).

The long table of :func:`~RefractureRiskLib.stats.roi_statistics.roi_statistics` is written as
is: one row per (level, map), units in the ``unit`` column and in the fixed-unit column names,
flags as a ``;``-joined string so CSV and Parquet hold the same thing. Records (:mod:`.records`)
are written to CSV without pandas, byte for byte as their DataFrame would be.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.extras import require_table_reader
from RefractureRiskLib.stats.records import records_frame, table_columns, write_records_csv

if TYPE_CHECKING:
    import pandas as pd

TABLE_SUFFIXES = (".csv", ".parquet")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(path, f"unsupported table suffix; use one of {', '.join(TABLE_SUFFIXES)}")
    require_table_reader(suffix)
    return suffix


def write_statistics(stats: Any, path: str | Path, columns: Sequence[str] | None = None) -> Path:
    """Write a statistics table (DataFrame or records) to ``.csv`` or ``.parquet`` (by suffix);
    returns the path. ``columns``: the records' columns in order (default: the first row's;
    records without rows have none unless given)."""
    p = Path(path)
    records = isinstance(stats, list | tuple)
    suffix = _suffix(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv" and records:
        return write_records_csv(stats, p, columns)
    if records:  # Parquet: through its DataFrame
        stats = records_frame(stats, table_columns(stats) if columns is None else columns)
    if suffix == ".csv":
        stats.to_csv(p, index=False)
    else:
        stats.to_parquet(p, index=False)
    return p


def read_statistics(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_statistics`; InputError names the file on failure."""
    p = Path(path)
    suffix = _suffix(p)
    if not p.is_file():
        raise InputError(p, "file not found")
    import pandas as pd

    try:
        if suffix == ".csv":
            # keep empty flag strings as "" rather than NaN
            return pd.read_csv(p, keep_default_na=True, dtype={"flags": str}).fillna({"flags": ""})
        return pd.read_parquet(p)
    except (ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        raise InputError(p, f"cannot be read as a statistics table ({first})") from None
