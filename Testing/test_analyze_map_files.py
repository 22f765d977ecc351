"""``refracture-risk analyze`` on NIfTI/NRRD map files (``--map KIND=FILE:UNIT``) and with an
external vertebra labelling (``--external-labels``), end to end through the command line.

The same phantom is analysed from vendor DICOM and from map files: everything after loading is
the same code, so the per-level PDFF must agree. The external labellings are built from the
phantom's true body labels, renumbered as TotalSegmentator's ``vertebrae_mr`` numbers them.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from RefractureRiskLib.cli import main
from RefractureRiskLib.commands.demo import DEMO_CLINICAL
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.io.images import write_image
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study
from RefractureRiskLib.roi.external import EXTERNAL_SCHEMES


def _ts_labels(truth: Volume, swap: tuple[str, str] | None = None) -> Volume:
    """The true body labels renumbered as TotalSegmentator's vertebrae_mr (1 sacrum, 2 L5 ...),
    optionally with two levels' labels swapped (an external tool that mislabels them)."""
    ts_value = {
        name.removeprefix("vertebrae_").replace("sacrum", "S1"): value
        for value, name in EXTERNAL_SCHEMES["totalsegmentator"].items()
    }
    product = EXTERNAL_SCHEMES["refracture"]  # product label value -> level
    if swap is not None:
        a, b = swap
        ts_value[a], ts_value[b] = ts_value[b], ts_value[a]
    src = np.asarray(truth.array)
    out = np.zeros(src.shape, np.int16)
    for value, level in product.items():
        out[src == value] = ts_value[level]
    return truth.with_array(out)


