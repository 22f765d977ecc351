"""Risk inputs are given, measured or derived, never guessed: refusal, range view, derivation."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from RefractureRiskLib.cli import main
from RefractureRiskLib.commands.demo import DEMO_CLINICAL
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.study import PatientInfo, Study
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.model.modelfile import RiskModel, bundled_model_path, load_model
from RefractureRiskLib.model.scoring import RANGE_LABEL, score
from RefractureRiskLib.pipeline import AnalysisOptions, analyze_study, score_patient
from RefractureRiskLib.stats.summary import PatientSummary

# the demo patient (fictitious) with its two imaging summaries
FULL = {**DEMO_CLINICAL, "pdff_global_L1L4": 50.0, "r2s_global_L1L4": 60.0}
CLINICAL = {k: v for k, v in FULL.items() if not k.startswith(("pdff", "r2s"))}


@pytest.fixture(scope="module")
def demo() -> RiskModel:
    return load_model(bundled_model_path())


def _without(patient: dict, *names: str) -> dict:
    return {k: v for k, v in patient.items() if k not in names}


def test_missing_inputs_are_refused_and_named(demo: RiskModel) -> None:
    with pytest.raises(InputError) as err:
        score(demo, _without(FULL, "dxa_l1l4_tscore", "antiop_post"))
    assert "dxa_l1l4_tscore, antiop_post" in str(err.value)
    assert "missing='range'" in str(err.value)
    # None, NaN and "" are missing too, not values
    for blank in (None, math.nan, " "):
        with pytest.raises(InputError, match="glucocorticoid_use"):
            score(demo, {**FULL, "glucocorticoid_use": blank})


def test_range_is_the_risk_over_every_combination_of_plausible_values(demo: RiskModel) -> None:
    patient = _without(FULL, "dxa_l1l4_tscore", "antiop_post", "sex")
    result = score(demo, patient, missing="range")
    assert math.isnan(result.probability) and result.interval is None
    assert result.missing_inputs == ("sex", "dxa_l1l4_tscore", "antiop_post")
    # brute force over the model's plausible values: T-score soft range ends, 0/1, F/M
    risks = [
        score(demo, {**patient, "dxa_l1l4_tscore": t, "antiop_post": a, "sex": s}).probability
        for t, a, s in itertools.product((-5.0, 1.0), (0, 1), ("F", "M"))
    ]
    lo, hi = result.probability_range
    assert lo == pytest.approx(min(risks), rel=1e-12)
    assert hi == pytest.approx(max(risks), rel=1e-12)
    missing_terms = [c for c in result.contributions if c.missing]
    assert {c.input for c in missing_terms} == set(result.missing_inputs)
    assert all(math.isnan(c.log_odds) and c.log_odds_range is not None for c in missing_terms)


def test_range_is_labelled_in_text_and_json(demo: RiskModel) -> None:
    result = score(demo, _without(FULL, "antiop_post"), missing="range")
    text = result.format_text()
    assert RANGE_LABEL in text and "Probability:" not in text
    assert "antiop_post" in text
    doc = result.to_dict()
    assert doc["kind"] == RANGE_LABEL and RANGE_LABEL in doc["risk_text"]
    assert doc["probability_range"][0] < doc["probability_range"][1]
    complete = score(demo, FULL).to_dict()
    assert complete["kind"] == "point estimate" and complete["probability_range"] is None


def test_score_command_refuses_or_shows_a_range(capsys: pytest.CaptureFixture[str]) -> None:
    partial = json.dumps(_without(FULL, "dxa_l1l4_tscore"))
    assert main(["score", "--patient", partial]) == 2
    assert "dxa_l1l4_tscore" in capsys.readouterr().err
    assert main(["score", "--patient", partial, "--missing", "range", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == RANGE_LABEL and doc["probability"] is None


def _tiny_study(age: float | None = None, sex: str | None = None) -> Study:
    return Study({"pdff": Volume(np.zeros((2, 2, 2)))}, patient=PatientInfo(age, sex))


def _summary(index_levels: tuple[str, ...]) -> PatientSummary:
    return PatientSummary(50.0, 60.0, 48.0, 58.0, index_levels=index_levels)


@pytest.mark.parametrize(("levels", "expected"), [(("L1",), 1), (("L4",), 0), (("L3", "T12"), 1)])
def test_tl_junction_is_derived_from_the_index_levels(
    demo: RiskModel, levels: tuple[str, ...], expected: int
) -> None:
    risk = score_patient(demo, _without(CLINICAL, "tl_junction"), _summary(levels), _tiny_study())
    tl = next(c for c in risk.contributions if c.input == "tl_junction")
    assert tl.value == expected


def test_a_given_value_contradicting_the_index_levels_is_refused(demo: RiskModel) -> None:
    with pytest.raises(InputError, match=r"tl_junction.*L1.*T11-L2"):
        score_patient(demo, {**CLINICAL, "tl_junction": 0}, _summary(("L1",)), _tiny_study())


def test_without_index_levels_tl_junction_is_missing(demo: RiskModel) -> None:
    with pytest.raises(InputError, match=r"missing model input.*tl_junction.*index levels"):
        score_patient(demo, _without(CLINICAL, "tl_junction"), _summary(()), _tiny_study())


def test_age_from_birth_and_study_dates(demo: RiskModel) -> None:
    clinical = {**_without(CLINICAL, "age_years"), "birth_date": "1950-06-30"}
    clinical["study_date"] = "2024-06-29"  # the day before the 74th birthday
    risk = score_patient(demo, clinical, _summary(("L1",)), _tiny_study(age=99.0))
    age = next(c for c in risk.contributions if c.input == "age_years")
    assert age.value == 73.0  # the dates win over the header's age; never both silently
    assert not any("birth_date" in w for w in risk.warnings)  # consumed, not "unused"
    with pytest.raises(InputError, match=r"age_years.*74"):
        bad = {**clinical, "age_years": 80, "study_date": "2024-07-01"}
        score_patient(demo, bad, _summary(("L1",)), _tiny_study())


def test_age_and_sex_from_the_dicom_header_when_not_given(demo: RiskModel) -> None:
    clinical = _without(CLINICAL, "age_years", "sex")
    risk = score_patient(demo, clinical, _summary(("L1",)), _tiny_study(age=81.0, sex="M"))
    values = {c.input: c.value for c in risk.contributions}
    assert values["age_years"] == 81.0 and values["sex"] == "M"
    with pytest.raises(InputError, match="age_years, sex"):
        score_patient(demo, clinical, _summary(("L1",)), _tiny_study())


def test_analyze_study_refuses_missing_clinical_inputs_before_loading(tmp_path) -> None:
    """The check runs before the study is read: the study path need not even exist."""
    clinical = _without(CLINICAL, "dxa_l1l4_tscore", "antiop_post", "tl_junction", "age_years")
    options = AnalysisOptions(index_levels=("L1",))
    with pytest.raises(InputError) as err:
        analyze_study(tmp_path / "no-such-study", clinical, tmp_path / "out", options)
    message = str(err.value)
    # tl_junction comes from the index level and age from the header: not refused here
    assert "dxa_l1l4_tscore, antiop_post;" in message and "tl_junction" not in message
    assert "age_years" not in message
    assert not (tmp_path / "out").exists()
