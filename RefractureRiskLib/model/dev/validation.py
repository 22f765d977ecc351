"""Internal validation of a penalised logistic model: bootstrap optimism, calibration, net benefit.

Measures (``rms::validate.lrm`` definitions, so the numbers can be compared with rms):

- ``c_statistic``: concordance (area under the ROC curve), ties counted one half; C = (Dxy + 1)/2.
- ``cal_intercept``, ``cal_slope``: intercept a and slope b of the logistic recalibration
  y ~ a + b * lp on the evaluation data (0 and 1 when perfectly calibrated).
- ``citl``: calibration in the large, the intercept of y ~ offset(lp) (0 = mean risk right).
- ``brier``: mean squared difference between predicted probability and outcome.
- ``emax``: the largest absolute difference between predicted and recalibrated probabilities
  over p in [0, 1], max |p - expit(a + b logit p)|, from the (apparent or corrected) calibration
  intercept and slope — as ``validate.lrm`` computes it.

Optimism (Efron's refined bootstrap, as ``validate``): in each of B bootstrap samples the whole
fitting procedure is repeated — including the choice of penalty by cross-validation — and the
model is evaluated on that bootstrap sample (training) and on the original data (test);
optimism = mean(training - test); corrected = apparent - optimism. All B refits are solved
together (:mod:`RefractureRiskLib.model.dev.logistic`): bootstrap samples are observation weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from RefractureRiskLib.core.blas import single_threaded_blas
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.dev.logistic import (
    Standardiser,
    assign_folds,
    cv_fit,
    expit,
    fit_batch,
    lambda_grid,
)

PENALTY_ALPHA = {"none": None, "l2": 0.0, "l1": 1.0}
METRICS = ("c_statistic", "cal_intercept", "cal_slope", "citl", "brier", "emax")


def penalty_alpha(penalty: str, l1_ratio: float = 0.5) -> float | None:
    """alpha of the glmnet objective for a penalty name (None = unpenalised)."""
    if penalty == "elasticnet":
        if not 0.0 < l1_ratio < 1.0:
            raise InputError("l1_ratio", f"must be strictly between 0 and 1, got {l1_ratio}")
        return float(l1_ratio)
    if penalty not in PENALTY_ALPHA:
        raise InputError("penalty", f"must be one of none, l2, l1, elasticnet; got {penalty!r}")
    return PENALTY_ALPHA[penalty]


# ----------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class FitSpec:
    """How a model is fitted: penalty, elastic-net mixing, folds and penalty grid size."""

    penalty: str = "l2"
    l1_ratio: float = 0.5
    n_folds: int = 5
    n_lambdas: int = 20

    @property
    def alpha(self) -> float | None:
        return penalty_alpha(self.penalty, self.l1_ratio)


def fit_weighted(
    X: np.ndarray, y: np.ndarray, counts: np.ndarray, spec: FitSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Standardiser]:
    """Fit the model on each row of ``counts`` (observation weights) with the full procedure.

    Returns (beta on the original scale (R, q + 1), chosen penalty (R,), converged (R,),
    standardiser). The penalty grid comes from the unweighted data, so every replicate chooses
    from the same grid.
    """
    st = Standardiser.of(X)
    Z = st.apply(X)
    alpha = spec.alpha
    R = counts.shape[0]
    if alpha is None:
        beta, ok = fit_batch(Z, y, counts, 0.0, 0.0)
        lam = np.zeros(R)
    else:
        lambdas = lambda_grid(Z, y, alpha, spec.n_lambdas)
        folds = assign_folds(rng, R, y, spec.n_folds)
        beta, lam, _ = cv_fit(Z, y, counts, folds, spec.n_folds, lambdas, alpha)
        ok = np.isfinite(beta).all(axis=1)
    return beta @ st.to_original().T, lam, ok & np.isfinite(beta).all(axis=1), st


# ----------------------------------------------------------------------------- measures


def c_statistic(lp: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Weighted concordance per row of lp (R, n); ties count one half. Returns (R,)."""
    lp = np.atleast_2d(lp)
    R, n = lp.shape
    w = np.ones_like(lp) if w is None else np.broadcast_to(w, lp.shape)
    # Ranks within each row by one global sort: rows are offset so they never interleave.
    span = np.nanmax(np.abs(lp)) * 2 + 1.0
    v = (lp + span * np.arange(R)[:, None]).ravel()
    order = np.argsort(v, kind="mergesort")
    vs = v[order]
    wneg = (w * (1.0 - y)).ravel()[order]
    cum = np.concatenate([[0.0], np.cumsum(wneg)])
    left = np.searchsorted(vs, vs, side="left")
    right = np.searchsorted(vs, vs, side="right")
    row_start = np.repeat(np.arange(R) * n, n)  # rows are contiguous after the sort
    below = cum[left] - cum[row_start]
    ties = cum[right] - cum[left]
    wpos = (w * y).ravel()[order]
    num = np.bincount(row_start // n, weights=wpos * (below + 0.5 * ties), minlength=R)
    den = (w * y).sum(axis=1) * (w * (1.0 - y)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def recalibration(
    lp: np.ndarray, y: np.ndarray, w: np.ndarray | None = None, iters: int = 50
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intercept a, slope b) of y ~ a + b lp, and calibration in the large, per row. (R,) each."""
    lp = np.atleast_2d(lp)
    w = np.ones_like(lp) if w is None else np.broadcast_to(w, lp.shape)
    R = lp.shape[0]
    ab = np.zeros((R, 2))
    ab[:, 1] = 1.0
    # A model predicting one risk for everybody (e.g. the lasso removed every term) has no
    # slope to estimate: as rms does for a null model, its slope is 1 and its intercept the
    # calibration in the large.
    spread = np.ptp(lp, axis=1) > 1e-9
    for _ in range(iters):
        mu = expit(ab[:, :1] + ab[:, 1:] * lp)
        r = w * (y - mu)
        s = w * mu * (1.0 - mu)
        g = np.stack([r.sum(1), (r * lp).sum(1)], axis=1)
        h00, h01, h11 = s.sum(1), (s * lp).sum(1), (s * lp * lp).sum(1)
        det = np.where(spread, h00 * h11 - h01 * h01, 1.0)
        step = np.stack([(h11 * g[:, 0] - h01 * g[:, 1]), (h00 * g[:, 1] - h01 * g[:, 0])], 1)
        step /= det[:, None]
        step[~spread] = 0.0
        ab += step
        if np.nanmax(np.abs(step)) < 1e-10:
            break
    citl = np.zeros(R)
    for _ in range(iters):
        mu = expit(citl[:, None] + lp)
        step = (w * (y - mu)).sum(1) / (w * mu * (1.0 - mu)).sum(1)
        citl += step
        if np.nanmax(np.abs(step)) < 1e-12:
            break
    ab[~spread, 0] = citl[~spread]
    return ab[:, 0], ab[:, 1], citl


def brier(lp: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    lp = np.atleast_2d(lp)
    w = np.ones_like(lp) if w is None else np.broadcast_to(w, lp.shape)
    return (w * (expit(lp) - y) ** 2).sum(1) / w.sum(1)


_EMAX_GRID = np.arange(0.0, 1.0 + 2.5e-4, 5e-4)


def emax_from_line(intercept: np.ndarray | float, slope: np.ndarray | float) -> np.ndarray:
    """max over p in [0, 1] of |p - expit(a + b logit(p))| (``validate.lrm``'s Emax)."""
    p = _EMAX_GRID[1:-1]
    logit = np.log(p / (1.0 - p))
    a = np.atleast_1d(np.asarray(intercept, dtype=float))[:, None]
    b = np.atleast_1d(np.asarray(slope, dtype=float))[:, None]
    return np.max(np.abs(p - expit(a + b * logit)), axis=1)


def measures(lp: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """All measures (see module docstring) per row of lp."""
    a, b, citl = recalibration(lp, y, w)
    return {
        "c_statistic": c_statistic(lp, y, w),
        "cal_intercept": a,
        "cal_slope": b,
        "citl": citl,
        "brier": brier(lp, y, w),
        "emax": emax_from_line(a, b),
    }


# ----------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class BootstrapValidation:
    """Apparent, optimism and corrected values of each measure (see module docstring)."""

    apparent: dict[str, float]
    training: dict[str, float]  # mean over replicates, on the bootstrap samples
    test: dict[str, float]  # mean over replicates, on the original data
    optimism: dict[str, float]
    corrected: dict[str, float]
    n_bootstrap: int
    n_failed: int
    penalty: str
    lambda_apparent: float
    lambda_bootstrap_median: float
    replicate_c_test: np.ndarray = field(repr=False)

    def table(self) -> list[dict[str, float | str]]:
        return [
            {
                "measure": m,
                "apparent": self.apparent[m],
                "training": self.training[m],
                "test": self.test[m],
                "optimism": self.optimism[m],
                "corrected": self.corrected[m],
            }
            for m in METRICS
        ]

    def to_json(self) -> dict:
        return {
            "method": "bootstrap optimism correction (Efron), whole procedure refitted incl. "
            "penalty choice",
            "n_bootstrap": self.n_bootstrap,
            "n_failed": self.n_failed,
            "penalty": self.penalty,
            "apparent": self.apparent,
            "optimism": self.optimism,
            "corrected": self.corrected,
        }


def bootstrap_validate(
    X: np.ndarray,
    y: np.ndarray,
    spec: FitSpec,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> BootstrapValidation:
    """Optimism-corrected measures of the model fitted to (X, y) by ``spec``."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n = y.size
    if n_bootstrap < 1:
        raise InputError("n_bootstrap", f"must be at least 1, got {n_bootstrap}")
    rng = np.random.default_rng(seed)
    counts = np.vstack(
        [np.ones(n), rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap)]
    ).astype(float)
    # A bootstrap sample without events (or without non-events) cannot be fitted: redraw it.
    for r in range(1, n_bootstrap + 1):
        while (counts[r] * y).sum() < 2 or (counts[r] * (1 - y)).sum() < 2:
            counts[r] = rng.multinomial(n, np.full(n, 1.0 / n))
    with single_threaded_blas():
        beta, lam, ok = fit_weighted(X, y, counts, spec, rng)[:3]
    lp = beta[:, :1] + beta[:, 1:] @ X.T
    app = {k: float(v[0]) for k, v in measures(lp[:1], y).items()}
    good = ok[1:] & np.isfinite(lp[1:]).all(axis=1)
    lpb = lp[1:][good]
    train = measures(lpb, y, counts[1:][good])
    test = measures(lpb, y)
    training = {k: float(np.mean(train[k])) for k in METRICS}
    testing = {k: float(np.mean(test[k])) for k in METRICS}
    optimism = {k: training[k] - testing[k] for k in METRICS}
    corrected = {k: app[k] - optimism[k] for k in METRICS}
    # Emax is not averaged: as in validate.lrm it is computed from the calibration line.
    corrected["emax"] = float(emax_from_line(corrected["cal_intercept"], corrected["cal_slope"])[0])
    optimism["emax"] = app["emax"] - corrected["emax"]
    return BootstrapValidation(
        apparent=app,
        training=training,
        test=testing,
        optimism=optimism,
        corrected=corrected,
        n_bootstrap=int(good.sum()),
        n_failed=int((~good).sum()),
        penalty=spec.penalty,
        lambda_apparent=float(lam[0]),
        lambda_bootstrap_median=float(np.median(lam[1:][good])) if good.any() else float("nan"),
        replicate_c_test=test["c_statistic"],
    )


# ----------------------------------------------------------------------------- other checks


def leave_one_centre_out(
    X: np.ndarray, y: np.ndarray, centre: np.ndarray, spec: FitSpec, seed: int = 0
) -> list[dict[str, float | str | int]]:
    """Fit on all centres but one (full procedure), test on the one left out; one row per centre.

    Raises InputError when there are fewer than two centres, or a training set has no events.
    A held-out centre without events (or non-events) gets NaN for the C-statistic and
    calibration slope, which need both.
    """
    centre = np.asarray(centre).astype(str)
    names = sorted(set(centre))
    if len(names) < 2:
        raise InputError(
            "centre_id",
            f"leave-one-centre-out validation needs at least 2 centres, found {len(names)}",
        )
    rng = np.random.default_rng(seed)
    rows: list[dict[str, float | str | int]] = []
    for name in names:
        test = centre == name
        train = ~test
        if y[train].sum() < 2 or (1 - y[train]).sum() < 2:
            raise InputError("centre_id", f"without centre {name} there are too few events to fit")
        beta = fit_weighted(X[train], y[train], np.ones((1, int(train.sum()))), spec, rng)[0][0]
        lp = beta[0] + X[test] @ beta[1:]
        m = {k: float(v[0]) for k, v in measures(lp[None, :], y[test]).items()}
        if y[test].sum() == 0 or y[test].sum() == test.sum():
            m["c_statistic"] = m["cal_slope"] = m["cal_intercept"] = m["emax"] = float("nan")
        rows.append(
            {
                "centre": name,
                "n": int(test.sum()),
                "events": int(y[test].sum()),
                **m,
                "mean_predicted": float(expit(lp).mean()),
                "observed": float(y[test].mean()),
            }
        )
    return rows