def _coarser(volume: Volume) -> Volume:
    """Every second voxel along i and j (spacing doubled): a label image on another grid."""
    affine = np.array(volume.ijk_to_ras, float)
    affine[:3, 0] *= 2.0
    affine[:3, 1] *= 2.0
    return Volume(np.ascontiguousarray(np.asarray(volume.array)[:, ::2, ::2]), affine)


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(["analyze", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The phantom as GE DICOM, as map files (PDFF a fraction in NIfTI, R2* 1/s in NRRD), a
    clinical JSON and two external labellings (agreeing on a coarser grid; L2/L3 swapped)."""
    phantom = generate_phantom(PhantomSpec(seed=5, in_plane_spacing_mm=2.0, snr=60.0))
    root = tmp_path_factory.mktemp("mapfiles")
    write_dicom_study(phantom.study, root / "dicom", vendor="GE", seed=5)
    pdff = phantom.study.pdff
    paths = {
        "pdff": write_image(pdff.with_array(np.asarray(pdff.array) / 100.0), root / "PDFF.nii.gz"),
        "r2s": write_image(phantom.study.r2s, root / "R2S.nrrd"),
        "agree": write_image(_coarser(_ts_labels(phantom.truth.body_labels)), root / "ts.nii.gz"),
        "swapped": write_image(
            _ts_labels(phantom.truth.body_labels, ("L2", "L3")), root / "ts_swapped.nii.gz"
        ),
        "clinical": root / "patient.json",
        "root": root,
    }
    paths["clinical"].write_text(json.dumps(DEMO_CLINICAL))
    return paths


def _map_args(inputs) -> list[str]:
    return [
        "--map", f"pdff={inputs['pdff']}:fraction",
        "--map", f"r2s={inputs['r2s']}:per_s",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def dicom_run(inputs):
    out = inputs["root"] / "out_dicom"
    argv = ["analyze", str(inputs["root"] / "dicom"), "--clinical", str(inputs["clinical"])]
    assert main([*argv, "--index-levels", "L1", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def map_run(inputs):
    out = inputs["root"] / "out_maps"
    argv = [*_map_args(inputs), "--clinical", str(inputs["clinical"]), "--index-levels", "L1"]
    argv += ["--external-labels", str(inputs["agree"]), "--out", str(out)]
    assert main(["analyze", *argv]) == 0
    return out


def _mean_by_level(out, kind: str) -> pd.Series:
    stats = pd.read_csv(out / "statistics.csv")
    return stats[stats["map"] == kind].set_index("level")["mean"]


def test_map_files_measure_what_the_dicom_measures(dicom_run, map_run):
    from_dicom, from_files = _mean_by_level(dicom_run, "pdff"), _mean_by_level(map_run, "pdff")
    assert list(from_files.index) == list(from_dicom.index) and len(from_files) >= 8
    # DICOM stores PDFF rounded to its integer encoding; the files keep float32: same ROIs,
    # means within 0.3 percentage points
    np.testing.assert_allclose(from_files.to_numpy(), from_dicom.to_numpy(), atol=0.3)
    r2s_dicom, r2s_files = _mean_by_level(dicom_run, "r2s"), _mean_by_level(map_run, "r2s")
    np.testing.assert_allclose(r2s_files.to_numpy(), r2s_dicom.to_numpy(), rtol=0.02)
    risk_dicom = json.loads((dicom_run / "results.json").read_text())["risk"]
    risk_files = json.loads((map_run / "results.json").read_text())["risk"]
    assert risk_files["probability"] == pytest.approx(risk_dicom["probability"], abs=0.01)
    for name in ("report.html", "report.pdf", "rois.seg.nrrd", "bodies.seg.nrrd"):
        assert (map_run / name).is_file(), name


def test_provenance_names_the_files_and_units(map_run, inputs):
    prov = json.loads((map_run / "results.json").read_text())["provenance"]
    pdff, r2s = prov["series"]["pdff"], prov["series"]["r2s"]
    assert pdff["series_uid"] is None and prov["study_uid"] is None
    assert "PDFF.nii.gz" in pdff["classified_by"] and "not DICOM" in pdff["classified_by"]
    assert any("read PDFF.nii.gz as pdff in fraction" in s for s in pdff["scaling"])
    assert any("fraction -> percent" in s for s in pdff["scaling"])
    assert any("read R2S.nrrd as r2s in per_s" in s for s in r2s["scaling"])
    assert prov["external_labels"] == [str(inputs["agree"]), "totalsegmentator"]


def test_agreeing_external_labelling_leaves_the_labels_certain(map_run):
    doc = json.loads((map_run / "results.json").read_text())
    assert doc["labels_uncertain"] is False, doc["uncertainty_reasons"]
    assert doc["uncertainty_reasons"] == []
    assert min(row["label_confidence"] for row in doc["levels"]) == 1.0


def test_swapped_external_labelling_makes_those_levels_uncertain(inputs, map_run, capsys):
    out = inputs["root"] / "out_swapped"
    argv = [*_map_args(inputs), "--external-labels", str(inputs["swapped"]), "--out", str(out)]
    code, printed, _err = _run(argv, capsys)
    assert code == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["labels_uncertain"] is True
    reasons = doc["uncertainty_reasons"]
    assert "L2: external labelling says L3 (classical count kept)" in reasons
    assert "L3: external labelling says L2 (classical count kept)" in reasons
    assert len(reasons) == 2, reasons  # no other level is disputed
    confidence = {row["level"]: row["label_confidence"] for row in doc["levels"]}
    assert confidence["L2"] <= 0.5 and confidence["L3"] <= 0.5 and confidence["L4"] == 1.0
    # the classical labels (and so the measurements) stay as they were
    pd.testing.assert_series_equal(_mean_by_level(out, "pdff"), _mean_by_level(map_run, "pdff"))
    assert "LEVEL LABELS UNCERTAIN (L2, L3)" in printed
    assert "external labelling says L3" in printed
    assert "external labelling says L3" in (out / "report.html").read_text()


@pytest.mark.parametrize(
    ("make_argv", "expected"),
    [
        (lambda i: ["--map", f"pdf={i['pdff']}:fraction"], ["--map", "unknown map kind 'pdf'",
                                                           "pdff, r2s, water"]),
        (lambda i: ["--map", f"pdff={i['pdff']}"], ["--map", "needs its unit",
                                                   "fraction, percent, permille"]),
        (lambda i: ["--map", f"pdff={i['pdff']}:pct"], ["--map", "unit 'pct'", "percent"]),
        (lambda i: ["--map", f"r2s={i['r2s']}:percent", "--map", f"pdff={i['pdff']}:fraction"],
         ["--map", "unit 'percent'", "per_s, per_ms, t2star_ms, t2star_s"]),
        (lambda i: ["--map", f"pdff={i['root'] / 'nowhere.nii.gz'}:percent"],
         ["nowhere.nii.gz", "file not found (--map pdff)"]),
        (lambda i: ["--map", f"r2s={i['r2s']}:per_s"], ["--map", "a pdff map is required"]),
        (lambda i: [str(i["root"] / "dicom"), "--map", f"pdff={i['pdff']}:fraction"],
         ["--map", "not both"]),
        (lambda i: [], ["give the STUDY", "--map"]),
        (lambda i: ["--map", f"pdff={i['pdff']}:fraction", "--pdff-unit", "percent"],
         ["--pdff-unit", "not used with --map"]),
        (lambda i: ["--map", f"pdff={i['pdff']}:fraction", "--external-labels",
                    str(i["root"] / "none.nii.gz")], ["none.nii.gz", "--external-labels"]),
        (lambda i: ["--map", f"pdff={i['pdff']}:fraction", "--external-labels", str(i["agree"]),
                    "--external-labels-scheme", "vertebrae"],
         ["--external-labels-scheme", "'vertebrae'", "totalsegmentator, totalsegmentator-total"]),
    ],
)  # fmt: skip
def test_bad_inputs_are_one_line_naming_the_option_or_file(inputs, capsys, make_argv, expected):
    out = inputs["root"] / "never"
    code, printed, err = _run([*make_argv(inputs), "--out", str(out)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("refracture-risk analyze: error: ")
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert not out.exists() and printed == ""


def test_external_labels_in_another_numbering_are_refused(inputs, capsys):
    # the vertebrae_mr image (values 1..9) read as the CT 'total' numbering (25 sacrum ... 50 C1)
    out = inputs["root"] / "never_scheme"
    argv = [*_map_args(inputs), "--external-labels", str(inputs["agree"])]
    argv += ["--external-labels-scheme", "totalsegmentator-total", "--out", str(out)]
    code, printed, err = _run(argv, capsys)
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"refracture-risk analyze: error: {inputs['agree']}: ")
    assert "none of its labels is a vertebra" in last and "--external-labels-scheme" in last
    assert not out.exists() and printed == ""


def test_help_lists_every_unit_and_scheme(capsys):
    from RefractureRiskLib.io.study_files import allowed_units

    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for kind in ("pdff", "r2s", "water"):
        for unit in allowed_units(kind):
            assert unit in text, unit
    for scheme in EXTERNAL_SCHEMES:
        assert scheme in text, scheme
