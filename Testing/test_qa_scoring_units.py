"""QA regression: one patient's PDFF given as a fraction (or R2* in 1/ms) is refused, not scored."""

from __future__ import annotations

import json

import pytest

from RefractureRiskLib.cli import main
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.modelfile import bundled_model_path, load_model
from RefractureRiskLib.model.scoring import score

# A complete patient: a missing input is refused (issue 12), which is not what these tests test.
BASE = {
    "age_years": 74,
    "sex": "F",
    "dxa_l1l4_tscore": -3.0,
    "cement_leak_disc": 0,
    "antiop_post": 1,
    "tl_junction": 1,
    "glucocorticoid_use": 0,
    "n_prevalent_vertebral_fractures": 1,
    "pdff_global_L1L4": 55.0,
    "r2s_global_L1L4": 70.0,
}


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [("pdff_global_L1L4", 0.55, "fraction"), ("r2s_global_L1L4", 0.07, "1/ms")],
)
def test_unit_mistake_is_refused_naming_the_input(name: str, value: float, hint: str) -> None:
    model = load_model(bundled_model_path())
    with pytest.raises(InputError) as err:
        score(model, {**BASE, name: value}, source="patient.json")
    assert name in str(err.value) and hint in str(err.value)


def test_plausible_values_still_score() -> None:
    model = load_model(bundled_model_path())
    # Low but plausible values (outside the soft range) warn, never refuse.
    result = score(model, {**BASE, "pdff_global_L1L4": 12.0, "r2s_global_L1L4": 15.0})
    assert 0.0 < result.probability < 1.0
    assert any("pdff_global_L1L4" in w and "extrapolation" in w for w in result.warnings)
    # Zero is a value on the right scale, not a fraction.
    score(model, {**BASE, "pdff_global_L1L4": 0.0})


def test_score_command_refuses_a_fraction_with_one_line(tmp_path, capsys) -> None:
    patient = tmp_path / "patient.json"
    patient.write_text(json.dumps({**BASE, "pdff_global_L1L4": 0.55}))
    assert main(["score", "--patient", str(patient)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "patient.json" in lines[0] and "pdff_global_L1L4" in lines[0]
    assert "Traceback" not in captured.err


def test_a_count_must_be_whole() -> None:
    model = load_model(bundled_model_path())
    with pytest.raises(InputError, match=r"n_prevalent_vertebral_fractures.*whole number"):
        score(model, {**BASE, "n_prevalent_vertebral_fractures": 1.5})
    assert score(model, {**BASE, "n_prevalent_vertebral_fractures": 2.0}).probability > 0
