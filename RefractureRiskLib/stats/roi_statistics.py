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

Speed: the label map is scanned once (``flatnonzero``), ROI voxels are grouped by label with one
stable sort of the (small) ROI subset, and every map is gathered once and sorted per ROI; all
statistics of all ROIs are then vectorised array operations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.roiset import RoiSet
from RefractureRiskLib.core.study import MAP_UNITS, Study
from RefractureRiskLib.stats.registry import STATISTICS, GroupedValues

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
    if not np.isfinite(voxel_volume_ml) or voxel_volume_ml <= 0:
        raise InputError("voxel_volume_ml", f"must be positive, got {voxel_volume_ml}")
    grouping = LabelGrouping(np.asarray(labelmap), labels)
    return _statistics_table(grouping, maps, voxel_volume_ml, units or {})


def _statistics_table(
    grouping: LabelGrouping,
    maps: Mapping[str, npt.NDArray],
    voxel_volume_ml: float,
    units: Mapping[str, str],
) -> pd.DataFrame:
    n_labels = grouping.labels.size
    blocks = []
    for kind, image in maps.items():
        grouped, nonfinite = grouping.grouped_values(np.asarray(image), voxel_volume_ml)
        unit = units.get(kind, MAP_UNITS.get(kind, "au"))
        block: dict[str, object] = {
            "label": grouping.labels,
            "map": np.full(n_labels, kind, dtype=object),
            "unit": np.full(n_labels, unit, dtype=object),
        }
        for key, stat in STATISTICS.items():
            block[key] = stat.compute(grouped)
        block["n_nonfinite"] = nonfinite
        blocks.append(pd.DataFrame(block))
    columns = ["label", "map", "unit", *STATISTICS, "n_nonfinite"]
    if not blocks:
        return pd.DataFrame(columns=columns)
    table = pd.concat(blocks, ignore_index=True)
    # label-major rows: all maps of the first label, then the next label
    map_rank = {kind: i for i, kind in enumerate(maps)}
    label_rank = {int(v): i for i, v in enumerate(grouping.labels)}
    table["_lr"] = table["label"].map(label_rank)
    table["_mr"] = table["map"].map(map_rank)
    table = table.sort_values(["_lr", "_mr"], kind="stable").drop(columns=["_lr", "_mr"])
    table["n_voxels"] = table["n_voxels"].astype(np.int64)
    return table.reset_index(drop=True)[columns]


def roi_statistics(roiset: RoiSet, study: Study, maps: Sequence[str] | None = None) -> pd.DataFrame:
    """Statistics per (level, map) of ``roiset`` on ``study``; see the module docstring.

    ``maps``: map kinds to measure; default: PDFF and R2* where the study has them. A requested
    map the study lacks, or a RoiSet not on the study's grid, raises :class:`InputError`.
    """
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
    table = label_statistics(
        {k: study.maps[k].array for k in kinds},
        roiset.labelmap.array,
        [lv.label for lv in roiset.levels],
        grid.voxel_volume_ml,
    )
    by_label = {lv.label: lv for lv in roiset.levels}
    table.insert(0, "level", [by_label[int(v)].level for v in table["label"]])
    table["flags"] = [format_flags(by_label[int(v)].flags) for v in table["label"]]
    table["included"] = [bool(by_label[int(v)].included) for v in table["label"]]
    return table


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
