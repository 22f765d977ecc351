"""Concurrent batches: one batch per --out (lock file), each study recorded once in a shared
store (analysis keys; --reanalyze records again), and ``agreement`` opens only a measurement
store, read-only, leaving any other SQLite file byte for byte as it was."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from RefractureRiskLib.batch import BatchConfig, run_batch
from RefractureRiskLib.batch.lock import LOCK_FILE, batch_lock
from RefractureRiskLib.cli import main
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study
from RefractureRiskLib.pipeline import AnalysisOptions
from RefractureRiskLib.store.measurements import Measurement, MeasurementStore, StudySubmission

REPO = Path(__file__).resolve().parents[1]
IDS = ("C000", "C001", "C002")
FAST = AnalysisOptions(reader="pytest", report=False)
TIMEOUT_S = 180


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Three small phantom studies; the clinical table has none of them (measured, no risk)."""
    base = tmp_path_factory.mktemp("conc")
    for i, pid in enumerate(IDS):
        spec = PhantomSpec(seed=30 + i, in_plane_spacing_mm=2.5, slice_thickness_mm=4.0, snr=60)
        write_dicom_study(generate_phantom(spec).study, base / "root" / pid, seed=30 + i,
                          kinds=("pdff", "r2s"))  # fmt: skip
    clinical = base / "clinical.csv"
    pd.DataFrame({"patient_id": ["nobody"], "age_years": [70]}).to_csv(clinical, index=False)
    return base / "root", clinical


def _runs_per_patient(store_path: Path) -> dict[str, int]:
    with MeasurementStore(store_path) as store:
        counts: dict[str, int] = {}
        for run in store.study_runs():
            counts[run["patient_id"]] = counts.get(run["patient_id"], 0) + 1
    return counts


def _cmd(cohort, out: Path, *extra: str) -> list[str]:
    root, clinical = cohort
    return [
        sys.executable, "-m", "RefractureRiskLib.cli", "batch", str(root), "--clinical",
        str(clinical), "--out", str(out), "--workers", "0", "--reader", "pytest", "--no-report",
        *extra,
    ]  # fmt: skip


