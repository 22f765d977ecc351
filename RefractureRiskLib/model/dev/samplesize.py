"""Minimum sample size for developing a risk model with a binary outcome (Riley et al.).

Four criteria (Riley et al., Stat Med 2019;38:1276-96, "Minimum sample size for developing a
multivariable prediction model: part II - binary and time-to-event outcomes" [2018 online]; and
Riley et al., BMJ 2020;368:m441, "Calculating the sample size required for developing a clinical
prediction model"). With P candidate predictor parameters, outcome proportion phi and the
anticipated Cox-Snell R^2 of the model (R2):

1. Small overfitting: expected uniform shrinkage S >= 0.9,
   ``n = P / ((S - 1) * ln(1 - R2 / S))``.
2. Small optimism in the apparent Nagelkerke R^2 (<= 0.05): criterion 1 with
   ``S = R2 / (R2 + 0.05 * max_R2)``, ``max_R2 = 1 - exp(2 * (phi ln phi + (1-phi) ln(1-phi)))``.
3. Precise overall risk (intercept): 95% CI half-width <= 0.05,
   ``n = (1.96 / 0.05)^2 * phi * (1 - phi)``.
4. Small mean absolute prediction error (MAPE <= 0.05) from van Smeden et al. (Stat Methods
   Med Res 2019;28:2455-74) as given in Riley 2020 (box 1):
   ``ln(MAPE) = -0.508 + 0.259 ln(phi) + 0.504 ln(P) - 0.544 ln(n)``.

Criteria 1-3 are computed exactly as the ``pmsampsize`` packages (R/Stata/Python) compute them,
including their rounding of the Cox-Snell R^2 (4 decimals when it comes from a C-statistic,
3 when from a Nagelkerke R^2) and the conversion of a C-statistic to R^2 by simulating one
million linear predictors (Riley et al., Diagn Progn Res 2021;5:1, with the packages' seed
123456 and their random-number stream). pmsampsize reports criteria 1-3 only; criterion 4 is
reported beside them and included in :attr:`SampleSizeResult.minimum_n`.

Numpy only (no statsmodels): the calibration model of the C-statistic conversion is fitted by
Newton-Raphson (the anticipated R^2 is :mod:`.anticipated_r2`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.dev.anticipated_r2 import (
    PMSAMPSIZE_SEED,
    anticipated_r2,
    check_open_unit,
    max_r2_cs,
    r2_cs_from_c_statistic,
)

__all__ = [
    "DEFAULT_NAGELKERKE_R2",
    "PMSAMPSIZE_SEED",
    "Criterion",
    "SampleSizeResult",
    "SupportedParameters",
    "max_r2_cs",
    "r2_cs_from_c_statistic",
    "riley_sample_size",
    "supported_parameters",
]

#: Nagelkerke R^2 to assume when nothing better is known (Riley et al. 2020, conservative).
DEFAULT_NAGELKERKE_R2 = 0.15


@dataclass(frozen=True)
class Criterion:
    """One criterion's required sample size.

    ``shrinkage``: the expected shrinkage this criterion targets (None for criterion 4);
    ``events``: ``n * prevalence``; ``epp``: events per candidate parameter.
    """

    number: int
    name: str
    n: int
    shrinkage: float | None
    events: float
    epp: float


@dataclass(frozen=True)
class SampleSizeResult:
    """Riley criteria for one set of assumptions.

    ``minimum_n``: the largest of all four criteria; ``minimum_n_pmsampsize``: the largest of
    criteria 1-3 (what pmsampsize reports as "Final SS"); ``final_shrinkage``: the larger of the
    target shrinkage and criterion 2's (pmsampsize's "final shrinkage").
    """

    parameters: int
    prevalence: float
    r2_cs: float
    max_r2_cs: float
    nagelkerke_r2: float
    c_statistic: float | None
    shrinkage_target: float
    mape: float
    criteria: tuple[Criterion, ...]
    minimum_n: int
    minimum_n_pmsampsize: int
    final_shrinkage: float

    @property
    def events(self) -> float:
        """Expected events at :attr:`minimum_n`."""
        return self.minimum_n * self.prevalence

    @property
    def epp(self) -> float:
        """Events per candidate parameter at :attr:`minimum_n`."""
        return self.events / self.parameters

    def table(self) -> pd.DataFrame:
        """One row per criterion plus the final row (columns as in pmsampsize's table)."""
        rows = [(f"{c.number}: {c.name}", c.n, c.shrinkage, c.events, c.epp) for c in self.criteria]
        rows.append(
            ("final (largest)", self.minimum_n, self.final_shrinkage, self.events, self.epp)
        )
        return pd.DataFrame(rows, columns=["criterion", "n", "shrinkage", "events", "epp"])

    def format_table(self) -> str:
        """A text table and the assumptions, for the command line and training logs."""
        src = (
            f"C-statistic {self.c_statistic:g} -> " if self.c_statistic is not None else ""
        ) + f"Cox-Snell R^2 {self.r2_cs:.4g}"
        lines = [
            f"Sample size for a binary-outcome model (Riley et al. 2019/2020): "
            f"{self.parameters} candidate parameters, outcome proportion {self.prevalence:g}",
            f"Anticipated {src} (max {self.max_r2_cs:.3f}, Nagelkerke {self.nagelkerke_r2:.3f}); "
            f"target shrinkage {self.shrinkage_target:g}, MAPE {self.mape:g}",
            "",
            f"{'criterion':<46} {'n':>7} {'shrinkage':>10} {'events':>8} {'EPP':>6}",
        ]
        for c in self.criteria:
            shrink = f"{c.shrinkage:.3f}" if c.shrinkage is not None else "-"
            lines.append(
                f"{c.number}: {c.name:<43} {c.n:>7d} {shrink:>10} {c.events:>8.1f} {c.epp:>6.2f}"
            )
        lines += [
            "-" * 81,
            f"{'minimum sample size (largest of 1-4)':<46} {self.minimum_n:>7d} "
            f"{self.final_shrinkage:>10.3f} {self.events:>8.1f} {self.epp:>6.2f}",
            f"(criteria 1-3 alone, as pmsampsize reports: {self.minimum_n_pmsampsize})",
        ]
        return "\n".join(lines)


def riley_sample_size(
    n_parameters: int,
    prevalence: float,
    c_statistic: float | None = None,
    r2_cs: float | None = None,
    shrinkage: float = 0.9,
    mape: float = 0.05,
    *,
    nagelkerke_r2: float | None = None,
    r2_difference: float = 0.05,
    intercept_margin: float = 0.05,
    seed: int = PMSAMPSIZE_SEED,
) -> SampleSizeResult:
    """Minimum development sample size by the four Riley criteria (see module doc).

    Give exactly one of ``c_statistic`` (anticipated, ideally optimism-corrected; converted to a
    Cox-Snell R^2 and rounded to 4 decimals as pmsampsize does), ``r2_cs`` (anticipated Cox-Snell
    R^2, used as given) or ``nagelkerke_r2`` (rescaled by max R^2, rounded to 3 decimals as
    pmsampsize does). ``shrinkage``: target expected shrinkage (criterion 1); ``mape``: target
    mean absolute prediction error (criterion 4); ``r2_difference`` / ``intercept_margin``: the
    0.05 tolerances of criteria 2 and 3.
    """
    p = _checked_parameters(n_parameters, prevalence, shrinkage, mape)
    r2, c_used = anticipated_r2(prevalence, c_statistic, r2_cs, nagelkerke_r2, seed)
    r2_max = max_r2_cs(prevalence)
    _check_r2(r2, r2_max, prevalence, shrinkage)
    s2 = r2 / (r2 + r2_difference * r2_max)
    criteria = _criteria(p, prevalence, r2, s2, shrinkage, mape, r2_difference, intercept_margin)
    n1, n2, n3, n4 = (c.n for c in criteria)
    return SampleSizeResult(
        parameters=p,
        prevalence=float(prevalence),
        r2_cs=float(r2),
        max_r2_cs=r2_max,
        nagelkerke_r2=float(r2 / r2_max),
        c_statistic=c_used,
        shrinkage_target=float(shrinkage),
        mape=float(mape),
        criteria=criteria,
        minimum_n=max(n1, n2, n3, n4),
        minimum_n_pmsampsize=max(n1, n2, n3),
        final_shrinkage=max(s2, shrinkage),
    )


def _checked_parameters(n_parameters: int, prevalence: float, shrinkage: float, mape: float) -> int:
    """The number of parameters as an int; refuses it or a proportion out of range."""
    if isinstance(n_parameters, bool) or int(n_parameters) != n_parameters or n_parameters < 1:
        raise InputError("n_parameters", f"must be a positive whole number, got {n_parameters!r}")
    check_open_unit("prevalence", prevalence)
    check_open_unit("shrinkage", shrinkage)
    check_open_unit("mape", mape)
    return int(n_parameters)


def _check_r2(r2: float, r2_max: float, prevalence: float, shrinkage: float) -> None:
    """Refuse an R^2 at or above its maximum for the prevalence, or not below the shrinkage."""
    if r2 >= r2_max:
        raise InputError(
            "r2_cs",
            f"Cox-Snell R^2 {r2:g} is not below its maximum {r2_max:.4f} for prevalence "
            f"{prevalence:g} (Riley 2019, eq. 23)",
        )
    if shrinkage <= r2:
        raise InputError("shrinkage", f"{shrinkage:g} must exceed the Cox-Snell R^2 {r2:g}")


def _criteria(
    p: int,
    prevalence: float,
    r2: float,
    s2: float,
    shrinkage: float,
    mape: float,
    r2_difference: float,
    intercept_margin: float,
) -> tuple[Criterion, ...]:
    """The four criteria: (1) shrinkage, (2) optimism in R^2 (shrinkage ``s2``), (3) the overall
    risk, (4) the mean absolute prediction error; each with its sample size."""

    def crit(number: int, name: str, n: int, s: float | None) -> Criterion:
        events = n * prevalence
        return Criterion(number, name, n, s, events, events / p)

    n1 = math.ceil(p / ((shrinkage - 1) * math.log(1 - r2 / shrinkage)))
    n2 = math.ceil(p / ((s2 - 1) * math.log(1 - r2 / s2)))
    n3 = math.ceil((1.96 / intercept_margin) ** 2 * prevalence * (1 - prevalence))
    n4 = math.ceil(_mape_n(p, prevalence, mape))
    return (
        crit(1, f"expected shrinkage >= {shrinkage:g}", n1, shrinkage),
        crit(2, f"optimism in Nagelkerke R^2 <= {r2_difference:g}", n2, s2),
        crit(3, f"overall risk within +/-{intercept_margin:g}", n3, max(s2, shrinkage)),
        crit(4, f"mean absolute prediction error <= {mape:g}", n4, None),
    )


@dataclass(frozen=True)
class SupportedParameters:
    """How many candidate parameters a cohort of ``n`` with ``events`` supports.

    ``max_parameters``: the largest P meeting criteria 1, 2 and 4 (0 if none);
    ``by_criterion``: that maximum per criterion (1, 2, 4); ``intercept_precise``: whether
    criterion 3 (independent of P) holds; ``r2_cs``: the anticipated Cox-Snell R^2 used.
    """

    n: int
    events: int
    prevalence: float
    r2_cs: float
    max_parameters: int
    by_criterion: dict[int, int]
    intercept_precise: bool
    n_required_for_intercept: int

    def message(self) -> str:
        parts = ", ".join(f"criterion {k}: {v}" for k, v in self.by_criterion.items())
        text = (
            f"{self.n} patients with {self.events} events (proportion {self.prevalence:.3f}) "
            f"support at most {self.max_parameters} candidate parameters "
            f"(Riley criteria, anticipated Cox-Snell R^2 {self.r2_cs:.4f}; {parts})"
        )
        if not self.intercept_precise:
            text += (
                f"; too few patients to estimate the overall risk within +/-0.05 "
                f"(needs {self.n_required_for_intercept})"
            )
        return text


def supported_parameters(
    n: int,
    events: int,
    c_statistic: float | None = None,
    r2_cs: float | None = None,
    shrinkage: float = 0.9,
    mape: float = 0.05,
    *,
    nagelkerke_r2: float | None = None,
    r2_difference: float = 0.05,
    intercept_margin: float = 0.05,
    seed: int = PMSAMPSIZE_SEED,
) -> SupportedParameters:
    """The largest number of candidate parameters a cohort supports under the Riley criteria.

    Inverts criteria 1, 2 and 4 for P at the given ``n`` and outcome proportion ``events / n``
    (criteria 1 and 2 hold exactly when ``P <= n * (S - 1) * ln(1 - R2 / S)``). The anticipated
    performance is given as in :func:`riley_sample_size`; when none is given, a Nagelkerke R^2
    of :data:`DEFAULT_NAGELKERKE_R2` (0.15) is assumed, the conservative choice of Riley 2020.
    """
    if n < 1 or not 0 < events < n:
        raise InputError("events", f"need 0 < events < n, got n={n}, events={events}")
    prevalence = events / n
    if c_statistic is None and r2_cs is None and nagelkerke_r2 is None:
        nagelkerke_r2 = DEFAULT_NAGELKERKE_R2
    r2, _ = anticipated_r2(prevalence, c_statistic, r2_cs, nagelkerke_r2, seed)
    r2_max = max_r2_cs(prevalence)
    s2 = r2 / (r2 + r2_difference * r2_max)
    by = {
        1: _max_p_shrinkage(n, r2, shrinkage),
        2: _max_p_shrinkage(n, r2, s2),
        4: _max_p_mape(n, prevalence, mape),
    }
    n3 = math.ceil((1.96 / intercept_margin) ** 2 * prevalence * (1 - prevalence))
    return SupportedParameters(
        n=int(n),
        events=int(events),
        prevalence=prevalence,
        r2_cs=r2,
        max_parameters=max(0, min(by.values())),
        by_criterion=by,
        intercept_precise=n >= n3,
        n_required_for_intercept=n3,
    )


def _max_p_shrinkage(n: int, r2: float, s: float) -> int:
    # n >= ceil(P / k) <=> P <= n k, with k = (S - 1) ln(1 - R2/S) > 0; a tiny tolerance keeps
    # an exact boundary (P = n k in floating point) on the supported side.
    k = (s - 1) * math.log(1 - r2 / s)
    return math.floor(n * k + 1e-9)


def _mape_n(p: int, prevalence: float, mape: float) -> float:
    return math.exp(
        (-0.508 + 0.259 * math.log(prevalence) + 0.504 * math.log(p) - math.log(mape)) / 0.544
    )


def _max_p_mape(n: int, prevalence: float, mape: float) -> int:
    # ceil(_mape_n(P)) <= n  <=>  _mape_n(P) <= n, and _mape_n increases with P.
    p_real = math.exp(
        (math.log(mape) + 0.508 - 0.259 * math.log(prevalence) + 0.544 * math.log(n)) / 0.504
    )
    p = math.floor(p_real + 1e-9)
    while p >= 1 and math.ceil(_mape_n(p, prevalence, mape)) > n:
        p -= 1
    return max(p, 0)
