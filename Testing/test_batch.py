"""Batch cohort processing: per-patient problems never stop the batch, resuming, SIGKILL safety,
concurrent batches on one store, the cohort table against the schema, Dask and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from RefractureRiskLib.batch import (
    BatchConfig,
    BatchTask,
    TaskResult,
    cohort_table,
    discover_studies,
    imaging_columns,
    run_batch,
)
from RefractureRiskLib.batch.workers import _run_processes
from RefractureRiskLib.cli import main as cli_main
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.dev.schema import read_cohort, validate_cohort
from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study
from RefractureRiskLib.pipeline import AnalysisOptions
from RefractureRiskLib.store.measurements import Measurement, MeasurementStore, StudySubmission

REPO = Path(__file__).resolve().parents[1]
GOOD = ("P000", "P001", "P002")
CORRUPT, NO_PDFF, NO_CLINICAL = "P003", "P004", "P900"
CLINICAL_ONLY = "P005"  # a clinical row without a study folder
FAST = AnalysisOptions(reader="pytest", report=False)


def _small_phantom(seed: int):
    # 2.5 mm pixels, 4 mm slices: about 134 x 134 x 24, enough for the automatic ROIs.
    spec = PhantomSpec(seed=seed, in_plane_spacing_mm=2.5, slice_thickness_mm=4.0, snr=60.0)
    return generate_phantom(spec)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A batch root: three good studies, a corrupt one, one without PDFF, one patient missing
    from the clinical table; the clinical table also has a row without a study."""
    base = tmp_path_factory.mktemp("batch")
    root = base / "root"
    truth = {}
    for i, pid in enumerate(GOOD):
        ph = _small_phantom(seed=10 + i)
        write_dicom_study(ph.study, root / pid, seed=10 + i, kinds=("pdff", "r2s"))
        truth[pid] = ph.truth.level_table().set_index("level")
    (root / CORRUPT).mkdir()
    for k in range(3):  # DICOM preamble and prefix, then garbage
        (root / CORRUPT / f"I{k:04d}.dcm").write_bytes(b"\0" * 128 + b"DICM" + os.urandom(300))
    ph = _small_phantom(seed=20)
    write_dicom_study(ph.study, root / NO_PDFF, seed=20, kinds=("r2s", "water"))
    shutil.copytree(root / GOOD[0], root / NO_CLINICAL)

    table = generate_cohort(n=6, seed=4, lost_to_follow_up_frac=0, death_1y_frac=0).data
    table["patient_id"] = [*GOOD, CORRUPT, NO_PDFF, CLINICAL_ONLY]
    table["index_levels"] = ["L1", "T12;L1", "L2", "L1", "L1", "L3"]
    table["n_index_levels"] = [1, 2, 1, 1, 1, 1]
    table["tl_junction"] = [1, 1, 1, 1, 1, 0]  # as the index levels say (T11-L2): not drawn apart
    imaging = [
        c
        for c in table.columns
        if c.startswith(("pdff", "r2s", "excl", "mri_", "reader", "body_vol", "paraspinal"))
    ]
    clinical = base / "clinical.csv"
    table.drop(columns=imaging).to_csv(clinical, index=False)
    return {"root": root, "clinical": clinical, "truth": truth, "base": base}


