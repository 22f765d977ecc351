"""``np.percentile`` (default linear method) and ``np.median`` from one ``np.partition``, the
same values bit for bit.

``np.percentile`` and ``np.median`` import ``numpy.ma`` (~15 ms of a cold ``fatwater``
command, more than reading an ISMRM case); the separation's signal mask and the overview's
scales need a handful of percentiles and a median of flat arrays.
``Testing/test_fatwater_smooth.py`` checks them against numpy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def percentile(values: npt.ArrayLike, q: float) -> float:
    """The ``q``-th percentile (0-100) of all of ``values``, as ``float(np.percentile(values,
    q))``: numpy's virtual index ``q / 100 (n - 1)`` and its interpolation formula."""
    a = np.asarray(values).reshape(-1)
    if a.size == 0:
        raise ValueError("percentile of an empty array")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} outside 0-100")
    pos = q / 100.0 * (a.size - 1)
    lo = int(pos)
    hi = min(lo + 1, a.size - 1)
    below, above = _ranked(a, lo, hi)
    if np.isnan(below) or np.isnan(above):  # partition puts NaN last; numpy returns NaN
        return float("nan")
    t = pos - lo
    diff = above - below
    return float(above - diff * (1 - t) if t >= 0.5 else below + diff * t)


def median(values: npt.ArrayLike) -> float:
    """``float(np.median(values))`` over all of ``values`` (the mean of the one or two middle
    values, as numpy takes it) without ``np.median``'s import of ``numpy.ma``."""
    a = np.asarray(values).reshape(-1)
    if a.size == 0:
        raise ValueError("median of an empty array")
    hi = a.size // 2
    lo = hi - 1 if a.size % 2 == 0 else hi
    below, above = _ranked(a, lo, hi)
    if np.isnan(a).any():  # numpy returns NaN
        return float("nan")
    return float(np.mean(np.array([below, above] if hi > lo else [below])))


def _ranked(a: npt.NDArray, lo: int, hi: int) -> tuple:
    """``part[lo], part[hi]`` of ``np.partition(a, [lo, hi])`` (``hi`` is ``lo`` or ``lo +
    1``): one partition at ``lo`` (numpy's one-index partition is ~3x faster than its
    several-index one: 4 against 13 ms on 2.6 M float32), then the smallest value after it,
    NaN sorted last as numpy sorts it."""
    part = np.partition(a, lo)
    if hi == lo:
        return part[lo], part[lo]
    rest = part[hi:]
    above = rest.min()
    if np.isnan(above):  # NaN comes last: the smallest number, if any
        numbers = rest[~np.isnan(rest)]
        above = numbers.min() if numbers.size else above
    return part[lo], above
