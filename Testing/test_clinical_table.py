"""The one clinical-table reader (io/clinical_table.py): every file type and every path that reads
a clinical table (one patient for an analysis, a batch's clinical table, the cohort table) gives
the same cells, and its errors name the file, row and column."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from RefractureRiskLib.batch.inputs import read_clinical_text
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.io.clinical_table import (
    MISSING_TOKENS,
    cell_text,
    read_patient,
    read_table_text,
    typed_value,
)
from RefractureRiskLib.model.dev.schema import CohortValidationError, read_cohort
from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort
from RefractureRiskLib.pipeline import load_clinical

FORMATS = ("csv", "tsv", "txt", "xlsx", "parquet", "json")


def _json_cell(value: object) -> object:
    """A cell as a hand-written JSON file would hold it."""
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _write(data: pd.DataFrame, path: Path) -> Path:
    kind = path.suffix[1:]
    if kind in ("csv", "txt"):
        data.to_csv(path, index=False)
    elif kind == "tsv":
        data.to_csv(path, sep="\t", index=False)
    elif kind == "xlsx":
        data.to_excel(path, index=False, engine="openpyxl")
    elif kind == "parquet":
        data.to_parquet(path, index=False)
    else:
        records = [{k: _json_cell(v) for k, v in row.items()} for row in data.to_dict("records")]
        path.write_text(json.dumps(records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cohort_files(tmp_path_factory) -> dict[str, Path]:
    """One valid cohort (with missing cells, dates, integers and decimals) in every file type."""
    data = generate_cohort(n=12, n_centres=2, missing_frac=0.2, seed=5).data
    folder = tmp_path_factory.mktemp("tables")
    return {kind: _write(data, folder / f"cohort.{kind}") for kind in FORMATS}


def _values(text: pd.DataFrame) -> pd.DataFrame:
    return text.map(typed_value)


def test_every_file_type_gives_the_same_cells(cohort_files: dict[str, Path]) -> None:
    """Text files keep a cell as written ("67.0"); typed files write a number the one way
    ("67"); both are the same value."""
    reference = read_table_text(cohort_files["parquet"])
    assert len(reference) == 12
    assert reference.loc[0, "surgery_date"] == "2022-08-04"  # a date, however it was stored
    assert reference.loc[0, "age_years"] == "67"  # whole numbers without a decimal point
    assert reference.loc[0, "smoking"] is None  # an empty cell is missing
    assert read_table_text(cohort_files["csv"]).loc[0, "age_years"] == "67.0"
    for kind in ("xlsx", "json"):
        pd.testing.assert_frame_equal(read_table_text(cohort_files[kind]), reference, obj=kind)
    for kind in ("tsv", "txt"):
        text = read_table_text(cohort_files[kind])
        pd.testing.assert_frame_equal(text, read_table_text(cohort_files["csv"]), obj=kind)
    for kind, path in cohort_files.items():
        values = _values(read_table_text(path))
        pd.testing.assert_frame_equal(values, _values(reference), check_dtype=False, obj=kind)


def test_the_three_paths_read_the_same_cells(cohort_files: dict[str, Path]) -> None:
    """The batch's clinical table, one patient for an analysis and the cohort table."""
    cohort = read_cohort(cohort_files["csv"], derive=False)
    for kind, path in cohort_files.items():
        text = read_clinical_text(path)  # batch
        pd.testing.assert_frame_equal(text, read_table_text(path), obj=kind)
        pd.testing.assert_frame_equal(read_cohort(path, derive=False), cohort, obj=kind)
        reference = read_table_text(cohort_files["parquet"])
        for i, pid in enumerate(text["patient_id"]):
            patient = load_clinical(path, pid)  # analyze (and batch, per patient)
            assert patient == read_patient(path, pid)
            assert patient == read_patient(cohort_files["parquet"], pid), (kind, pid)
            assert patient["patient_id"] == pid
            assert patient == {
                k: (v if k == "patient_id" else typed_value(v)) for k, v in text.iloc[i].items()
            }
            assert patient == {
                k: (v if k == "patient_id" else typed_value(v))
                for k, v in reference.iloc[i].items()
            }
            for column in ("age_years", "dxa_l1l4_tscore", "pdff_pct_L3", "time_days"):
                if patient[column] is None:
                    assert pd.isna(cohort.loc[i, column]), (kind, pid, column)
                else:
                    assert patient[column] == cohort.loc[i, column], (kind, pid, column)


