"""The statistics registry: every per-ROI statistic is defined once, here, with key, name and unit.

Like Slicer's Segment Statistics plugins, a statistic is one :class:`Statistic` entry: adding a
statistic means adding one ``register_statistic(...)`` call, nothing else. Each entry computes its
value for *all* ROIs of one map at once from a :class:`GroupedValues` (the map's finite ROI values,
grouped by ROI and sorted within each ROI), so no statistic re-scans the image.

Conventions (chosen to agree with pyradiomics' first-order features on the same mask):

- ``X`` is the set of the map's values inside the ROI that are finite; NaN/inf voxels are left
  out of every statistic and counted separately (``n_nonfinite`` in the statistics table).
- ``N`` = number of values in ``X``.
- Variance and SD are population values (ddof = 0, divide by ``N``), as pyradiomics and
  ``numpy.var``/``numpy.std`` default to.
- Percentiles use linear interpolation between closest ranks (numpy's default ``"linear"``
  method, Hyndman & Fan type 7): ``P(q) = x[h] + (h - floor(h)) (x[floor(h)+1] - x[floor(h)])``
  with ``x`` sorted ascending (0-based) and ``h = (N - 1) q / 100``.

Units: ``unit`` is ``"map"`` (the unit of the map, e.g. ``pct`` for PDFF, ``per_s`` for R2*),
``"map2"`` (that unit squared) or a fixed unit (``"voxels"``, ``"ml"``), in which case the key
already ends with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Unit markers that are resolved against the map's unit.
MAP_UNIT = "map"
MAP_UNIT_SQUARED = "map2"


class GroupedValues:
    """Finite values of one map inside several ROIs, grouped by ROI and sorted within each.

    ``values`` holds ROI 0's values in ascending order, then ROI 1's, ...; ``counts[g]`` is the
    number of values of ROI ``g``. Derived arrays (means, ...) are computed once and cached, so
    statistics that share them (SD and variance) cost nothing extra.
    """

    def __init__(
        self, values: FloatArray, counts: npt.NDArray[np.int64], voxel_volume_ml: float
    ) -> None:
        self.values = values
        self.counts = counts
        self.voxel_volume_ml = float(voxel_volume_ml)
        self.starts = (np.cumsum(counts) - counts).astype(np.int64)

    @property
    def n_groups(self) -> int:
        """Number of ROIs."""
        return len(self.counts)

    @cached_property
    def group_ids(self) -> npt.NDArray[np.intp]:
        """ROI index of every entry of ``values``."""
        return np.repeat(np.arange(self.n_groups), self.counts)

    def _per_group_mean(self, x: FloatArray) -> FloatArray:
        sums = np.bincount(self.group_ids, weights=x, minlength=self.n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, sums / np.maximum(self.counts, 1), np.nan)

    @cached_property
    def mean(self) -> FloatArray:
        """Arithmetic mean per ROI (NaN for an empty ROI)."""
        return self._per_group_mean(self.values)

    @cached_property
    def variance(self) -> FloatArray:
        """Population variance per ROI, two-pass (mean first, then squared deviations)."""
        dev = self.values - self.mean[self.group_ids]
        return self._per_group_mean(dev * dev)

    def percentile(self, q_pct: float) -> FloatArray:
        """Linear-interpolation percentile per ROI, computed exactly as ``numpy.percentile``.

        Mirrors numpy's "linear" method step by step (virtual index ``n q + (1 - q) - 1``,
        then its lerp that switches formula at gamma = 0.5) so results agree to the last bit.
        """
        out = np.full(self.n_groups, np.nan)
        has = self.counts > 0
        if not np.any(has):
            return out
        n = self.counts[has].astype(np.float64)
        q = np.true_divide(q_pct, 100)
        virtual = n * q + (1 + q * (1 - 1 - 1)) - 1
        previous = np.floor(virtual)
        gamma = virtual - previous
        last = n - 1
        lo = np.clip(previous, 0, last).astype(np.int64)
        hi = np.clip(previous + 1, 0, last).astype(np.int64)
        base = self.starts[has]
        a = self.values[base + lo]
        b = self.values[base + hi]
        diff = b - a
        res = a + diff * gamma
        upper = gamma >= 0.5
        res[upper] = b[upper] - diff[upper] * (1 - gamma[upper])
        out[has] = res
        return out

    def first(self) -> FloatArray:
        """Smallest value per ROI."""
        out = np.full(self.n_groups, np.nan)
        has = self.counts > 0
        out[has] = self.values[self.starts[has]]
        return out

    def last(self) -> FloatArray:
        """Largest value per ROI."""
        out = np.full(self.n_groups, np.nan)
        has = self.counts > 0
        out[has] = self.values[self.starts[has] + self.counts[has] - 1]
        return out


@dataclass(frozen=True)
class Statistic:
    """One per-ROI statistic.

    ``key`` is its column in the long statistics table; ``unit`` is ``"map"``, ``"map2"`` or a
    fixed unit; ``formula`` is the definition (shown in documentation and table legends);
    ``compute`` returns one value per ROI from the grouped values.
    """

    key: str
    name: str
    unit: str
    formula: str
    compute: Callable[[GroupedValues], FloatArray]

    def unit_for(self, map_unit: str) -> str:
        """This statistic's unit for a map whose unit is ``map_unit`` (e.g. ``pct``)."""
        if self.unit == MAP_UNIT:
            return map_unit
        if self.unit == MAP_UNIT_SQUARED:
            return f"{map_unit}2"
        return self.unit

    def wide_column(self, map_kind: str, map_unit: str) -> str:
        """Column name in the wide (one row per level) table, e.g. ``pdff_mean_pct``.

        Statistics with a fixed unit already carry it in the key (``pdff_volume_ml``).
        """
        if self.unit in (MAP_UNIT, MAP_UNIT_SQUARED):
            return f"{map_kind}_{self.key}_{self.unit_for(map_unit)}"
        return f"{map_kind}_{self.key}"


