"""Term labels and factor words read alike in every model: clinical words, sentence case, no
variable names (the demonstration model's lower-case descriptions and a trained model's
capitalised schema descriptions give the same kind of text)."""

from __future__ import annotations

import re

import pytest

from RefractureRiskLib.commands.demo import DEMO_CLINICAL
from RefractureRiskLib.model.dev.candidates import (
    DEFAULT_CANDIDATES,
    FIELD_STRENGTH_TERM,
    with_splines,
)
from RefractureRiskLib.model.modelfile import bundled_model_path, load_model
from RefractureRiskLib.model.result import Contribution, direction_text, factor_text
from RefractureRiskLib.model.scoring import score

VARIABLE_NAME = re.compile(r"[a-z0-9]+_[a-z0-9_]+", re.I)


def _is_sentence_case(text: str) -> bool:
    return bool(text) and (text[0].isupper() or text[0].isdigit())


def test_candidate_labels_are_clinical_words_in_sentence_case() -> None:
    splined = with_splines(DEFAULT_CANDIDATES, ["age_years", "pdff_global_L1L4"])
    labels = [c.label for c in (*DEFAULT_CANDIDATES, FIELD_STRENGTH_TERM, *splined)]
    bad = [x for x in labels if not _is_sentence_case(x) or VARIABLE_NAME.search(x)]
    assert not bad, bad
    assert "(x -" not in " ".join(labels) and "(age -" not in " ".join(labels)
    spline = next(c for c in splined if c.input == "age_years")
    assert spline.label == "Age (restricted cubic spline, 4 knots)"


@pytest.mark.parametrize(
    ("description", "kind", "value", "expected"),
    [
        ("age at surgery", "number", 74.0, "Age at surgery: 74"),
        ("Age at the index surgery.", "number", 74.0, "Age at the index surgery: 74"),
        ("anti-osteoporosis treatment after surgery (1 = yes)", "binary", 0.0, "No anti-"),
        ("An index level at the thoracolumbar junction T11-L2 (1) or not (0)", "binary", 0.0,
         "No index level at the thoracolumbar junction T11-L2"),
        ("DXA L1-L4 T-score", "number", -3.0, "DXA L1-L4 T-score: -3"),
    ],
)  # fmt: skip
def test_factor_text_is_sentence_case_whatever_the_description(
    description: str, kind: str, value: float, expected: str
) -> None:
    c = Contribution("t", "label", "x_input", value, 0.1, description, "", kind)
    text = factor_text(c)
    assert text.startswith(expected), text
    assert "x_input" not in text


def test_every_factor_of_the_demonstration_model_reads_as_clinical_words() -> None:
    patient = {**DEMO_CLINICAL, "pdff_global_L1L4": 50.2, "r2s_global_L1L4": 64.2}
    risk = score(load_model(bundled_model_path()), patient)
    for c in risk.contributions:
        text = factor_text(c)
        assert _is_sentence_case(text) and not VARIABLE_NAME.search(text), text


def test_a_negligible_effect_is_called_slight() -> None:
    tiny = Contribution("t", "l", "i", 60.3, 0.005, "PDFF", "%")
    large = Contribution("t", "l", "i", 80.0, 0.5, "PDFF", "%")
    assert direction_text(tiny) == "raises risk slightly"
    assert direction_text(large) == "raises risk"
    assert direction_text(Contribution("t", "l", "i", 1, -0.01)) == "lowers risk slightly"


def test_a_trained_model_card_uses_the_labels_and_no_outcome_variable() -> None:
    from RefractureRiskLib.model.dev.schema import read_cohort
    from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort
    from RefractureRiskLib.model.dev.training import FitSpec, train_model
    from RefractureRiskLib.model.modelcard import model_card

    cohort = read_cohort(generate_cohort(300, 2, 0.0, seed=7).data)
    result = train_model(
        cohort, spec=FitSpec("l2"), n_imputations=1, n_bootstrap=2, loco=False, cox=False,
        log=lambda _msg: None,
    )  # fmt: skip
    card = model_card(result.model)
    assert "outcome_1y" not in card
    for term in result.model.terms:
        assert _is_sentence_case(term.label) and not VARIABLE_NAME.search(term.label)
        assert f"| {term.label} |" in card


def test_the_demonstration_model_uses_the_candidate_labels_and_the_terminal_table_aligns() -> None:
    """The bundled model has the study's terms: the same words as a model trained on them."""
    model = load_model(bundled_model_path())
    by_name = {c.name: c.label for c in DEFAULT_CANDIDATES}
    assert {t.name: t.label for t in model.terms} == {t.name: by_name[t.name] for t in model.terms}
    patient = {**DEMO_CLINICAL, "pdff_global_L1L4": 50.2, "r2s_global_L1L4": 64.2}
    lines = score(model, patient).format_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("term "))
    rows = lines[start : start + 1 + len(model.terms)]
    assert len({len(r) for r in rows}) == 1, rows  # every column right-aligned at one place
