"""Describing a cohort: "Table 1", marker correlations and marker-outcome odds ratios.

Descriptive only. Nothing here feeds the risk model: model terms are pre-specified, never
selected by these univariable or age/sex-adjusted associations (DESIGN.md §6, no univariable
screening). Every output says so (:data:`DESCRIPTIVE_NOTE`).

* :func:`table_one`: baseline characteristics overall and by the 1-year outcome (patients whose
  1-year outcome is unknown appear in the overall column only). Continuous variables as mean (SD)
  with Welch's t-test, or median [IQR] with the Mann-Whitney U test when skewed (|skewness| > 1
  overall) or counts; categorical variables as n (%) with the chi-square test, or Fisher's exact
  test for a 2x2 table with an expected count below 5. Missing counts per variable.
* :func:`marker_correlations`: PDFF and R2* (global L1-L4) against DXA T-score, vertebral body
  volume, age and sex (female = 1): Pearson r with a Fisher-z 95% CI (SE 1/sqrt(n-3)), Spearman
  rho with a Fisher-z CI using the Bonett-Wright variance (1 + rho^2/2)/(n-3), and the partial
  Pearson correlation adjusted for age and sex (and for field strength when R2* comes from both
  1.5 and 3 T), CI with SE 1/sqrt(n-3-k) for k covariates.
* :func:`marker_odds_ratios`: each imaging marker against the 1-year outcome by logistic
  regression (statsmodels Logit), crude and adjusted for age and sex (and field strength for
  R2*), odds ratio per 10 units (% for fat fractions, 1/s for R2*) with Wald 95% CI.
* :func:`describe_cohort` writes all of it (CSV, HTML, PNG scatter plots) to a folder.
"""

from __future__ import annotations

import html
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from RefractureRiskLib.core.errors import InputError

DESCRIPTIVE_NOTE = (
    "Descriptive only: these summaries and associations are not used to select model terms "
    "(the model's terms are pre-specified)."
)

#: Table 1 rows: (column, label, kind) with kind continuous/count/binary/categorical.
TABLE_ONE_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("age_years", "Age, years", "continuous"),
    ("sex", "Female sex", "female"),
    ("bmi_kg_m2", "BMI, kg/m^2", "continuous"),
    ("smoking", "Current smoker", "binary"),
    ("glucocorticoid_use", "Glucocorticoid use", "binary"),
    ("diabetes", "Diabetes", "binary"),
    ("n_prevalent_vertebral_fractures", "Prevalent vertebral fractures, n", "count"),
    ("dxa_l1l4_tscore", "DXA L1-L4 T-score, SD", "continuous"),
    ("ct_hu_l1", "CT attenuation L1, HU", "continuous"),
    ("n_index_levels", "Treated levels, n", "count"),
    ("tl_junction", "Index level at T11-L2", "binary"),
    ("procedure", "Procedure", "categorical"),
    ("cement_volume_ml", "Cement volume, mL", "continuous"),
    ("cement_leak_disc", "Cement leakage into disc", "binary"),
    ("antiop_post", "Anti-osteoporosis treatment after surgery", "binary"),
    ("centre_id", "Centre", "categorical"),
    ("mri_field_T", "MRI field strength, T", "categorical"),
    ("mri_vendor", "MRI vendor", "categorical"),
    ("pdff_global_L1L4", "PDFF global L1-L4, %", "continuous"),
    ("r2s_global_L1L4", "R2* global L1-L4, 1/s (field-strength dependent)", "continuous"),
    ("pdff_adjacent", "PDFF adjacent levels, %", "continuous"),
    ("r2s_adjacent", "R2* adjacent levels, 1/s", "continuous"),
    ("paraspinal_fat_pct_L3L4", "Paraspinal fat L3-L4, %", "continuous"),
    ("body_volume_ml_L1L4", "Vertebral body volume L1-L4, mL", "continuous"),
)

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


@dataclass(frozen=True)
class DescribeResult:
    """Tables of :func:`describe_cohort` and the files written (paths in ``files``)."""

    table1: pd.DataFrame
    correlations: pd.DataFrame
    odds_ratios: pd.DataFrame
    files: tuple[Path, ...]


# --------------------------------------------------------------------------------------------
# Table 1


