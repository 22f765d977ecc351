"""Imaging markers of a cohort: correlations with clinical variables, odds ratios for the outcome,
scatter plots. Descriptive only (see :mod:`.describe`); the formulas are in its docstring.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

#: Imaging markers correlated with clinical variables (global L1-L4 summaries).
CORRELATION_MARKERS: tuple[str, ...] = ("pdff_global_L1L4", "r2s_global_L1L4")
#: Variables the markers are correlated with ("female" is derived from sex).
CORRELATION_VARIABLES: tuple[str, ...] = (
    "dxa_l1l4_tscore",
    "body_volume_ml_L1L4",
    "age_years",
    "female",
)
#: Markers tested against the outcome, with the unit step of their odds ratio.
OUTCOME_MARKERS: tuple[tuple[str, float, str], ...] = (
    ("pdff_global_L1L4", 10.0, "per 10 %"),
    ("r2s_global_L1L4", 10.0, "per 10 1/s"),
    ("pdff_adjacent", 10.0, "per 10 %"),
    ("r2s_adjacent", 10.0, "per 10 1/s"),
    ("paraspinal_fat_pct_L3L4", 10.0, "per 10 %"),
)


# --------------------------------------------------------------------------------------------
# Correlations


def _fisher_ci(r: float, se: float) -> tuple[float, float]:
    if not np.isfinite(r) or not np.isfinite(se):
        return np.nan, np.nan
    z = math.atanh(max(min(r, 1 - 1e-12), -1 + 1e-12))
    return math.tanh(z - 1.959963984540054 * se), math.tanh(z + 1.959963984540054 * se)


def _with_female(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["female"] = np.where(df["sex"].isna(), np.nan, (df["sex"] == "F").astype(float))
    return out


def _mixed_field(d: pd.DataFrame) -> bool:
    """R2* from both 1.5 and 3 T: it roughly doubles at 3 T, so adjust for field strength."""
    return "mri_field_T" in d and d["mri_field_T"].nunique() > 1


def marker_correlations(df: pd.DataFrame) -> pd.DataFrame:
    """Correlations of the imaging markers with T-score, body volume, age and sex (module doc).

    One row per (marker, variable) present with at least 5 complete pairs. Columns: marker,
    variable, n, pearson_r, pearson_ci_low, pearson_ci_high, pearson_p, spearman_rho,
    spearman_ci_low, spearman_ci_high, spearman_p, partial_r, partial_ci_low, partial_ci_high,
    partial_p, partial_n, partial_adjusted_for.
    """
    d = _with_female(df)
    rows = []
    for marker in CORRELATION_MARKERS:
        if marker not in d or d[marker].notna().sum() < 5:
            continue
        for var in CORRELATION_VARIABLES:
            if var not in d:
                continue
            pair = d[[marker, var]].dropna()
            n = len(pair)
            if n < 5 or pair[var].nunique() < 2 or pair[marker].nunique() < 2:
                continue
            pr = stats.pearsonr(pair[marker], pair[var])
            sr = stats.spearmanr(pair[marker], pair[var])
            rho = float(sr.statistic)
            lo, hi = _fisher_ci(float(pr.statistic), 1 / math.sqrt(n - 3))
            slo, shi = _fisher_ci(rho, math.sqrt((1 + rho**2 / 2) / (n - 3)))
            covars = [c for c in ("age_years", "female") if c != var]
            if marker.startswith("r2s") and _mixed_field(d):
                covars.append("mri_field_T")
            part = partial_correlation(d, marker, var, covars)
            rows.append(
                {
                    "marker": marker,
                    "variable": var,
                    "n": n,
                    "pearson_r": float(pr.statistic),
                    "pearson_ci_low": lo,
                    "pearson_ci_high": hi,
                    "pearson_p": float(pr.pvalue),
                    "spearman_rho": rho,
                    "spearman_ci_low": slo,
                    "spearman_ci_high": shi,
                    "spearman_p": float(sr.pvalue),
                    **part,
                    "partial_adjusted_for": ", ".join(covars),
                }
            )
    return pd.DataFrame(rows)


def partial_correlation(df: pd.DataFrame, x: str, y: str, covariates: list[str]) -> dict:
    """Pearson correlation of ``x`` and ``y`` after removing linear effects of ``covariates``.

    Residuals of each on [1, covariates] (complete cases), correlated; Fisher-z 95% CI with
    SE 1/sqrt(n - 3 - k) and a t-test with n - 2 - k degrees of freedom.
    """
    cols = [x, y, *[c for c in covariates if c in df]]
    d = df[cols].dropna().astype(float)
    d = d.loc[:, [x, y, *[c for c in cols[2:] if d[c].nunique() > 1]]]
    k = d.shape[1] - 2
    n = len(d)
    empty = {
        "partial_r": np.nan,
        "partial_ci_low": np.nan,
        "partial_ci_high": np.nan,
        "partial_p": np.nan,
        "partial_n": n,
    }
    if n - 3 - k < 1:
        return empty
    z = np.column_stack([np.ones(n), d.iloc[:, 2:].to_numpy()])
    res = []
    for col in (x, y):
        v = d[col].to_numpy()
        beta, *_ = np.linalg.lstsq(z, v, rcond=None)
        res.append(v - z @ beta)
    if np.std(res[0]) == 0 or np.std(res[1]) == 0:
        return empty
    r = float(np.corrcoef(res[0], res[1])[0, 1])
    dof = n - 2 - k
    t = r * math.sqrt(dof / max(1e-300, 1 - r * r))
    p = float(2 * stats.t.sf(abs(t), dof))
    lo, hi = _fisher_ci(r, 1 / math.sqrt(n - 3 - k))
    return {
        "partial_r": r,
        "partial_ci_low": lo,
        "partial_ci_high": hi,
        "partial_p": p,
        "partial_n": n,
    }


# --------------------------------------------------------------------------------------------
# Odds ratios


#: Columns of :func:`marker_odds_ratios`, in order.
ODDS_RATIO_COLUMNS = (
    "marker",
    "unit",
    "n",
    "events",
    "or_crude",
    "ci_low_crude",
    "ci_high_crude",
    "p_crude",
    "or_adjusted",
    "ci_low_adjusted",
    "ci_high_adjusted",
    "p_adjusted",
    "adjusted_for",
    "note",
)


def marker_odds_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Each imaging marker against the 1-year outcome, crude and adjusted (module doc).

    Patients with an unknown 1-year outcome are left out; complete cases per model. Columns:
    marker, unit, n, events, or_crude, ci_low_crude, ci_high_crude, p_crude, or_adjusted,
    ci_low_adjusted, ci_high_adjusted, p_adjusted, adjusted_for, note.
    """

    d = _with_female(df)
    rows = []
    for marker, step, unit in OUTCOME_MARKERS:
        if marker not in d or d[marker].notna().sum() < 10:
            continue
        covars = ["age_years", "female"]
        if marker.startswith("r2s") and _mixed_field(d):
            covars.append("mri_field_T")
        data = d[["outcome_1y", marker, *covars]].dropna()
        y = data["outcome_1y"].to_numpy()
        row: dict[str, object] = {
            "marker": marker,
            "unit": unit,
            "n": len(data),
            "events": int(y.sum()),
            "adjusted_for": ", ".join(covars),
        }
        notes = []
        for label, cols in (("crude", [marker]), ("adjusted", [marker, *covars])):
            values, note = _odds_ratio(data, y, marker, cols, step)
            row |= {f"{key}_{label}": value for key, value in values.items()}
            if note:
                notes.append(f"{label}: {note}")
        row["note"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(ODDS_RATIO_COLUMNS))


