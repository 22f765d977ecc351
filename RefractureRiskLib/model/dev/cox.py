"""Cox proportional-hazards model for time to re-fracture (Breslow ties), in numpy.

Death is a competing event: this is the *cause-specific* hazard of re-fracture, with deaths
treated as censored at their time. Its hazard ratios describe the rate of re-fracture among
those still alive; 1 - exp(-H(t)) is not the cumulative incidence when deaths are common (a
Fine-Gray or Aalen-Johansen analysis would be needed for that). The number of deaths is reported
next to the estimates so the reader can judge.

Partial log-likelihood (Breslow): sum over events of x_i'b - sum over distinct event times t of
d_t log(sum over the risk set R(t) of exp(x_j'b)), maximised by Newton's method with step halving.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.terms import design_matrix

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class CoxFit:
    """Fitted cause-specific Cox model."""

    columns: tuple[str, ...]
    coef: np.ndarray
    covariance: np.ndarray
    loglik: float
    loglik_null: float
    concordance: float
    n: int
    events: int
    competing_events: int
    iterations: int

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance))

    def table(self) -> list[dict[str, float | str]]:
        se = self.se
        return [
            {
                "term": c,
                "coef": float(b),
                "se": float(s),
                "hazard_ratio": float(np.exp(b)),
                "hr_lower": float(np.exp(b - Z_95 * s)),
                "hr_upper": float(np.exp(b + Z_95 * s)),
            }
            for c, b, s in zip(self.columns, self.coef, se, strict=True)
        ]


def _sums(X: np.ndarray, time: np.ndarray, beta: np.ndarray):
    """Risk-set sums S0, S1, S2 at each observation's time (risk set: time_j >= time_i)."""
    order = np.argsort(-time, kind="mergesort")
    t = time[order]
    Xo = X[order]
    w = np.exp(np.clip(Xo @ beta, -700, 700))
    s0 = np.cumsum(w)
    s1 = np.cumsum(w[:, None] * Xo, axis=0)
    s2 = np.cumsum(w[:, None, None] * Xo[:, :, None] * Xo[:, None, :], axis=0)
    # Ties: everyone with the same time is in each other's risk set -> use the group's last index.
    last = np.searchsorted(-t, -t, side="right") - 1
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    idx = last[inverse]
    return s0[idx], s1[idx], s2[idx]


def fit_cox(
    X: np.ndarray,
    time_days: np.ndarray,
    event: np.ndarray,
    columns: tuple[str, ...] | None = None,
    event_code: int = 1,
    competing_code: int = 2,
    max_iter: int = 50,
    tol: float = 1e-9,
) -> CoxFit:
    """Fit the cause-specific Cox model; ``event`` codes: 1 re-fracture, 2 death, 0 censored.

    Newton-Raphson on the partial likelihood (Breslow ties), step halving when a step lowers it.
    """
    X = np.asarray(X, dtype=float)
    time = np.asarray(time_days, dtype=float)
    code = np.asarray(event)
    n, q = X.shape
    d = (code == event_code).astype(float)
    _check_cox_inputs(X, time, d)
    Xc = X - X.mean(axis=0)
    beta = np.zeros(q)
    ll = _loglik(Xc, time, d, beta)
    ll0 = ll
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - reported after the loop
        grad, info = _score_information(Xc, time, d, beta)
        step = np.linalg.solve(info, grad)
        t = 1.0
        for _ in range(30):
            new_ll = _loglik(Xc, time, d, beta + t * step)
            if new_ll >= ll - 1e-12:
                break
            t *= 0.5
        beta = beta + t * step
        change = abs(new_ll - ll)
        ll = new_ll
        if np.max(np.abs(t * step)) < tol or change < 1e-12:
            break
    cov = np.linalg.inv(_score_information(Xc, time, d, beta)[1])
    names = columns if columns is not None else tuple(f"x{i}" for i in range(q))
    return CoxFit(
        columns=tuple(names),
        coef=beta,
        covariance=cov,
        loglik=ll,
        loglik_null=ll0,
        concordance=harrell_c(X @ beta, time, d),
        n=n,
        events=int(d.sum()),
        competing_events=int((code == competing_code).sum()),
        iterations=iterations,
    )


