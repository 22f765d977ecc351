"""Synthetic cohorts with a known 1-year risk model, for tests, benchmarks and the demonstration.

:func:`generate_cohort` draws patients whose columns follow :data:`~.schema.COHORT_SCHEMA` and
pass :func:`~.schema.read_cohort`, with correlations of the kind the literature reports:

* T-score falls with age and is higher in men and with higher BMI;
* marrow PDFF (%) rises with age and falls with T-score (more fat in osteoporotic marrow), rises
  caudally from T10 to L5, and is 10-25 points lower in acutely fractured levels (oedema);
* R2* (1/s) is lower with osteoporosis (fewer trabeculae) and about twice as high at 3 T as at
  1.5 T; each centre has one scanner (field strength and vendor per centre);
* index levels cluster at the thoracolumbar junction; the index and cemented levels are marked
  ``index;cemented`` and have no PDFF/R2* value, prevalent fractures ``fractured``.

The 1-year outcome is drawn from a logistic model on the terms of :data:`DEFAULT_TERMS` with
:data:`DEFAULT_COEFFICIENTS` (the demonstration model's log odds ratios, issue 5 item 6) unless
others are given; the intercept is solved so that the mean risk equals ``event_rate``. Follow-up
times are consistent with it: a patient with the outcome has a re-fracture at day 1-365, the
others none before day 366; independent loss to follow-up and death (a competing event) may
end follow-up earlier, which makes the 1-year outcome unknown (NaN) for those patients.
Because early censoring ends follow-up before an event more often for patients without one,
the fitted intercept on the patients with a known outcome is slightly biased (log of the ratio
of the probabilities of being observed, about +0.04 at the default rates); the slopes are not.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from RefractureRiskLib.model.dev.schema import (
    COHORT_SCHEMA,
    HORIZON_DAYS,
    MEASURED_LEVELS,
    TL_JUNCTION_LEVELS,
)
from RefractureRiskLib.model.dev.synthetic_levels import (
    draw_index_levels,
    draw_marrow,
    marrow_summaries,
)


@dataclass(frozen=True)
class SyntheticTerm:
    """A term of the true logistic model: how its value is computed from cohort columns.

    ``kind``: ``linear`` -> (column - reference) / scale; ``equals`` -> 1.0 where
    column == reference else 0.0; ``at_least`` -> 1.0 where column >= reference.
    """

    name: str
    column: str
    kind: str
    reference: float | str = 0.0
    scale: float = 1.0
    description: str = ""

    def values(self, df: pd.DataFrame) -> np.ndarray:
        """The term's value per row (NaN where the column is missing)."""
        col = df[self.column]
        missing = col.isna().to_numpy()
        if self.kind == "linear":
            x = (col.to_numpy(dtype=float) - float(self.reference)) / self.scale
        elif self.kind == "equals":
            x = (col == self.reference).to_numpy(dtype=float)
        elif self.kind == "at_least":
            x = (col.to_numpy(dtype=float) >= float(self.reference)).astype(float)
        else:
            raise ValueError(f"unknown term kind {self.kind!r}")
        x[missing] = np.nan
        return x


#: Terms of the true model (the demonstration model's terms, issue 5 item 6).
DEFAULT_TERMS: tuple[SyntheticTerm, ...] = (
    SyntheticTerm("age", "age_years", "linear", 70.0, 1.0, "(age - 70) per year"),
    SyntheticTerm("female", "sex", "equals", "F", 1.0, "female sex"),
    SyntheticTerm("tscore", "dxa_l1l4_tscore", "linear", -2.5, 1.0, "(T-score + 2.5) per SD"),
    SyntheticTerm("cement_leak_disc", "cement_leak_disc", "equals", 1.0, 1.0, "disc leakage"),
    SyntheticTerm("no_antiop_post", "antiop_post", "equals", 0.0, 1.0, "no anti-OP treatment"),
    SyntheticTerm("tl_junction", "tl_junction", "equals", 1.0, 1.0, "index level at T11-L2"),
    SyntheticTerm("glucocorticoid_use", "glucocorticoid_use", "equals", 1.0, 1.0, "steroids"),
    SyntheticTerm(
        "prior_vertebral_fracture",
        "n_prevalent_vertebral_fractures",
        "at_least",
        1.0,
        1.0,
        "one or more prevalent vertebral fractures",
    ),
    SyntheticTerm("pdff_global", "pdff_global_L1L4", "linear", 60.0, 10.0, "(PDFF - 60) per 10 %"),
    SyntheticTerm("r2s_global", "r2s_global_L1L4", "linear", 100.0, 10.0, "(R2* - 100) per 10 1/s"),
)

