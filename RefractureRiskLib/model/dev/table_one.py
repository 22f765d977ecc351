"""Table 1 of a cohort: baseline characteristics overall and by the 1-year outcome.

Continuous variables as mean (SD) with Welch's t-test, or median [IQR] with the Mann-Whitney U
test when skewed (|skewness| > 1 overall) or counts; categorical variables as n (%) with the
chi-square test, or Fisher's exact test for a 2x2 table with an expected count below 5. Patients
whose 1-year outcome is unknown appear in the overall column only. Descriptive only (see
:mod:`.describe`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from RefractureRiskLib.core.errors import InputError

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