def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def table_one(df: pd.DataFrame) -> pd.DataFrame:
    """Baseline characteristics overall and by 1-year outcome (see module doc).

    ``df`` is a cohort as returned by :func:`~.schema.read_cohort` (with ``outcome_1y``).
    Columns: variable, level, overall, no_refracture_1y, refracture_1y, p_value, test, missing.
    """
    if "outcome_1y" not in df:
        raise InputError("cohort", "outcome_1y missing: read the cohort with read_cohort()")
    y = df["outcome_1y"]
    groups = {"no_refracture_1y": df[y == 0], "refracture_1y": df[y == 1]}
    status = df["outcome_1y_status"] if "outcome_1y_status" in df else pd.Series("", index=df.index)
    n_censored = int((y.isna() & (status == "censored_before_horizon")).sum())
    n_died = int((y.isna() & (status == "died_before_horizon")).sum())
    unknown = f"1-year outcome unknown: {int(y.isna().sum())}"
    if n_censored or n_died:
        unknown += (
            f" ({n_censored} censored and {n_died} died, a competing event, before 365 days "
            "without a re-fracture)"
        )
    rows: list[dict[str, object]] = [
        {
            "variable": "Patients, n",
            "level": "",
            "overall": str(len(df)),
            **{k: str(len(g)) for k, g in groups.items()},
            "p_value": "",
            "test": unknown,
            "missing": "",
        }
    ]
    for column, label, kind in TABLE_ONE_VARIABLES:
        if column not in df or df[column].isna().all():
            continue
        missing = str(int(df[column].isna().sum()))
        if kind in ("continuous", "count"):
            rows.append(_continuous_row(df, groups, column, label, kind, missing))
        elif kind in ("binary", "female"):
            rows.append(_binary_row(df, groups, column, label, kind, missing))
        else:
            rows += _categorical_rows(df, groups, column, label, missing)
    return pd.DataFrame(rows)


def _continuous_row(df, groups, column, label, kind, missing) -> dict[str, object]:
    x = df[column].dropna().astype(float)
    a, b = (g[column].dropna().astype(float) for g in groups.values())
    skewed = kind == "count" or (len(x) > 2 and abs(float(stats.skew(x))) > 1.0)
    if skewed:
        fmt = _median_iqr
        p = (
            stats.mannwhitneyu(a, b, alternative="two-sided").pvalue
            if len(a) and len(b)
            else np.nan
        )
        test = "Mann-Whitney U"
    else:
        fmt = _mean_sd
        p = stats.ttest_ind(a, b, equal_var=False).pvalue if len(a) > 1 and len(b) > 1 else np.nan
        test = "Welch t-test"
    return {
        "variable": label + (", median [IQR]" if skewed else ", mean (SD)"),
        "level": "",
        "overall": fmt(x),
        "no_refracture_1y": fmt(a),
        "refracture_1y": fmt(b),
        "p_value": _fmt_p(p),
        "test": test,
        "missing": missing,
    }


def _mean_sd(x: pd.Series) -> str:
    return f"{x.mean():.1f} ({x.std(ddof=1):.1f})" if len(x) > 1 else ""


def _median_iqr(x: pd.Series) -> str:
    if not len(x):
        return ""
    q1, q2, q3 = np.percentile(x, [25, 50, 75])
    return f"{q2:.1f} [{q1:.1f}, {q3:.1f}]"


def _n_pct(k: int, n: int) -> str:
    return f"{k} ({100.0 * k / n:.1f}%)" if n else ""


def _binary_row(df, groups, column, label, kind, missing) -> dict[str, object]:
    def yes(s: pd.Series) -> pd.Series:
        s = s.dropna()
        return (s == "F") if kind == "female" else (s == 1)

    counts = [(int(yes(g[column]).sum()), int(g[column].notna().sum())) for g in groups.values()]
    table = np.array([[k, n - k] for k, n in counts])
    p, test = _categorical_test(table)
    x = yes(df[column])
    return {
        "variable": label + ", n (%)",
        "level": "",
        "overall": _n_pct(int(x.sum()), len(x)),
        "no_refracture_1y": _n_pct(*counts[0]),
        "refracture_1y": _n_pct(*counts[1]),
        "p_value": _fmt_p(p),
        "test": test,
        "missing": missing,
    }


def _categorical_rows(df, groups, column, label, missing) -> list[dict[str, object]]:
    levels = sorted(df[column].dropna().unique(), key=str)
    table = np.array([[int((g[column] == lv).sum()) for lv in levels] for g in groups.values()]).T
    p, test = _categorical_test(table)
    n_all = int(df[column].notna().sum())
    n_grp = [int(g[column].notna().sum()) for g in groups.values()]
    rows = []
    for i, lv in enumerate(levels):
        rows.append(
            {
                "variable": label + ", n (%)" if i == 0 else "",
                "level": f"{lv:g}" if isinstance(lv, float) else str(lv),
                "overall": _n_pct(int((df[column] == lv).sum()), n_all),
                "no_refracture_1y": _n_pct(int(table[i, 0]), n_grp[0]),
                "refracture_1y": _n_pct(int(table[i, 1]), n_grp[1]),
                "p_value": _fmt_p(p) if i == 0 else "",
                "test": test if i == 0 else "",
                "missing": missing if i == 0 else "",
            }
        )
    return rows


def _categorical_test(table: np.ndarray) -> tuple[float, str]:
    """Chi-square, or Fisher's exact test for a 2x2 table with an expected count below 5."""
    table = table[(table.sum(axis=1) > 0)]
    if table.shape[0] < 2 or (table.sum(axis=0) == 0).any():
        return np.nan, ""
    expected = stats.contingency.expected_freq(table)
    if table.shape == (2, 2) and expected.min() < 5:
        return float(stats.fisher_exact(table).pvalue), "Fisher exact"
    res = stats.chi2_contingency(table, correction=False)
    note = " (expected count < 5)" if expected.min() < 5 else ""
    return float(res.pvalue), "chi-square" + note


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


