"""Good inputs that the bad-input corpora damage copies of (``test_faults_cli_corpus.py``,
``test_faults_hostile.py``): a small phantom DICOM study, the demo patient's clinical file, a
synthetic cohort table and the bundled model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from RefractureRiskLib.commands.demo import DEMO_CLINICAL


@dataclass(frozen=True)
class Env:
    """Shared good inputs; each case damages a copy in its own folder."""

    dicom: Path
    clinical: Path
    cohort: Path
    model: Path


def write_env(base: Path, seed: int) -> Env:
    """The good inputs under ``base``; ``seed`` draws the study's maps."""
    from RefractureRiskLib.core import PatientInfo, Study, StudyProvenance, Volume
    from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort
    from RefractureRiskLib.model.modelfile import bundled_model_path
    from RefractureRiskLib.phantom.dicom_writer import write_dicom_study

    rng = np.random.default_rng(seed)
    shape = (5, 12, 16)
    affine = np.array([[0, 0, 3.0, 0], [-1.5, 0, 0, 10], [0, -1.5, 0, 30], [0, 0, 0, 1]], float)
    pdff = rng.uniform(0, 95, shape)
    pdff.flat[0] = 95.0
    study = Study(
        {"pdff": Volume(pdff, affine), "r2s": Volume(rng.uniform(20, 150, shape), affine)},
        StudyProvenance(field_strength_t=1.5),
        PatientInfo(age_years=70, sex="F"),
    )
    write_dicom_study(study, base / "dicom", vendor="GE", kinds=["pdff", "r2s"])
    clinical = base / "patient.json"
    clinical.write_text(json.dumps(DEMO_CLINICAL))
    cohort = base / "cohort.csv"
    generate_cohort(n=150, seed=3).data.to_csv(cohort, index=False)
    return Env(base / "dicom", clinical, cohort, bundled_model_path())
