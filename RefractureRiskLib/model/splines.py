"""Restricted cubic splines in Harrell's parameterisation (``rms::rcs``), numpy only.

A restricted (natural) cubic spline with knots t_1 < ... < t_k is linear beyond the outer knots
and has k - 1 basis columns: x itself and, for j = 1 .. k - 2,

    ((x - t_j)_+^3 - (x - t_{k-1})_+^3 (t_k - t_j) / (t_k - t_{k-1})
                   + (x - t_k)_+^3 (t_{k-1} - t_j) / (t_k - t_{k-1})) / (t_k - t_1)^2

The division by (t_k - t_1)^2 is ``rcspline.eval(..., norm=2)``, the default in ``rms``, so
coefficients are comparable with those of ``lrm(y ~ rcs(x, k))``. The basis is in the unit of x
(cubed terms are rescaled to that unit by the normalisation). Scoring imports this module, so it
must not need anything beyond numpy.
"""

from __future__ import annotations

import numpy as np

#: Harrell's default knot quantiles (``rms::rcspline.eval``), by number of knots.
DEFAULT_KNOT_QUANTILES: dict[int, tuple[float, ...]] = {
    3: (0.10, 0.50, 0.90),
    4: (0.05, 0.35, 0.65, 0.95),
    5: (0.05, 0.275, 0.50, 0.725, 0.95),
    6: (0.05, 0.23, 0.41, 0.59, 0.77, 0.95),
    7: (0.025, 0.1833, 0.3417, 0.50, 0.6583, 0.8167, 0.975),
}


def default_knots(values: np.ndarray, n_knots: int = 4) -> tuple[float, ...]:
    """Knots at Harrell's default quantiles of the non-missing ``values``.

    As in ``rcspline.eval``: with fewer than 100 values the outer knots move to the 5th smallest
    and 5th largest value. Raises ValueError when the knots are not distinct (too few values).
    """
    if n_knots not in DEFAULT_KNOT_QUANTILES:
        raise ValueError(f"n_knots must be one of {sorted(DEFAULT_KNOT_QUANTILES)}, got {n_knots}")
    x = np.asarray(values, dtype=float)
    x = np.sort(x[np.isfinite(x)])
    knots = np.quantile(x, DEFAULT_KNOT_QUANTILES[n_knots])  # type 7, as R's default
    if x.size < 100 and x.size >= 10:
        knots[0] = x[4]
        knots[-1] = x[-5]
    if np.any(np.diff(knots) <= 0):
        raise ValueError(f"{n_knots} distinct knots cannot be placed on these values")
    return tuple(float(k) for k in knots)


def rcs_basis(x: np.ndarray, knots: tuple[float, ...] | list[float]) -> np.ndarray:
    """Basis matrix (len(x), k - 1) of Harrell's restricted cubic spline at ``knots``."""
    t = np.asarray(knots, dtype=float)
    k = t.size
    if k < 3:
        raise ValueError("a restricted cubic spline needs at least 3 knots")
    x = np.asarray(x, dtype=float).reshape(-1)
    norm = (t[-1] - t[0]) ** 2
    out = np.empty((x.size, k - 1))
    out[:, 0] = x
    tail_km1 = np.clip(x - t[-2], 0.0, None) ** 3
    tail_k = np.clip(x - t[-1], 0.0, None) ** 3
    span = t[-1] - t[-2]
    for j in range(k - 2):
        out[:, j + 1] = (
            np.clip(x - t[j], 0.0, None) ** 3
            - tail_km1 * (t[-1] - t[j]) / span
            + tail_k * (t[-2] - t[j]) / span
        ) / norm
    return out
