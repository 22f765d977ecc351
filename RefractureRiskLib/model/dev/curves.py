"""Calibration and decision curves of predicted risks: lowess calibration (with ICI, E50, E90 and
Emax), calibration by tenths of risk, and net benefit against treat-all and treat-none.
"""

from __future__ import annotations

import numpy as np


def lowess(x: np.ndarray, y: np.ndarray, frac: float = 2.0 / 3.0, at: np.ndarray | None = None):
    """Locally linear tricube smoother without robustness iterations (R's lowess, iter = 0)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    at = np.sort(x) if at is None else np.asarray(at, dtype=float)
    k = max(int(np.ceil(frac * x.size)), 2)
    d = np.abs(at[:, None] - x[None, :])
    h = np.partition(d, k - 1, axis=1)[:, k - 1]
    h = np.where(h > 0, h, 1e-12)
    u = np.clip(d / h[:, None], 0.0, 1.0)
    w = (1 - u**3) ** 3
    sw = w.sum(1)
    mx = (w * x).sum(1) / sw
    my = (w * y).sum(1) / sw
    sxx = (w * (x - mx[:, None]) ** 2).sum(1)
    sxy = (w * (x - mx[:, None]) * (y - my[:, None])).sum(1)
    slope = np.where(sxx > 1e-15, sxy / np.where(sxx > 1e-15, sxx, 1.0), 0.0)
    return at, my + slope * (at - mx)


def calibration_curve(p: np.ndarray, y: np.ndarray, n_groups: int = 10) -> dict:
    """Smoothed (lowess) and grouped (deciles of risk) observed vs predicted probabilities."""
    grid = np.quantile(p, np.linspace(0.01, 0.99, 60))
    at, smooth = lowess(p, y, at=grid)
    _, at_points = lowess(p, y, at=p)
    err = np.abs(np.clip(at_points, 0, 1) - p)
    edges = np.quantile(p, np.linspace(0, 1, n_groups + 1))
    group = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_groups - 1)
    groups = []
    for g in range(n_groups):
        sel = group == g
        if sel.any():
            obs = float(y[sel].mean())
            se = np.sqrt(max(obs * (1 - obs), 1e-12) / sel.sum())
            groups.append(
                {
                    "n": int(sel.sum()),
                    "predicted": float(p[sel].mean()),
                    "observed": obs,
                    "lower": max(0.0, obs - 1.96 * se),
                    "upper": min(1.0, obs + 1.96 * se),
                }
            )
    return {
        "smooth_predicted": at.tolist(),
        "smooth_observed": np.clip(smooth, 0, 1).tolist(),
        "groups": groups,
        "ici": float(err.mean()),
        "e90": float(np.quantile(err, 0.9)),
        "emax_smooth": float(err.max()),
    }


def decision_curve(
    p: np.ndarray, y: np.ndarray, thresholds: np.ndarray | None = None
) -> dict[str, list[float]]:
    """Net benefit of treating patients with predicted risk >= threshold, against all and none.

    Net benefit = TP/n - FP/n * t/(1 - t) (Vickers & Elkin 2006); treat-none is 0.
    """
    t = np.arange(0.01, 0.51, 0.01) if thresholds is None else np.asarray(thresholds)
    n = y.size
    prev = y.mean()
    treat = p[None, :] >= t[:, None]
    tp = (treat & (y[None, :] == 1)).sum(1) / n
    fp = (treat & (y[None, :] == 0)).sum(1) / n
    odds = t / (1 - t)
    return {
        "threshold": t.tolist(),
        "model": (tp - fp * odds).tolist(),
        "treat_all": (prev - (1 - prev) * odds).tolist(),
        "treat_none": [0.0] * t.size,
    }
