"""Per-level, per-map statistics of a RoiSet on a Study (or of plain arrays and a label map).

The result is a long pandas DataFrame, one row per (level, map), with the columns

``level, label, map, unit, n_voxels, volume_ml, mean, sd, variance, median, p05, p10, p25, p75,
p90, p95, min, max, n_nonfinite, flags, included``

``unit`` is the unit of the map (``pct`` for PDFF, ``per_s`` for R2*): ``mean`` ... ``max`` are in
that unit and ``variance`` in its square; ``n_voxels`` and ``volume_ml`` carry their unit in their
name. ``n_nonfinite`` counts ROI voxels left out because the map is NaN/inf there. ``flags`` is
the level's flags joined by ``;`` (sorted; empty when none) and ``included`` says whether the
level enters the patient summaries (flags and the user's override applied). The statistic
columns come from :data:`RefractureRiskLib.stats.registry.STATISTICS`.

:func:`statistics_wide` turns it into one row per level with unit-suffixed columns
(``pdff_mean_pct``, ``r2s_mean_per_s``, ``pdff_volume_ml``, ...) for cohort tables.

The ``*_records`` functions give the same rows as plain dicts (:mod:`.records`), without pandas:
what the one-study analysis uses.

Speed: the label map is scanned once (``flatnonzero``), ROI voxels are grouped by label with one
stable sort of the (small) ROI subset, and every map is gathered once and sorted per ROI; all
statistics of all ROIs are then vectorised array operations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.roiset import RoiSet
from RefractureRiskLib.core.study import MAP_UNITS, Study
from RefractureRiskLib.stats.records import Record, records_frame
from RefractureRiskLib.stats.registry import STATISTICS, GroupedValues

if TYPE_CHECKING:
    import pandas as pd

#: Maps measured by default (those present in the study).
DEFAULT_MAPS: tuple[str, ...] = ("pdff", "r2s")

FLAG_SEPARATOR = ";"


class LabelGrouping:
    """Flat voxel indices of several labels, grouped by label (computed once, reused per map).

    ``indices`` lists the voxels of ``labels[0]`` first, then ``labels[1]``, ...; ``counts[g]``
    is the number of voxels with label ``labels[g]``.
    """

    def __init__(self, labelmap: npt.NDArray, labels: Sequence[int]) -> None:
        if not np.issubdtype(labelmap.dtype, np.integer):
            raise InputError("label map", f"must hold integers, got {labelmap.dtype}")
        wanted = np.asarray([int(v) for v in labels], dtype=np.int64)
        if wanted.size and wanted.min() <= 0:
            raise InputError("labels", f"label values must be positive, got {wanted.tolist()}")
        if len(set(wanted.tolist())) != wanted.size:
            raise InputError("labels", f"duplicate label values {wanted.tolist()}")
        self.labels = wanted
        self.shape = labelmap.shape
        flat = labelmap.reshape(-1)
        # one pass over the image (nonzero on a boolean array is ~10x faster than on int16);
        # everything after this is ROI-sized
        roi = np.flatnonzero(flat != 0)
        values = flat[roi].astype(np.int64)
        top = int(wanted.max()) if wanted.size else 0
        lut = np.full(top + 2, -1, dtype=np.int64)  # last slot: labels outside 1..top
        lut[wanted] = np.arange(wanted.size)
        group = lut[np.where((values > 0) & (values <= top), values, top + 1)]
        keep = group >= 0
        roi, group = roi[keep], group[keep]
        order = np.argsort(group, kind="stable")
        self.indices = roi[order]
        self.group = group[order]
        self.counts = np.bincount(self.group, minlength=wanted.size).astype(np.int64)

    def grouped_values(
        self, image: npt.NDArray, voxel_volume_ml: float
    ) -> tuple[GroupedValues, npt.NDArray[np.int64]]:
        """Finite values of ``image`` per label, sorted within each label; and non-finite counts."""
        if image.shape != self.shape:
            raise InputError("map", f"shape {image.shape} does not match label map {self.shape}")
        vals = image.reshape(-1)[self.indices].astype(np.float64)
        finite = np.isfinite(vals)
        n_groups = self.labels.size
        if finite.all():
            counts = self.counts.copy()
            nonfinite = np.zeros(n_groups, dtype=np.int64)
        else:
            nonfinite = np.bincount(self.group[~finite], minlength=n_groups).astype(np.int64)
            vals = vals[finite]
            counts = self.counts - nonfinite
        start = 0
        for n in counts:  # one small sort per ROI (a handful of ROIs)
            vals[start : start + n].sort()
            start += n
        return GroupedValues(vals, counts, voxel_volume_ml), nonfinite


def label_statistics(
    maps: Mapping[str, npt.NDArray],
    labelmap: npt.NDArray,
    labels: Sequence[int],
    voxel_volume_ml: float,
    units: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Statistics of each array in ``maps`` inside each label of ``labelmap``.

    All arrays share one shape (``[k, j, i]``). ``voxel_volume_ml`` converts voxel counts to
    volume. ``units`` gives each map's unit (default: the library's :data:`MAP_UNITS`, else
    ``"au"``). Returns a long table with columns ``label, map, unit``, the registered statistics
    and ``n_nonfinite``; rows are label-major in the order of ``labels``, then map order.
    """
    records = label_statistics_records(maps, labelmap, labels, voxel_volume_ml, units)
    return records_frame(records, label_columns())


