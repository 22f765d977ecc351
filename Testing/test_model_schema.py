"""Model files are checked on load (types, magnitudes, ranges, horizon, covariance); a broken
model is refused as a model error naming the file and the field path, never blamed on a patient.

Every bad file here is re-hashed, as a user who edits a model and recomputes its hash would do, so
what refuses it is the schema, not the hash check. The property test mutates the bundled demo
model: it either loads or raises InputError, never anything else.
"""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.modelcheck import MAX_ABS_COEFFICIENT
from RefractureRiskLib.model.modelfile import (
    RiskModel,
    bundled_model_path,
    content_hash,
    load_model,
)
from RefractureRiskLib.model.scoring import score
from RefractureRiskLib.model.terms import InputSpec, Term, Transform

DEMO_DOC: dict[str, Any] = json.loads(bundled_model_path().read_text(encoding="utf-8"))
PATIENT = {
    "age_years": 72,
    "sex": "F",
    "dxa_l1l4_tscore": -2.8,
    "cement_leak_disc": 0,
    "antiop_post": 1,
    "tl_junction": 1,
    "glucocorticoid_use": 0,
    "n_prevalent_vertebral_fractures": 1,
    "pdff_global_L1L4": 62.0,
    "r2s_global_L1L4": 95.0,
}


def _save(tmp_path: Path, doc: dict, name: str = "model.json") -> Path:
    doc = copy.deepcopy(doc)
    doc["content_sha256"] = content_hash(doc)
    path = tmp_path / name
    path.write_text(json.dumps(doc, allow_nan=False), encoding="utf-8")
    return path


def _edited(edit) -> dict:
    doc = copy.deepcopy(DEMO_DOC)
    edit(doc)
    return doc


def _covariance(doc: dict, matrix: list[list[float]]) -> None:
    columns = ["intercept", *(c for t in doc["terms"] for c in t["columns"])]
    doc["covariance"] = {"columns": columns, "matrix": matrix}


def _good_covariance(doc: dict) -> list[list[float]]:
    p = 1 + sum(len(t["columns"]) for t in doc["terms"])
    return (np.eye(p) * 0.01).tolist()


def test_bundled_demo_model_passes() -> None:
    model = load_model(bundled_model_path())
    assert len(model.terms) == 10
    assert max(abs(b) for t in model.terms for b in t.coefficients) < MAX_ABS_COEFFICIENT


def test_a_valid_covariance_loads_and_gives_an_interval(tmp_path: Path) -> None:
    doc = _edited(lambda d: _covariance(d, _good_covariance(d)))
    result = score(load_model(_save(tmp_path, doc)), PATIENT)
    assert result.interval is not None
    lo, hi = result.interval
    assert lo < result.probability < hi


def _set_hard_range(d: dict) -> None:
    d["inputs"][0]["hard_range"] = [110, 40]
    d["inputs"][0]["soft_range"] = None


def _negative_variance(d: dict) -> None:
    m = _good_covariance(d)
    m[3][3] = -0.5
    _covariance(d, m)


def _not_psd(d: dict) -> None:
    m = np.array(_good_covariance(d))
    m[1, 2] = m[2, 1] = 0.5  # |correlation| > 1 between two columns
    _covariance(d, m.tolist())


def _asymmetric(d: dict) -> None:
    m = _good_covariance(d)
    m[1][2] = 0.001
    _covariance(d, m)


def _ragged(d: dict) -> None:
    m = _good_covariance(d)
    m[4] = m[4][:-1]
    _covariance(d, m)


def _wrong_size(d: dict) -> None:
    _covariance(d, (np.eye(3) * 0.01).tolist())


CASES = [
    (_set_hard_range, r"inputs\[0\]\.hard_range", "low <= high"),
    (
        lambda d: d["terms"][3].update(coefficients=["0.5"]),
        r"terms\[3\]\.coefficients\[0\]",
        "must be a JSON number, got text '0.5'",
    ),
    (
        lambda d: d["terms"][0].update(coefficients=[1e308]),
        r"terms\[0\]\.coefficients\[0\]",
        "implausible",
    ),
    (
        lambda d: d["terms"][2].update(coefficients=[-51]),
        r"terms\[2\]\.coefficients\[0\]",
        "implausible",
    ),
    (lambda d: d["intercept"].update(coefficient=1e6), r"intercept\.coefficient", "implausible"),
    (lambda d: d["intercept"].update(coefficient=True), r"intercept\.coefficient", "JSON number"),
    (lambda d: d.update(terms=[]), r": terms", "must not be empty"),
    (lambda d: d.update(inputs={}), r": inputs", "must be a JSON list"),
    (
        lambda d: d["outcome"].update(horizon_days=-365),
        r"outcome\.horizon_days",
        "from 1 to 36525",
    ),
    (lambda d: d["outcome"].update(horizon_days=0), r"outcome\.horizon_days", "from 1"),
    (lambda d: d["outcome"].update(horizon_days=365.5), r"outcome\.horizon_days", "whole"),
    (lambda d: d["outcome"].pop("horizon_days"), r"outcome\.horizon_days", "missing"),
    (
        lambda d: d["terms"][0]["transform"].update(scale=1e-9),
        r"terms\[0\]\.transform\.scale",
        "from 1e-06",
    ),
    (
        lambda d: d["terms"][0]["transform"].update(center="70"),
        r"terms\[0\]\.transform\.center",
        "JSON number",
    ),
    (
        lambda d: d["terms"][0]["transform"].update(center=1e30),
        r"terms\[0\]\.transform\.center",
        "implausible",
    ),
    (
        lambda d: d["inputs"][8].update(soft_range=[20, 120]),
        r"inputs\[8\]\.soft_range",
        "inside its hard_range",
    ),
    (
        lambda d: d["inputs"][8].update(hard_range=[0, "100"]),
        r"inputs\[8\]\.hard_range\[1\]",
        "JSON number",
    ),
    (
        lambda d: d["inputs"][8].update(hard_range=[0, 1, 2]),
        r"inputs\[8\]\.hard_range",
        r"\[low, high\]",
    ),
    (
        lambda d: d["inputs"][8].update(missing_value=150.0),
        r"inputs\[8\]\.missing_value",
        "outside the allowed range",
    ),
    (lambda d: d["inputs"][3].update(missing_value=2), r"inputs\[3\]\.missing_value", "0 \\(no\\)"),
    (lambda d: d.update(name=""), r": name", "non-empty text"),
    (lambda d: d.update(software=None), r": software", "JSON object"),
    (_negative_variance, r"covariance\.matrix", r"variance \[3\]\[3\]"),
    (_not_psd, r"covariance\.matrix", "positive semi-definite"),
    (_asymmetric, r"covariance\.matrix", "symmetric"),
    (_ragged, r"covariance\.matrix\[4\]", "square matrix"),
    (_wrong_size, r"covariance", "must be"),
]


@pytest.mark.parametrize(
    "edit, path, reason", CASES, ids=[f"{i}-{c[1]}" for i, c in enumerate(CASES)]
)
def test_bad_model_is_refused_naming_file_and_field(
    tmp_path: Path, edit, path: str, reason: str
) -> None:
    model_file = _save(tmp_path, _edited(edit))
    with pytest.raises(InputError) as err:
        load_model(model_file)
    message = str(err.value)
    assert message.startswith(str(model_file)), message
    assert err.value.source is not None
    assert re.search(path, err.value.source), message
    assert re.search(reason, message), message


def test_reversed_hard_range_is_a_model_error_not_a_patient_error(tmp_path: Path) -> None:
    model_file = _save(tmp_path, _edited(_set_hard_range))
    with pytest.raises(InputError) as err:
        load_model(model_file)
    assert "patient" not in str(err.value)
    assert "age_years" in str(err.value)


def test_model_built_in_code_is_checked_when_scored() -> None:
    model = RiskModel(
        name="absurd",
        intercept=0.0,
        inputs=(InputSpec("x", "number", "u", hard_range=(0.0, 10.0)),),
        terms=(Term("x", "x", Transform("linear"), (1e308,)),),
        validated=True,
        outcome={"name": "y", "horizon_days": 365},
    )
    with pytest.raises(InputError, match=r"model 'absurd': terms\[0\]\.coefficients\[0\]"):
        score(model, {"x": 5.0})


def test_model_without_terms_is_refused_when_scored() -> None:
    model = RiskModel(
        name="empty",
        intercept=-2.0,
        inputs=(InputSpec("x", "number"),),
        terms=(),
        validated=True,
        outcome={"name": "y", "horizon_days": 365},
    )
    with pytest.raises(InputError, match="at least one term"):
        score(model, {"x": 1.0})


# -- command line: exit 2, one line, strict JSON ------------------------------------------------


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "RefractureRiskLib.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_score_with_bad_model_is_one_line(tmp_path: Path) -> None:
    patient = tmp_path / "p.json"
    patient.write_text(json.dumps(PATIENT))
    for i, (edit, _path, _reason) in enumerate(CASES[:3]):
        model_file = _save(tmp_path, _edited(edit), f"bad{i}.json")
        proc = _cli("score", "--model", str(model_file), "--patient", str(patient))
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert f"bad{i}.json" in lines[0]
        assert proc.stdout == ""


def test_cli_score_json_output_is_strict(tmp_path: Path) -> None:
    patient = tmp_path / "p.json"
    patient.write_text(json.dumps(PATIENT))
    model_file = _save(tmp_path, _edited(lambda d: _covariance(d, _good_covariance(d))))
    proc = _cli("score", "--model", str(model_file), "--patient", str(patient), "--json")
    assert proc.returncode == 0, proc.stderr

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in --json output")

    doc = json.loads(proc.stdout, parse_constant=refuse)
    assert 0 < doc["probability"] < 1
    assert all(math.isfinite(v) for v in doc["interval"])


# -- property: any mutation of the demo model loads or is an InputError ---------------------------

_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.just([]),
    st.just({}),
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=3),
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


DEMO_PATHS = [p for p in _paths(DEMO_DOC) if p and p[0] != "content_sha256"]


def _mutate(doc: dict, path: tuple, leaf: Any, delete: bool) -> None:
    target = doc
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = leaf


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(DEMO_PATHS), _LEAF, st.booleans()), min_size=1, max_size=3
    )
)
def test_mutated_demo_model_loads_or_is_refused(tmp_path: Path, mutations) -> None:
    doc = copy.deepcopy(DEMO_DOC)
    for path, leaf, delete in mutations:
        try:
            _mutate(doc, path, leaf, delete)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the parent
    try:
        model_file = _save(tmp_path, doc)
    except (ValueError, OverflowError):
        return  # not writable as strict JSON: nothing to load
    try:
        model = load_model(model_file)
    except InputError as err:
        assert str(err).startswith(str(model_file))
        return
    # a model that loads scores a patient to a finite probability (or refuses the patient)
    try:
        result = score(model, PATIENT)
    except InputError as err:
        assert err.source is not None
        return
    assert 0.0 <= result.probability <= 1.0
    assert math.isfinite(result.linear_predictor)


def test_validate_text_says_not_estimable_instead_of_nan() -> None:
    from RefractureRiskLib.model.dev.external_report import estimate_text

    assert estimate_text(0.7123, (0.65, 0.77), 3) == "0.712 (95% CI 0.650 to 0.770)"
    assert estimate_text(0.5, (float("nan"), float("nan")), 3) == "0.500 (95% CI not estimable)"
    assert estimate_text(float("nan"), (0.1, 0.2), 2) == "not estimable"
    assert estimate_text(1.0, None, 2) == "1.00 (95% CI not estimable)"
