"""Intra- and inter-reader agreement per level from the measurement store's current rows.

Inter-reader: subjects are patients, raters are readers (session 1 unless told), per level and
over all levels. Intra-reader: for one reader, raters are that reader's sessions. Only subjects
measured by every rater are used (complete cases); the count is reported.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from RefractureRiskLib.core.levels import level_index
from RefractureRiskLib.stats.agreement import bland_altman, icc_absolute_agreement

ALL_LEVELS = "all"


def _wide(rows: Sequence[Mapping[str, Any]], rater_key: str) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    if df.empty:
        return df
    return df.pivot_table(
        index=["level", "patient_id"], columns=rater_key, values="mean", aggfunc="last"
    )


def _agreement_rows(wide: pd.DataFrame, unit: str, rater_label: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    levels = sorted(set(wide.index.get_level_values("level")), key=level_index)
    for level in [*levels, ALL_LEVELS]:
        part = wide if level == ALL_LEVELS else wide.xs(level, level="level", drop_level=False)
        complete = part.dropna()
        row: dict[str, Any] = {
            "level": level,
            "raters": rater_label,
            "n_raters": wide.shape[1],
            "n_subjects": len(complete),
        }
        if len(complete) >= 2 and wide.shape[1] >= 2:
            icc = icc_absolute_agreement(complete.to_numpy())
            row |= {
                "icc_a1": icc.icc_a1,
                "icc_ci95_low": icc.ci95_low,
                "icc_ci95_high": icc.ci95_high,
                "icc_c1": icc.icc_c1,
            }
            for r1, r2 in itertools.combinations(complete.columns, 2):
                ba = bland_altman(complete[r1], complete[r2])
                tag = f"{r1}_minus_{r2}"
                row |= {
                    f"ba_bias_{unit}_{tag}": ba.bias,
                    f"ba_loa_low_{unit}_{tag}": ba.loa_low,
                    f"ba_loa_high_{unit}_{tag}": ba.loa_high,
                }
        else:
            row["note"] = "fewer than 2 subjects measured by every rater"
        out.append(row)
    return out


def inter_reader_agreement(
    rows: Sequence[Mapping[str, Any]], map_name: str = "pdff", session: int = 1
) -> pd.DataFrame:
    """Per-level ICC(A,1) and Bland-Altman between readers for one map (store rows)."""
    sel = [r for r in rows if r["map"] == map_name and r["session"] == session]
    if not sel:
        raise ValueError(f"no current measurements of map {map_name!r} (session {session})")
    unit = str(sel[0]["unit"])
    wide = _wide(sel, "reader")
    if wide.shape[1] < 2:
        raise ValueError(f"inter-reader agreement needs 2+ readers; store has {list(wide.columns)}")
    return pd.DataFrame(_agreement_rows(wide, unit, ",".join(map(str, wide.columns))))


def intra_reader_agreement(
    rows: Sequence[Mapping[str, Any]], reader: str, map_name: str = "pdff"
) -> pd.DataFrame:
    """Per-level ICC(A,1) and Bland-Altman between one reader's sessions for one map."""
    sel = [r for r in rows if r["map"] == map_name and r["reader"] == reader]
    if not sel:
        raise ValueError(f"no current measurements of map {map_name!r} by reader {reader!r}")
    unit = str(sel[0]["unit"])
    wide = _wide(sel, "session")
    if wide.shape[1] < 2:
        raise ValueError(f"reader {reader!r} has one session; intra-reader agreement needs 2+")
    wide.columns = [f"session{c}" for c in wide.columns]
    return pd.DataFrame(_agreement_rows(wide, unit, f"{reader}:" + ",".join(wide.columns)))