_REGISTRY: dict[str, Statistic] = {}

#: All registered statistics in table order (read-only view).
STATISTICS: Mapping[str, Statistic] = MappingProxyType(_REGISTRY)


def register_statistic(stat: Statistic) -> Statistic:
    """Add ``stat`` to the registry (its key must be new). Returns it for reuse."""
    if stat.key in _REGISTRY:
        raise ValueError(f"statistic {stat.key!r} is already registered")
    if not stat.key.isidentifier() or stat.key != stat.key.lower():
        raise ValueError(f"statistic key must be a lower-case identifier, got {stat.key!r}")
    _REGISTRY[stat.key] = stat
    return stat


# -- the statistics ----------------------------------------------------------------------------
register_statistic(
    Statistic(
        key="n_voxels",
        name="Voxel count",
        unit="voxels",
        formula="N = number of ROI voxels with a finite map value",
        compute=lambda g: g.counts.astype(np.float64),
    )
)
register_statistic(
    Statistic(
        key="volume_ml",
        name="Volume",
        unit="ml",
        formula="N * voxel volume; voxel volume = |det(ijk_to_ras[:3, :3])| mm^3 / 1000",
        compute=lambda g: g.counts * g.voxel_volume_ml,
    )
)
register_statistic(
    Statistic(
        key="mean",
        name="Mean",
        unit=MAP_UNIT,
        formula="mean = (1/N) sum_i X(i)",
        compute=lambda g: g.mean,
    )
)
register_statistic(
    Statistic(
        key="sd",
        name="Standard deviation",
        unit=MAP_UNIT,
        formula="SD = sqrt((1/N) sum_i (X(i) - mean)^2)  (population SD, ddof = 0)",
        compute=lambda g: np.sqrt(g.variance),
    )
)
register_statistic(
    Statistic(
        key="variance",
        name="Variance",
        unit=MAP_UNIT_SQUARED,
        formula="variance = (1/N) sum_i (X(i) - mean)^2  (population variance, ddof = 0)",
        compute=lambda g: g.variance,
    )
)
register_statistic(
    Statistic(
        key="median",
        name="Median",
        unit=MAP_UNIT,
        formula="median = P(50) (mean of the two middle values when N is even)",
        compute=lambda g: g.percentile(50),
    )
)


def _percentile_statistic(q: int) -> Statistic:
    return Statistic(
        key=f"p{q:02d}",
        name=f"{q}th percentile",
        unit=MAP_UNIT,
        formula=f"P({q}) = x[h] + (h - floor(h)) (x[floor(h)+1] - x[floor(h)]), "
        f"h = (N - 1) * {q} / 100, x sorted ascending (numpy 'linear')",
        compute=lambda g: g.percentile(q),
    )


for _q in (5, 10, 25, 75, 90, 95):
    register_statistic(_percentile_statistic(_q))

register_statistic(
    Statistic(
        key="min",
        name="Minimum",
        unit=MAP_UNIT,
        formula="min = min_i X(i)",
        compute=lambda g: g.first(),
    )
)
register_statistic(
    Statistic(
        key="max",
        name="Maximum",
        unit=MAP_UNIT,
        formula="max = max_i X(i)",
        compute=lambda g: g.last(),
    )
)


def statistics_definitions(map_unit: str | None = None) -> list[dict[str, str]]:
    """Legend of the registered statistics (key, name, unit, formula), in table order.

    With ``map_unit`` (e.g. ``"pct"``) the units are resolved; otherwise ``map``/``map2`` mean
    "the map's unit" and "its square". Reports and table nodes show this next to the numbers.
    """
    return [
        {
            "key": s.key,
            "name": s.name,
            "unit": s.unit_for(map_unit) if map_unit else s.unit,
            "formula": s.formula,
        }
        for s in STATISTICS.values()
    ]