def _check_cox_inputs(X: np.ndarray, time: np.ndarray, d: np.ndarray) -> None:
    """Refuse a cohort without patients, without events or with missing values."""
    if X.shape[0] == 0:
        raise InputError("cohort", "no patients to fit the Cox model")
    if d.sum() == 0:
        raise InputError(
            "event", "no re-fracture events (event == 1): the Cox model cannot be fitted"
        )
    if not np.all(np.isfinite(X)) or not np.all(np.isfinite(time)):
        raise InputError("cohort", "the Cox model needs complete predictors and follow-up times")


def _loglik(Xc: np.ndarray, time: np.ndarray, d: np.ndarray, beta: np.ndarray) -> float:
    """Partial log-likelihood of ``beta`` (centred predictors ``Xc``, event indicator ``d``)."""
    s0, _, _ = _sums(Xc, time, beta)
    return float((d * (Xc @ beta - np.log(s0))).sum())


def _score_information(
    Xc: np.ndarray, time: np.ndarray, d: np.ndarray, beta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient (score) and observed information of the partial log-likelihood at ``beta``."""
    s0, s1, s2 = _sums(Xc, time, beta)
    mean = s1 / s0[:, None]
    grad = (d[:, None] * (Xc - mean)).sum(0)
    info = (d[:, None, None] * (s2 / s0[:, None, None] - mean[:, :, None] * mean[:, None, :])).sum(
        0
    )
    return grad, info


def harrell_c(risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    """Harrell's concordance: among usable pairs (the shorter time is an event), the share in
    which the shorter time has the higher risk; risk ties count one half, time ties unusable."""
    risk = np.asarray(risk, dtype=float)
    shorter = (time[:, None] < time[None, :]) & (event[:, None] == 1)
    higher = risk[:, None] > risk[None, :]
    tied = risk[:, None] == risk[None, :]
    usable = shorter.sum()
    if usable == 0:
        return float("nan")
    return float(((shorter & higher).sum() + 0.5 * (shorter & tied).sum()) / usable)


def pooled_cox(completed, terms, inputs_needed, names, notes) -> dict[str, Any] | None:
    """The Cox model on each completed data set pooled by Rubin's rules, as a hazard-ratio
    table; None (and a note) without time_days/event columns."""
    from RefractureRiskLib.model.dev.imputation import pool_rubin

    first = completed[0]
    if "time_days" not in first or "event" not in first:
        notes.append("no time_days/event columns: Cox model not fitted")
        return None
    fits: list[CoxFit] = []
    for df in completed:
        X = design_matrix(terms, {i: df[i] for i in inputs_needed})
        fits.append(
            fit_cox(X, df["time_days"].to_numpy(float), df["event"].to_numpy(), tuple(names))
        )
    pooled = pool_rubin([f.coef for f in fits], [f.covariance for f in fits])
    se = np.sqrt(np.diag(pooled.covariance))
    rows = [
        {
            "term": c,
            "coef": float(b),
            "se": float(s),
            "hazard_ratio": float(np.exp(b)),
            "hr_lower": float(np.exp(b - 1.96 * s)),
            "hr_upper": float(np.exp(b + 1.96 * s)),
        }
        for c, b, s in zip(names, pooled.estimate, se, strict=True)
    ]
    return {
        "table": rows,
        "n": fits[0].n,
        "events": fits[0].events,
        "competing_deaths": fits[0].competing_events,
        "concordance": float(np.mean([f.concordance for f in fits])),
        "note": "cause-specific hazard of re-fracture; deaths censored as a competing event",
    }
