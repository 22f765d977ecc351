"""A cohort patient without a model input: refused and named by default; with ``--missing range``
the risk in every file the batch writes for that patient is the labelled range, never a point."""

from __future__ import annotations

import json

import pytest

from RefractureRiskLib.batch import BatchConfig, run_batch
from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort
from RefractureRiskLib.model.scoring import RANGE_LABEL
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study
from RefractureRiskLib.pipeline import AnalysisOptions

PATIENT = "P100"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    base = tmp_path_factory.mktemp("batch-range")
    spec = PhantomSpec(seed=11, in_plane_spacing_mm=2.5, slice_thickness_mm=4.0, snr=60.0)
    write_dicom_study(generate_phantom(spec).study, base / "root" / PATIENT, seed=11)
    table = generate_cohort(n=1, seed=4, lost_to_follow_up_frac=0, death_1y_frac=0).data
    table["patient_id"] = [PATIENT]
    table["index_levels"], table["n_index_levels"], table["tl_junction"] = ["L1"], [1], [1]
    imaging = [
        c
        for c in table.columns
        if c.startswith(("pdff", "r2s", "excl", "mri_", "reader", "body_vol", "paraspinal"))
    ]
    table = table.drop(columns=[*imaging, "dxa_l1l4_tscore"])  # the model input not given
    clinical = base / "clinical.csv"
    table.to_csv(clinical, index=False)
    return base


def _run(base, missing: str):
    out = base / f"out-{missing}"
    options = AnalysisOptions(reader="pytest", missing=missing)
    summary = run_batch(BatchConfig(base / "root", base / "clinical.csv", out, workers=0,
                                    options=options), stream=None)  # fmt: skip
    return next(o for o in summary.outcomes if o.patient_id == PATIENT), out / "patients" / PATIENT


def test_missing_input_is_refused_and_named_by_default(cohort) -> None:
    outcome, folder = _run(cohort, "refuse")
    assert outcome.status == "failed"
    assert "dxa_l1l4_tscore" in outcome.reason and "range" in outcome.reason
    assert not (folder / "results.json").exists()


def test_range_is_labelled_in_every_file_of_the_patient(cohort) -> None:
    outcome, folder = _run(cohort, "range")
    assert outcome.status == "done", outcome
    risk = json.loads((folder / "results.json").read_text())["risk"]
    assert risk["kind"] == RANGE_LABEL and risk["probability"] is None
    assert risk["missing_inputs"] == ["dxa_l1l4_tscore"]
    lo, hi = risk["probability_range"]
    assert 0 < lo < hi < 1
    page = (folder / "report.html").read_text()
    assert RANGE_LABEL in page
    assert f"{100 * lo:.1f}% to {100 * hi:.1f}%" in page
