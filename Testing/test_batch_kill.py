"""kill -9 of a batch re-run (``--reanalyze``) at several moments: afterwards every patient
folder is a complete analysis (the old or the new one, never missing, never half-written), the
cohort table and the status table are complete and name every patient, the store holds whole
studies only, and a plain re-run finishes with every study recorded (issue 11)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from RefractureRiskLib.core.atomic import recover
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study
from RefractureRiskLib.store.measurements import MeasurementStore

REPO = Path(__file__).resolve().parents[1]
IDS = ("K000", "K001", "K002")
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Three small phantom studies and a finished batch of them (the "old" result)."""
    base = tmp_path_factory.mktemp("kill")
    for i, pid in enumerate(IDS):
        spec = PhantomSpec(seed=50 + i, in_plane_spacing_mm=2.5, slice_thickness_mm=4.0, snr=60)
        write_dicom_study(
            generate_phantom(spec).study, base / "root" / pid, seed=50 + i, kinds=("pdff", "r2s")
        )
    clinical = base / "clinical.csv"
    # none of them in the clinical table: measured and recorded, no risk (no model inputs)
    pd.DataFrame({"patient_id": ["nobody"], "age_years": [70]}).to_csv(clinical, index=False)
    out = base / "out"
    t0 = time.perf_counter()
    proc = subprocess.run(_cmd(base, out), cwd=REPO, capture_output=True, timeout=TIMEOUT_S)
    assert proc.returncode in (0, 1), proc.stderr[-1000:]  # 1: no risk (the model's inputs)
    seconds = time.perf_counter() - t0
    return base, out, _patient_files(out), seconds


def _cmd(base: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "RefractureRiskLib.cli", "batch", str(base / "root"),
        "--clinical", str(base / "clinical.csv"), "--out", str(out), "--workers", "1",
        "--reader", "pytest", "--no-report", *extra,
    ]  # fmt: skip


def _patient_files(out: Path, hidden: bool = False) -> dict[str, set[str]]:
    """Patient folder -> its files; ``hidden``: also the dot-named staging folders (a killed
    run's, which the next batch removes; no reader takes them for a patient's result)."""
    folder = out / "patients"
    return {
        p.name: {f.name for f in p.iterdir()}
        for p in folder.iterdir()
        if p.is_dir() and (hidden or not p.name.startswith("."))
    }


def _check_complete(out: Path, reference: dict[str, set[str]], hidden: bool = False) -> None:
    """What a reader finds after the kill (a reader first finishes a committed set)."""
    recover(out)
    files = _patient_files(out, hidden)
    assert files == reference, "a patient folder is missing, half-written or a staging left"
    for pid in IDS:
        results = json.loads((out / "patients" / pid / "results.json").read_text())
        assert results, pid
    cohort = pd.read_csv(out / "cohort.csv", dtype=str)
    status = pd.read_csv(out / "batch_status.csv", dtype=str)
    assert list(cohort["patient_id"]) == ["nobody"]  # every clinical row, complete
    assert sorted(status["patient_id"]) == sorted(IDS)
    with MeasurementStore(out / "measurements.sqlite", read_only=True) as store:
        per_run: dict[str, int] = {}
        for row in store.all_measurements():
            per_run[row["run_id"]] = per_run.get(row["run_id"], 0) + 1
        runs = store.study_runs()
        assert per_run == {r["run_id"]: r["n_measurements"] for r in runs}  # whole studies


def _kill_after(cmd: list[str], seconds: float) -> int:
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(seconds)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_kill_9_during_a_batch_rerun_leaves_complete_old_or_new_results(finished, tmp_path):
    base, out, reference, seconds = finished
    assert set(reference) == set(IDS) and all("results.json" in f for f in reference.values())
    killed = 0
    for fraction in (0.35, 0.6, 0.8, 0.95):
        code = _kill_after(_cmd(base, out, "--reanalyze"), seconds * fraction)
        killed += code == -signal.SIGKILL
        _check_complete(out, reference)
    assert killed >= 2, "the re-runs finished before they could be killed"
    proc = subprocess.run(_cmd(base, out), cwd=REPO, capture_output=True, timeout=TIMEOUT_S)
    assert proc.returncode in (0, 1), proc.stderr[-1000:]  # 1: no risk (the model's inputs)
    assert b"Traceback" not in proc.stderr
    _check_complete(out, reference, hidden=True)  # and the killed runs' staging is gone
    with MeasurementStore(out / "measurements.sqlite", read_only=True) as store:
        recorded = {r["patient_id"] for r in store.study_runs()}
    assert recorded == set(IDS)
