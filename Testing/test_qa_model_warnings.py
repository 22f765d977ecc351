"""QA regressions: the warning of an unvalidated model; inputs shown without float noise."""

from __future__ import annotations

import json

from RefractureRiskLib.model.modelfile import (
    DEMO_WARNING,
    HASH_FIELD,
    RiskModel,
    bundled_model_path,
    content_hash,
    load_model,
)
from RefractureRiskLib.model.scoring import score
from Testing.test_model_scoring import REFERENCE_PATIENT

# Every demonstration-model input at its reference value (the model's centres; indicators off).
REFERENCE = REFERENCE_PATIENT


def _trained_like_demo(validated: bool) -> RiskModel:
    doc = json.loads(bundled_model_path().read_text())
    doc["training"] = {"n": 560, "events": 60, "centres": 3}
    doc["validated"] = validated
    doc[HASH_FIELD] = content_hash(doc)
    return RiskModel.from_document(doc, source="trained.json")


def test_demo_model_is_called_a_demonstration() -> None:
    result = score(load_model(bundled_model_path()), REFERENCE)
    assert result.warnings[0] == DEMO_WARNING
    assert "DEMONSTRATION MODEL" in result.format_text()


def test_trained_unvalidated_model_is_not_called_a_demonstration() -> None:
    model = _trained_like_demo(validated=False)
    result = score(model, REFERENCE)
    assert "not validated" in result.warnings[0] and "not for clinical use" in result.warnings[0]
    assert "demonstration" not in " ".join(result.warnings).lower()
    assert "DEMONSTRATION" not in result.format_text()
    assert _trained_like_demo(validated=True).warning_text is None


def test_values_are_shown_without_float_noise() -> None:
    # Values as a pipeline passes them: measured means and training-set means, unrounded.
    patient = {**REFERENCE, "r2s_global_L1L4": 140.14999999999998}
    patient["pdff_global_L1L4"] = 50.194292935842874
    result = score(load_model(bundled_model_path()), patient)
    text = result.format_text()
    assert "140.14999" not in text and "140.1" in text
    assert "50.1943" not in text and "50.19" in text


def test_missing_interval_reads_once() -> None:
    result = score(load_model(bundled_model_path()), REFERENCE)
    line = next(x for x in result.format_text().splitlines() if x.startswith("95% interval"))
    assert line.startswith("95% interval: not estimable")
    assert line.count("95% interval") == 1
