"""Units of stored PDFF and R2*/T2* values: detection from header evidence and value range.

Inside the library PDFF is percent (0-100) and R2* is 1/s. Vendors store PDFF as a fraction
(0-1), percent or per-mille (0-1000), and Philips may store T2* in ms instead of R2*. The rules:

1. Header evidence first: a Real World Value Mapping unit (UCUM ``%``, ``ppt``, ``/s``, ``ms``,
   ``s``) or RescaleType ``PCT``/``PERCENT``. The value range must agree with it; a contradiction
   is an error.
2. Otherwise the value range (robust maximum = 99.9th percentile of finite values) decides:
   <= 1.1 fraction, 15-110 percent, 110-1100 per-mille. Anything else is ambiguous and an error
   that names the range and asks for an explicit unit (``pdff_unit=``); never a guess.
3. An explicit unit from the caller overrides detection but is still range-checked after
   conversion (the 0.1th-99.9th percentile range must lie within -10..110 %).

This module lives in ``io`` because the loader needs it and ``io`` may not import ``maps``;
:mod:`RefractureRiskLib.maps.units` re-exports it as the public home of unit handling.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.errors import InputError

#: Stored PDFF units and the factor to percent.
PDFF_UNITS: dict[str, float] = {"fraction": 100.0, "percent": 1.0, "permille": 0.1}
#: Stored R2*/T2* units.
R2S_UNITS: tuple[str, ...] = ("per_s", "per_ms", "t2star_ms", "t2star_s")

_FRACTION_MAX = 1.1
_PERCENT_MIN, _PERCENT_MAX = 15.0, 110.0
_PERCENT_LOW = -10.0
_PERMILLE_MAX = 1100.0

_PCT_CODES = {"%", "PERCENT", "PCT"}
_PERMILLE_CODES = {"PPT", "PERMILLE", "‰", "[PPTH]", "10*-3"}
_FRACTION_CODES = {"RATIO", "FRACTION"}


@dataclass(frozen=True)
class UnitDecision:
    """A chosen unit and the evidence for it (recorded in provenance)."""

    unit: str
    reason: str


def robust_range(values: npt.ArrayLike) -> tuple[float, float, float]:
    """(min, 99.9th percentile, max) of the finite values; NaN-free input not required."""
    v = np.asarray(values)
    if np.issubdtype(v.dtype, np.floating):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN input
            lo, top = (
                float(np.nanmin(v)) if v.size else np.nan,
                float(np.nanmax(v)) if v.size else np.nan,
            )
        if not np.isfinite(lo) or not np.isfinite(top):  # infinities present: drop them
            finite = v[np.isfinite(v)]
            if finite.size == 0:
                return float("nan"), float("nan"), float("nan")
            lo, top, v = float(finite.min()), float(finite.max()), finite
    else:
        if v.size == 0:
            return float("nan"), float("nan"), float("nan")
        lo, top = float(v.min()), float(v.max())
    sample = v.ravel()
    if sample.size > 200_000:  # a strided sample is enough for a percentile
        sample = sample[:: sample.size // 200_000 + 1]
    if np.issubdtype(sample.dtype, np.floating):
        sample = sample[np.isfinite(sample)]
    hi = float(np.percentile(sample, 99.9)) if sample.size else top
    return lo, hi, top


def low_percentile(values: npt.ArrayLike) -> float:
    """0.1th percentile of the finite values (a strided sample of large arrays)."""
    sample = np.asarray(values).ravel()
    if sample.size > 200_000:
        sample = sample[:: sample.size // 200_000 + 1]
    if np.issubdtype(sample.dtype, np.floating):
        sample = sample[np.isfinite(sample)]
    return float(np.percentile(sample, 0.1)) if sample.size else float("nan")


def unit_from_header(units_code: str | None, rescale_type: str | None = None) -> str | None:
    """PDFF unit named by a real-world-value unit code or RescaleType, or None."""
    for text in (units_code, rescale_type):
        if not text:
            continue
        t = text.strip().upper()
        if t in _PCT_CODES:
            return "percent"
        if t in _PERMILLE_CODES:
            return "permille"
        if t in _FRACTION_CODES:
            return "fraction"
    return None


def _range_unit(hi: float) -> str | None:
    if hi <= _FRACTION_MAX:
        return "fraction"
    if _PERCENT_MIN <= hi <= _PERCENT_MAX:
        return "percent"
    if _PERCENT_MAX < hi <= _PERMILLE_MAX:
        return "permille"
    return None


def detect_pdff_unit(
    values: npt.ArrayLike,
    *,
    header_unit: str | None = None,
    header_evidence: str = "",
    source: str = "PDFF map",
) -> UnitDecision:
    """Decide the stored PDFF unit from header evidence and the value range.

    ``header_unit`` is what :func:`unit_from_header` found (None = no evidence) and
    ``header_evidence`` says where it came from. Raises :class:`InputError` when the range is
    ambiguous or contradicts the header.
    """
    lo, hi, top = robust_range(values)
    if not np.isfinite(hi):
        raise InputError(source, "no finite values: cannot decide the PDFF unit")
    shown = f"values {lo:.4g}..{top:.4g} (99.9th percentile {hi:.4g})"
    by_range = _range_unit(hi)
    if header_unit is not None:
        limit = _PERCENT_MAX / PDFF_UNITS[header_unit]
        if hi > limit or (header_unit != "fraction" and by_range == "fraction" and hi > 0):
            raise InputError(
                source,
                f"header says {header_unit} ({header_evidence}) but {shown} do not fit that "
                f"unit; pass an explicit pdff_unit ('fraction', 'percent' or 'permille')",
            )
        return UnitDecision(header_unit, f"unit {header_unit} from {header_evidence}; {shown}")
    if by_range is None or hi <= 0:
        raise InputError(
            source,
            f"ambiguous PDFF unit: {shown} fit none of fraction (<= {_FRACTION_MAX}), percent "
            f"({_PERCENT_MIN:g}-{_PERCENT_MAX:g}) or per-mille ({_PERCENT_MAX:g}-"
            f"{_PERMILLE_MAX:g}) and the header gives no unit; pass pdff_unit='fraction', "
            f"'percent' or 'permille' explicitly",
        )
    return UnitDecision(by_range, f"unit {by_range} from the value range ({shown}); no header unit")


def pdff_to_percent(
    values: npt.NDArray[np.float32], unit: str, source: str = "PDFF map"
) -> tuple[npt.NDArray[np.float32], str]:
    """Convert stored PDFF in ``unit`` to percent (in place when float32); returns the text.

    The converted range is checked: the 0.1th and 99.9th percentiles must lie within -10..110 %
    (noise may put single voxels a little outside 0-100); otherwise :class:`InputError` (a wrong
    explicit unit, or not a PDFF map).
    """
    if unit not in PDFF_UNITS:
        raise InputError(source, f"unknown PDFF unit {unit!r}; expected {tuple(PDFF_UNITS)}")
    factor = PDFF_UNITS[unit]
    if factor != 1.0:
        values *= np.float32(factor)
    lo, hi, top = robust_range(values)
    low = low_percentile(values)
    if np.isfinite(hi) and (hi > _PERCENT_MAX or low < _PERCENT_LOW):
        raise InputError(
            source,
            f"after converting from {unit} the PDFF is {lo:.4g}..{top:.4g} % (0.1th-99.9th "
            f"percentile {low:.4g}..{hi:.4g}), outside {_PERCENT_LOW:g}..{_PERCENT_MAX:g} %: "
            f"wrong unit or not a PDFF map",
        )
    text = (
        "PDFF unit percent: no conversion"
        if factor == 1.0
        else f"PDFF {unit} -> percent (x{factor:g})"
    )
    return values, text


def r2s_unit_from_header(units_code: str | None) -> str | None:
    """R2*/T2* unit from a real-world-value unit code (UCUM), or None."""
    if not units_code:
        return None
    t = units_code.strip()
    return {
        "/s": "per_s",
        "1/s": "per_s",
        "s-1": "per_s",
        "Hz": "per_s",
        "/ms": "per_ms",
        "1/ms": "per_ms",
        "ms": "t2star_ms",
        "s": "t2star_s",
    }.get(t)


def to_r2s_per_s(
    values: npt.NDArray[np.float32], unit: str, source: str = "R2* map"
) -> tuple[npt.NDArray[np.float32], str]:
    """Convert stored R2* (1/s, 1/ms) or T2* (ms, s) to R2* in 1/s; returns the text.

    T2* <= 0 has no R2*: those voxels become NaN and are counted in the returned text.
    """
    if unit not in R2S_UNITS:
        raise InputError(source, f"unknown R2*/T2* unit {unit!r}; expected {R2S_UNITS}")
    if unit == "per_s":
        return values, "R2* unit 1/s: no conversion"
    if unit == "per_ms":
        values *= np.float32(1000.0)
        return values, "R2* 1/ms -> 1/s (x1000)"
    numerator = np.float32(1000.0 if unit == "t2star_ms" else 1.0)
    bad = ~(values > 0)
    n_bad = int(bad.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(numerator, values, out=values)
    values[bad] = np.nan
    name = "ms" if unit == "t2star_ms" else "s"
    text = f"T2* ({name}) -> R2* (1/s) = {numerator:g} / T2*"
    if n_bad:
        text += f"; {n_bad} voxel(s) with T2* <= 0 set to NaN"
    return values, text
