"""Statistics tables to and from CSV and Parquet (chosen by file suffix).

The long table of :func:`~RefractureRiskLib.stats.roi_statistics.roi_statistics` is written as
is: one row per (level, map), units in the ``unit`` column and in the fixed-unit column names,
flags as a ``;``-joined string so CSV and Parquet hold the same thing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.extras import require_table_reader

TABLE_SUFFIXES = (".csv", ".parquet")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(path, f"unsupported table suffix; use one of {', '.join(TABLE_SUFFIXES)}")
    require_table_reader(suffix)
    return suffix


def write_statistics(stats: pd.DataFrame, path: str | Path) -> Path:
    """Write a statistics table to ``.csv`` or ``.parquet`` (by suffix); returns the path."""
    p = Path(path)
    suffix = _suffix(p)
    p.parent.mkdir(parents=True, exist_ok=True)
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
    try:
        if suffix == ".csv":
            # keep empty flag strings as "" rather than NaN
            return pd.read_csv(p, keep_default_na=True, dtype={"flags": str}).fillna({"flags": ""})
        return pd.read_parquet(p)
    except (ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        raise InputError(p, f"cannot be read as a statistics table ({first})") from None
