"""Reader agreement: intraclass correlation and Bland-Altman limits.

ICC(A,1) (McGraw & Wong 1996; Shrout & Fleiss ICC(2,1)): two-way random effects, absolute
agreement, single rater. For an ``n x k`` table Y (subjects x raters) with mean squares

- rows (subjects)  MSR = k * sum_i (mean_i. - mean..)^2 / (n - 1)
- columns (raters) MSC = n * sum_j (mean_.j - mean..)^2 / (k - 1)
- residual         MSE = sum_ij (y_ij - mean_i. - mean_.j + mean..)^2 / ((n - 1)(k - 1))

ICC(A,1) = (MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n), with the McGraw & Wong
F-based 95% confidence interval (the one R's ``psych::ICC`` reports). ICC(C,1) (consistency,
Shrout & Fleiss ICC(3,1)) = (MSR - MSE) / (MSR + (k - 1) MSE) is given for reference.

Bland-Altman: differences d = a - b; bias = mean(d); limits of agreement bias +- 1.96 SD(d)
(SD with n - 1), in the unit of the measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as sps


@dataclass(frozen=True)
class IccResult:
    """ICC(A,1) with its 95% CI, ICC(C,1), and the table size it came from."""

    icc_a1: float
    ci95_low: float
    ci95_high: float
    icc_c1: float
    n_subjects: int
    n_raters: int


@dataclass(frozen=True)
class BlandAltman:
    """Bias and 95% limits of agreement of ``a - b`` (unit of the measurement)."""

    bias: float
    sd_diff: float
    loa_low: float
    loa_high: float
    n: int


def icc_absolute_agreement(table: npt.ArrayLike, alpha: float = 0.05) -> IccResult:
    """ICC(A,1) of an ``n subjects x k raters`` table without missing values."""
    y = np.asarray(table, dtype=float)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 2:
        raise ValueError(f"ICC needs at least 2 subjects x 2 raters, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("ICC table has missing or non-finite values; drop incomplete subjects")
    n, k = y.shape
    grand = y.mean()
    row_means = y.mean(axis=1)
    col_means = y.mean(axis=0)
    msr = k * np.sum((row_means - grand) ** 2) / (n - 1)
    msc = n * np.sum((col_means - grand) ** 2) / (k - 1)
    resid = y - row_means[:, None] - col_means[None, :] + grand
    mse = np.sum(resid**2) / ((n - 1) * (k - 1))
    denom = msr + (k - 1) * mse + k * (msc - mse) / n
    icc = float((msr - mse) / denom) if denom > 0 else float("nan")
    icc_c = float((msr - mse) / (msr + (k - 1) * mse)) if msr + (k - 1) * mse > 0 else np.nan

    low = high = float("nan")
    if np.isfinite(icc) and icc < 1 and mse > 0:
        a = k * icc / (n * (1 - icc))
        b = 1 + k * icc * (n - 1) / (n * (1 - icc))
        v = (a * msc + b * mse) ** 2 / (
            (a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1))
        )
        f_l = sps.f.ppf(1 - alpha / 2, n - 1, v)
        f_u = sps.f.ppf(1 - alpha / 2, v, n - 1)
        low = float(n * (msr - f_l * mse) / (f_l * (k * msc + (k * n - k - n) * mse) + n * msr))
        high = float(n * (f_u * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f_u * msr))
    return IccResult(icc, low, high, float(icc_c), n, k)


def bland_altman(a: npt.ArrayLike, b: npt.ArrayLike) -> BlandAltman:
    """Bland-Altman bias and limits of agreement for paired measurements ``a`` and ``b``."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired 1D measurements needed, got shapes {x.shape} and {y.shape}")
    if len(x) < 2:
        raise ValueError(f"Bland-Altman needs at least 2 pairs, got {len(x)}")
    d = x - y
    bias = float(d.mean())
    sd = float(d.std(ddof=1))
    return BlandAltman(bias, sd, bias - 1.96 * sd, bias + 1.96 * sd, len(d))
