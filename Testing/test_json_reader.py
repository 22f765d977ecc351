"""The one JSON reader for user files: strict JSON, UTF-8, size and depth limits, one error type.

Property tests: any text or bytes gives either a value or an InputError naming the file, never
another exception (RecursionError, UnicodeDecodeError, ValueError from int conversion, ...).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.jsonfile import (
    MAX_BYTES,
    MAX_DEPTH,
    parse_json_text,
    read_json_file,
)
from RefractureRiskLib.pipeline import load_clinical, load_points

FILE_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _write(tmp_path: Path, data: bytes | str, name: str = "in.json") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_plain_json_is_read(tmp_path: Path) -> None:
    doc = {"age_years": 71, "sex": "F", "pdff": 55.5, "levels": ["L1", "L2"], "x": None}
    assert read_json_file(_write(tmp_path, json.dumps(doc)), "clinical file") == doc


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, b"\xef\xbb\xbf" + json.dumps({"name": "Zoë"}).encode("utf-8"))
    assert read_json_file(path, "patient file") == {"name": "Zoë"}


def test_not_utf8_names_file_and_byte(tmp_path: Path) -> None:
    path = _write(tmp_path, b'{"name": "Zo' + "ë".encode("latin-1") + b'"}')
    with pytest.raises(InputError, match=r"clinical file is not UTF-8 text at byte 12") as err:
        read_json_file(path, "clinical file")
    assert err.value.source == str(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="model file not found"):
        read_json_file(tmp_path / "absent.json", "model file")
    with pytest.raises(InputError, match="not a regular file"):
        read_json_file(tmp_path, "model file")


def test_size_limit(tmp_path: Path) -> None:
    path = _write(tmp_path, b"[" + b" " * MAX_BYTES + b"]")
    with pytest.raises(InputError, match="larger than 10 MB") as err:
        read_json_file(path, "points file")
    assert str(path) in str(err.value)


def test_depth_limit_is_checked_before_parsing(tmp_path: Path) -> None:
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_json_text(at_limit, "f.json") == json.loads(at_limit)
    # far beyond Python's recursion limit: must be an InputError, not RecursionError
    deep = '{"a": ' * 100_000 + "1" + "}" * 100_000
    with pytest.raises(InputError, match=rf"more than {MAX_DEPTH} levels deep \(line 1, column"):
        read_json_file(_write(tmp_path, deep), "patient file")
    deeper = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(InputError, match="levels deep"):
        parse_json_text(deeper, "f.json")


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    text = json.dumps({"note": "[" * 500 + '\\"{' * 300, "v": [1, 2]})
    assert parse_json_text(text, "f.json")["v"] == [1, 2]


def test_duplicate_keys_are_refused_naming_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, '{"age_years": 70, "sex": "F", "age_years": 85}')
    with pytest.raises(InputError, match="duplicate key 'age_years'") as err:
        read_json_file(path, "clinical file")
    assert err.value.source == str(path)
    nested = '{"markups": [{"controlPoints": [{"label": "L1", "label": "L2"}]}]}'
    with pytest.raises(InputError, match="duplicate key 'label'"):
        parse_json_text(nested, "p.mrk.json")


@pytest.mark.parametrize(
    "text, token",
    [
        ('{"pdff": NaN}', "NaN"),
        ('{"pdff": Infinity}', "Infinity"),
        ('{"pdff": -Infinity}', "-Infinity"),
        ("[1, 2,\n  NaN]", "NaN"),
    ],
)
def test_non_json_constants_are_refused_with_position(text: str, token: str) -> None:
    with pytest.raises(InputError, match=rf"{token} is not allowed in JSON.*line \d+, column \d+"):
        parse_json_text(text, "p.json")


def test_nan_inside_a_string_is_just_text() -> None:
    assert parse_json_text('{"note": "NaN Infinity"}', "p.json") == {"note": "NaN Infinity"}


def test_overflowing_numbers_are_refused() -> None:
    with pytest.raises(InputError, match="too large"):
        parse_json_text('{"x": 1e999}', "p.json")
    with pytest.raises(InputError, match="too large"):
        parse_json_text('{"x": ' + "9" * 5000 + "}", "p.json")
    assert parse_json_text('{"x": 1e300, "n": 12345678901234567890}', "p.json")["x"] == 1e300


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(InputError, match="lone surrogate"):
        parse_json_text('{"name": "a\\ud800b"}', "p.json")
    assert parse_json_text('["\\ud83d\\ude00"]', "p.json") == ["\U0001f600"]


def test_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, '{\n  "a": 1,\n  "b": }\n')
    with pytest.raises(InputError, match=r"not valid JSON at line 3, column 8") as err:
        read_json_file(path, "patient file")
    assert str(path) in str(err.value)


# -- the project's readers use it -------------------------------------------------------------


def test_clinical_and_points_readers_use_the_strict_reader(tmp_path: Path) -> None:
    clinical = _write(tmp_path, '{"age_years": 70, "age_years": 71}', "c.json")
    with pytest.raises(InputError, match="duplicate key 'age_years'"):
        load_clinical(clinical)
    latin = _write(tmp_path, b'{"sex": "\xe9"}', "c2.json")
    with pytest.raises(InputError, match="not UTF-8 text at byte 9"):
        load_clinical(latin)
    points = _write(tmp_path, '{"L1": [1, 2, ' * 1 + "NaN]}", "p.json")
    with pytest.raises(InputError, match="NaN is not allowed"):
        load_points(points)
    deep = _write(tmp_path, "[" * 5000 + "]" * 5000, "deep.json")
    with pytest.raises(InputError, match="levels deep"):
        load_points(deep)


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "RefractureRiskLib.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_score_deeply_nested_patient_is_one_line(tmp_path: Path) -> None:
    patient = _write(tmp_path, '{"a": ' * 50_000 + "1" + "}" * 50_000, "patient.json")
    proc = _cli("score", "--patient", str(patient))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "patient.json" in lines[0] and "levels deep" in lines[0]


def test_cli_analyze_refuses_non_finite_anchor(tmp_path: Path) -> None:
    for anchor in ("L3:nan,nan,nan", "L3:0,inf,0"):
        proc = _cli("analyze", str(tmp_path), "--anchor", anchor, "--out", str(tmp_path / "out"))
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "--anchor" in proc.stderr and "finite" in proc.stderr


# -- properties -------------------------------------------------------------------------------


@FILE_SETTINGS
@given(data=st.binary(max_size=300))
def test_any_bytes_give_a_value_or_input_error(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, data)
    try:
        read_json_file(path, "patient file")
    except InputError as err:
        assert err.source == str(path)


_JSONISH = st.text(alphabet='{}[]",:0123456789.eE+-\\ \nantrufelsNIfiy\ud800x', max_size=200)


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(st.text(max_size=200), _JSONISH))
def test_any_text_gives_a_value_or_input_error(text: str) -> None:
    try:
        value = parse_json_text(text, "t.json")
    except InputError as err:
        assert err.source == "t.json"
    else:
        # what is accepted is strict JSON: it round-trips without NaN/Infinity
        assert json.loads(json.dumps(value, allow_nan=False)) == value


_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_VALUES)
def test_valid_json_round_trips(value) -> None:
    text = json.dumps(value, allow_nan=False)
    assert parse_json_text(text, "t.json") == value


@settings(max_examples=100, deadline=None)
@given(depth=st.integers(min_value=1, max_value=3 * MAX_DEPTH), kind=st.sampled_from("[{"))
def test_depth_limit_is_exact(depth: int, kind: str) -> None:
    text = ('{"k": ' * depth + "1" + "}" * depth) if kind == "{" else "[" * depth + "]" * depth
    if depth <= MAX_DEPTH:
        parse_json_text(text, "t.json")
    else:
        with pytest.raises(InputError, match="levels deep"):
            parse_json_text(text, "t.json")


def test_nan_check_does_not_reject_finite_values() -> None:
    value = parse_json_text('{"x": -0.0, "y": 1e-320}', "t.json")
    assert math.copysign(1.0, value["x"]) == -1.0 and value["y"] > 0
