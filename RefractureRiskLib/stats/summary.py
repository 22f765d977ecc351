"""Per-patient summaries of the level statistics: global L1-L4 mean and adjacent-level mean.

Definitions (docs/architecture.md, "ROIs and summaries"):

- A level is *eligible* for a map when it is included (not flagged, or re-included by the user;
  ``included`` column of the statistics table) and its ROI has at least one finite voxel of that
  map.
- **Global L1-L4** = mean of the ROI means of the eligible levels among L1, L2, L3, L4, each level
  weighing equally. At least two eligible levels are required, else the value is NaN and the
  notes say why.
- **Adjacent** = mean of the ROI means of the eligible levels directly above or below any index
  (treated) level, the index levels themselves never counting as adjacent (two treated
  neighbours L1+L2 give T12 and L3). Index levels are the levels flagged ``index`` plus any given
  explicitly. NaN with a note when there is no index level or no eligible neighbour.

Every level that is not included is listed in ``excluded`` with the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import (
    LUMBAR_GLOBAL_LEVELS,
    VERTEBRAL_LEVELS,
    adjacent_levels,
    level_index,
)
from RefractureRiskLib.core.roiset import RoiFlag, RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.stats.records import Record, as_records, table_columns
from RefractureRiskLib.stats.roi_statistics import parse_flags, roi_statistics_records

MIN_GLOBAL_LEVELS = 2
_MAP_NAMES = {"pdff": "PDFF", "r2s": "R2*"}

#: Summary field -> (map kind, which summary). One entry per value of PatientSummary.
_SUMMARY_FIELDS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "pdff_global_L1L4_pct": ("pdff", "global"),
        "r2s_global_L1L4_per_s": ("r2s", "global"),
        "pdff_adjacent_pct": ("pdff", "adjacent"),
        "r2s_adjacent_per_s": ("r2s", "adjacent"),
    }
)


@dataclass(frozen=True)
class PatientSummary:
    """Per-patient marrow summaries (PDFF in percent, R2* in 1/s); NaN when not computable.

    ``levels_used`` maps each summary field name to the levels averaged; ``index_levels`` are the
    treated levels; ``excluded`` lists ``(level, reason)`` for levels left out of all summaries;
    ``notes`` explains every NaN and every user re-inclusion.
    """

    pdff_global_L1L4_pct: float  # noqa: N815 - name fixed by the cohort schema
    r2s_global_L1L4_per_s: float  # noqa: N815
    pdff_adjacent_pct: float
    r2s_adjacent_per_s: float
    index_levels: tuple[str, ...] = ()
    levels_used: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    excluded: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels_used", MappingProxyType(dict(self.levels_used)))

    def as_record(self) -> dict[str, object]:
        """Flat dict for tables: the four values, ``<field>_levels`` and joined notes."""
        record: dict[str, object] = {name: getattr(self, name) for name in _SUMMARY_FIELDS}
        for name in _SUMMARY_FIELDS:
            record[f"{name}_levels"] = ";".join(self.levels_used.get(name, ()))
        record["index_levels"] = ";".join(self.index_levels)
        record["excluded_levels"] = ";".join(f"{lv} ({why})" for lv, why in self.excluded)
        record["notes"] = " | ".join(self.notes)
        return record


def _level_sort_key(level: str) -> int:
    return level_index(level)


def summarize_statistics(stats: Any, index_levels: Iterable[str] = ()) -> PatientSummary:
    """Patient summary from a long statistics table (:func:`roi_statistics` output or its CSV,
    as a DataFrame or as records, :mod:`.records`).

    ``index_levels`` adds treated levels to those flagged ``index`` in the table (e.g. a cemented
    level that has no ROI row).
    """
    records = as_records(stats)
    _check_table(records, table_columns(stats) if not isinstance(stats, list | tuple) else None)
    first: dict[Any, Record] = {}
    for r in records:
        first.setdefault(r["level"], r)
    flags = {str(lv): parse_flags(r["flags"]) for lv, r in first.items()}
    included = {str(lv): _as_bool(r["included"], str(lv)) for lv, r in first.items()}
    index = _treated_levels(flags, index_levels)
    excluded, notes = _exclusions(flags, included)
    values: dict[str, float] = {}
    used: dict[str, tuple[str, ...]] = {}
    for name, (kind, which) in _SUMMARY_FIELDS.items():
        rows = {r["level"]: r for r in records if r["map"] == kind}
        label = f"{_MAP_NAMES[kind]} {which}"
        if not rows:
            value, levels, note = float("nan"), (), f"{label}: no {kind} statistics"
        elif which == "global":
            value, levels, note = _global_mean(rows, included, label)
        else:
            value, levels, note = _adjacent_mean(rows, index, included, label)
        values[name], used[name] = value, levels
        if note is not None:
            notes.append(note)
    return PatientSummary(
        pdff_global_L1L4_pct=values["pdff_global_L1L4_pct"],
        r2s_global_L1L4_per_s=values["r2s_global_L1L4_per_s"],
        pdff_adjacent_pct=values["pdff_adjacent_pct"],
        r2s_adjacent_per_s=values["r2s_adjacent_per_s"],
        index_levels=tuple(index),
        levels_used=used,
        excluded=tuple(excluded),
        notes=tuple(notes),
    )


#: Columns a statistics table needs for the summaries.
_REQUIRED = ("level", "map", "mean", "n_voxels", "flags", "included")


def _check_table(records: list[Record], columns: list[str] | None) -> None:
    """Refuse a table without the needed columns (``columns``: a DataFrame's; None: every
    record's keys), with unknown levels or repeated rows."""
    required = list(_REQUIRED)
    if columns is None:
        missing = [c for c in required if any(c not in r for r in records)]
    else:
        missing = [c for c in required if c not in columns]
    if missing:
        raise InputError("statistics table", f"missing column(s) {missing}; expected {required}")
    for lv in dict.fromkeys(r["level"] for r in records):
        try:
            level_index(str(lv))
        except ValueError as err:
            raise InputError("statistics table: column 'level'", str(err)) from None
    seen = Counter((r["level"], r["map"]) for r in records)
    repeated = [r for r in records if seen[(r["level"], r["map"])] > 1]
    if repeated:
        first = repeated[0]
        raise InputError(
            "statistics table",
            f"several rows for level {first['level']}, map {first['map']}: one patient's "
            "table has one row per (level, map)",
        )


def _treated_levels(flags: dict[str, frozenset[str]], index_levels: Iterable[str]) -> list[str]:
    """The index (treated) levels: flagged ``index`` in the table, or given, in level order."""
    extra_index = set()
    for lv in index_levels:
        try:
            extra_index.add(VERTEBRAL_LEVELS[level_index(lv)])
        except ValueError as err:
            raise InputError("index_levels", str(err)) from None
    return sorted(
        {lv for lv, f in flags.items() if RoiFlag.INDEX.value in f} | extra_index,
        key=_level_sort_key,
    )


def _exclusions(
    flags: dict[str, frozenset[str]], included: dict[str, bool]
) -> tuple[list[tuple[str, str]], list[str]]:
    """(level, why) of every excluded level, and a note for each flagged level re-included."""
    notes: list[str] = []
    excluded: list[tuple[str, str]] = []
    for lv in sorted(flags, key=_level_sort_key):
        f = sorted(flags[lv])
        if not included[lv]:
            excluded.append((lv, f"flagged: {', '.join(f)}" if f else "excluded by the user"))
        elif f:
            notes.append(f"{lv} re-included by the user despite flags: {', '.join(f)}")
    return excluded, notes


def _global_mean(
    rows: Mapping[Any, Record], included: dict[str, bool], label: str
) -> tuple[float, tuple[str, ...], str | None]:
    """Mean over the eligible L1-L4 levels (at least :data:`MIN_GLOBAL_LEVELS`), the levels
    used, and a note saying why when there are too few."""
    candidates = [lv for lv in LUMBAR_GLOBAL_LEVELS if lv in rows]
    absent = [lv for lv in LUMBAR_GLOBAL_LEVELS if lv not in rows]
    eligible = [lv for lv in candidates if _eligible(rows, lv, included)]
    if len(eligible) >= MIN_GLOBAL_LEVELS:
        return float(np.mean([rows[lv]["mean"] for lv in eligible])), tuple(eligible), None
    why = _why_not(rows, LUMBAR_GLOBAL_LEVELS, included, absent)
    note = (
        f"{label} L1-L4: {len(eligible)} eligible level(s)"
        f"{' (' + ', '.join(eligible) + ')' if eligible else ''}, at least "
        f"{MIN_GLOBAL_LEVELS} needed{'; ' + why if why else ''}"
    )
    return float("nan"), (), note


def _adjacent_mean(
    rows: Mapping[Any, Record], index: list[str], included: dict[str, bool], label: str
) -> tuple[float, tuple[str, ...], str | None]:
    """Mean over the eligible levels next to the index levels, the levels used, and a note
    saying why when there are none."""
    if not index:
        return float("nan"), (), f"{label}: no index level given"
    neighbours = sorted(
        {a for lv in index for a in adjacent_levels(lv)} - set(index),
        key=_level_sort_key,
    )
    eligible = [lv for lv in neighbours if _eligible(rows, lv, included)]
    if eligible:
        return float(np.mean([rows[lv]["mean"] for lv in eligible])), tuple(eligible), None
    absent = [lv for lv in neighbours if lv not in rows]
    why = _why_not(rows, neighbours, included, absent)
    note = f"{label}: no eligible level adjacent to {', '.join(index)}{'; ' + why if why else ''}"
    return float("nan"), (), note


def summarize_patient(
    roiset: RoiSet, study: Study, index_levels: Iterable[str] = ()
) -> PatientSummary:
    """Statistics of ``roiset`` on ``study`` (PDFF and R2*), then :func:`summarize_statistics`."""
    return summarize_statistics(roi_statistics_records(roiset, study), index_levels)


def _as_bool(value: object, level: str) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise InputError(
        f"statistics table: column 'included' for {level}", f"expected true/false, got {value!r}"
    )


def _eligible(rows: Mapping[Any, Record], level: str, included: Mapping[str, bool]) -> bool:
    if level not in rows or not included.get(level, False):
        return False
    mean = rows[level]["mean"]
    return bool(int(rows[level]["n_voxels"]) > 0 and np.isfinite(mean))


def _why_not(
    rows: Mapping[Any, Record],
    levels: Iterable[str],
    included: Mapping[str, bool],
    absent: Iterable[str],
) -> str:
    reasons = []
    absent_set = set(absent)
    for lv in levels:
        if lv in absent_set:
            reasons.append(f"{lv} has no ROI")
        elif not included.get(lv, False):
            reasons.append(f"{lv} excluded")
        elif not _eligible(rows, lv, included):
            reasons.append(f"{lv} has no valid voxels")
    return ", ".join(reasons)