def label_columns() -> list[str]:
    """Columns of :func:`label_statistics`' table, in order."""
    return ["label", "map", "unit", *STATISTICS, "n_nonfinite"]


def statistics_columns() -> list[str]:
    """Columns of :func:`roi_statistics`' table, in order (the module docstring's list)."""
    return ["level", *label_columns(), "flags", "included"]


def label_statistics_records(
    maps: Mapping[str, npt.NDArray],
    labelmap: npt.NDArray,
    labels: Sequence[int],
    voxel_volume_ml: float,
    units: Mapping[str, str] | None = None,
) -> list[Record]:
    """:func:`label_statistics` as records (:mod:`.records`: plain rows, no pandas)."""
    if not np.isfinite(voxel_volume_ml) or voxel_volume_ml <= 0:
        raise InputError("voxel_volume_ml", f"must be positive, got {voxel_volume_ml}")
    grouping = LabelGrouping(np.asarray(labelmap), labels)
    per_map = []
    for kind, image in maps.items():
        grouped, nonfinite = grouping.grouped_values(np.asarray(image), voxel_volume_ml)
        unit = (units or {}).get(kind, MAP_UNITS.get(kind, "au"))
        values = {key: stat.compute(grouped).tolist() for key, stat in STATISTICS.items()}
        per_map.append((kind, unit, values, nonfinite.tolist()))
    records = []
    for g, label in enumerate(grouping.labels.tolist()):  # label-major, then map order
        for kind, unit, values, nonfinite in per_map:
            row: Record = {"label": label, "map": kind, "unit": unit}
            row |= {key: column[g] for key, column in values.items()}
            row["n_voxels"] = int(row["n_voxels"])
            row["n_nonfinite"] = nonfinite[g]
            records.append(row)
    return records


def roi_statistics(roiset: RoiSet, study: Study, maps: Sequence[str] | None = None) -> pd.DataFrame:
    """Statistics per (level, map) of ``roiset`` on ``study``; see the module docstring.

    ``maps``: map kinds to measure; default: PDFF and R2* where the study has them. A requested
    map the study lacks, or a RoiSet not on the study's grid, raises :class:`InputError`.
    """
    return records_frame(roi_statistics_records(roiset, study, maps), statistics_columns())


def roi_statistics_records(
    roiset: RoiSet, study: Study, maps: Sequence[str] | None = None
) -> list[Record]:
    """:func:`roi_statistics` as records (:mod:`.records`: plain rows, no pandas)."""
    if maps is None:
        kinds = [k for k in DEFAULT_MAPS if k in study.maps]
        if not kinds:
            raise InputError(
                "study", f"has none of the maps {DEFAULT_MAPS} (has {list(study.maps)})"
            )
    else:
        kinds = list(maps)
        missing = [k for k in kinds if k not in study.maps]
        if missing:
            raise InputError("study", f"has no {missing} map(s) (has {list(study.maps)})")
    grid = study.grid
    if not roiset.labelmap.same_grid(grid):
        raise InputError(
            "RoiSet",
            f"label map is not on the study grid: {roiset.labelmap.describe_geometry()} vs "
            f"{grid.describe_geometry()}",
        )
    records = label_statistics_records(
        {k: study.maps[k].array for k in kinds},
        roiset.labelmap.array,
        [lv.label for lv in roiset.levels],
        grid.voxel_volume_ml,
    )
    by_label = {lv.label: lv for lv in roiset.levels}
    out = []
    for r in records:
        lv = by_label[r["label"]]
        flags = {"flags": format_flags(lv.flags), "included": bool(lv.included)}
        out.append({"level": lv.level, **r, **flags})
    return out


def format_flags(flags: object) -> str:
    """Flags as stored in tables: sorted values joined by ``;`` (empty string for none)."""
    return FLAG_SEPARATOR.join(sorted(str(f) for f in flags))  # type: ignore[attr-defined]


def parse_flags(text: object) -> frozenset[str]:
    """Inverse of :func:`format_flags` (accepts NaN/None as no flags)."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return frozenset()
    return frozenset(p.strip() for p in str(text).split(FLAG_SEPARATOR) if p.strip())


def statistics_wide(stats: pd.DataFrame) -> pd.DataFrame:
    """One row per level with unit-suffixed columns (``pdff_mean_pct``, ``r2s_p90_per_s``, ...).

    Keeps ``level``, ``label``, ``flags`` and ``included`` (when present) and adds, for each map
    and registered statistic, the column named by :meth:`Statistic.wide_column`.
    """
    import pandas as pd

    required = {"label", "map", "unit", *STATISTICS}
    missing = sorted(required - set(stats.columns))
    if missing:
        raise InputError("statistics table", f"missing column(s) {missing}")
    id_cols = [c for c in ("level", "label", "flags", "included") if c in stats.columns]
    base = stats[id_cols].drop_duplicates(subset=["label"]).set_index("label", drop=False)
    parts = [base]
    for kind, rows in stats.groupby("map", sort=False):
        units = rows["unit"].unique()
        if len(units) != 1:
            raise InputError("statistics table", f"map {kind!r} has several units {list(units)}")
        rows = rows.set_index("label")
        renamed = {
            key: stat.wide_column(str(kind), str(units[0])) for key, stat in STATISTICS.items()
        }
        parts.append(rows[list(renamed)].rename(columns=renamed))
    return pd.concat(parts, axis=1).reset_index(drop=True)
