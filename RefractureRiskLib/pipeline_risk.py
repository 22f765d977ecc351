"""The risk model's inputs for one patient: the clinical values, what the index levels and dates
determine, what the DICOM header gives, and the imaging summaries measured on the images.

Part of the one-study pipeline (:mod:`RefractureRiskLib.pipeline`, which re-exports these
names); the risk itself is computed by :func:`RefractureRiskLib.model.scoring.score`. Nothing is
guessed: a given value that contradicts a derived or measured one is refused, naming both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import TL_JUNCTION_LEVELS, level_index
from RefractureRiskLib.core.study import Study, nominal_field_t
from RefractureRiskLib.model.modelfile import RiskModel
from RefractureRiskLib.model.scoring import RiskResult, is_missing, missing_inputs, score
from RefractureRiskLib.stats import PatientSummary

#: Model inputs the pipeline fills from the images (cohort schema names).
IMAGING_INPUTS = {
    "pdff_global_L1L4": "pdff_global_L1L4_pct",
    "r2s_global_L1L4": "r2s_global_L1L4_per_s",
    "pdff_adjacent": "pdff_adjacent_pct",
    "r2s_adjacent": "r2s_adjacent_per_s",
}
#: Every model input taken from the images, not typed in: the summaries and the field strength.
FROM_IMAGES: frozenset[str] = frozenset({*IMAGING_INPUTS, "mri_field_T"})
#: Model inputs the index (treated) levels determine: never typed in when the levels are known.
FROM_INDEX_LEVELS: frozenset[str] = frozenset({"tl_junction", "n_index_levels"})
#: Model inputs the DICOM header may give (age from PatientAge or birth and study dates, sex).
FROM_DICOM: frozenset[str] = frozenset({"age_years", "sex"})
#: Clinical keys (ISO dates, YYYY-MM-DD) from which ``age_years`` is derived when it is absent.
AGE_DATE_KEYS = ("birth_date", "study_date")


def model_inputs(
    model: RiskModel, clinical: Mapping[str, Any], summary: PatientSummary
) -> dict[str, Any]:
    """Clinical inputs plus the imaging summaries the model uses, measured on the images.

    An imaging input is never typed in nor stood in for: when a summary the model needs could
    not be measured (no column found, too few eligible levels), no risk is computed and the
    error says which summary and why; placing the ROIs by hand is the way out.
    """
    inputs = dict(clinical)
    used = {spec.name for spec in model.inputs}
    missing = []
    for name, attr in IMAGING_INPUTS.items():
        if name not in used:
            continue
        value = float(getattr(summary, attr))
        if not math.isfinite(value):
            missing.append(attr)
        inputs[name] = value
    if missing:
        why = "; ".join(summary.notes) or "no eligible vertebral levels were measured"
        raise InputError(
            "images",
            f"the model needs {', '.join(missing)}, which could not be measured ({why}); "
            "no risk computed: place the vertebral ROIs by hand (points or a segmentation) "
            "or check the level labels",
        )
    return inputs


def score_patient(
    model: RiskModel,
    clinical: Mapping[str, Any],
    summary: PatientSummary,
    study: Study,
    source: str = "clinical inputs",
    missing: str = "refuse",
) -> RiskResult:
    """The risk from clinical inputs and the images; nothing guessed.

    Filled in (never over a given value, which must agree instead): the imaging summaries and
    the field strength from the images; ``tl_junction`` and ``n_index_levels`` from the index
    levels (``summary.index_levels``); age from ``birth_date`` and ``study_date`` when given,
    else age and sex from the DICOM header. Whatever is still missing is refused, or shown as a
    range with ``missing="range"`` (see :func:`RefractureRiskLib.model.scoring.score`).
    """
    derived = derive_inputs(model, clinical, summary.index_levels, source)
    filled = _prefill_from_dicom(derived, study)
    inputs = model_inputs(model, filled, summary)
    if any(spec.name == "mri_field_T" for spec in model.inputs):  # see FROM_IMAGES
        _field_strength_from_images(inputs, study, source)
    underivable = [n for n in missing_inputs(model, inputs) if n in FROM_INDEX_LEVELS]
    if underivable and missing == "refuse":
        raise InputError(
            source,
            f"missing model input(s) {', '.join(underivable)}: they follow from the index "
            "(treated) levels; give the index levels (e.g. --index-levels L1)",
        )
    return score(model, inputs, source=source, missing=missing)


def derive_inputs(
    model: RiskModel, clinical: Mapping[str, Any], index_levels: Sequence[str], source: str
) -> dict[str, Any]:
    """The model's inputs the data determine: from the index levels, from birth and study dates.

    A given value that contradicts the derived one is refused (naming both), never overridden.
    """
    out = dict(clinical)
    if index_levels:
        levels = sorted({str(lv).upper() for lv in index_levels}, key=level_index)
        derived = {
            "tl_junction": int(bool(set(levels) & TL_JUNCTION_LEVELS)),
            "n_index_levels": len(levels),
        }
        used = {spec.name for spec in model.inputs}
        for name, value in derived.items():
            if name not in used:
                continue
            given = out.get(name)
            if not is_missing(given) and not _same_number(given, value):
                raise InputError(
                    f"{source}: {name}",
                    f"is {given!r} but the index level(s) {', '.join(levels)} give {value}"
                    + (" (thoracolumbar junction: T11-L2)" if name == "tl_junction" else ""),
                )
            out[name] = value
    dates = [out.pop(key, None) for key in AGE_DATE_KEYS]
    if all(not is_missing(d) for d in dates):
        age = _age_years(str(dates[0]), str(dates[1]), source)
        given = out.get("age_years")
        if not is_missing(given) and not _same_number(given, age, abs_tol=1.0):
            raise InputError(
                f"{source}: age_years",
                f"is {given!r} but birth_date and study_date give {age:.1f} years",
            )
        if is_missing(given):
            out["age_years"] = age
    elif any(not is_missing(d) for d in dates):
        raise InputError(source, "age from dates needs both birth_date and study_date")
    return out


def _age_years(birth: str, when: str, source: str) -> float:
    """Age in whole years at ``when`` (ISO dates YYYY-MM-DD; YYYYMMDD as in DICOM also read)."""
    parsed = []
    for key, text in zip(AGE_DATE_KEYS, (birth, when), strict=True):
        digits = text.strip().replace("-", "")
        try:
            parsed.append(datetime.strptime(digits[:8], "%Y%m%d").date())
        except ValueError:
            raise InputError(f"{source}: {key}", f"{text!r} is not a date (YYYY-MM-DD)") from None
    b, w = parsed
    if w < b:
        raise InputError(f"{source}: study_date", f"{when!r} is before birth_date {birth!r}")
    return float(w.year - b.year - ((w.month, w.day) < (b.month, b.day)))


def _prefill_from_dicom(clinical: Mapping[str, Any], study: Study) -> dict[str, Any]:
    """Age and sex from the DICOM header where the clinical inputs lack them (given values win).

    The header's age comes from PatientAge, else PatientBirthDate and StudyDate (io.dicom_scan).
    """
    filled = dict(clinical)
    if is_missing(filled.get("age_years")) and study.patient.age_years is not None:
        filled["age_years"] = study.patient.age_years
    if is_missing(filled.get("sex")) and study.patient.sex is not None:
        filled["sex"] = study.patient.sex
    return filled


def _field_strength_from_images(inputs: dict[str, Any], study: Study, source: str) -> None:
    """``mri_field_T`` from the images (nominal); a typed-in value must agree with them."""
    measured = nominal_field_t(study.provenance.field_strength_t)
    given = inputs.get("mri_field_T")
    if measured is None:
        return
    if given is not None and not _same_number(given, measured):
        raise InputError(
            f"{source}: mri_field_T",
            f"is {given!r} but the images were acquired at {measured:g} T (MagneticFieldStrength)",
        )
    inputs["mri_field_T"] = measured


def _same_number(value: Any, number: float, abs_tol: float = 1e-6) -> bool:
    try:
        return math.isclose(float(value), number, abs_tol=abs_tol)
    except (TypeError, ValueError):
        return False
