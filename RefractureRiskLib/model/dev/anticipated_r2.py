"""The anticipated Cox-Snell R^2 of a model, for the minimum sample size (:mod:`.samplesize`).

From a C-statistic (Riley et al., Diagn Progn Res 2021;5:1: one million simulated linear
predictors with the pmsampsize packages' seed 123456 and random stream, a logistic calibration
model fitted by Newton-Raphson, the R^2 rounded to 4 decimals), from a Nagelkerke R^2 (rescaled by
the largest possible Cox-Snell R^2, rounded to 3 decimals) or as given; as pmsampsize does.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.stats import norm

from RefractureRiskLib.core.errors import InputError

#: Seed and simulated size the pmsampsize packages use to turn a C-statistic into R^2.
PMSAMPSIZE_SEED = 123456
PMSAMPSIZE_SIM_N = 1_000_000


def max_r2_cs(prevalence: float) -> float:
    """Largest Cox-Snell R^2 possible for an outcome proportion (Riley 2019, eq. 23)."""
    ln_null = prevalence * math.log(prevalence) + (1 - prevalence) * math.log(1 - prevalence)
    return 1.0 - math.exp(2.0 * ln_null)


def r2_cs_from_c_statistic(
    c_statistic: float,
    prevalence: float,
    *,
    seed: int = PMSAMPSIZE_SEED,
    n_sim: int = PMSAMPSIZE_SIM_N,
) -> float:
    """Cox-Snell R^2 implied by a C-statistic and outcome proportion (Riley et al. 2021).

    Linear predictors of non-events ~ N(0, 1) and events ~ N(sqrt(2) * Phi^-1(C), 1); a logistic
    calibration model of the outcome on them gives the likelihood-ratio R^2. Uses the same random
    stream as pmsampsize (numpy's legacy generator seeded with ``seed``) so the results agree.
    """
    check_open_unit("c_statistic", c_statistic)
    check_open_unit("prevalence", prevalence)
    return _r2_from_c_cached(float(c_statistic), float(prevalence), int(seed), int(n_sim))


@functools.lru_cache(maxsize=64)
def _r2_from_c_cached(c: float, prevalence: float, seed: int, n_sim: int) -> float:
    mu = math.sqrt(2.0) * norm.ppf(c)
    # pmsampsize draws the first block at N(0,1) for prevalence*n and labels it 0: the labels
    # are swapped relative to the description, which leaves R^2 unchanged; kept for agreement.
    n0 = int(prevalence * n_sim)
    n1 = int((1 - prevalence) * n_sim)
    rs = np.random.RandomState(seed)
    lp = np.concatenate([rs.normal(0.0, 1.0, n0), rs.normal(mu, 1.0, n1)])
    y = np.concatenate([np.zeros(n0), np.ones(n1)])
    n = n0 + n1
    ll_model = _logistic_loglik_max(lp, y)
    k = y.sum()
    ll_null = k * math.log(k / n) + (n - k) * math.log(1 - k / n)
    return 1.0 - math.exp(-2.0 * (ll_model - ll_null) / n)


def _logistic_loglik_max(x: np.ndarray, y: np.ndarray) -> float:
    """Maximised log-likelihood of y ~ logit(a + b x) (Newton-Raphson, 2 parameters)."""
    beta = np.zeros(2)
    for _ in range(100):
        eta = beta[0] + beta[1] * x
        p = 1.0 / (1.0 + np.exp(-eta))
        w = p * (1.0 - p)
        r = y - p
        grad = np.array([r.sum(), (r * x).sum()])
        hess = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-12:
            break
    eta = beta[0] + beta[1] * x
    # log(p) = -log(1+exp(-eta)), log(1-p) = -log(1+exp(eta))
    return float(-(y * np.logaddexp(0, -eta) + (1 - y) * np.logaddexp(0, eta)).sum())


def anticipated_r2(
    prevalence: float,
    c_statistic: float | None,
    r2_cs: float | None,
    nagelkerke_r2: float | None,
    seed: int,
) -> tuple[float, float | None]:
    """(Cox-Snell R^2, the C-statistic it came from or None) from exactly one of the three."""
    given = [x is not None for x in (c_statistic, r2_cs, nagelkerke_r2)]
    if sum(given) != 1:
        raise InputError(None, "give exactly one of c_statistic, r2_cs or nagelkerke_r2")
    if c_statistic is not None:
        if not 0.5 < c_statistic < 1:
            raise InputError("c_statistic", f"must be in (0.5, 1), got {c_statistic}")
        r2 = round(r2_cs_from_c_statistic(c_statistic, prevalence, seed=seed), 4)
        return r2, float(c_statistic)
    if r2_cs is not None:
        check_open_unit("r2_cs", r2_cs)
        return float(r2_cs), None
    assert nagelkerke_r2 is not None
    check_open_unit("nagelkerke_r2", nagelkerke_r2)
    return round(nagelkerke_r2 * max_r2_cs(prevalence), 3), None


def check_open_unit(name: str, value: float) -> None:
    """Refuse ``value`` unless it is a number strictly between 0 and 1, naming ``name``."""
    if not isinstance(value, int | float) or not 0.0 < float(value) < 1.0:
        raise InputError(name, f"must be a number between 0 and 1 (exclusive), got {value!r}")
