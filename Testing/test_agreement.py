"""Reader agreement: ICC(A,1) against published values and end to end from the store."""

from __future__ import annotations

import numpy as np
import pytest

from RefractureRiskLib.cli import main
from RefractureRiskLib.stats.agreement import bland_altman, icc_absolute_agreement
from RefractureRiskLib.store.agreement import inter_reader_agreement, intra_reader_agreement
from RefractureRiskLib.store.measurements import Measurement, MeasurementStore, StudySubmission

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges. Published: ICC(2,1) = 0.29,
# ICC(3,1) = 0.71; R psych::ICC on the same table gives the 95% CI of ICC(2,1) as 0.019-0.76.
SHROUT_FLEISS = [
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
]


def test_icc_matches_shrout_fleiss():
    res = icc_absolute_agreement(SHROUT_FLEISS)
    assert res.icc_a1 == pytest.approx(0.29, abs=0.005)
    assert res.icc_c1 == pytest.approx(0.71, abs=0.005)
    assert res.ci95_low == pytest.approx(0.019, abs=0.001)
    assert res.ci95_high == pytest.approx(0.76, abs=0.005)
    assert (res.n_subjects, res.n_raters) == (6, 4)


def test_icc_edge_cases():
    perfect = np.repeat(np.arange(10.0)[:, None], 3, axis=1)
    assert icc_absolute_agreement(perfect).icc_a1 == pytest.approx(1.0)
    shifted = perfect + np.array([0.0, 5.0, 10.0])  # consistent but not in absolute agreement
    res = icc_absolute_agreement(shifted)
    assert res.icc_c1 == pytest.approx(1.0) and res.icc_a1 < 0.5
    with pytest.raises(ValueError, match="missing"):
        icc_absolute_agreement([[1, np.nan], [2, 3]])
    with pytest.raises(ValueError, match="at least 2"):
        icc_absolute_agreement([[1, 2]])


def test_bland_altman():
    a = np.array([50.0, 52.0, 61.0, 47.0, 55.0])
    ba = bland_altman(a, a - 1.0 + np.array([0.2, -0.2, 0.1, -0.1, 0.0]))
    assert ba.bias == pytest.approx(1.0)
    assert ba.loa_low < 1.0 < ba.loa_high
    assert ba.loa_high - ba.loa_low == pytest.approx(2 * 1.96 * ba.sd_diff)


def _fill_store(path, rng):
    store = MeasurementStore(path)
    truth = rng.uniform(35, 70, size=(30, 4))
    readers = {"alice": 0.0, "bob": 1.0}  # bob reads 1 point higher
    for p in range(30):
        for reader, bias in readers.items():
            for session in (1, 2) if reader == "alice" else (1,):
                ms = tuple(
                    Measurement(lv, "pdff", "pct", {"mean": truth[p, i] + bias + rng.normal(0, 1)})
                    for i, lv in enumerate(("L1", "L2", "L3", "L4"))
                )
                store.record_study(
                    StudySubmission(f"P{p:03d}", f"1.2.{p}", reader, "manual_points", ms, session)
                )
    return store


def test_agreement_from_store_and_cli(tmp_path, capsys):
    store = _fill_store(tmp_path, np.random.default_rng(0))
    rows = store.current_measurements()
    inter = inter_reader_agreement(rows, "pdff")
    overall = inter.set_index("level").loc["all"]
    assert overall["n_subjects"] == 120 and 0.9 < overall["icc_a1"] < 1.0
    assert overall["ba_bias_pct_alice_minus_bob"] == pytest.approx(-1.0, abs=0.4)
    assert list(inter["level"]) == ["L1", "L2", "L3", "L4", "all"]
    intra = intra_reader_agreement(rows, "alice", "pdff")
    assert intra.set_index("level").loc["all", "icc_a1"] > 0.95
    with pytest.raises(ValueError, match="one session"):
        intra_reader_agreement(rows, "bob", "pdff")
    out = tmp_path / "agreement.csv"
    assert main(["agreement", "--store", str(tmp_path), "--out", str(out)]) == 0
    assert out.exists() and "icc_a1" in capsys.readouterr().out
    assert main(["agreement", "--store", str(tmp_path / "nope.sqlite")]) == 2