@pytest.fixture(scope="module")
def first_run(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("out1")
    config = BatchConfig(cohort["root"], cohort["clinical"], out, workers=2, options=FAST)
    return run_batch(config, stream=None), out


def _manifest(path: Path, root: Path, ids) -> Path:
    pd.DataFrame({"patient_id": list(ids), "study_path": [str(root / p) for p in ids]}).to_csv(
        path, index=False
    )
    return path


def _runs_per_patient(store: MeasurementStore) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in store.study_runs():
        counts[run["patient_id"]] = counts.get(run["patient_id"], 0) + 1
    return counts


# ---------------------------------------------------------------------------------------------


def test_problems_reported_per_patient_rest_completes(first_run, cohort):
    summary, out = first_run
    status = {o.patient_id: o for o in summary.outcomes}
    assert set(status) == {*GOOD, CORRUPT, NO_PDFF, NO_CLINICAL}
    for pid in (*GOOD, NO_CLINICAL):
        assert status[pid].status == "done", status[pid]
    assert status[CORRUPT].status == "failed" and status[CORRUPT].reason
    assert status[NO_PDFF].status == "failed"
    assert "pdff" in status[NO_PDFF].reason.lower() or "fat fraction" in status[NO_PDFF].reason
    assert "clinical table" in status[NO_CLINICAL].note
    assert not summary.ok

    with MeasurementStore(out / "measurements.sqlite") as store:
        assert store.completed_patients("pytest") == {*GOOD, NO_CLINICAL}
        assert set(store.failed_patients()) == {CORRUPT, NO_PDFF}
        assert store.failed_patients()[NO_PDFF] == status[NO_PDFF].reason
        assert _runs_per_patient(store) == dict.fromkeys((*GOOD, NO_CLINICAL), 1)

    # Folders: exactly the measured patients, nothing half-written.
    assert sorted(p.name for p in (out / "patients").iterdir()) == sorted((*GOOD, NO_CLINICAL))
    for pid in GOOD:
        doc = json.loads((out / "patients" / pid / "results.json").read_text())
        assert doc["risk"] is not None and doc["provenance"]["reader"] == "pytest"
    doc = json.loads((out / "patients" / NO_CLINICAL / "results.json").read_text())
    assert doc["risk"] is None

    text = summary.format_text()
    assert f"{CORRUPT}: " in text and f"{NO_PDFF}: " in text and f"{NO_CLINICAL}: " in text
    assert "4 done" in text and "2 failed" in text


def test_cohort_table_passes_schema_and_matches_patient_files(first_run, cohort):
    summary, out = first_run
    assert summary.cohort is not None and summary.cohort.problems == ()
    table = pd.read_csv(out / "cohort.csv", dtype={"patient_id": str})
    assert validate_cohort(table) == []
    read_cohort(out / "cohort.csv")  # what `train` reads
    clinical = pd.read_csv(cohort["clinical"], dtype={"patient_id": str})
    assert list(table["patient_id"]) == list(clinical["patient_id"])  # every clinical row
    assert NO_CLINICAL not in set(table["patient_id"])
    # clinical cells unchanged
    pd.testing.assert_series_equal(table["age_years"], clinical["age_years"])
    rows = table.set_index("patient_id")
    for pid in GOOD:
        stats = pd.read_csv(out / "patients" / pid / "statistics.csv")
        for lv in ("L2", "L3", "L4"):
            pdff = stats[(stats["level"] == lv) & (stats["map"] == "pdff")]["mean"].item()
            r2s = stats[(stats["level"] == lv) & (stats["map"] == "r2s")]["mean"].item()
            assert rows.loc[pid, f"pdff_pct_{lv}"] == pytest.approx(pdff, abs=1e-3)
            assert rows.loc[pid, f"r2s_per_s_{lv}"] == pytest.approx(r2s, abs=1e-3)
            # and close to the phantom's true marrow value
            true = cohort["truth"][pid]
            assert abs(rows.loc[pid, f"pdff_pct_{lv}"] - true.loc[lv, "marrow_pdff_pct"]) < 3.0
        assert rows.loc[pid, "mri_field_T"] == 1.5 and rows.loc[pid, "mri_vendor"] == "GE"
        assert rows.loc[pid, "reader_id"] == "pytest"
        # the treated levels from the clinical table are excluded with code "index"
        for lv in rows.loc[pid, "index_levels"].split(";"):
            assert "index" in str(rows.loc[pid, f"excl_{lv}"]).split(";")
    # adjacent summary = mean of the eligible neighbours of the index level(s), from the table
    p = rows.loc["P001"]  # index T12;L1 -> neighbours T11, L2
    eligible = [lv for lv in ("T11", "L2") if pd.isna(p[f"excl_{lv}"])]
    if eligible:
        expected = np.mean([p[f"pdff_pct_{lv}"] for lv in eligible])
        assert p["pdff_adjacent"] == pytest.approx(expected, abs=2e-3)
    # failed and study-less patients have empty imaging columns
    for pid in (CORRUPT, NO_PDFF, CLINICAL_ONLY):
        assert rows.loc[[pid], ["pdff_pct_L1", "mri_field_T", "pdff_global_L1L4"]].isna().all(None)
    assert any(CLINICAL_ONLY in n for n in summary.notes)


def test_cohort_reports_schema_problems_and_follows_corrections(first_run, cohort):
    _summary, out = first_run
    clinical = pd.read_csv(cohort["clinical"], dtype=str)
    with MeasurementStore(out / "measurements.sqlite") as store:
        build = cohort_table(store, clinical.drop(columns=["time_days", "event"]), "pytest")
        missing = {(p.column, p.rule) for p in build.problems}
        assert ("time_days", "required column is missing") in missing
        assert ("event", "required column is missing") in missing

        before = cohort_table(store, clinical, "pytest").table.set_index("patient_id")
        old = before.loc["P000", "pdff_pct_L3"]
        run = next(r for r in store.study_runs() if r["patient_id"] == "P000")
        # a reader's correction of L3 is a new row that supersedes the old one
        store.record_study(
            StudySubmission(
                "P000",
                run["study_uid"],
                "pytest",
                "automatic",
                (Measurement("L3", "pdff", "pct", {"mean": old + 7.0, "n_voxels": 50}),),
            )
        )
        after = cohort_table(store, clinical, "pytest").table.set_index("patient_id")
    assert after.loc["P000", "pdff_pct_L3"] == pytest.approx(old + 7.0)
    assert after.loc["P000", "pdff_pct_L2"] == before.loc["P000", "pdff_pct_L2"]


@pytest.mark.parametrize(
    ("field_t", "vendor", "nominal", "category"),
    [
        (2.89362, "SIEMENS Healthineers", 3.0, "Siemens"),
        (1.494, "CANON_MEC", 1.5, "Canon"),
        (1.5, "GE", 1.5, "GE"),
        (7.0, "Bruker", 7.0, "other"),
    ],
)
def test_field_strength_and_vendor_as_the_schema_wants(
    first_run, field_t, vendor, nominal, category
):
    _summary, out = first_run
    with MeasurementStore(out / "measurements.sqlite") as store:
        rows = [r for r in store.current_measurements() if r["patient_id"] == "P000"]
    cells = imaging_columns(rows, {"field_strength_t": field_t, "vendor": vendor}, "pytest")
    assert cells["mri_field_T"] == nominal and cells["mri_vendor"] == category
    row = pd.DataFrame([{"patient_id": "P000", **cells}])
    field_problems = [p for p in validate_cohort(row) if p.column == "mri_field_T"]
    assert bool(field_problems) == (nominal not in (1.5, 3.0))


def test_rerun_skips_finished_and_retries_failed(cohort, tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(cohort["root"], root)
    out = tmp_path / "out"
    args = ["batch", str(root), "--clinical", str(cohort["clinical"]), "--out", str(out)]
    args += ["--workers", "0", "--reader", "pytest", "--no-report"]
    assert cli_main(args) == 1  # finished, with failures reported
    printed = capsys.readouterr()
    assert "[6/6]" in printed.err and "ETA" in printed.err  # plain progress lines, no TTY
    assert f"{CORRUPT}: " in printed.out and "2 failed" in printed.out
    shutil.rmtree(root / NO_PDFF)
    shutil.copytree(root / GOOD[1], root / NO_PDFF)  # the missing series was found
    with MeasurementStore(out / "measurements.sqlite") as store:
        n_failures_before = len(store.failed_patients())
    summary = run_batch(
        BatchConfig(root, cohort["clinical"], out, workers=0, options=FAST, retry_failed_only=True),
        stream=None,
    )
    status = {o.patient_id: o.status for o in summary.outcomes}
    assert status == {
        **dict.fromkeys((*GOOD, NO_CLINICAL), "skipped"),
        CORRUPT: "failed",
        NO_PDFF: "done",
    }
    with MeasurementStore(out / "measurements.sqlite") as store:
        assert set(store.failed_patients()) == {CORRUPT}
        assert n_failures_before == 2
        assert _runs_per_patient(store) == dict.fromkeys((*GOOD, NO_CLINICAL, NO_PDFF), 1)
    # another reader on the same store measures everything again
    other = run_batch(
        BatchConfig(
            root,
            cohort["clinical"],
            out,
            workers=0,
            options=AnalysisOptions(reader="second", report=False),
        ),
        stream=None,
    )
    assert other.count("done") == 5 and other.count("skipped") == 0


KILL_TIMEOUT_S = 120


def _live_group_members(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that are still running (zombies excluded)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


@pytest.mark.slow
def test_sigkill_halfway_then_rerun_has_every_study_once(cohort, tmp_path):
    ids = [*GOOD, NO_CLINICAL]
    manifest = _manifest(tmp_path / "manifest.csv", cohort["root"], ids)
    out = tmp_path / "out"
    store_path = tmp_path / "store.sqlite"
    cmd = [sys.executable, "-m", "RefractureRiskLib.cli", "batch", str(manifest)]
    cmd += ["--clinical", str(cohort["clinical"]), "--out", str(out), "--store", str(store_path)]
    cmd += ["--workers", "1", "--reader", "pytest", "--no-report"]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + KILL_TIMEOUT_S
        n_at_kill = 0
        while time.time() < deadline and proc.poll() is None:
            if store_path.exists():
                with MeasurementStore(store_path) as store:
                    n_at_kill = len(store.study_runs())
                if n_at_kill >= 1:
                    proc.send_signal(signal.SIGKILL)
                    break
            time.sleep(0.05)
        proc.wait(30)
        deadline = time.time() + 10
        while _live_group_members(proc.pid) and time.time() < deadline:
            time.sleep(0.1)
        orphans = _live_group_members(proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL, "the batch finished before it could be killed"
    assert 1 <= n_at_kill < len(ids)
    assert orphans == [], "worker processes outlived the killed batch"

    summary = run_batch(
        BatchConfig(
            manifest, cohort["clinical"], out, workers=0, store=str(store_path), options=FAST
        ),
        stream=None,
    )
    assert summary.count("skipped") >= 1 and summary.count("failed") == 0
    with MeasurementStore(store_path) as store:
        assert _runs_per_patient(store) == dict.fromkeys(ids, 1)  # none lost, none twice
        runs = {r["run_id"]: r for r in store.study_runs()}
        per_run: dict[str, int] = {}
        for row in store.all_measurements():
            per_run[row["run_id"]] = per_run.get(row["run_id"], 0) + 1
        assert per_run == {rid: r["n_measurements"] for rid, r in runs.items()}
    assert sorted(p.name for p in (out / "patients").iterdir()) == sorted(ids)


@pytest.mark.slow
def test_two_batches_on_one_store_lose_nothing(cohort, tmp_path):
    store_path = tmp_path / "shared.sqlite"
    halves = ([GOOD[0], GOOD[1]], [GOOD[2], NO_CLINICAL])
    procs = []
    for i, ids in enumerate(halves):
        manifest = _manifest(tmp_path / f"m{i}.csv", cohort["root"], ids)
        cmd = [sys.executable, "-m", "RefractureRiskLib.cli", "batch", str(manifest)]
        cmd += ["--clinical", str(cohort["clinical"]), "--out", str(tmp_path / f"out{i}")]
        cmd += ["--store", str(store_path), "--workers", "0", "--reader", "pytest"]
        cmd += ["--no-report"]
        procs.append(subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True))
    for proc in procs:
        stdout, _ = proc.communicate(timeout=KILL_TIMEOUT_S)
        assert proc.returncode in (0, 1), stdout
        assert "0 failed" in stdout
    with MeasurementStore(store_path) as store:
        assert _runs_per_patient(store) == dict.fromkeys([*halves[0], *halves[1]], 1)
        current = store.current_measurements(readers=["pytest"])
        keys = [(r["patient_id"], r["level"], r["map"]) for r in current]
        assert len(keys) == len(set(keys))
        assert {k[0] for k in keys} == {*halves[0], *halves[1]}


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_measurements(first_run, cohort, tmp_path):
    pytest.importorskip("dask.distributed")
    manifest = _manifest(tmp_path / "m.csv", cohort["root"], [GOOD[0], CORRUPT])
    config = BatchConfig(
        manifest, cohort["clinical"], tmp_path / "out", workers=1, dask_local=True, options=FAST
    )
    try:
        summary = run_batch(config, stream=None)
    except (OSError, TimeoutError) as err:
        pytest.skip(f"a local Dask cluster did not start here: {err}")
    status = {o.patient_id: o.status for o in summary.outcomes}
    assert status == {GOOD[0]: "done", CORRUPT: "failed"}
    assert summary.outcomes[0].worker != f"{os.uname().nodename}:{os.getpid()}"
    dask_rows = summary.cohort.table.set_index("patient_id")
    pool_rows = first_run[0].cohort.table.set_index("patient_id")
    cols = [c for c in dask_rows.columns if c.startswith(("pdff_pct", "r2s_per_s"))]
    pd.testing.assert_series_equal(
        dask_rows.loc[GOOD[0], cols].astype(float), pool_rows.loc[GOOD[0], cols].astype(float)
    )


@pytest.mark.slow
def test_dask_scheduler_address(cohort, tmp_path, capsys):
    distributed = pytest.importorskip("dask.distributed")
    try:
        cluster = distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, dashboard_address=None
        )
    except (OSError, TimeoutError) as err:
        pytest.skip(f"a local Dask cluster did not start here: {err}")
    manifest = _manifest(tmp_path / "m.csv", cohort["root"], [GOOD[1]])
    out = tmp_path / "out"
    with cluster:
        args = ["batch", str(manifest), "--clinical", str(cohort["clinical"]), "--out", str(out)]
        args += ["--scheduler", cluster.scheduler_address, "--reader", "pytest", "--no-report"]
        code = cli_main(args)
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "1 done" in printed and "dask tcp://" in printed
    with MeasurementStore(out / "measurements.sqlite") as store:
        assert store.completed_patients("pytest") == {GOOD[1]}


@pytest.mark.slow
def test_postgresql_store_batch(cohort, tmp_path):
    from Testing.pg_server import PostgresUnavailableError, postgres_server

    try:
        server = postgres_server()
        url = server.__enter__()
    except PostgresUnavailableError as err:
        pytest.skip(str(err))
    try:
        manifest = _manifest(tmp_path / "m.csv", cohort["root"], [GOOD[0], GOOD[2], NO_PDFF])
        config = BatchConfig(
            manifest, cohort["clinical"], tmp_path / "out", workers=0, store=url, options=FAST
        )
        summary = run_batch(config, stream=None)
        assert {o.patient_id: o.status for o in summary.outcomes} == {
            GOOD[0]: "done",
            GOOD[2]: "done",
            NO_PDFF: "failed",
        }
        again = run_batch(config, stream=None)
        assert again.count("skipped") == 2 and again.count("failed") == 1
        with MeasurementStore(url) as store:
            assert _runs_per_patient(store) == {GOOD[0]: 1, GOOD[2]: 1}
            assert set(store.failed_patients()) == {NO_PDFF}
        table = again.cohort.table.set_index("patient_id")
        assert table.loc[GOOD[0], "pdff_pct_L3"] > 0 and again.cohort.problems == ()
        assert not (tmp_path / "out" / "measurements.sqlite").exists()
    finally:
        server.__exit__(None, None, None)


# --- a worker that dies -------------------------------------------------------------------


def crashing_work(task: BatchTask) -> TaskResult:
    """Kills its own process for the patient named CRASH (as a segfault or the OOM killer would)."""
    if task.patient_id == "CRASH":
        os._exit(1)
    time.sleep(0.05)
    return TaskResult(task.patient_id, True, worker=str(os.getpid()))


@pytest.mark.slow
def test_a_dying_worker_fails_only_its_study(tmp_path):
    ids = ["A", "CRASH", "B", "C"]
    tasks = [BatchTask(p, str(tmp_path), None, FAST, str(tmp_path)) for p in ids]
    results = {r.patient_id: r for r in _run_processes(tasks, 2, work=crashing_work)}
    assert set(results) == set(ids)
    assert not results["CRASH"].ok and "worker process died" in results["CRASH"].reason
    assert all(results[p].ok for p in ids if p != "CRASH")


# --- input handling ------------------------------------------------------------------------


def test_discovery_and_bad_inputs(cohort, tmp_path, capsys):
    studies = discover_studies(cohort["root"])
    assert [s.patient_id for s in studies] == sorted([*GOOD, CORRUPT, NO_PDFF, NO_CLINICAL])
    bad = tmp_path / "dup.csv"
    pd.DataFrame({"patient_id": ["A", "A"], "study_path": ["x", "y"]}).to_csv(bad, index=False)
    with pytest.raises(InputError, match="more than once"):
        discover_studies(bad)
    with pytest.raises(InputError, match="patient_id,study_path"):
        discover_studies(_write(tmp_path / "m.csv", "id,path\nA,x\n"))
    no_id = _write(tmp_path / "c.csv", "age_years\n70\n")
    code = cli_main(
        ["batch", str(cohort["root"]), "--clinical", str(no_id), "--out", str(tmp_path / "o")]
    )
    assert code == 2 and "patient_id" in capsys.readouterr().err
    code = cli_main(
        [
            "batch",
            str(tmp_path / "nowhere"),
            "--clinical",
            str(cohort["clinical"]),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_out_naming_a_patients_study_folder_is_refused(cohort, capsys):
    """--out naming a folder of the root that holds a patient's study would be left out of the
    studies and written into: refused before anything is created, the folder unchanged."""
    from RefractureRiskLib.batch import runner
    from RefractureRiskLib.batch.places import BATCH_OUTPUTS

    assert set(BATCH_OUTPUTS) == {runner.PATIENTS_DIR, runner.COHORT_FILE, runner.STATUS_FILE}
    study = cohort["root"] / GOOD[0]
    before = sorted(p.name for p in study.iterdir())
    argv = ["batch", str(cohort["root"]), "--clinical", str(cohort["clinical"])]
    code = cli_main([*argv, "--out", str(study)])
    err = capsys.readouterr().err
    assert code == 2 and "choose another --out" in err and str(study) in err
    assert sorted(p.name for p in study.iterdir()) == before