def marker_odds_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Each imaging marker against the 1-year outcome, crude and adjusted (module doc).

    Patients with an unknown 1-year outcome are left out; complete cases per model. Columns:
    marker, unit, n, events, or_crude, ci_low_crude, ci_high_crude, p_crude, or_adjusted,
    ci_low_adjusted, ci_high_adjusted, p_adjusted, adjusted_for, note.
    """
    import statsmodels.api as sm

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
            x = data[cols].astype(float).copy()
            x[marker] = x[marker] / step
            x = x.loc[:, [c for c in x.columns if x[c].nunique() > 1 or c == marker]]
            try:
                if y.sum() < 2 or (len(y) - y.sum()) < 2:
                    raise ValueError("fewer than 2 events or non-events")
                separated = _separation(x, y)
                if separated:
                    raise ValueError(separated)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    fit = sm.Logit(y, sm.add_constant(x, has_constant="add")).fit(
                        disp=0, maxiter=100
                    )
                if any("separation" in str(w.message).lower() for w in caught):
                    raise ValueError(f"perfect separation: {marker} or a covariate predicts "
                                     "the outcome exactly")  # fmt: skip
                if not fit.mle_retvals.get("converged", True):
                    raise ValueError("the fit did not converge (quasi-separation?)")
                b, se = float(fit.params[marker]), float(fit.bse[marker])
                row |= {
                    f"or_{label}": math.exp(b),
                    f"ci_low_{label}": math.exp(b - 1.959963984540054 * se),
                    f"ci_high_{label}": math.exp(b + 1.959963984540054 * se),
                    f"p_{label}": float(fit.pvalues[marker]),
                }
            except Exception as err:  # separation, singular design, too few events
                row |= {
                    f"or_{label}": np.nan,
                    f"ci_low_{label}": np.nan,
                    f"ci_high_{label}": np.nan,
                    f"p_{label}": np.nan,
                }
                notes.append(f"{label}: not estimable ({err})")
        row["note"] = "; ".join(notes)
        rows.append(row)
    cols = [
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
    ]
    return pd.DataFrame(rows, columns=cols)


#: How a binary covariate's levels are named in messages.
_LEVEL_NAMES = {"female": ("sex", {0.0: "men", 1.0: "women"})}


def _separation(x: pd.DataFrame, y: np.ndarray) -> str:
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


def describe_cohort(df: pd.DataFrame, out_dir: str | Path) -> DescribeResult:
    """Write Table 1, correlations, odds ratios (CSV + one HTML page) and scatter plots.

    Files in ``out_dir`` (created): table1.csv, table1.html, correlations.csv,
    odds_ratios.csv, scatter_<marker>.png, describe.html (everything, with the note that these
    results are descriptive and not used to select model terms) and README.txt (the note).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t1 = table_one(df)
    corr = marker_correlations(df)
    ors = marker_odds_ratios(df)
    files = [
        out / "table1.csv",
        out / "table1.html",
        out / "correlations.csv",
        out / "odds_ratios.csv",
    ]
    t1.to_csv(files[0], index=False)
    files[1].write_text(_page("Table 1: baseline characteristics", [_t1_html(t1)]), "utf-8")
    corr.to_csv(files[2], index=False)
    ors.to_csv(files[3], index=False)
    pngs = scatter_plots(df, out)
    files += pngs
    sections = [
        "<h2>Table 1: baseline characteristics by 1-year outcome</h2>",
        _t1_html(t1),
        "<h2>Correlations of marrow PDFF and R2* (global L1-L4)</h2>",
        _num_html(corr),
        *[f'<p><img src="{html.escape(p.name)}" alt="{html.escape(p.stem)}"></p>' for p in pngs],
        "<h2>Imaging markers and the 1-year outcome (logistic regression)</h2>",
        _num_html(ors),
    ]
    page = out / "describe.html"
    page.write_text(_page("Cohort description", sections), "utf-8")
    readme = out / "README.txt"
    readme.write_text(
        "Cohort description written by refracture-risk describe.\n" + DESCRIPTIVE_NOTE + "\n",
        "utf-8",
    )
    files += [page, readme]
    return DescribeResult(t1, corr, ors, tuple(files))


def _t1_html(t1: pd.DataFrame) -> str:
    return t1.rename(
        columns={
            "no_refracture_1y": "no re-fracture in 1 year",
            "refracture_1y": "re-fracture in 1 year",
        }
    ).to_html(index=False, escape=True)


def _num_html(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p>Not enough data.</p>"
    return table.to_html(index=False, escape=True, float_format=lambda v: f"{v:.3g}", na_rep="")


def _page(title: str, sections: list[str]) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:2px 6px;font-size:90%}"
        ".note{background:#fff3cd;padding:0.5em;border:1px solid #e0c36b}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='note'>{html.escape(DESCRIPTIVE_NOTE)}</p>"
        + "\n".join(sections)
        + "</body></html>\n"
    )
