"""Candidate terms of a model to be trained: their inputs, transforms and input specifications.

:data:`DEFAULT_CANDIDATES` are the study's terms (the demonstration model's); :func:`with_splines`
makes continuous ones restricted cubic splines; :func:`field_strength_handling` adds what R2* from
more than one field strength needs; :func:`input_spec` derives an input's kind, unit and limits
from the cohort schema and the training data; :func:`checked_cohort` and
:func:`sample_size_check` say whether a cohort can carry the candidates (every column usable;
enough patients and events for their parameters).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.dev.estimator import OUTCOME
from RefractureRiskLib.model.splines import default_knots
from RefractureRiskLib.model.terms import InputSpec, Term, Transform


@dataclass(frozen=True)
class CandidateTerm:
    """A term to be estimated: its input, transform and (for ``rcs``) the number of knots."""

    name: str
    input: str
    transform: str  # linear | indicator | threshold | rcs
    center: float = 0.0
    scale: float = 1.0
    levels: tuple[str, ...] = ()
    above: float = 0.0
    n_knots: int = 4
    label: str = ""

    def build(self, values: np.ndarray) -> Term:
        """The model term, with spline knots at Harrell's quantiles of the observed values."""
        knots: tuple[float, ...] = ()
        if self.transform == "rcs":
            z = (np.asarray(values, dtype=float) - self.center) / self.scale
            try:
                knots = default_knots(z, self.n_knots)
            except ValueError as err:
                raise InputError(self.input, f"spline for term {self.name}: {err}") from None
        tr = Transform(
            self.transform, self.center, self.scale, tuple(self.levels), self.above, knots
        )
        return Term(self.name, self.input, tr, label=self.label)


#: The candidate terms of the study (the demonstration model's terms, issue 5 item 6). Labels are
#: clinical words in sentence case, a slope's unit and reference after a comma ("Age, per year
#: (reference 70)"); the model card, ``score`` and the validation report show them as written.
DEFAULT_CANDIDATES: tuple[CandidateTerm, ...] = (
    CandidateTerm(
        "age_per_year", "age_years", "linear", 70.0, 1.0, label="Age, per year (reference 70)"
    ),
    CandidateTerm("female", "sex", "indicator", levels=("F",), label="Female sex"),
    CandidateTerm(
        "tscore_per_sd",
        "dxa_l1l4_tscore",
        "linear",
        -2.5,
        1.0,
        label="DXA L1-L4 T-score, per SD (reference -2.5)",
    ),
    CandidateTerm(
        "cement_leak_disc",
        "cement_leak_disc",
        "indicator",
        levels=("1",),
        label="Cement leakage into an adjacent disc",
    ),
    CandidateTerm(
        "no_antiop_post",
        "antiop_post",
        "indicator",
        levels=("0",),
        label="No anti-osteoporosis treatment after surgery",
    ),
    CandidateTerm(
        "tl_junction",
        "tl_junction",
        "indicator",
        levels=("1",),
        label="Index level at the thoracolumbar junction (T11-L2)",
    ),
    CandidateTerm(
        "glucocorticoid_use",
        "glucocorticoid_use",
        "indicator",
        levels=("1",),
        label="Systemic glucocorticoid use",
    ),
    CandidateTerm(
        "prior_vertebral_fracture",
        "n_prevalent_vertebral_fractures",
        "threshold",
        above=0.0,
        label="Prior vertebral fracture (one or more prevalent)",
    ),
    CandidateTerm(
        "pdff_per_10",
        "pdff_global_L1L4",
        "linear",
        60.0,
        10.0,
        label="PDFF global L1-L4, per 10 points (reference 60%)",
    ),
    CandidateTerm(
        "r2s_per_10",
        "r2s_global_L1L4",
        "linear",
        100.0,
        10.0,
        label="R2* global L1-L4, per 10 1/s (reference 100 1/s)",
    ),
)


