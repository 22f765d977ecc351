"""The statistics table as plain rows: how the one-study path carries it without pandas.

A *record* is one row of the long statistics table (:mod:`.roi_statistics`' columns, same
names, same values) as a ``dict`` of Python scalars: ``str`` for ``level``, ``map``, ``unit`` and
``flags``, ``int`` for ``label``, ``n_voxels`` and ``n_nonfinite``, ``bool`` for ``included`` and
``float`` (NaN when not computable) for the statistics. The records of a table are a list in the
table's row order.

Why: importing pandas costs about 0.4 s, a fifth of a whole analysis of one study
(``bench/bench_cold.py``). The analysis measures, summarises, writes ``statistics.csv`` and
draws the report from records; a :class:`pandas.DataFrame` is built only when one is asked for
(:func:`records_frame`, ``AnalysisResult.statistics``). Functions that accept a statistics
table take either form (:func:`as_records`).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: One row of the statistics table (column -> value).
Record = dict[str, Any]

#: Columns whose values are whole numbers (int64 in a DataFrame).
INTEGER_COLUMNS = frozenset({"label", "n_voxels", "n_nonfinite"})
#: Columns of text (object in a DataFrame).
TEXT_COLUMNS = frozenset({"level", "map", "unit", "flags"})
#: Columns of true/false (bool in a DataFrame).
BOOL_COLUMNS = frozenset({"included"})


def as_records(stats: Any) -> list[Record]:
    """A statistics table's rows as records: ``stats`` is a DataFrame or already records."""
    if isinstance(stats, list | tuple):
        return [dict(r) for r in stats]
    return stats.to_dict("records")


def table_columns(stats: Any) -> list[str]:
    """The column names of a statistics table (DataFrame or records; records: first row's)."""
    if isinstance(stats, list | tuple):
        return list(stats[0]) if stats else []
    return [str(c) for c in stats.columns]


def records_frame(records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """The DataFrame of ``records``, with the dtypes :func:`roi_statistics` gives its columns
    (int64, bool, object, else float64), also when there are no rows."""
    import pandas as pd

    data: dict[str, Any] = {}
    for name in columns:
        values = [r[name] for r in records]
        if name in INTEGER_COLUMNS:
            data[name] = np.asarray(values, dtype=np.int64)
        elif name in BOOL_COLUMNS:
            data[name] = np.asarray(values, dtype=bool)
        elif name in TEXT_COLUMNS:
            data[name] = np.asarray(values, dtype=object)
        else:
            data[name] = np.asarray(values, dtype=np.float64)
    return pd.DataFrame(data, columns=list(columns))


def _csv_cell(value: Any) -> Any:
    """A cell as ``DataFrame.to_csv`` writes it: NaN empty, floats in shortest round-trip form."""
    if isinstance(value, float | np.floating):
        number = float(value)
        return "" if math.isnan(number) else repr(number)
    if value is None:
        return ""
    return value


def write_records_csv(
    records: Sequence[Mapping[str, Any]], path: Path, columns: Sequence[str] | None = None
) -> Path:
    """``records`` as CSV, the same bytes as ``records_frame(...).to_csv(path, index=False)``
    (header row, minimal quoting, the platform's line ends, UTF-8). ``columns``: their order
    (default: the first record's keys)."""
    if columns is None:
        columns = list(records[0]) if records else []
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator=os.linesep)
        writer.writerow(columns)
        for r in records:
            writer.writerow([_csv_cell(r[c]) for c in columns])
    return path