#: Default true log odds ratios per term (the demonstration model's; no intercept: it is solved
#: from ``event_rate`` unless ``true_coefficients`` contains ``"intercept"``).
DEFAULT_COEFFICIENTS: Mapping[str, float] = {
    "age": 0.043,
    "female": 0.344,
    "tscore": -0.151,
    "cement_leak_disc": 0.539,
    "no_antiop_post": 0.538,
    "tl_junction": 0.626,
    "glucocorticoid_use": 0.686,
    "prior_vertebral_fracture": 0.329,
    "pdff_global": 0.168,
    "r2s_global": 0.0,
}

#: Columns that ``missing_frac`` may blank (optional predictors and MRI values).
MISSABLE_COLUMNS: tuple[str, ...] = (
    "bmi_kg_m2",
    "smoking",
    "glucocorticoid_use",
    "diabetes",
    "n_prevalent_vertebral_fractures",
    "dxa_l1l4_tscore",
    "ct_hu_l1",
    "cement_volume_ml",
    "cement_leak_disc",
    "antiop_post",
    "pdff_global_L1L4",
    "r2s_global_L1L4",
    "pdff_adjacent",
    "r2s_adjacent",
    "paraspinal_fat_pct_L3L4",
    "body_volume_ml_L1L4",
)

_CENTRE_SCANNERS: tuple[tuple[float, str], ...] = (
    (3.0, "GE"),
    (1.5, "Siemens"),
    (3.0, "Philips"),
    (1.5, "GE"),
)


@dataclass(frozen=True)
class SyntheticCohort:
    """A synthetic cohort and the truth behind it.

    ``data``: the cohort table (schema columns only; passes read_cohort).
    ``true_coefficients``: log odds ratios per term name plus ``"intercept"``.
    ``terms``: how each term is computed from ``data`` (:class:`SyntheticTerm`).
    ``risk_1y``: each patient's true 1-year probability; ``outcome_latent``: the drawn 1-year
    outcome before censoring (known for every patient, unlike the derived ``outcome_1y``).
    """

    data: pd.DataFrame
    true_coefficients: dict[str, float]
    terms: tuple[SyntheticTerm, ...]
    risk_1y: np.ndarray = field(repr=False)
    outcome_latent: np.ndarray = field(repr=False)

    def design_matrix(self, data: pd.DataFrame | None = None) -> pd.DataFrame:
        """Term values (one column per term, NaN where an input is missing)."""
        df = self.data if data is None else data
        return pd.DataFrame({t.name: t.values(df) for t in self.terms}, index=df.index)


