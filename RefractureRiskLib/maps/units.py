"""Units of PDFF and R2* maps: the public home of unit detection and conversion.

Inside the library PDFF is percent (0-100) and R2* is 1/s. Stored PDFF may be a fraction (0-1),
percent or per-mille (0-1000); R2* may come as T2* in ms (R2*[1/s] = 1000 / T2*[ms]). Detection
uses header evidence first, then the value range, and raises :class:`InputError` when the range
is ambiguous (pass the unit explicitly); it never guesses.

The implementation lives in :mod:`RefractureRiskLib.io.dicom_units` because the loaders (``io``)
need it and a lower layer may not import a higher one; this module re-exports it and adds the
array-level helpers used by later map computations.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.io.dicom_units import (
    PDFF_UNITS,
    R2S_UNITS,
    UnitDecision,
    detect_pdff_unit,
    pdff_to_percent,
    r2s_unit_from_header,
    robust_range,
    to_r2s_per_s,
    unit_from_header,
)


def t2star_ms_to_r2s_per_s(t2star_ms: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """R2* (1/s) = 1000 / T2* (ms); T2* <= 0 or non-finite gives NaN (no R2* exists)."""
    t2s = np.asarray(t2star_ms, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t2s > 0, 1000.0 / t2s, np.nan)


def r2s_per_s_to_t2star_ms(r2s_per_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """T2* (ms) = 1000 / R2* (1/s); R2* <= 0 gives NaN."""
    r2s = np.asarray(r2s_per_s, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r2s > 0, 1000.0 / r2s, np.nan)


def pdff_percent(values: npt.ArrayLike, unit: str | None = None, source: str = "PDFF map"):
    """PDFF in percent from ``values`` stored in ``unit`` (None = detect from the range).

    Returns ``(percent array float32, decision text)``; raises InputError when ambiguous.
    """
    arr = np.array(values, dtype=np.float32)
    if unit is None:
        decision = detect_pdff_unit(arr, source=source)
        unit, why = decision.unit, decision.reason
    else:
        why = f"PDFF unit {unit} given explicitly"
    arr, text = pdff_to_percent(arr, unit, source=source)
    return arr, f"{why}; {text}"


__all__ = [
    "PDFF_UNITS",
    "R2S_UNITS",
    "UnitDecision",
    "detect_pdff_unit",
    "pdff_percent",
    "pdff_to_percent",
    "r2s_per_s_to_t2star_ms",
    "r2s_unit_from_header",
    "robust_range",
    "t2star_ms_to_r2s_per_s",
    "to_r2s_per_s",
    "unit_from_header",
]