#: Added by :func:`~RefractureRiskLib.model.dev.training.train_model` when R2* terms meet R2* from
#: both 1.5 and 3 T (see :func:`field_strength_handling`).
FIELD_STRENGTH_TERM = CandidateTerm(
    "field_3t",
    "mri_field_T",
    "threshold",
    above=2.25,
    label="3 T scanner (R2* at 3 T is about twice its 1.5 T value)",
)


def field_strength_handling(
    data: pd.DataFrame, candidates: Sequence[CandidateTerm], known: np.ndarray
) -> tuple[tuple[CandidateTerm, ...], str | None, str | None]:
    """R2* depends on the field strength: (candidates, extra input without a term, note).

    - R2* from 1.5 and 3 T: the 3 T indicator :data:`FIELD_STRENGTH_TERM` is added (unless a
      candidate already uses ``mri_field_T``) so that the R2* coefficient is not confounded by
      the scanner; the R2* slope itself is still pooled over field strengths.
    - R2* from one field strength: ``mri_field_T`` becomes a model input without a term, so that
      scoring an image from another field strength is flagged as an extrapolation.
    """
    r2s = [c.input for c in candidates if c.input.startswith("r2s")]
    if not r2s or any(c.input == "mri_field_T" for c in candidates):
        return tuple(candidates), None, None
    if "mri_field_T" not in data:
        raise InputError(
            "mri_field_T",
            f"column missing: the R2* term(s) on {sorted(set(r2s))} need the field strength "
            "(R2* at 3 T is about twice its 1.5 T value)",
        )
    check_column(data, FIELD_STRENGTH_TERM)
    rows = known & data[r2s].notna().any(axis=1).to_numpy()
    fields = sorted(pd.to_numeric(data.loc[rows, "mri_field_T"], errors="coerce").dropna().unique())
    if len(fields) > 1:
        note = (
            f"R2* was measured at {' and '.join(f'{f:g} T' for f in fields)}: the term "
            f"{FIELD_STRENGTH_TERM.name} ({FIELD_STRENGTH_TERM.label}) was added so that the R2* "
            "coefficient is not confounded by the scanner; the R2* slope is pooled over field "
            "strengths"
        )
        return (*candidates, FIELD_STRENGTH_TERM), None, note
    if len(fields) == 1:
        note = (
            f"R2* was measured at {fields[0]:g} T only: the model's R2* term(s) apply to "
            f"{fields[0]:g} T images, and scoring an image from another field strength is "
            "flagged as an extrapolation"
        )
        return tuple(candidates), "mri_field_T", note
    return tuple(candidates), None, None


def _what(c: CandidateTerm) -> str:
    """The input in clinical words: the label before its slope ("Age" of "Age, per year ...")."""
    return c.label.split(", per ")[0] if c.label else c.input


def with_splines(
    candidates: Sequence[CandidateTerm], names: Sequence[str], n_knots: int = 4
) -> tuple[CandidateTerm, ...]:
    """The candidates with the named linear terms (term or input names) made splines."""
    wanted = set(names)
    known = {c.name for c in candidates} | {c.input for c in candidates}
    unknown = wanted - known
    if unknown:
        raise InputError("splines", f"no candidate term or input named {sorted(unknown)}")
    out = []
    for c in candidates:
        if c.name in wanted or c.input in wanted:
            if c.transform != "linear":
                raise InputError("splines", f"term {c.name} is not continuous")
            c = replace(
                c,
                transform="rcs",
                n_knots=n_knots,
                name=f"{c.input}_rcs",
                label=f"{_what(c)} (restricted cubic spline, {n_knots} knots)",
            )
        out.append(c)
    return tuple(out)


