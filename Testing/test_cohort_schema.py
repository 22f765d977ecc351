"""Cohort schema: reading CSV/Excel/Parquet, every bad-input path, derived columns, docs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.roiset import RoiFlag
from RefractureRiskLib.model.dev.schema import (
    COHORT_SCHEMA,
    CohortValidationError,
    Problem,
    cohort_schema_markdown,
    derive_columns,
    read_cohort,
    validate_cohort,
)
from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort

REPO = Path(__file__).resolve().parents[1]


def _minimal(n: int = 3) -> pd.DataFrame:
    """A small valid raw cohort (strings, as a CSV would give them)."""
    return pd.DataFrame(
        {
            "patient_id": [f"P{i}" for i in range(n)],
            "centre_id": ["A"] * n,
            "surgery_date": ["2021-03-04"] * n,
            "age_years": ["71.5"] * n,
            "sex": ["F"] * n,
            "n_index_levels": ["1"] * n,
            "index_levels": ["L1"] * n,
            "procedure": ["PVP"] * n,
            "time_days": ["400"] * n,
            "event": ["0"] * n,
        }
    )


def _problems(df: pd.DataFrame, **kw: object) -> list[Problem]:
    with pytest.raises(CohortValidationError) as info:
        read_cohort(df, **kw)
    assert isinstance(info.value, InputError)
    assert info.value.problems == validate_cohort(df, **kw)
    return info.value.problems


def test_schema_is_complete_and_documented() -> None:
    names = [s.name for s in COHORT_SCHEMA]
    assert len(names) == len(set(names))
    for required in ("patient_id", "centre_id", "time_days", "event", "index_levels"):
        assert required in names
    for lv in ("T10", "L1", "L5"):
        assert {f"pdff_pct_{lv}", f"r2s_per_s_{lv}", f"excl_{lv}"} <= set(names)
    assert "pdff_pct_S1" not in names
    excl = next(s for s in COHORT_SCHEMA if s.name == "excl_L1")
    assert set(excl.allowed or ()) == {f.value for f in RoiFlag}
    for spec in COHORT_SCHEMA:
        assert spec.description, spec.name
        if spec.min is not None:
            assert spec.max is not None and spec.min < spec.max
    spec = {s.name: s for s in COHORT_SCHEMA}
    assert (spec["age_years"].min, spec["age_years"].max) == (40, 110)
    assert spec["pdff_pct_L1"].unit == "%" and spec["r2s_per_s_L1"].unit == "1/s"
    assert set(spec["mri_field_T"].allowed or ()) == {1.5, 3.0}


def test_doc_is_up_to_date() -> None:
    doc = REPO / "docs" / "cohort_schema.md"
    assert doc.read_text(encoding="utf-8") == cohort_schema_markdown(), (
        "docs/cohort_schema.md is stale: run python -m RefractureRiskLib.model.dev.schema"
    )
    for spec in COHORT_SCHEMA:
        assert f"`{spec.name}`" in doc.read_text(encoding="utf-8")


def test_csv_excel_parquet_read_the_same(tmp_path: Path) -> None:
    data = generate_cohort(n=40, n_centres=2, missing_frac=0.1, seed=5).data
    csv, xlsx, pq = tmp_path / "c.csv", tmp_path / "c.xlsx", tmp_path / "c.parquet"
    data.to_csv(csv, index=False)
    data.to_excel(xlsx, index=False, engine="openpyxl")
    data.to_parquet(pq, index=False)
    a, b, c = read_cohort(csv), read_cohort(xlsx), read_cohort(pq)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    pd.testing.assert_frame_equal(a, read_cohort(data))
    assert len(a) == 40
    assert a["age_years"].dtype == float and a["event"].dtype == np.int64
    assert a["surgery_date"].dtype.kind == "M"
    assert a["pdff_pct_L1"].isna().sum() + (a["excl_L1"] != "").sum() >= 0


def test_valid_minimal_cohort_and_canonical_values() -> None:
    raw = _minimal()
    raw.loc[0, "sex"] = "f"
    raw.loc[1, "procedure"] = "pkp"
    raw.loc[2, "index_levels"] = "l1"
    df = read_cohort(raw)
    assert list(df["sex"]) == ["F", "F", "F"]
    assert df.loc[1, "procedure"] == "PKP"
    assert df.loc[2, "index_levels"] == "L1"


def test_unknown_column_is_refused_unless_allowed() -> None:
    raw = _minimal()
    raw["pdff_pct_l1"] = "55"  # wrong case: a typo, with a suggestion
    raw["notes"] = "x"
    probs = _problems(raw)
    by_col = {p.column: p for p in probs}
    assert set(by_col) == {"pdff_pct_l1", "notes"}
    assert "unknown column" in by_col["notes"].rule
    assert "pdff_pct_L1" in by_col["pdff_pct_l1"].rule
    kept = read_cohort(raw.drop(columns="pdff_pct_l1"), allow_unknown_columns=["notes"])
    assert list(kept["notes"]) == ["x"] * 3
    assert "notes" in read_cohort(raw.drop(columns="pdff_pct_l1"), allow_unknown_columns=True)


def test_every_problem_is_reported_at_once_with_row_column_value_rule() -> None:
    raw = _minimal(4)
    raw.loc[0, "age_years"] = "seventy"  # wrong type
    raw.loc[1, "age_years"] = "130"  # out of range
    raw.loc[2, "surgery_date"] = "04/03/2021"  # not ISO
    raw.loc[3, "surgery_date"] = "2021-02-30"  # not a calendar date
    raw.loc[1, "sex"] = "X"
    raw.loc[2, "event"] = "3"
    raw.loc[3, "index_levels"] = "L7"
    raw.loc[0, "time_days"] = ""  # required value empty
    raw["mri_field_T"] = ["1.5", "2", "3", "3.0"]
    raw["dxa_l1l4_tscore"] = ["-2.5", "-7", "", "1"]
    raw["smoking"] = ["yes", "0", "maybe", ""]
    probs = _problems(raw)
    got = {(p.row, p.column) for p in probs}
    expected = {
        (1, "age_years"),
        (2, "age_years"),
        (3, "surgery_date"),
        (4, "surgery_date"),
        (2, "sex"),
        (3, "event"),
        (4, "index_levels"),
        (1, "time_days"),
        (2, "mri_field_T"),
        (2, "dxa_l1l4_tscore"),
        (3, "smoking"),
    }
    assert got == expected
    values = {(p.row, p.column): p.value for p in probs}
    assert values[(1, "age_years")] == "seventy" and values[(2, "age_years")] == "130"
    rules = {(p.row, p.column): p.rule for p in probs}
    assert "range" in rules[(2, "age_years")] and "years" in rules[(2, "age_years")]
    assert "number" in rules[(1, "age_years")]
    assert "YYYY-MM-DD" in rules[(3, "surgery_date")]
    assert "1.5" in rules[(2, "mri_field_T")]
    with pytest.raises(CohortValidationError) as info:
        read_cohort(raw)
    message = str(info.value)
    assert f"{len(expected)} problems" in message
    assert "row 2, column age_years, value '130'" in message


def test_missing_required_column() -> None:
    probs = _problems(_minimal().drop(columns=["event", "sex"]))
    assert {(p.row, p.column) for p in probs} == {(None, "event"), (None, "sex")}
    assert all("required column" in p.rule for p in probs)


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CohortValidationError, match="empty"):
        read_cohort(empty)
    header = tmp_path / "header.csv"
    header.write_text(",".join(_minimal().columns) + "\n")
    with pytest.raises(CohortValidationError, match="no patient rows"):
        read_cohort(header)
    with pytest.raises(InputError, match="not found"):
        read_cohort(tmp_path / "absent.csv")
    semicolon = tmp_path / "semicolon.csv"
    _minimal().to_csv(semicolon, sep=";", index=False)
    with pytest.raises(InputError, match="separated by ';'"):
        read_cohort(semicolon)
    odd = tmp_path / "cohort.yaml"
    odd.write_text("patient_id: P1\n")
    with pytest.raises(InputError, match="file type"):
        read_cohort(odd)
    no_rows = tmp_path / "cohort.json"
    no_rows.write_text("{}")
    with pytest.raises(CohortValidationError, match="required column"):
        read_cohort(no_rows)


def test_future_and_ancient_dates() -> None:
    raw = _minimal(2)
    raw.loc[0, "surgery_date"] = "2999-01-01"
    raw.loc[1, "surgery_date"] = "1970-05-05"
    rules = [p.rule for p in _problems(raw)]
    assert any("future" in r for r in rules) and any("before 1990" in r for r in rules)


def test_pdff_given_as_fraction_is_refused() -> None:
    raw = _minimal()
    raw["pdff_global_L1L4"] = ["0.55", "0.61", "0.48"]
    probs = _problems(raw)
    assert len(probs) == 1
    assert probs[0].column == "pdff_global_L1L4" and probs[0].row is None
    assert "fraction" in probs[0].rule and "percent" in probs[0].rule
    raw["pdff_global_L1L4"] = ["55", "61", "48"]
    assert read_cohort(raw)["pdff_global_L1L4"].tolist() == [55.0, 61.0, 48.0]


def test_r2s_in_per_ms_and_without_field_strength_are_refused() -> None:
    raw = _minimal()
    raw["r2s_global_L1L4"] = ["0.08", "0.09", "0.1"]
    raw["mri_field_T"] = ["1.5", "1.5", "1.5"]
    probs = _problems(raw)
    assert [(p.column, "1/ms" in p.rule) for p in probs] == [("r2s_global_L1L4", True)]
    raw["r2s_global_L1L4"] = ["80", "90", "100"]
    raw.loc[1, "mri_field_T"] = ""
    probs = _problems(raw)
    assert [(p.row, p.column) for p in probs] == [(2, "mri_field_T")]


def test_time_in_years_is_refused() -> None:
    raw = _minimal(6)
    raw["time_days"] = ["1.5", "2", "0.5", "3", "1", "2.5"]
    probs = _problems(raw)
    assert [(p.row, p.column) for p in probs] == [(None, "time_days")]
    assert "must be days" in probs[0].rule


def test_cross_column_rules() -> None:
    raw = _minimal()
    raw.loc[0, "n_index_levels"] = "2"  # but index_levels lists one
    raw.loc[1, "patient_id"] = "P2"  # duplicate of row 3
    raw["refracture"] = ["0", "1", "0"]  # row 2 has event 0
    raw["height_cm"] = ["160", "160", "160"]
    raw["weight_kg"] = ["64", "64", "64"]
    raw["bmi_kg_m2"] = ["25", "", "30"]  # 64/1.6^2 = 25.0
    got = {(p.row, p.column) for p in _problems(raw)}
    assert got == {
        (1, "n_index_levels"),
        (2, "patient_id"),
        (3, "patient_id"),
        (2, "refracture"),
        (3, "bmi_kg_m2"),
    }


def test_exclusion_codes() -> None:
    raw = _minimal()
    raw["excl_L2"] = ["fractured", "index; cemented", ""]
    raw["excl_L3"] = ["oedema", "", "lesion;lesion"]
    probs = _problems(raw)
    assert {(p.row, p.column) for p in probs} == {(1, "excl_L3"), (3, "excl_L3")}
    raw = raw.drop(columns="excl_L3")
    df = read_cohort(raw)
    assert df["excl_L2"].tolist() == ["fractured", "index;cemented", ""]


def test_derived_bmi_and_tl_junction() -> None:
    raw = _minimal()
    raw["height_cm"] = ["160", "170", ""]
    raw["weight_kg"] = ["64", "", ""]
    raw["index_levels"] = ["T12", "L4", "T9;T10"]
    raw["n_index_levels"] = ["1", "1", "2"]
    df = read_cohort(raw)
    assert df.loc[0, "bmi_kg_m2"] == pytest.approx(64 / 1.6**2)
    assert np.isnan(df.loc[1, "bmi_kg_m2"]) and np.isnan(df.loc[2, "bmi_kg_m2"])
    assert df["tl_junction"].tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("time_days", "event", "outcome", "status"),
    [
        (200, 0, np.nan, "censored_before_horizon"),  # censored early: unknown, not a non-event
        (400, 1, 0.0, "no_event"),  # re-fracture after the horizon
        (100, 2, np.nan, "died_before_horizon"),  # death first: competing event
        (365, 1, 1.0, "event"),
        (30, 1, 1.0, "event"),
        (365, 0, 0.0, "no_event"),
        (364, 0, np.nan, "censored_before_horizon"),
        (500, 2, 0.0, "no_event"),  # died after a fracture-free year
    ],
)
def test_outcome_1y_edge_cases(time_days: int, event: int, outcome: float, status: str) -> None:
    raw = _minimal(1)
    raw["time_days"] = [str(time_days)]
    raw["event"] = [str(event)]
    df = read_cohort(raw)
    got = df.loc[0, "outcome_1y"]
    assert (np.isnan(got) and np.isnan(outcome)) or got == outcome
    assert df.loc[0, "outcome_1y_status"] == status
    assert df.loc[0, "refracture"] == float(event == 1)
    assert "competing" in df.attrs["outcome_1y_note"]


def test_derive_columns_is_idempotent_and_read_accepts_derived_columns() -> None:
    df = read_cohort(_minimal())
    again = derive_columns(df)
    pd.testing.assert_frame_equal(df, again)
    # a derived table written out and read back is accepted (derived columns recomputed)
    pd.testing.assert_frame_equal(read_cohort(df.astype(object)), df, check_dtype=False)