def generate_cohort(
    n: int = 560,
    n_centres: int = 3,
    missing_frac: float = 0.0,
    true_coefficients: Mapping[str, float] | None = None,
    event_rate: float = 0.12,
    seed: int = 0,
    *,
    terms: tuple[SyntheticTerm, ...] = DEFAULT_TERMS,
    lost_to_follow_up_frac: float = 0.03,
    death_1y_frac: float = 0.04,
) -> SyntheticCohort:
    """Draw a synthetic cohort of ``n`` patients from ``n_centres`` centres (see module doc).

    ``true_coefficients``: log odds ratios by term name (missing names count as 0; with
    ``"intercept"`` the intercept is used as given and ``event_rate`` ignored), default
    :data:`DEFAULT_COEFFICIENTS`. ``missing_frac``: fraction of cells blanked completely at
    random in each of :data:`MISSABLE_COLUMNS` (the outcome is drawn before, from the full data).
    ``lost_to_follow_up_frac`` / ``death_1y_frac``: fraction of patients lost to follow-up /
    dying (uniformly) within the first year; set both to 0 to know every 1-year outcome.
    The same arguments always give the same cohort. ``data.attrs`` holds the true coefficients.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 1 <= n_centres <= 26:
        raise ValueError(f"n_centres must be 1..26, got {n_centres}")
    if not 0.0 <= missing_frac < 1.0:
        raise ValueError(f"missing_frac must be in [0, 1), got {missing_frac}")
    if not 0.0 < event_rate < 1.0:
        raise ValueError(f"event_rate must be in (0, 1), got {event_rate}")
    coefs = dict(DEFAULT_COEFFICIENTS if true_coefficients is None else true_coefficients)
    unknown = set(coefs) - {t.name for t in terms} - {"intercept"}
    if unknown:
        raise ValueError(f"true_coefficients has unknown terms {sorted(unknown)}")

    rng = np.random.default_rng(seed)
    df = _draw_patients(rng, n, n_centres)

    x = np.column_stack([t.values(df) for t in terms])
    beta = np.array([coefs.get(t.name, 0.0) for t in terms])
    lp_no_intercept = x @ beta
    if "intercept" in coefs:
        intercept = float(coefs["intercept"])
    else:
        intercept = brentq(lambda b0: expit(b0 + lp_no_intercept).mean() - event_rate, -30, 30)
    coefs = {"intercept": intercept, **{t.name: coefs.get(t.name, 0.0) for t in terms}}
    risk = expit(intercept + lp_no_intercept)
    outcome = (rng.random(n) < risk).astype(int)
    _add_follow_up(df, rng, outcome, lost_to_follow_up_frac, death_1y_frac)

    if missing_frac > 0:
        for name in MISSABLE_COLUMNS:
            blank = rng.random(n) < missing_frac
            df.loc[blank, name] = np.nan

    df = df[[s.name for s in COHORT_SCHEMA if s.name in df.columns]]
    df.attrs["true_coefficients"] = dict(coefs)
    df.attrs["synthetic"] = f"generate_cohort(n={n}, n_centres={n_centres}, seed={seed})"
    return SyntheticCohort(df, coefs, tuple(terms), risk, outcome)


def _draw_patients(rng: np.random.Generator, n: int, n_centres: int) -> pd.DataFrame:
    """``n`` patients' clinical, imaging and per-level columns (the outcome is added later).

    The draws are made in one fixed order (the helpers are called in it), so a seed gives the
    same cohort as before.
    """
    centre = rng.integers(0, n_centres, n)
    female = rng.random(n) < 0.78
    age = np.clip(rng.normal(72.0, 8.0, n), 50.0, 98.0).round(1)
    bmi = np.clip(rng.normal(24.0, 3.5, n), 15.0, 45.0)
    tscore = np.clip(
        -2.6 - 0.03 * (age - 72) + 0.6 * ~female + 0.05 * (bmi - 24) + rng.normal(0, 0.9, n),
        -5.5,
        2.0,
    )
    n_prev = np.minimum(rng.poisson(np.exp(-0.6 - 0.35 * (tscore + 2.5))), 6)
    field_t = np.array([_CENTRE_SCANNERS[c % len(_CENTRE_SCANNERS)][0] for c in centre])
    index_lists = [draw_index_levels(rng) for _ in range(n)]
    pdff, r2s, excl = draw_marrow(rng, age, tscore, index_lists, n_prev, field_t)
    cols: dict[str, object] = {
        "patient_id": [f"SYN{k + 1:05d}" for k in range(n)],
        "centre_id": [f"C{c + 1}" for c in centre],
        "surgery_date": _surgery_dates(rng, n),
        "age_years": age,
        "sex": np.where(female, "F", "M").astype(object),
        "bmi_kg_m2": bmi.round(1),
    }
    cols.update(_treatment_columns(rng, centre, tscore, n_prev, index_lists, field_t))
    for j, lv in enumerate(MEASURED_LEVELS):
        cols[f"pdff_pct_{lv}"] = pdff[:, j].round(2)
        cols[f"r2s_per_s_{lv}"] = r2s[:, j].round(1)
        cols[f"excl_{lv}"] = excl[:, j]
    cols.update(marrow_summaries(pdff, r2s, excl, index_lists))
    cols.update(
        {
            "paraspinal_fat_pct_L3L4": np.clip(
                15 + 0.4 * (age - 72) + 3 * female + rng.normal(0, 6, n), 2, 80
            ).round(1),
            "body_volume_ml_L1L4": np.clip(
                36 + 9 * ~female + 1.5 * (tscore + 2.5) + rng.normal(0, 4, n), 15, 90
            ).round(1),
        }
    )
    return pd.DataFrame(cols)


def _surgery_dates(rng: np.random.Generator, n: int) -> pd.DatetimeIndex:
    """Index surgery dates, uniform over five years from 2019."""
    start = _dt.date(2019, 1, 1).toordinal()
    days = rng.integers(0, 5 * 365, n)
    return pd.to_datetime([_dt.date.fromordinal(start + d) for d in days])


def _treatment_columns(
    rng: np.random.Generator,
    centre: np.ndarray,
    tscore: np.ndarray,
    n_prev: np.ndarray,
    index_lists: list[list[str]],
    field_t: np.ndarray,
) -> dict[str, object]:
    """Risk factors, the index surgery (levels, procedure, cement) and the scanner."""
    n = len(centre)
    n_index = np.array([len(v) for v in index_lists])
    return {
        "smoking": (rng.random(n) < 0.12).astype(float),
        "glucocorticoid_use": (rng.random(n) < 0.10).astype(float),
        "diabetes": (rng.random(n) < 0.18).astype(float),
        "n_prevalent_vertebral_fractures": n_prev.astype(float),
        "dxa_l1l4_tscore": tscore.round(2),
        "ct_hu_l1": np.clip(120 + 25 * (tscore + 2.5) + rng.normal(0, 15, n), 10, 400).round(0),
        "n_index_levels": n_index,
        "index_levels": [";".join(v) for v in index_lists],
        "tl_junction": np.array([float(bool(set(v) & TL_JUNCTION_LEVELS)) for v in index_lists]),
        "procedure": np.where(rng.random(n) < 0.55 + 0.1 * (centre % 2), "PVP", "PKP").astype(
            object
        ),
        "cement_volume_ml": np.clip(n_index * rng.normal(4.5, 1.2, n), 1.0, 30.0).round(1),
        "cement_leak_disc": (rng.random(n) < 0.20).astype(float),
        "antiop_post": (rng.random(n) < 0.60).astype(float),
        "mri_field_T": field_t,
        "mri_vendor": [_CENTRE_SCANNERS[c % len(_CENTRE_SCANNERS)][1] for c in centre],
        "reader_id": np.where(rng.random(n) < 0.5, "R1", "R2").astype(object),
    }


def _add_follow_up(
    df: pd.DataFrame,
    rng: np.random.Generator,
    outcome: np.ndarray,
    lost_frac: float,
    death_frac: float,
) -> None:
    """time_days and event consistent with the latent 1-year outcome (see module doc)."""
    n = len(outcome)
    # Re-fracture time: most within months of the augmentation (Beta(1, 1.8) on 1..365 days);
    # patients without the 1-year outcome may re-fracture in later years.
    t_event = np.where(
        outcome == 1,
        np.ceil(1 + 364 * rng.beta(1.0, 1.8, n)),
        HORIZON_DAYS + 1 + np.ceil(rng.exponential(4000.0, n)),
    )
    t_admin = rng.integers(400, 3 * 365, n).astype(float)  # end of study follow-up
    t_lost = np.where(rng.random(n) < lost_frac, rng.integers(14, HORIZON_DAYS, n), np.inf)
    t_death = np.where(rng.random(n) < death_frac, rng.integers(1, HORIZON_DAYS, n), np.inf)
    # deaths beyond the first year also happen (about 6% a year), competing with later events
    late_death = rng.random(n) < 0.06
    t_death = np.where(np.isinf(t_death) & late_death, rng.integers(366, 1500, n), t_death)
    t_censor = np.minimum(t_admin, t_lost)
    time = np.minimum.reduce([t_event, t_censor, t_death])
    event = np.where(time == t_event, 1, np.where(time == t_death, 2, 0))
    df["refracture"] = (event == 1).astype(float)
    df["time_days"] = time
    df["event"] = event.astype(np.int64)
