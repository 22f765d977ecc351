"""The penalised logistic regression estimator of the training (scikit-learn shape).

:class:`PenalisedLogisticRegression` fits an L2, L1, elastic-net or unpenalised logistic model
with the penalty chosen by cross-validated deviance (the numerics are in :mod:`.logistic`);
:func:`check_xy` validates a design matrix and 0/1 outcome at the boundary, naming the bad column.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.dev.logistic import (
    Standardiser,
    assign_folds,
    cv_fit,
    expit,
    fit_batch,
    lambda_grid,
)
from RefractureRiskLib.model.dev.schema import OUTCOME
from RefractureRiskLib.model.dev.validation import FitSpec, penalty_alpha


class PenalisedLogisticRegression:
    """Logistic regression with an L2, L1 or elastic-net penalty chosen by cross-validation.

    ``penalty``: "l2" (ridge), "l1" (lasso), "elasticnet" (mixing ``l1_ratio``) or "none".
    The penalty acts on standardised columns (glmnet's objective, see :mod:`.logistic`); the
    candidate penalties are ``n_lambdas`` values on a log grid and the one with the lowest
    ``n_folds``-fold cross-validated deviance is used. After ``fit``: ``coef_`` (q,),
    ``intercept_``, ``lambda_``, ``covariance_`` ((q+1) x (q+1), intercept first; the inverse
    penalised information — for L1 restricted to the non-zero terms, conditional on selection),
    ``converged_``.
    """

    def __init__(
        self,
        penalty: str = "l2",
        l1_ratio: float = 0.5,
        n_folds: int = 5,
        n_lambdas: int = 20,
        random_state: int = 0,
    ) -> None:
        self.penalty = penalty
        self.l1_ratio = l1_ratio
        self.n_folds = n_folds
        self.n_lambdas = n_lambdas
        self.random_state = random_state

    @property
    def spec(self) -> FitSpec:
        return FitSpec(self.penalty, self.l1_ratio, self.n_folds, self.n_lambdas)

    def fit(
        self, X: np.ndarray, y: np.ndarray, column_names: Sequence[str] | None = None
    ) -> PenalisedLogisticRegression:
        X, y = check_xy(X, y, column_names)
        alpha = penalty_alpha(self.penalty, self.l1_ratio)
        st = Standardiser.of(X)
        Z = st.apply(X)
        n = y.size
        ones = np.ones((1, n))
        if alpha is None:
            beta, ok = fit_batch(Z, y, ones, 0.0, 0.0)
            lam = 0.0
        else:
            if min(y.sum(), n - y.sum()) < self.n_folds:
                raise InputError(
                    OUTCOME,
                    f"{self.n_folds}-fold cross-validation needs at least {self.n_folds}"
                    " events and non-events",
                )
            rng = np.random.default_rng(self.random_state)
            folds = assign_folds(rng, 1, y, self.n_folds)
            lambdas = lambda_grid(Z, y, alpha, self.n_lambdas)
            beta, lam_arr, cv_dev = cv_fit(Z, y, ones, folds, self.n_folds, lambdas, alpha)
            lam = float(lam_arr[0])
            self.lambdas_, self.cv_deviance_ = lambdas, cv_dev[0]
            ok = np.isfinite(beta).all(axis=1)
        if not ok[0]:
            warnings.warn(
                "logistic fit did not converge (complete separation? too few events?)",
                RuntimeWarning,
                stacklevel=2,
            )
        self.converged_ = bool(ok[0])
        T = st.to_original()
        b_std = beta[0]
        cov_std = _penalised_covariance(Z, y, b_std, lam, alpha or 0.0)
        b = T @ b_std
        self.intercept_ = float(b[0])
        self.coef_ = b[1:]
        self.covariance_ = T @ cov_std @ T.T
        self.lambda_ = lam
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.intercept_ + np.asarray(X, dtype=float) @ self.coef_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = expit(self.decision_function(X))
        return np.column_stack([1 - p, p])


def _penalised_covariance(
    Z: np.ndarray, y: np.ndarray, beta: np.ndarray, lam: float, alpha: float
) -> np.ndarray:
    """Inverse penalised information on the standardised scale (zero rows for dropped terms)."""
    n, q = Z.shape
    A = np.hstack([np.ones((n, 1)), Z])
    mu = expit(A @ beta)
    info = (A * (mu * (1 - mu))[:, None]).T @ A
    pen = np.full(q + 1, n * lam * (1 - alpha))
    pen[0] = 0.0
    info += np.diag(pen)
    keep = np.ones(q + 1, dtype=bool)
    if alpha > 0:
        keep[1:] = beta[1:] != 0
    cov = np.zeros((q + 1, q + 1))
    sub = np.linalg.pinv(info[np.ix_(keep, keep)])
    cov[np.ix_(keep, keep)] = sub
    return cov


def check_xy(
    X: Any, y: Any, column_names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a design matrix and 0/1 outcome; InputError naming the bad column."""
    X = np.asarray(X, dtype=float) if not isinstance(X, np.ndarray) else X.astype(float)
    y = np.asarray(y, dtype=float).reshape(-1)
    names = (
        list(column_names)
        if column_names is not None
        else [f"column {i}" for i in range(X.shape[1])]
    )
    if X.ndim != 2 or X.shape[0] != y.size:
        raise InputError("X", f"expected a (n, q) matrix with n = {y.size}, got shape {X.shape}")
    if y.size == 0:
        raise InputError("cohort", "no patients with a known 1-year outcome")
    for j, name in enumerate(names):
        if not np.all(np.isfinite(X[:, j])):
            raise InputError(name, "has missing or non-finite values (impute first)")
        if np.ptp(X[:, j]) == 0:
            raise InputError(name, "is constant in the training data: it cannot be estimated")
    if not np.all((y == 0) | (y == 1)):
        raise InputError(OUTCOME, "must be 0 or 1")
    if y.sum() == 0:
        raise InputError(OUTCOME, "has no events: a risk model cannot be trained")
    if y.sum() == y.size:
        raise InputError(OUTCOME, "every patient has the event: a risk model cannot be trained")
    return X, y
