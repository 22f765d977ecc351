"""Measurement store: append-only corrections, one transaction per study, concurrent writers,
SIGKILL safety, and the same behaviour on a real PostgreSQL server."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from RefractureRiskLib.core.hashing import file_sha256
from RefractureRiskLib.store.measurements import (
    Measurement,
    MeasurementStore,
    StudySubmission,
)

LEVELS = ("L1", "L2", "L3", "L4")


def submission(patient: str, reader: str = "reader_a", offset: float = 0.0, session: int = 1):
    ms = tuple(
        Measurement(
            level=lv,
            map=mp_,
            unit="pct" if mp_ == "pdff" else "per_s",
            statistics={"n_voxels": 400, "mean": 50.0 + i + offset, "sd": 3.0, "median": 50.0},
            series_uid=f"1.2.3.{i}",
        )
        for i, lv in enumerate(LEVELS)
        for mp_ in ("pdff", "r2s")
    )
    return StudySubmission(
        patient_id=patient,
        study_uid=f"1.2.840.99.{patient}",
        reader=reader,
        roi_method="automatic",
        measurements=ms,
        session=session,
        provenance={"software": "test"},
    )


def test_record_and_supersede_keeps_history(tmp_path):
    store = MeasurementStore(tmp_path)
    assert Path(store.url.removeprefix("sqlite:///")).name == "measurements.sqlite"
    store.record_study(submission("P001"))
    store.record_study(submission("P001", offset=1.5))  # a correction
    every = store.all_measurements()
    current = store.current_measurements()
    assert len(every) == 16 and len(current) == 8
    assert all(r["supersedes_id"] is not None for r in current)
    assert sorted(r["mean"] for r in current if r["map"] == "pdff") == [51.5, 52.5, 53.5, 54.5]
    assert store.completed_patients() == {"P001"}
    assert len(store.study_runs()) == 2


def test_rows_carry_their_own_runs_provenance(tmp_path):
    store = MeasurementStore(tmp_path)
    for pid in ("P010", "P011"):
        sub = submission(pid)
        store.record_study(StudySubmission(**{**sub.__dict__, "provenance": {"patient": pid}}))
    rows = store.current_measurements(with_run_provenance=True)
    assert len(rows) == 16
    assert all(f'"patient": "{r["patient_id"]}"' in r["run_provenance_json"] for r in rows)


def _write_studies(location: str, n: int) -> None:
    store = MeasurementStore(location)
    for i in range(n):
        store.record_study(submission(f"W{i:03d}"))


def test_reading_while_another_process_writes_never_misses_a_run(tmp_path):
    """The cohort table reads rows and run provenance while another batch writes (CI race)."""
    location = str(tmp_path / "s.sqlite")
    MeasurementStore(location).close()
    writer = mp.get_context("spawn").Process(target=_write_studies, args=(location, 40))
    writer.start()
    store = MeasurementStore(location)
    reads = 0
    while writer.is_alive() or reads == 0:
        rows = store.current_measurements(with_run_provenance=True)
        assert all(r["run_provenance_json"] for r in rows)
        assert len(rows) % 8 == 0  # a study is visible whole or not at all
        reads += 1
    writer.join(timeout=120)
    assert writer.exitcode == 0
    assert len(store.current_measurements(with_run_provenance=True)) == 40 * 8


def test_labelmap_hash_recorded(tmp_path):
    label = tmp_path / "roi.seg.nrrd"
    label.write_bytes(b"label map bytes")
    store = MeasurementStore(tmp_path / "s.sqlite")
    sub = submission("P002")
    sub = StudySubmission(**{**sub.__dict__, "labelmap_path": str(label)})
    store.record_study(sub)
    rows = store.current_measurements()
    assert {r["labelmap_sha256"] for r in rows} == {file_sha256(label)}


def test_failed_study_leaves_nothing(tmp_path):
    store = MeasurementStore(tmp_path)
    bad = submission("P003")
    broken = (*bad.measurements, Measurement(level=None, map="pdff", unit="pct", statistics={}))  # type: ignore[arg-type]
    with pytest.raises(sa.exc.IntegrityError):
        store.record_study(StudySubmission(**{**bad.__dict__, "measurements": broken}))
    assert store.all_measurements() == [] and store.study_runs() == []
    store.record_failure("P003", "no PDFF series", source="/data/P003")
    assert store.failed_patients() == {"P003": "no PDFF series"}
    store.record_study(submission("P003"))
    assert store.failed_patients() == {}


def _writer(url: str, prefix: str, n: int) -> None:
    store = MeasurementStore(url)
    for i in range(n):
        store.record_study(submission(f"{prefix}{i:03d}"))


def test_two_processes_lose_nothing(tmp_path):
    url = str(tmp_path / "shared.sqlite")
    MeasurementStore(url).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, p, 25)) for p in ("A", "B")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = MeasurementStore(url)
    assert len(store.study_runs()) == 50
    assert len(store.current_measurements()) == 50 * 8


KILL_SCRIPT = """
import sys
from Testing.test_store import submission
from RefractureRiskLib.store.measurements import MeasurementStore
store = MeasurementStore(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    store.record_study(submission(f"K{i:05d}"))
    i += 1
"""


def test_sigkill_leaves_only_whole_studies(tmp_path):
    url = str(tmp_path / "killed.sqlite")
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, url],
        cwd=repo,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = MeasurementStore(url)
    runs = store.study_runs()
    rows = store.all_measurements()
    assert len(runs) > 0
    per_run: dict[str, int] = {}
    for r in rows:
        per_run[r["run_id"]] = per_run.get(r["run_id"], 0) + 1
    assert set(per_run) == {r["run_id"] for r in runs}
    assert all(per_run[r["run_id"]] == r["n_measurements"] == 8 for r in runs)


def test_postgresql_shared_store():
    from Testing.pg_server import PostgresUnavailableError, postgres_server

    try:
        server = postgres_server()
        url = server.__enter__()
    except PostgresUnavailableError as err:
        pytest.skip(str(err))
    try:
        store = MeasurementStore(url)
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_writer, args=(url, p, 10)) for p in ("A", "B")]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
        store.record_study(submission("A000", offset=2.0))  # correction on the shared store
        assert len(store.study_runs()) == 21
        assert len(store.all_measurements()) == 21 * 8
        current = store.current_measurements(maps=["pdff"])
        assert len(current) == 20 * 4
        store.close()
    finally:
        server.__exit__(None, None, None)


def test_a_store_being_created_by_another_writer_is_not_refused(tmp_path):
    """Another batch created the store's tables but not yet its marker row: a second writer
    must join it, not call it 'not a measurement store' (seen under load in CI)."""
    import sqlite3

    from RefractureRiskLib.core.errors import InputError
    from RefractureRiskLib.store.measurements import MeasurementStore

    path = tmp_path / "measurements.sqlite"
    MeasurementStore(path).close()
    with sqlite3.connect(path) as conn:  # back to the moment before the marker rows
        conn.execute("DELETE FROM store_info")
    store = MeasurementStore(path)
    store.close()
    with sqlite3.connect(path) as conn:
        keys = {k for (k,) in conn.execute("SELECT key FROM store_info")}
    assert {"application", "schema_version"} <= keys
    # a file with a foreign table is still refused
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE patients (id INTEGER)")
    with pytest.raises(InputError, match="not a"):
        MeasurementStore(other)