def input_spec(name: str, values: pd.Series) -> InputSpec:
    """An input's kind, unit and limits from the cohort schema and the training data."""
    from RefractureRiskLib.model.dev.schema import column_spec

    try:
        col = column_spec(name)
    except KeyError:
        col = None
    dtype = (
        col.dtype
        if col is not None
        else ("float" if pd.api.types.is_numeric_dtype(values) else "category")
    )
    present = values.dropna()
    if dtype == "category":
        levels = tuple(
            str(v)
            for v in (
                col.allowed
                if col is not None and col.allowed
                else sorted(present.astype(str).unique())
            )
        )
        mode = str(present.astype(str).mode().iloc[0]) if len(present) else None
        return InputSpec(
            name,
            "category",
            description=col.description if col else "",
            levels=levels,
            missing_value=mode,
        )
    numbers = pd.to_numeric(present, errors="coerce").to_numpy(dtype=float)
    if dtype == "boolean":
        mode = float(np.round(numbers.mean())) if numbers.size else None
        return InputSpec(
            name, "binary", description=col.description if col else "", missing_value=mode
        )
    hard = None
    if col is not None and col.min is not None and col.max is not None:
        hard = (float(col.min), float(col.max))
    soft = (float(numbers.min()), float(numbers.max())) if numbers.size else None
    median = float(np.median(numbers)) if numbers.size else None
    return InputSpec(
        name,
        "number",
        unit=col.unit if col else "",
        description=col.description if col else "",
        soft_range=soft,
        hard_range=hard,
        missing_value=median,
    )


def check_column(data: pd.DataFrame, c: CandidateTerm) -> None:
    """The candidate's column holds what its transform needs (InputError naming it)."""
    col = data[c.input]
    if c.transform == "indicator":
        present = set(
            col.dropna().map(
                lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
            )
        )
        if not present & set(c.levels):
            raise InputError(
                c.input,
                f"no value equals {list(c.levels)} (values seen: {sorted(present)[:5]})",
            )
    elif not pd.api.types.is_numeric_dtype(col):
        bad = col[pd.to_numeric(col, errors="coerce").isna() & col.notna()]
        raise InputError(c.input, f"must be numeric, found {bad.iloc[0]!r} (row {bad.index[0]})")


def checked_cohort(cohort: Any, candidates: Sequence[CandidateTerm]) -> pd.DataFrame:
    """A copy of the cohort with ``outcome_1y`` (derived from time_days/event when absent) and
    every column the candidates need checked; InputError naming the first unusable column."""
    if not isinstance(cohort, pd.DataFrame):
        raise InputError("cohort", "expected a pandas DataFrame (use read_cohort for files)")
    if len(cohort) == 0:
        raise InputError("cohort", "the cohort table is empty")
    data = cohort.copy()
    if OUTCOME not in data:
        if {"time_days", "event"} <= set(data.columns):
            from RefractureRiskLib.model.dev.schema import outcome_1y

            data[OUTCOME] = outcome_1y(
                data["time_days"].to_numpy(float), data["event"].to_numpy(float)
            )[0]
        else:
            raise InputError(OUTCOME, "column missing (and no time_days/event to derive it from)")
    needed = list(dict.fromkeys([c.input for c in candidates] + ["centre_id"]))
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise InputError(
            missing[0], f"column needed by the model is missing (all missing: {missing})"
        )
    for c in candidates:
        check_column(data, c)
    y = data[OUTCOME].dropna()
    if not y.isin([0, 1]).all():
        raise InputError(OUTCOME, "must be 0, 1 or missing")
    return data


def sample_size_check(
    n: int, events: int, n_params: int, log: Callable[[str], None]
) -> tuple[str, bool]:
    """The Riley check of ``n_params`` candidate parameters, logged: (message, enough data)."""
    if events >= n or events == 0:
        return "sample-size check not possible", False
    from RefractureRiskLib.model.dev.samplesize import supported_parameters

    sp = supported_parameters(n, events)
    ok = n_params <= sp.max_parameters
    msg = f"sample size: {sp.message()}; candidate parameters: {n_params}"
    log(msg)
    if not ok:
        warn = (
            f"WARNING: {n_params} candidate parameters exceed the {sp.max_parameters} these data "
            "support: expect overfitting; penalisation helps but does not remove it — reduce "
            "the candidate terms (without looking at their association with the outcome)"
        )
        log(warn)
        msg += "\n" + warn
    return msg, ok