def test_missing_values_are_one_rule_everywhere(tmp_path: Path) -> None:
    cells = [f" {t} " if t else t for t in MISSING_TOKENS]
    header = "patient_id,age_years,sex\n"
    csv = tmp_path / "c.csv"
    csv.write_text(header + "".join(f"P{i},{t},F\n" for i, t in enumerate(cells)))
    assert read_table_text(csv)["age_years"].tolist() == [None] * len(cells)
    assert read_clinical_text(csv)["age_years"].tolist() == [None] * len(cells)
    assert load_clinical(csv, "P3") == {"patient_id": "P3", "age_years": None, "sex": "F"}
    patient = tmp_path / "p.json"
    patient.write_text('{"age_years": null, "sex": "NA", "dxa_l1l4_tscore": -2.5}')
    assert load_clinical(patient) == {"age_years": None, "sex": None, "dxa_l1l4_tscore": -2.5}


def test_cells_as_text_and_back() -> None:
    assert cell_text(72.0) == "72" and cell_text(np.int64(3)) == "3"
    assert cell_text(-2.9) == "-2.9" and float(cell_text(0.1 + 0.2)) == 0.1 + 0.2
    assert cell_text(True) == "true" and cell_text(np.bool_(False)) == "false"
    assert cell_text(dt.datetime(2021, 3, 4)) == "2021-03-04"
    assert cell_text(pd.Timestamp("2021-03-04 10:30")) == "2021-03-04T10:30:00"
    assert cell_text(float("nan")) is None and cell_text(pd.NaT) is None
    assert cell_text("  L1;L2 ") == "L1;L2"
    assert typed_value("72") == 72 and typed_value("-2.9") == -2.9 and typed_value("1e3") == 1e3
    assert typed_value("TRUE") is True and typed_value("false") is False
    assert typed_value("1_000") == "1_000" and typed_value("L1;L2") == "L1;L2"
    assert typed_value(None) is None


def test_patient_id_stays_text_and_a_bom_is_not_part_of_it(tmp_path: Path) -> None:
    csv = tmp_path / "c.csv"
    csv.write_bytes("\ufeffpatient_id,age_years\n007,70\n".encode())
    assert load_clinical(csv, "007") == {"patient_id": "007", "age_years": 70}
    assert read_clinical_text(csv)["patient_id"].tolist() == ["007"]


def _bad_cell_json(tmp_path: Path) -> Path:
    path = tmp_path / "bad.json"
    rows = [{"patient_id": "P1", "age_years": 70}, {"patient_id": "P2", "age_years": [70, 71]}]
    path.write_text(json.dumps(rows))
    return path


@pytest.mark.parametrize(
    "read",
    [read_table_text, read_clinical_text, lambda p: load_clinical(p, "P1"), read_cohort],
    ids=["reader", "batch", "analyze", "cohort"],
)
def test_a_bad_cell_is_named_by_file_row_and_column(tmp_path: Path, read) -> None:
    path = _bad_cell_json(tmp_path)
    with pytest.raises(InputError) as err:
        read(path)
    assert f"{path} row 2, column 'age_years'" in str(err.value)
    assert "expected one value" in str(err.value)


def test_a_bad_value_is_named_by_row_and_column_in_the_cohort(tmp_path: Path) -> None:
    data = generate_cohort(n=4, seed=1).data
    data["age_years"] = data["age_years"].astype(object)
    data.loc[2, "age_years"] = "old"
    for kind in ("csv", "xlsx", "json"):
        path = _write(data, tmp_path / f"c.{kind}")
        with pytest.raises(CohortValidationError) as err:
            read_cohort(path)
        assert str(path) in str(err.value)
        assert [(p.row, p.column) for p in err.value.problems] == [(3, "age_years")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("absent.csv", None, "not found"),
        ("c.yaml", "patient_id: P1\n", "file type '.yaml'"),
        ("c.csv", "age_years\n70\n", "needs a 'patient_id' column"),
        ("c.csv", "patient_id;age_years\nP1;70\n", "separated by ';'"),
        ("c.xlsx", "patient_id,age_years\nP1,70\n", "cannot read the clinical table"),
        ("c.json", "[1, 2]", "expected a JSON object"),
    ],
)
def test_file_errors_name_the_file(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    for read in (read_table_text, read_clinical_text):
        with pytest.raises(InputError, match=message) as err:
            read(path)
        assert err.value.source == str(path)
    with pytest.raises(InputError) as err:
        load_clinical(path, "P1")
    assert err.value.source == str(path)


def test_one_patient_is_chosen_by_id(tmp_path: Path) -> None:
    csv = tmp_path / "c.csv"
    csv.write_text("patient_id,age_years\nP1,70\nP2,81\nP2,82\n")
    with pytest.raises(InputError, match="3 rows; name the patient"):
        load_clinical(csv)
    with pytest.raises(InputError, match="'P9' not in the clinical table"):
        load_clinical(csv, "P9")
    with pytest.raises(InputError, match="'P2' appears 2 times"):
        load_clinical(csv, "P2")
    assert load_clinical(csv, " P1 ") == {"patient_id": "P1", "age_years": 70}