#: How a binary covariate's levels are named in messages.
def _odds_ratio(data: pd.DataFrame, y: np.ndarray, marker: str, cols: list[str], step: float):
    """Odds ratio of ``marker`` per ``step`` from a logistic fit on ``cols``: ({or, ci_low,
    ci_high, p}, None), or NaNs and why it is not estimable (separation, too few events, ...)."""
    import statsmodels.api as sm

    x = data[cols].astype(float).copy()
    x[marker] = x[marker] / step
    x = x.loc[:, [c for c in x.columns if x[c].nunique() > 1 or c == marker]]
    try:
        if y.sum() < 2 or (len(y) - y.sum()) < 2:
            raise ValueError("fewer than 2 events or non-events")
        separated = separation_text(x, y)
        if separated:
            raise ValueError(separated)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = sm.Logit(y, sm.add_constant(x, has_constant="add")).fit(disp=0, maxiter=100)
        if any("separation" in str(w.message).lower() for w in caught):
            raise ValueError(f"perfect separation: {marker} or a covariate predicts "
                             "the outcome exactly")  # fmt: skip
        if not fit.mle_retvals.get("converged", True):
            raise ValueError("the fit did not converge (quasi-separation?)")
        b, se = float(fit.params[marker]), float(fit.bse[marker])
        return {
            "or": math.exp(b),
            "ci_low": math.exp(b - 1.959963984540054 * se),
            "ci_high": math.exp(b + 1.959963984540054 * se),
            "p": float(fit.pvalues[marker]),
        }, None
    except Exception as err:  # separation, singular design, too few events
        return {"or": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan}, (
            f"not estimable ({err})"
        )


