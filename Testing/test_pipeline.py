"""One patient end to end (phantom -> vendor DICOM -> load -> ROIs -> statistics -> risk ->
files), checked against independent recomputation, plus the bad-input paths of the pipeline."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.io.segmentation import read_roiset
from RefractureRiskLib.model.modelfile import bundled_model_path, load_model
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study
from RefractureRiskLib.pipeline import (
    AnalysisOptions,
    analyze_study,
    load_clinical,
    load_points,
    parse_anchor,
)

CLINICAL = {
    "age_years": 74,
    "sex": "F",
    "dxa_l1l4_tscore": -2.9,
    "cement_leak_disc": 0,
    "antiop_post": 1,
    "tl_junction": 1,
    "glucocorticoid_use": 0,
    "n_prevalent_vertebral_fractures": 1,
}


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    phantom = generate_phantom(PhantomSpec(seed=5, fractured={"L1": 0.3}, snr=60.0))
    root = tmp_path_factory.mktemp("pipeline")
    written = write_dicom_study(phantom.study, root / "dicom", vendor="GE", seed=5)
    options = AnalysisOptions(index_levels=("L1",), export_dicom=True, reader="pytest")
    messages: list[str] = []
    result = analyze_study(
        root / "dicom", CLINICAL, root / "out", options, progress=messages.append
    )
    return phantom, written, result, messages, root / "out"


def test_files_written_and_traceable(analysed):
    _phantom, written, result, messages, out = analysed
    for key in (
        "statistics",
        "rois",
        "bodies",
        "results",
        "report_html",
        "report_pdf",
        "report_png",
        "dicom_seg",
        "dicom_sr",
    ):
        assert result.files[key].is_file() and result.files[key].stat().st_size > 0, key
    assert messages[0].startswith("loading")
    doc = json.loads((out / "results.json").read_text())
    prov = doc["provenance"]
    assert prov["software"].startswith("RefractureRiskLib ")
    assert prov["study_uid"] == written.study_instance_uid
    assert prov["series"]["pdff"]["series_uid"] == written.by_kind("pdff").series_instance_uid
    assert prov["roi_method"] == "automatic" and prov["reader"] == "pytest"
    assert doc["risk"]["validated"] is False
    # the label map on disk is the one measured
    roiset = read_roiset(out / "rois.seg.nrrd", reference=result.study.grid)
    np.testing.assert_array_equal(roiset.labelmap.array, result.rois.roiset.labelmap.array)


def _independent_probability(model_file, inputs: dict) -> float:
    """The model file's logistic formula evaluated from its JSON text alone (no RiskModel, no
    score()): intercept + sum of coefficient x transformed input, then the inverse logit."""
    doc = json.loads(model_file.read_text())
    linear = doc["intercept"]["coefficient"]
    for term in doc["terms"]:
        value, how = inputs[term["input"]], term["transform"]
        if how["type"] == "linear":
            column = (float(value) - how["center"]) / how["scale"]
        elif how["type"] == "indicator":
            column = float(str(value) in how["levels"])
        elif how["type"] == "threshold":
            column = float(float(value) > how["above"])
        else:
            raise AssertionError(f"transform {how['type']} is not recomputed by this test")
        (coefficient,) = term["coefficients"]
        linear += coefficient * column
    return 1.0 / (1.0 + math.exp(-linear))


def test_risk_equals_independent_scoring(analysed):
    _phantom, _written, result, _messages, _out = analysed
    # recompute the summary input from the statistics table: mean of included L1-L4 PDFF means
    stats = result.statistics
    rows = stats[(stats["map"] == "pdff") & stats["level"].isin(["L1", "L2", "L3", "L4"])]
    pdff_global = rows[rows["included"]]["mean"].mean()
    r2s_rows = stats[(stats["map"] == "r2s") & stats["level"].isin(["L1", "L2", "L3", "L4"])]
    r2s_global = r2s_rows[r2s_rows["included"]]["mean"].mean()
    inputs = {**CLINICAL, "pdff_global_L1L4": pdff_global, "r2s_global_L1L4": r2s_global}
    expected = _independent_probability(bundled_model_path(), inputs)
    assert result.risk is not None
    assert result.risk.probability == pytest.approx(expected, rel=1e-12)
    assert "L1" not in result.summary.levels_used["pdff_global_L1L4_pct"]  # index level excluded


def test_measured_pdff_close_to_truth(analysed):
    phantom, _written, result, _messages, _out = analysed
    truth = phantom.truth.level_table().set_index("level")["marrow_pdff_pct"]
    pdff = result.statistics[result.statistics["map"] == "pdff"].set_index("level")["mean"]
    common = [lv for lv in ("L2", "L3", "L4") if lv in pdff.index]
    assert common, "no lumbar level measured"
    assert max(abs(pdff[lv] - truth[lv]) for lv in common) < 2.0


def test_report_is_one_page(analysed):
    _phantom, _written, result, _messages, _out = analysed
    pdf = result.files["report_pdf"].read_bytes()
    assert (
        pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") + pdf.count(b"/Type/Page\n") >= 1
    )
    assert b"/Count 1" in pdf
    html = result.files["report_html"].read_text()
    assert "not validated, not for clinical use" in html
    assert f"{100 * result.risk.probability:.1f}%" in html


def test_clinical_inputs(tmp_path):
    js = tmp_path / "p.json"
    js.write_text(json.dumps(CLINICAL))
    assert load_clinical(js) == CLINICAL
    csv = tmp_path / "cohort.csv"
    csv.write_text("patient_id,age_years,sex\nP1,70,F\nP2,81,M\n")
    assert load_clinical(csv, "P2") == {"patient_id": "P2", "age_years": 81, "sex": "M"}
    with pytest.raises(InputError, match="2 rows; name the patient"):
        load_clinical(csv)
    with pytest.raises(InputError, match="'P9' not in the clinical table"):
        load_clinical(csv, "P9")
    with pytest.raises(InputError, match="clinical file not found"):
        load_clinical(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_clinical(bad)


def test_anchor_and_points_parsing(tmp_path):
    assert parse_anchor("l3:1,-2.5,30") == ("L3", (1.0, -2.5, 30.0))
    for bad in ("L3", "C5:1,2,3", "L3:1,2"):
        with pytest.raises(InputError, match="--anchor"):
            parse_anchor(bad)
    pts = tmp_path / "pts.json"
    pts.write_text(json.dumps({"l1": [1, 2, 3]}))
    assert load_points(pts) == {"L1": (1.0, 2.0, 3.0)}
    mrk = tmp_path / "pts.mrk.json"
    mrk.write_text(
        json.dumps(
            {
                "markups": [
                    {
                        "coordinateSystem": "LPS",
                        "controlPoints": [{"label": "L2", "position": [10.0, 20.0, 30.0]}],
                    }
                ]
            }
        )
    )
    assert load_points(mrk) == {"L2": (-10.0, -20.0, 30.0)}
    ras = {"coordinateSystem": "RAS", "controlPoints": [{"label": "L2", "position": [1, 2, 3]}]}
    mrk.write_text(json.dumps({"markups": [ras]}))
    assert load_points(mrk) == {"L2": (1.0, 2.0, 3.0)}
    for broken in (
        {"markups": [1]},
        {"markups": [{"controlPoints": [{"label": "L2"}]}]},
        {"markups": [{"controlPoints": [{"label": "L2", "position": [1, 2]}]}]},
        {"markups": [{"controlPoints": [{"label": "L2", "position": [True, 2, 3]}]}]},
        {"markups": [{**ras, "coordinateSystem": "XYZ"}]},
    ):
        mrk.write_text(json.dumps(broken))
        with pytest.raises(InputError, match=r"pts\.mrk\.json"):
            load_points(mrk)


def test_out_of_range_clinical_input_is_refused(tmp_path):
    phantom = generate_phantom(PhantomSpec(seed=2))
    with pytest.raises(InputError, match="age_years"):
        analyze_study(
            phantom.study, {**CLINICAL, "age_years": 250}, tmp_path, AnalysisOptions(report=False)
        )
    assert math.isfinite(phantom.truth.levels[0].marrow_pdff_pct)


def test_reimported_rois_keep_flags_and_summaries(analysed):
    _phantom, _written, result, _messages, out = analysed
    from RefractureRiskLib.pipeline import measure, place_rois

    again = place_rois(
        result.study,
        AnalysisOptions(roi=str(out / "rois.seg.nrrd"), index_levels=("L1",), reader="pytest"),
    )
    for lv in result.rois.roiset.levels:
        assert again.roiset.level(lv.level).flags == lv.flags, lv.level
    _stats, summary = measure(result.study, again, ("L1",))
    assert summary.pdff_global_L1L4_pct == pytest.approx(result.summary.pdff_global_L1L4_pct)


def test_fractured_level_is_not_called_a_lesion(analysed):
    phantom, _written, result, _messages, _out = analysed
    truth = phantom.truth.level_table().set_index("level")
    l1 = result.rois.roiset.level("L1")
    assert "fractured" in l1.flags
    assert not truth.loc["L1", "lesion"] and "lesion" not in l1.flags


def test_anchor_outside_the_image_or_outside_bone_is_refused(tmp_path):
    phantom = generate_phantom(PhantomSpec(seed=4))
    with pytest.raises(InputError, match=r"anchor L3 at \(1000, .* outside the image"):
        analyze_study(
            phantom.study,
            None,
            tmp_path,
            AnalysisOptions(anchor=("L3", (1000.0, 1000.0, 1000.0)), report=False),
        )
    # 60 mm in front of L3's centre: abdominal soft tissue, inside the image but not bone
    l3 = np.asarray(phantom.truth.level("L3").centre_ras)
    front = l3 + 60.0 * np.asarray(phantom.truth.level("L3").anterior_ras)
    with pytest.raises(InputError, match=r"anchor L3 .* not inside bone"):
        analyze_study(
            phantom.study,
            None,
            tmp_path / "b",
            AnalysisOptions(anchor=("L3", tuple(front)), report=False),
        )


def test_field_strength_comes_from_the_images(analysed, tmp_path):
    """A model trained on 1.5 T R2* only: the images' field strength reaches the model."""
    from dataclasses import replace

    from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort
    from RefractureRiskLib.model.dev.training import DEFAULT_CANDIDATES, train_model
    from RefractureRiskLib.model.dev.validation import FitSpec
    from RefractureRiskLib.pipeline import score_patient

    cohort = generate_cohort(300, 3, 0.0, seed=3).data
    cohort = cohort[cohort["mri_field_T"] == 1.5]
    names = ("age_per_year", "r2s_per_10")
    candidates = [c for c in DEFAULT_CANDIDATES if c.name in names]
    trained = train_model(
        cohort, candidates, FitSpec("none"), n_bootstrap=5, loco=False, cox=False, log=len
    )
    model = load_model(trained.model.save(tmp_path / "model.json"))
    _phantom, _written, result, _messages, _out = analysed
    study = result.study
    assert study.provenance.field_strength_t == pytest.approx(1.5, abs=0.01)
    at_15 = score_patient(model, {"age_years": 74}, result.summary, study)
    assert not any("mri_field_T" in w for w in at_15.warnings)
    study_3t = replace(study, provenance=replace(study.provenance, field_strength_t=2.89362))
    at_3 = score_patient(model, {"age_years": 74}, result.summary, study_3t)
    assert any("mri_field_T = 3" in w and "extrapolation" in w for w in at_3.warnings)
    with pytest.raises(InputError, match="acquired at 3 T"):
        score_patient(model, {"age_years": 74, "mri_field_T": 1.5}, result.summary, study_3t)
