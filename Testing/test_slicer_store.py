"""One store path: a study stored from the Slicer panel's logic equals the same study stored by
``refracture-risk batch``, column for column (issue 16). Runs on slicer-core (real MRML)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from Testing import slicer_core_bootstrap as boot

pytest_plugins = ("Testing.conftest_slicer",)
pytestmark = pytest.mark.slicer_core

#: Columns that name the write itself (ids, time), not the measurement.
WRITE_COLUMNS = {"measurement_id", "run_id", "recorded_at_utc", "labelmap_path"}
#: Provenance entries that differ by where the analysis ran: when, how long, from which folder
#: (batch) or the panel (roi_source: "auto" vs "Slicer panel").
RUN_PROVENANCE = {"created_utc", "timings_s", "study_path", "roi_source"}
READER = "reader A"
PATIENT = "P001"


@pytest.mark.slow
def test_a_study_stored_from_the_panel_equals_the_batch(tmp_path):
    pytest.importorskip("sqlalchemy")
    from RefractureRiskLib.batch import BatchConfig, run_batch
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
    from RefractureRiskLib.phantom.dicom_writer import write_dicom_study
    from RefractureRiskLib.pipeline import AnalysisOptions
    from RefractureRiskLib.store.measurements import MeasurementStore

    spec = PhantomSpec(seed=11, in_plane_spacing_mm=2.5, slice_thickness_mm=4.0, snr=60.0)
    root = tmp_path / "root"
    write_dicom_study(generate_phantom(spec).study, root / PATIENT, seed=11, kinds=("pdff", "r2s"))

    boot.bootstrap()
    module = boot.load_module()
    logic = module.RefractureRiskLogic()
    model = logic.loadModel()
    clinical = {
        s.name: module.workflow.typicalInputValue(s) for s in logic.clinicalInputSpecs(model)
    }
    index = ("L1",)
    table = tmp_path / "clinical.csv"
    pd.DataFrame([{"patient_id": PATIENT, "index_levels": "L1", **clinical}]).to_csv(
        table, index=False
    )

    # batch
    out = tmp_path / "batch"
    options = AnalysisOptions(reader=READER, report=False)
    summary = run_batch(BatchConfig(root, table, out, workers=0, options=options), stream=None)
    assert summary.count("done") == 1, summary.format_text()  # (cohort columns: not needed)

    # the panel: load, detect, compute, save, write to the store
    nodes = logic.addStudyToScene(logic.loadStudyFromFolder(root / PATIENT))
    study = logic.studyFromNodes({"pdff": nodes["pdff"], "r2s": nodes["r2s"]})
    result = logic.detectVertebrae(study, None, READER, index)
    outcome = logic.computeRisk(study, result, model, clinical, index)
    logic.saveResults(outcome, str(tmp_path / "panel"))
    panel_store = tmp_path / "panel.sqlite"
    logic.writeToStore(outcome, str(panel_store), READER, PATIENT)

    batch_rows = MeasurementStore(str(out / "measurements.sqlite")).all_measurements()
    panel_rows = MeasurementStore(str(panel_store)).all_measurements()
    assert len(panel_rows) == len(batch_rows) > 0
    columns = set(batch_rows[0]) - WRITE_COLUMNS
    assert columns >= {"statistics_json", "labelmap_sha256", "flags", "included", "series_uid"}
    key = lambda r: (r["level"], r["map"])  # noqa: E731
    for b, p in zip(sorted(batch_rows, key=key), sorted(panel_rows, key=key), strict=True):
        for column in sorted(columns):
            if column == "statistics_json":
                assert json.loads(p[column]) == pytest.approx(json.loads(b[column]), rel=1e-12)
                assert set(json.loads(p[column])) >= {"variance", "p10", "p90", "body_volume_ml"}
            else:
                assert p[column] == b[column], (key(b), column)

    (b_run,) = MeasurementStore(str(out / "measurements.sqlite")).study_runs()
    (p_run,) = MeasurementStore(str(panel_store)).study_runs()
    for column in set(b_run) - {"run_id", "recorded_at_utc", "provenance_json"}:
        assert p_run[column] == b_run[column], column
    b_prov, p_prov = json.loads(b_run["provenance_json"]), json.loads(p_run["provenance_json"])
    assert set(p_prov) | RUN_PROVENANCE == set(b_prov) | RUN_PROVENANCE
    for name in set(b_prov) - RUN_PROVENANCE:
        assert p_prov[name] == b_prov[name], name