_LEVEL_NAMES = {"female": ("sex", {0.0: "men", 1.0: "women"})}


def separation_text(x: pd.DataFrame, y: np.ndarray) -> str:
    """A binary column whose one level has no events or no non-events separates the outcome
    perfectly (its odds ratio is infinite): named with its counts, e.g. "perfect separation by
    sex: 0 events in men (n = 45)"; "" when there is none."""
    for col in x.columns:
        values = x[col].to_numpy(float)
        levels = np.unique(values)
        if len(levels) != 2:
            continue
        name, label_of = _LEVEL_NAMES.get(col, (col, {}))
        for level in levels:
            sel = values == level
            events, n = int(y[sel].sum()), int(sel.sum())
            if events in (0, n):
                who = label_of.get(float(level), f"{col} = {level:g}")
                what = "events" if events == 0 else "non-events"
                return f"perfect separation by {name}: 0 {what} in {who} (n = {n})"
    return ""


# --------------------------------------------------------------------------------------------
# Files


_FIELD_COLOURS = {1.5: "tab:blue", 3.0: "tab:orange"}


def _field_groups(d: pd.DataFrame, marker: str, index: pd.Index) -> list[tuple[str, pd.Index, str]]:
    """(label, rows, colour) to plot separately: R2* by field strength when both occur."""
    if not (marker.startswith("r2s") and _mixed_field(d)):
        return [("", index, "tab:blue")]
    field = d.loc[index, "mri_field_T"]
    return [
        (f"{t:g} T", field.index[field == t], _FIELD_COLOURS.get(float(t), "tab:gray"))
        for t in sorted(field.dropna().unique())
    ]


def scatter_plots(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One PNG per marker: marker against each correlation variable (Agg backend)."""
    # A bare Figure: no pyplot, no global backend (the Slicer app keeps its own).
    from matplotlib.figure import Figure

    d = _with_female(df)
    paths = []
    for marker in CORRELATION_MARKERS:
        if marker not in d or d[marker].notna().sum() < 5:
            continue
        variables = [v for v in CORRELATION_VARIABLES if v in d and d[v].notna().any()]
        fig = Figure(figsize=(4 * len(variables), 3.6))
        axes = fig.subplots(1, len(variables), squeeze=False)
        for ax, var in zip(axes[0], variables, strict=True):
            pair = d[[marker, var]].dropna()
            groups = _field_groups(d, marker, pair.index)
            if var == "female":
                boxes, names = [], []
                for label, idx, _colour in groups:
                    for g, sex in ((0.0, "male"), (1.0, "female")):
                        part = pair.loc[idx]
                        boxes.append(part.loc[part[var] == g, marker])
                        names.append(f"{sex}\n{label}" if label else sex)
                ax.boxplot(boxes)
                ax.set_xticks(range(1, len(names) + 1), names)
                ax.set_xlabel("sex")
            else:
                titles = []
                for label, idx, colour in groups:
                    part = pair.loc[idx]
                    ax.scatter(part[var], part[marker], s=8, alpha=0.6, color=colour)
                    if len(part) > 2 and part[var].nunique() > 1:
                        # One line and r per field strength: pooling 1.5 and 3 T R2* mixes two
                        # scales and misstates the association.
                        slope, icpt = np.polyfit(part[var], part[marker], 1)
                        xs = np.linspace(part[var].min(), part[var].max(), 2)
                        ax.plot(xs, icpt + slope * xs, color="k" if not label else colour, lw=1)
                        r = np.corrcoef(part[var], part[marker])[0, 1]
                        prefix = f"{label}: " if label else ""
                        titles.append(f"{prefix}r = {r:.2f} (n = {len(part)})")
                ax.set_title("; ".join(titles), fontsize=9)
                ax.set_xlabel(var)
            ax.set_ylabel(marker)
        if marker.startswith("r2s"):
            fig.suptitle("R2* (1/s); blue 1.5 T, orange 3 T. Descriptive only.", fontsize=9)
        else:
            fig.suptitle("PDFF (%). Descriptive only.", fontsize=9)
        fig.tight_layout()
        path = out_dir / f"scatter_{marker}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths
