"""Model files and scoring: demonstration model, hashes, limits, intervals, numpy-only import."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from RefractureRiskLib.cli import main
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.modelfile import (
    DEMO_WARNING,
    RiskModel,
    bundled_model_path,
    content_hash,
    load_model,
)
from RefractureRiskLib.model.scoring import score
from RefractureRiskLib.model.splines import default_knots, rcs_basis
from RefractureRiskLib.model.terms import InputSpec, Term, Transform

REFERENCE_PATIENT = {
    "age_years": 70,
    "sex": "M",
    "dxa_l1l4_tscore": -2.5,
    "cement_leak_disc": 0,
    "antiop_post": 1,
    "tl_junction": 0,
    "glucocorticoid_use": 0,
    "n_prevalent_vertebral_fractures": 0,
    "pdff_global_L1L4": 60.0,
    "r2s_global_L1L4": 100.0,
}

# The terms issue 5 item 6 prescribes, by the cohort column each one reads.
ISSUE_TERMS = {
    "age_years": 0.043,
    "sex": 0.344,
    "dxa_l1l4_tscore": -0.151,
    "cement_leak_disc": 0.539,
    "antiop_post": 0.538,
    "tl_junction": 0.626,
    "glucocorticoid_use": 0.686,
    "n_prevalent_vertebral_fractures": 0.329,
    "pdff_global_L1L4": 0.168,
    "r2s_global_L1L4": 0.0,
}


def expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@pytest.fixture(scope="module")
def demo() -> RiskModel:
    return load_model(bundled_model_path("demo_model.json"))


def test_demo_model_has_the_issue_terms_and_provenance(demo: RiskModel) -> None:
    assert demo.validated is False
    assert demo.intercept == pytest.approx(-3.330)
    assert {t.input: t.coefficients[0] for t in demo.terms} == pytest.approx(ISSUE_TERMS)
    assert all(len(t.provenance) > 40 for t in demo.terms)
    by_input = {t.input: t for t in demo.terms}
    assert "Liu et al. 2025" in by_input["age_years"].provenance
    assert "1.931" in by_input["n_prevalent_vertebral_fractures"].provenance
    assert "no published source" in by_input["pdff_global_L1L4"].provenance
    assert "no published source" in by_input["r2s_global_L1L4"].provenance
    assert "12%" in demo.intercept_provenance
    assert demo.covariance is None and "not estimable" in demo.covariance_note


def test_demo_model_file_on_disk_is_the_one_the_helper_finds() -> None:
    repo = Path(__file__).resolve().parents[1]
    assert bundled_model_path() == repo / "Resources" / "models" / "demo_model.json"
    with pytest.raises(InputError, match="not found"):
        bundled_model_path("no_such_model.json")


def test_reference_patient_scores_the_intercept(demo: RiskModel) -> None:
    result = score(demo, REFERENCE_PATIENT)
    assert result.probability == pytest.approx(expit(-3.330), rel=1e-12)
    assert result.interval is None
    assert "not estimable" in result.interval_note
    assert result.warnings[0] == DEMO_WARNING
    assert DEMO_WARNING.upper() in result.format_text()


def test_probability_matches_coefficients_read_from_the_raw_file(demo: RiskModel) -> None:
    raw = json.loads(bundled_model_path().read_text())
    coef = {t["input"]: t["coefficients"][0] for t in raw["terms"]}
    patient = {
        "age_years": 81,
        "sex": "F",
        "dxa_l1l4_tscore": -3.7,
        "cement_leak_disc": 1,
        "antiop_post": 0,
        "tl_junction": 1,
        "glucocorticoid_use": 1,
        "n_prevalent_vertebral_fractures": 2,
        "pdff_global_L1L4": 71.5,
        "r2s_global_L1L4": 130.0,
    }
    lp = raw["intercept"]["coefficient"]
    lp += coef["age_years"] * (81 - 70) + coef["sex"] + coef["dxa_l1l4_tscore"] * (-3.7 + 2.5)
    lp += coef["cement_leak_disc"] + coef["antiop_post"] + coef["tl_junction"]
    lp += coef["glucocorticoid_use"] + coef["n_prevalent_vertebral_fractures"]
    lp += coef["pdff_global_L1L4"] * (71.5 - 60) / 10 + coef["r2s_global_L1L4"] * 3.0
    result = score(demo, patient)
    assert result.probability == pytest.approx(expit(lp), rel=1e-12)
    assert sum(c.log_odds for c in result.contributions) + demo.intercept == pytest.approx(lp)
    assert len(result.warnings) == 1  # only the demonstration-model warning


def test_missing_and_extrapolated_inputs_warn(demo: RiskModel) -> None:
    patient = dict(REFERENCE_PATIENT)
    del patient["pdff_global_L1L4"]
    patient["r2s_global_L1L4"] = 400.0  # inside hard limits, outside the soft range
    patient["unknown_thing"] = 3
    result = score(demo, patient, missing="range")
    text = " | ".join(result.warnings)
    # the missing input in clinical words, with the values the range runs over
    assert (
        "range over the plausible values of the missing input(s) mean marrow PDFF over "
        "eligible L1-L4 levels (20 to 90 %)" in text
    )
    assert "r2s_global_L1L4 = 400" in text and "extrapolation" in text
    assert "unknown_thing" in text


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("age_years", 250, "outside the allowed range"),
        ("age_years", "seventy", "expected a number"),
        ("pdff_global_L1L4", 0.62, "looks like a fraction"),  # refused like a fraction column
        ("pdff_global_L1L4", 620.0, "outside the allowed range"),
        ("cement_leak_disc", 2, "expected 0 .no. or 1 .yes."),
        ("sex", "X", "is not one of"),
        ("age_years", float("inf"), "finite"),
    ],
)
def test_bad_patient_values_are_refused_naming_the_input(
    demo: RiskModel, name: str, value: object, message: str | None
) -> None:
    patient = {**REFERENCE_PATIENT, name: value}
    if message is None:
        assert any("extrapolation" in w for w in score(demo, patient).warnings)
        return
    with pytest.raises(InputError, match=message) as err:
        score(demo, patient)
    assert name in str(err.value)


def test_required_input_missing_is_refused(demo: RiskModel) -> None:
    patient = {k: v for k, v in REFERENCE_PATIENT.items() if k != "age_years"}
    with pytest.raises(InputError, match=r"missing model input\(s\): age_years"):
        score(demo, patient)


def _tamper(tmp_path: Path, edit) -> Path:
    doc = json.loads(bundled_model_path().read_text())
    edit(doc)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc))
    return path


def test_tampered_model_file_is_refused(tmp_path: Path) -> None:
    def raise_coefficient(doc: dict) -> None:
        doc["terms"][0]["coefficients"] = [0.5]

    with pytest.raises(InputError, match="hash does not match"):
        load_model(_tamper(tmp_path, raise_coefficient))

    def mark_validated(doc: dict) -> None:
        doc["validated"] = True

    with pytest.raises(InputError, match="hash does not match"):
        load_model(_tamper(tmp_path, mark_validated))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("content_sha256"), "cannot be verified"),
        (lambda d: d.update(schema_version=99), "schema_version 99"),
        (lambda d: d.update(schema="something-else"), "not a model file"),
        (lambda d: d["terms"][0]["transform"].update(type="python_eval"), "type must be one of"),
        (lambda d: d["terms"][0].update(input="undeclared"), "undeclared input"),
        (lambda d: d.pop("inputs"), "missing field"),
    ],
)
def test_malformed_model_files_are_refused(tmp_path: Path, edit, message: str) -> None:
    def apply(doc: dict) -> None:
        edit(doc)
        if "content_sha256" in doc:
            doc["content_sha256"] = content_hash(doc)  # a re-hashed but invalid file

    with pytest.raises(InputError, match=message) as err:
        load_model(_tamper(tmp_path, apply))
    assert "model.json" in str(err.value)


def test_non_json_and_nan_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text("import os; os.system('echo pwned')")
    with pytest.raises(InputError, match="not valid JSON"):
        load_model(path)
    path.write_text('{"schema": NaN}')
    with pytest.raises(InputError, match="NaN is not allowed"):
        load_model(path)


def _one_term_model(cov: np.ndarray | None) -> RiskModel:
    return RiskModel(
        name="one-term test model",
        intercept=-1.0,
        inputs=(InputSpec("x", "number", "u", soft_range=(0.0, 10.0), hard_range=(-100.0, 100.0)),),
        terms=(Term("x", "x", Transform("linear", center=5.0, scale=2.0), (0.7,)),),
        validated=True,
        outcome={"name": "y", "horizon_days": 365},
        covariance=cov,
    )


def test_interval_is_the_delta_method_on_the_logit_scale(tmp_path: Path) -> None:
    cov = np.array([[0.04, -0.01], [-0.01, 0.09]])
    model = load_model(_one_term_model(cov).save(tmp_path / "m.json"))
    result = score(model, {"x": 9.0})
    z = (9.0 - 5.0) / 2.0
    lp = -1.0 + 0.7 * z
    se = math.sqrt(0.04 + 2 * z * -0.01 + z * z * 0.09)
    assert result.probability == pytest.approx(expit(lp))
    assert result.interval == pytest.approx((expit(lp - 1.959964 * se), expit(lp + 1.959964 * se)))
    assert not result.warnings  # validated model, no demo warning
    # Monte Carlo check of the same interval: quantiles of expit(g'beta), beta ~ N(b, V).
    rng = np.random.default_rng(0)
    draws = rng.multivariate_normal([-1.0, 0.7], cov, size=200_000) @ np.array([1.0, z])
    lo, hi = 1 / (1 + np.exp(-np.quantile(draws, [0.025, 0.975])))
    assert result.interval == pytest.approx((lo, hi), rel=0.01)


def test_model_round_trip_keeps_everything(tmp_path: Path) -> None:
    model = _one_term_model(np.eye(2) * 0.01)
    loaded = load_model(model.save(tmp_path / "m.json"))
    assert loaded.to_document() == model.to_document()
    assert loaded.content_sha256 == model.to_document()["content_sha256"]


def test_numpy_values_and_nan_metrics_are_stored_as_plain_json(tmp_path: Path) -> None:
    model = _one_term_model(None)
    metrics = {"c_statistic": np.float64("nan"), "n": np.int64(12), "ok": np.bool_(True)}
    model = dataclasses.replace(model, validation={"centre": [metrics]})
    loaded = load_model(model.save(tmp_path / "m.json"))
    assert loaded.validation == {"centre": [{"c_statistic": None, "n": 12, "ok": True}]}


def test_spline_is_linear_beyond_the_outer_knots() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(60, 10, 500)
    knots = default_knots(x, 4)
    assert knots == pytest.approx(tuple(np.quantile(x, [0.05, 0.35, 0.65, 0.95])))
    grid = np.linspace(knots[-1], knots[-1] + 30, 7)
    basis = rcs_basis(grid, knots)
    assert np.allclose(np.diff(basis, n=2, axis=0), 0.0, atol=1e-9)
    below = rcs_basis(np.linspace(knots[0] - 30, knots[0], 7), knots)
    assert np.allclose(below[:, 1:], 0.0)


def test_scoring_modules_import_without_pandas_scipy_or_sklearn() -> None:
    code = (
        "import sys\n"
        "for name in ('pandas', 'sklearn', 'scipy', 'matplotlib'):\n"
        "    sys.modules[name] = None\n"
        "from RefractureRiskLib.model.modelfile import load_model, bundled_model_path\n"
        "from RefractureRiskLib.model.scoring import score\n"
        "m = load_model(bundled_model_path())\n"
        "r = score(m, {'age_years': 75, 'sex': 'F'}, missing='range')\n"
        "assert 0 < r.probability_range[0] < r.probability_range[1] < 1\n"
        "r = score(m, {**dict.fromkeys([s.name for s in m.inputs], 0), 'sex': 'F',"
        " 'age_years': 75, 'pdff_global_L1L4': 50, 'r2s_global_L1L4': 60})\n"
        "assert 0 < r.probability < 1\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_score_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    patient = tmp_path / "patient.json"
    patient.write_text(json.dumps(REFERENCE_PATIENT))
    assert main(["score", "--patient", str(patient)]) == 0
    out = capsys.readouterr().out
    assert DEMO_WARNING.upper() in out and "3.5%" in out and "not estimable" in out
    assert main(["score", "--patient", str(patient), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["probability"] == pytest.approx(expit(-3.33))
    assert data["warnings"][0] == DEMO_WARNING

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**REFERENCE_PATIENT, "age_years": 700}))
    assert main(["score", "--patient", str(bad)]) == 2
    assert "age_years" in capsys.readouterr().err

    tampered = _tamper(tmp_path, lambda d: d.update(validated=True))
    assert main(["score", "--model", str(tampered), "--patient", str(patient)]) == 2
    assert "hash does not match" in capsys.readouterr().err


def test_library_refuses_true_false_for_a_numeric_input() -> None:
    """score() itself (batch, the Slicer panel, notebooks), not only the commands: JSON true is
    1 to Python, so a T-score of true would be scored as +1. Yes/no inputs keep true/false."""
    from RefractureRiskLib.core.errors import InputError
    from RefractureRiskLib.model.modelfile import bundled_model_path, load_model
    from RefractureRiskLib.model.scoring import score

    model = load_model(bundled_model_path())
    numeric = next(s for s in model.inputs if s.kind == "number")
    binary = next(s for s in model.inputs if s.kind == "binary")
    with pytest.raises(InputError, match=numeric.name):
        numeric.coerce(True, "patient")
    assert binary.coerce(True, "patient") == 1.0
    with pytest.raises(InputError, match="dxa_l1l4_tscore"):
        score(model, {"dxa_l1l4_tscore": True, "age_years": 70}, source="patient")
