"""Batched penalised logistic regression in numpy: many weighted fits at once.

Bootstrap validation refits the whole model, penalty choice included, hundreds of times. Every
one of those fits uses the same design matrix and differs only in the observation weights
(bootstrap counts, cross-validation fold masks) and the penalty, so they are solved together:
one (problems x n) weight matrix, one matrix product for all Hessians. This is what makes B = 200
with a cross-validated penalty take seconds rather than minutes.

Problem b minimises, over beta = (beta_0, beta_1..q) on standardised columns Z,

    sum_i W[b, i] (log(1 + exp(eta_i)) - y_i eta_i) / sum_i W[b, i]
        + lam[b] (alpha ||beta_1..q||_1 + (1 - alpha) / 2 ||beta_1..q||_2^2),

eta = beta_0 + Z beta_1..q (the glmnet objective; the intercept is not penalised). alpha = 0 is
ridge, solved by Newton's method; alpha > 0 (lasso, elastic net) by proximal Newton with a
coordinate-descent inner solver. Both use step halving so the objective never increases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Newton steps larger than this (standardised scale) are checked with step halving.
LINE_SEARCH_STEP = 0.5


def expit(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), in place on a temporary (the hot loop of every fit)."""
    out = np.negative(x, dtype=float)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


@dataclass(frozen=True)
class Standardiser:
    """Column centring and scaling used for the penalty (from the original, unweighted data)."""

    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray) -> Standardiser:
        mean = X.mean(axis=0)
        sd = X.std(axis=0)
        sd[sd == 0] = 1.0
        return cls(mean, sd)

    def apply(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.sd

    def to_original(self) -> np.ndarray:
        """Matrix T with beta_original = T @ beta_standardised (intercept first)."""
        q = self.mean.size
        T = np.zeros((q + 1, q + 1))
        T[0, 0] = 1.0
        T[0, 1:] = -self.mean / self.sd
        T[np.arange(1, q + 1), np.arange(1, q + 1)] = 1.0 / self.sd
        return T


def softplus(eta: np.ndarray) -> np.ndarray:
    """log(1 + exp(eta)), accurate to exp(-35) and faster than np.logaddexp."""
    out = np.log1p(np.exp(np.minimum(eta, 35.0)))
    out += np.maximum(eta - 35.0, 0.0)
    return out


def _objective(
    beta: np.ndarray, eta: np.ndarray, y: np.ndarray, W: np.ndarray, Wsum: np.ndarray, lam, alpha
) -> np.ndarray:
    loss = (W * (softplus(eta) - y * eta)).sum(axis=1) / Wsum
    b = beta[:, 1:]
    pen = lam * (alpha * np.abs(b).sum(axis=1) + 0.5 * (1.0 - alpha) * (b * b).sum(axis=1))
    return loss + pen


def fit_batch(
    Z: np.ndarray,
    y: np.ndarray,
    W: np.ndarray,
    lam: np.ndarray | float = 0.0,
    alpha: float = 0.0,
    beta0: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit len(W) weighted penalised logistic regressions on the same standardised design.

    Z: (n, q) standardised columns; y: (n,) 0/1; W: (b, n) non-negative weights; lam: (b,) or
    scalar; alpha in [0, 1]. Returns (beta (b, q + 1) with the intercept first, converged (b,)).
    Convergence: the last Newton step changed no coefficient by more than tol (relative to the
    largest coefficient); Newton's method converges quadratically, so the remaining error is of
    the order of tol squared.
    """
    n, q = Z.shape
    A = np.hstack([np.ones((n, 1)), Z])
    p = q + 1
    AA = (A[:, :, None] * A[:, None, :]).reshape(n, p * p)
    W = np.atleast_2d(np.asarray(W, dtype=float))
    nb = W.shape[0]
    Wsum = W.sum(axis=1)
    lam = np.broadcast_to(np.asarray(lam, dtype=float), (nb,)).copy()
    beta = np.zeros((nb, p)) if beta0 is None else np.array(beta0, dtype=float, copy=True)
    if beta0 is None:
        ybar = np.clip((W @ y) / Wsum, 1e-6, 1 - 1e-6)
        beta[:, 0] = np.log(ybar / (1 - ybar))
    ridge = lam * (1.0 - alpha)
    l1 = lam * alpha
    converged = np.zeros(nb, dtype=bool)
    eta = beta @ A.T
    idx = np.arange(nb)
    for _ in range(max_iter):
        if idx.size == 0:
            break
        every = idx.size == nb
        b = beta if every else beta[idx]
        w = W if every else W[idx]
        e = eta if every else eta[idx]
        ws = Wsum[idx]
        step = _newton_step(b, w, e, ws, y, A, AA, ridge[idx], l1[idx], alpha)
        t, new_beta, new_eta = _halve_large_steps(b, e, step, A, y, w, ws, lam[idx], alpha)
        beta[idx] = new_beta
        eta[idx] = new_eta
        change = np.max(np.abs(t[:, None] * step), axis=1)
        done = change < tol * (1.0 + np.abs(new_beta).max(axis=1))
        converged[idx[done]] = True
        idx = idx[~done]
    return beta, converged


def _newton_step(
    b: np.ndarray,
    w: np.ndarray,
    e: np.ndarray,
    ws: np.ndarray,
    y: np.ndarray,
    A: np.ndarray,
    AA: np.ndarray,
    ridge: np.ndarray,
    l1: np.ndarray,
    alpha: float,
) -> np.ndarray:
    """The Newton step of each fit (rows of ``b``) from the weighted penalised gradient and
    Hessian at linear predictors ``e``; with an L1 part, a coordinate-descent step."""
    p = A.shape[1]
    eye = np.eye(p)
    eye[0, 0] = 0.0
    mu = expit(e)
    g = ((w * (mu - y)) @ A) / ws[:, None]
    g[:, 1:] += ridge[:, None] * b[:, 1:]
    s = w * mu * (1.0 - mu) / ws[:, None]
    H = (s @ AA).reshape(-1, p, p) + ridge[:, None, None] * eye
    H[:, np.arange(p), np.arange(p)] += 1e-12
    if alpha == 0.0:
        return -np.linalg.solve(H, g[:, :, None])[:, :, 0]
    return _lasso_step(b, g, H, l1)


def _halve_large_steps(
    b: np.ndarray,
    e: np.ndarray,
    step: np.ndarray,
    A: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    ws: np.ndarray,
    lam: np.ndarray,
    alpha: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(step fraction, new coefficients, new linear predictors) of each fit.

    Step halving where a step is large (far from the optimum, or separation): accept the
    largest step 2^-k that does not increase the objective. Small steps are taken whole: there
    the quadratic model is accurate and evaluating the objective would dominate.
    """
    t = np.ones(b.shape[0])
    new_beta = b + step
    new_eta = new_beta @ A.T
    big = np.flatnonzero(np.abs(step).max(axis=1) > LINE_SEARCH_STEP)
    if big.size:
        lam_b, w_b, ws_b = lam[big], w[big], ws[big]
        old = _objective(b[big], e[big], y, w_b, ws_b, lam_b, alpha)
        nb_beta, nb_eta = new_beta[big], new_eta[big]
        new = _objective(nb_beta, nb_eta, y, w_b, ws_b, lam_b, alpha)
        tb = t[big]
        for _half in range(30):
            bad = new > old + 1e-13 * np.abs(old)
            if not bad.any():
                break
            tb[bad] *= 0.5
            nb_beta[bad] = b[big][bad] + tb[bad, None] * step[big][bad]
            nb_eta[bad] = nb_beta[bad] @ A.T
            new[bad] = _objective(
                nb_beta[bad], nb_eta[bad], y, w_b[bad], ws_b[bad], lam_b[bad], alpha
            )
        t[big] = tb
        new_beta[big] = nb_beta
        new_eta[big] = nb_eta
    return t, new_beta, new_eta


def _lasso_step(
    beta: np.ndarray, g: np.ndarray, H: np.ndarray, l1: np.ndarray, sweeps: int = 200
) -> np.ndarray:
    """Proximal Newton direction: minimise g'd + d'Hd/2 + l1 ||beta_1.. + d_1..||_1 over d."""
    nb, p = beta.shape
    d = np.zeros_like(beta)
    Hd = np.zeros_like(beta)
    diag = H[:, np.arange(p), np.arange(p)]
    for _ in range(sweeps):
        biggest = np.zeros(nb)
        for j in range(p):
            a = diag[:, j]
            c = g[:, j] + Hd[:, j] - a * d[:, j]
            if j == 0:
                dj = -c / a
            else:
                z = beta[:, j] - c / a
                thr = l1 / a
                dj = np.sign(z) * np.maximum(np.abs(z) - thr, 0.0) - beta[:, j]
            delta = dj - d[:, j]
            if np.any(delta):
                Hd += H[:, :, j] * delta[:, None]
                d[:, j] = dj
                biggest = np.maximum(biggest, np.abs(delta))
        if biggest.max() < 1e-12:
            break
    return d


def lambda_grid(Z: np.ndarray, y: np.ndarray, alpha: float, n_lambdas: int = 20) -> np.ndarray:
    """Decreasing penalties, from one that sets (about) every coefficient to zero downwards."""
    lam_max = np.max(np.abs(Z.T @ (y - y.mean()))) / y.size
    if alpha > 0:
        top = lam_max / alpha
        return np.geomspace(top, top * 1e-3, n_lambdas)
    return np.geomspace(lam_max * 30.0, lam_max * 3e-4, n_lambdas)


def deviance_terms(beta: np.ndarray, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-observation deviance contributions (b, n): 2 (log(1 + e^eta) - y eta)."""
    eta = beta[:, :1] + beta[:, 1:] @ Z.T
    return 2.0 * (softplus(eta) - y * eta)


def cv_fit(
    Z: np.ndarray,
    y: np.ndarray,
    counts: np.ndarray,
    folds: np.ndarray,
    n_folds: int,
    lambdas: np.ndarray,
    alpha: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Choose the penalty by K-fold cross-validation and refit, for R weighted data sets at once.

    counts: (R, n) observation weights (bootstrap counts; ones for the original data);
    folds: (R, n) fold label 0..K-1 of each original observation (copies of one observation stay
    in one fold, so no observation is both fitted and tested). The penalty path is followed from
    the largest penalty down with warm starts; the chosen penalty minimises the held-out deviance.
    Returns (beta (R, q + 1) standardised scale, chosen lambda (R,), cv deviance (R, L)).
    """
    R, n = counts.shape
    K = n_folds
    W = np.empty((R, K + 1, n))
    for k in range(K):
        W[:, k] = counts * (folds != k)
    W[:, K] = counts
    W = W.reshape(R * (K + 1), n)
    held = np.stack([counts * (folds == k) for k in range(K)], axis=1)  # (R, K, n)
    beta = None
    cv_dev = np.empty((R, lambdas.size))
    path = np.empty((R, lambdas.size, Z.shape[1] + 1))
    for li, lam in enumerate(lambdas):
        beta, _ = fit_batch(Z, y, W, lam, alpha, beta0=beta, max_iter=50, tol=1e-3)
        b = beta.reshape(R, K + 1, -1)
        dev = deviance_terms(b[:, :K].reshape(R * K, -1), Z, y).reshape(R, K, n)
        cv_dev[:, li] = (dev * held).sum(axis=(1, 2)) / counts.sum(axis=1)
        path[:, li] = b[:, K]
    best = np.argmin(cv_dev, axis=1)
    chosen = path[np.arange(R), best]
    # Polish the chosen fits to full precision.
    chosen, _ = fit_batch(Z, y, counts, lambdas[best], alpha, beta0=chosen, tol=1e-6)
    return chosen, lambdas[best], cv_dev


def assign_folds(rng: np.random.Generator, R: int, y: np.ndarray, n_folds: int) -> np.ndarray:
    """(R, n) fold labels, stratified by outcome so each fold holds events."""
    n = y.size
    folds = np.empty((R, n), dtype=np.int64)
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        labels = np.arange(idx.size) % n_folds
        for r in range(R):
            folds[r, idx] = rng.permutation(labels)
    return folds
