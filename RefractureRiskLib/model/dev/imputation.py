"""Multiple imputation of missing predictors (chained equations) and pooling by Rubin's rules.

Imputation uses scikit-learn's ``IterativeImputer`` with ``sample_posterior=True`` (each missing
value is a draw from the posterior predictive of a Bayesian ridge regression on the other
columns, cycled to convergence): m data sets with different seeds carry the imputation
uncertainty into the pooled variance. The outcome is an auxiliary column of the imputation model
(as recommended: leaving it out biases coefficients toward zero) but is never imputed itself.
Binary columns are drawn as Bernoulli(clipped imputed value); category columns are imputed on
their indicator coding and mapped back. Imputed numbers are clipped to the column's hard range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from RefractureRiskLib.model.terms import InputSpec


def impute(
    data: pd.DataFrame,
    inputs: Sequence[InputSpec],
    outcome: np.ndarray,
    m: int = 5,
    seed: int = 0,
    max_iter: int = 10,
) -> list[pd.DataFrame]:
    """m completed copies of ``data[inputs]`` (other columns untouched). No missing -> [data]."""
    names = [i.name for i in inputs]
    if not data[names].isna().any().any():
        return [data]
    return [impute_one(data, inputs, outcome, k, seed, max_iter) for k in range(m)]


def impute_one(
    data: pd.DataFrame,
    inputs: Sequence[InputSpec],
    outcome: np.ndarray,
    k: int,
    seed: int = 0,
    max_iter: int = 10,
) -> pd.DataFrame:
    """The k-th completed copy (its own random stream: the m copies can be made in parallel)."""
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer

    encoded, decode = _encode(data, inputs)
    matrix = np.column_stack([encoded.to_numpy(dtype=float), np.asarray(outcome, dtype=float)])
    rng = np.random.default_rng([seed, k])
    imputer = IterativeImputer(
        sample_posterior=True, max_iter=max_iter, random_state=int(rng.integers(2**31))
    )
    filled = imputer.fit_transform(matrix)[:, :-1]
    completed = data.copy()
    for col, values in decode(filled, rng).items():
        completed[col] = values
    return completed


def _encode(data: pd.DataFrame, inputs: Sequence[InputSpec]):
    """Numeric coding for imputation, and the function mapping imputed columns back."""
    cols: dict[str, pd.Series] = {}
    for spec in inputs:
        s = data[spec.name]
        if spec.kind == "category":
            levels = list(spec.levels or ())
            for level in levels[1:]:
                cols[f"{spec.name}=={level}"] = s.map(
                    lambda v, lv=level: np.nan if v is None or v != v else float(v == lv)
                )
        else:
            cols[spec.name] = pd.to_numeric(s, errors="coerce").astype(float)
    encoded = pd.DataFrame(cols, index=data.index)
    missing = {spec.name: data[spec.name].isna().to_numpy() for spec in inputs}

    def decode(filled: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        frame = pd.DataFrame(filled, columns=encoded.columns, index=data.index)
        result: dict[str, np.ndarray] = {}
        for spec in inputs:
            miss = missing[spec.name]
            if not miss.any():
                continue
            original = data[spec.name].to_numpy(dtype=object if spec.kind == "category" else float)
            values = original.copy()
            if spec.kind == "category":
                levels = list(spec.levels or ())
                probs = np.column_stack(
                    [np.zeros(len(frame))]
                    + [frame[f"{spec.name}=={lv}"].clip(0, 1).to_numpy() for lv in levels[1:]]
                )
                probs[:, 0] = np.clip(1 - probs[:, 1:].sum(1), 0, 1)
                probs /= probs.sum(1, keepdims=True)
                draws = [levels[rng.choice(len(levels), p=probs[i])] for i in np.flatnonzero(miss)]
                values[miss] = draws
            elif spec.kind == "binary":
                p = frame[spec.name].clip(0, 1).to_numpy()[miss]
                values[miss] = (rng.random(p.size) < p).astype(float)
            else:
                v = frame[spec.name].to_numpy()[miss]
                if spec.hard_range is not None:
                    v = np.clip(v, *spec.hard_range)
                if data[spec.name].dropna().apply(float.is_integer).all():
                    v = np.round(v)  # counts stay counts
                values[miss] = v
            result[spec.name] = values
        return result

    return encoded, decode


@dataclass(frozen=True)
class PooledEstimate:
    """Rubin's rules: mean estimate, total covariance W + (1 + 1/m) B, and its parts."""

    estimate: np.ndarray
    covariance: np.ndarray
    within: np.ndarray
    between: np.ndarray
    m: int

    @property
    def fraction_missing_information(self) -> np.ndarray:
        """Approximate fraction of missing information per coefficient ((1 + 1/m) B / T)."""
        total = np.diag(self.covariance)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, (1 + 1 / self.m) * np.diag(self.between) / total, 0.0)


def pool_rubin(
    estimates: Sequence[np.ndarray], covariances: Sequence[np.ndarray]
) -> PooledEstimate:
    """Pool m coefficient vectors and their covariance matrices by Rubin's rules."""
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(covariances, dtype=float)
    m = q.shape[0]
    mean = q.mean(axis=0)
    within = u.mean(axis=0)
    between = np.cov(q, rowvar=False, ddof=1) if m > 1 else np.zeros_like(within)
    between = np.atleast_2d(between)
    return PooledEstimate(mean, within + (1 + 1 / m) * between, within, between, m)