def test_second_batch_on_the_same_out_is_refused_and_the_first_unaffected(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    first = subprocess.Popen(_cmd(cohort, out), cwd=REPO, stdout=subprocess.PIPE, text=True)
    deadline = time.time() + TIMEOUT_S
    while not (out / LOCK_FILE).exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert (out / LOCK_FILE).exists(), "the first batch never took the lock"
    assert main(_cmd(cohort, out)[3:]) == 2
    err = capsys.readouterr().err
    assert "another batch is running" in err and f"pid {first.pid}" in err
    assert len(err.strip().splitlines()) == 1
    stdout, _ = first.communicate(timeout=TIMEOUT_S)
    assert first.returncode in (0, 1), stdout
    assert "3 done" in stdout and "0 failed" in stdout
    assert sorted(p.name for p in (out / "patients").iterdir()) == sorted(IDS)
    status = pd.read_csv(out / "batch_status.csv")
    assert sorted(status["patient_id"]) == sorted(IDS) and set(status["status"]) == {"done"}
    assert not (out / LOCK_FILE).exists()  # released at the end


def test_a_dead_batchs_lock_is_taken_over_with_a_note(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    owner = {"pid": proc.pid, "host": socket.gethostname(), "started_utc": "2020-01-01"}
    (out / LOCK_FILE).write_text(json.dumps(owner))
    notes: list[str] = []
    with batch_lock(out, notes):
        held = json.loads((out / LOCK_FILE).read_text())
        assert held["pid"] == os.getpid()
        with pytest.raises(InputError, match=f"pid {os.getpid()}"), batch_lock(out):
            pass
    assert notes and f"pid {proc.pid}" in notes[0]
    # a live lock of another host is never taken over
    (out / LOCK_FILE).write_text(json.dumps(owner | {"host": "elsewhere", "pid": 1}))
    with pytest.raises(InputError, match="elsewhere"), batch_lock(out):
        pass


def test_a_batch_refused_before_it_starts_leaves_no_folder(cohort, tmp_path):
    root, _ = cohort
    out = tmp_path / "out"
    with pytest.raises(InputError, match="clinical table not found"):
        run_batch(BatchConfig(root, tmp_path / "missing.csv", out, workers=0), stream=None)
    unrelated = tmp_path / "other.sqlite"
    with sqlite3.connect(unrelated) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    config = BatchConfig(root, cohort[1], out, workers=0, store=str(unrelated), options=FAST)
    with pytest.raises(InputError, match="not a RefractureRisk measurement store"):
        run_batch(config, stream=None)
    assert not out.exists()


@pytest.mark.slow
def test_two_batches_with_one_store_record_each_study_once(cohort, tmp_path):
    store = tmp_path / "shared.sqlite"
    procs = [
        subprocess.Popen(
            _cmd(cohort, tmp_path / f"out{i}", "--store", str(store)),
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0] or all(p.returncode in (0, 1) for p in procs)
    assert all("0 failed" in text for text in outputs), outputs
    assert _runs_per_patient(store) == dict.fromkeys(IDS, 1)
    # a third run finds every study recorded with the same inputs and settings
    summary = run_batch(
        BatchConfig(cohort[0], cohort[1], tmp_path / "out3", workers=0, store=str(store),
                    options=FAST),
        stream=None,
    )  # fmt: skip
    assert summary.count("skipped") == len(IDS) and summary.count("done") == 0
    assert _runs_per_patient(store) == dict.fromkeys(IDS, 1)
    # ... unless asked to analyse them again, or when a setting changes
    again = run_batch(
        BatchConfig(cohort[0], cohort[1], tmp_path / "out3", workers=0, store=str(store),
                    options=FAST, reanalyze=True),
        stream=None,
    )  # fmt: skip
    assert again.count("done") == len(IDS)
    assert _runs_per_patient(store) == dict.fromkeys(IDS, 2)
    other = run_batch(
        BatchConfig(cohort[0], cohort[1], tmp_path / "out3", workers=0, store=str(store),
                    options=AnalysisOptions(reader="pytest", report=False, pdff_unit="percent")),
        stream=None,
    )  # fmt: skip
    assert other.count("done") == len(IDS)


def test_same_analysis_recorded_by_another_batch_meanwhile_is_kept_once(tmp_path):
    store_path = tmp_path / "s.sqlite"
    sub = StudySubmission("P1", "1.2", "r", "auto", (Measurement("L1", "pdff", "%", {"mean": 3}),))
    with MeasurementStore(store_path) as a, MeasurementStore(store_path) as b:
        assert a.record_study(sub, analysis_key="k") is not None
        assert b.record_study(sub, analysis_key="k") is None
        assert b.record_study(sub, analysis_key="k", reanalyze=True) is not None
        assert b.recorded_analyses(["k", "x"]) == {"k"}
    assert _runs_per_patient(store_path) == {"P1": 2}


def test_agreement_refuses_an_unrelated_sqlite_file_and_leaves_it_untouched(tmp_path, capsys):
    other = tmp_path / "inventory.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE items (name TEXT)")
        conn.execute("INSERT INTO items VALUES ('bolts')")
    conn.close()
    os.utime(other, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    before, mtime = other.read_bytes(), other.stat().st_mtime_ns
    assert main(["agreement", "--store", str(other)]) == 2
    err = capsys.readouterr().err
    assert "inventory.sqlite" in err and "not a RefractureRisk measurement store" in err
    assert other.read_bytes() == before and other.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.sqlite"]


def _filled_store(path: Path) -> None:
    with MeasurementStore(path) as store:
        for reader, shift in (("a", 0.0), ("b", 1.0)):
            for pid, value in (("P1", 30.0), ("P2", 50.0), ("P3", 42.0)):
                m = Measurement("L1", "pdff", "%", {"mean": value + shift})
                store.record_study(StudySubmission(pid, f"1.{pid}", reader, "auto", (m,)))


def test_agreement_reads_a_store_without_writing_to_it(tmp_path, capsys):
    path = tmp_path / "m.sqlite"
    _filled_store(path)
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    assert main(["agreement", "--store", str(path)]) == 0
    assert "L1" in capsys.readouterr().out
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    with (
        MeasurementStore(path, read_only=True) as store,
        pytest.raises(Exception, match="readonly"),
        store.engine.begin() as conn,
    ):
        conn.exec_driver_sql("CREATE TABLE intruder (x)")


def test_a_store_of_an_older_version_is_still_recognised(tmp_path, capsys):
    path = tmp_path / "old.sqlite"
    _filled_store(path)
    with sqlite3.connect(path) as conn:  # as written before the marker and analysis keys
        conn.execute("DELETE FROM store_info WHERE key = 'application'")
        conn.execute("DROP TABLE analysis_keys")
    conn.close()
    assert main(["agreement", "--store", str(path)]) == 0
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "analysis_keys" not in tables  # agreement added nothing
    with MeasurementStore(path) as store:  # a batch's read-write open upgrades it
        assert store.recorded_analyses(["k"]) == set()
