"""Cohort processing: one study per patient, in parallel, resumable, into the measurement store.

Like :mod:`RefractureRiskLib.pipeline` this module only composes library calls.

Input
    ``root`` is a folder whose immediate sub-folders are the studies, one per patient, each
    folder's name being the (pseudonymised) ``patient_id``; hidden folders (``.name``) are
    ignored. Alternatively ``root`` is a manifest CSV with columns ``patient_id,study_path``
    (relative paths are taken from the manifest's folder).

Per patient (in a worker process, a Dask worker, or in-process with ``workers=0``)
    :func:`analyze_patient` runs :func:`~RefractureRiskLib.pipeline.analyze_study` with the
    patient's clinical row (its ``index_levels`` become the treated levels) into a staging folder
    ``OUT/patients/.partial-<id>-<random>`` and renames it to ``OUT/patients/<patient_id>`` only on
    success, so a killed run never leaves a half-written patient folder. The worker never raises:
    any failure (corrupt DICOM, no PDFF series, no vertebral column, bad clinical value, ...)
    comes back as a reason.

The parent process is the only writer to the measurement store: one
:class:`~RefractureRiskLib.store.measurements.StudySubmission` per study (one transaction), or
one failure record with its reason. Workers therefore need no database access (Dask workers on
other machines need only the shared ``root`` and ``out`` folders).

Resuming
    A re-run skips patients already completed in the store by the same reader and retries
    every other patient, failed ones included (``retry_failed_only=True`` retries only the
    patients whose last attempt failed). Since the store, not the folder, says what is done,
    a batch killed at any moment and re-run has every study exactly once in the store.
    Run concurrent batches with separate output folders; they may share one store.

Patients missing from the clinical table
    are measured and recorded (the images are valid) but get no risk; they are reported per
    patient and are not in the cohort table (it needs their clinical columns).

Cohort table
    :func:`cohort_table` merges the clinical table with the imaging columns of the model's schema
    (per-level ``pdff_pct_<L>``, ``r2s_per_s_<L>``, ``excl_<L>``, the L1-L4 and adjacent
    summaries, mean L1-L4 body volume, ``mri_field_T``, ``mri_vendor``, ``reader_id``), computed
    from the store's *current* measurements of the reader, so a later correction in the store
    shows up when the table is rebuilt. Every clinical row is kept (imaging empty where not
    measured); the table is checked with :func:`~RefractureRiskLib.model.schema.validate_cohort`.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import pandas as pd
import sqlalchemy as sa

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import level_index
from RefractureRiskLib.core.study import nominal_field_t
from RefractureRiskLib.model.schema import (
    COHORT_SCHEMA,
    DERIVED_COLUMNS,
    MEASURED_LEVELS,
    MISSING_TOKENS,
    Problem,
    column_spec,
    problems_frame,
    validate_cohort,
)
from RefractureRiskLib.pipeline import (
    IMAGING_INPUTS,
    AnalysisOptions,
    AnalysisResult,
    analyze_study,
    load_clinical,
)
from RefractureRiskLib.stats import STATISTICS, summarize_statistics
from RefractureRiskLib.stats.roi_statistics import FLAG_SEPARATOR
from RefractureRiskLib.store.measurements import Measurement, MeasurementStore, StudySubmission

PATIENTS_DIR = "patients"
STORE_FILE = "measurements.sqlite"
COHORT_FILE = "cohort.csv"
COHORT_PROBLEMS_FILE = "cohort_problems.csv"
STATUS_FILE = "batch_status.csv"
STAGING_PREFIX = ".partial-"
REPLACED_PREFIX = ".replaced-"
#: Studies queued per local worker: the next one waits while the parent records the last.
IN_FLIGHT_PER_WORKER = 2
#: Statistics kept per measurement in the store (the registry's, plus the body volume).
STORE_STATISTICS: tuple[str, ...] = (*STATISTICS, "body_volume_ml")
#: Columns of the cohort table the batch fills from the store (all others come from the clinic).
IMAGING_COLUMNS: tuple[str, ...] = (
    "mri_field_T",
    "mri_vendor",
    "reader_id",
    *(f"{p}_{lv}" for lv in MEASURED_LEVELS for p in ("pdff_pct", "r2s_per_s", "excl")),
    "pdff_global_L1L4",
    "r2s_global_L1L4",
    "pdff_adjacent",
    "r2s_adjacent",
    "body_volume_ml_L1L4",
)


# ---------------------------------------------------------------------------------------------
# Input discovery


@dataclass(frozen=True)
class PatientStudy:
    """One patient's study folder."""

    patient_id: str
    study_path: Path


def _check_patient_id(patient_id: str, source: str | Path) -> str:
    pid = patient_id.strip()
    if not pid or pid.startswith(".") or "/" in pid or "\\" in pid or len(pid) > 64:
        raise InputError(
            source,
            f"patient_id {patient_id!r} cannot name a folder; use 1-64 characters without "
            "'/', '\\' or a leading '.'",
        )
    return pid


def discover_studies(root: str | Path, exclude: Sequence[Path] = ()) -> list[PatientStudy]:
    """The studies of a batch, sorted by patient_id (see the module doc for the two layouts).

    ``exclude``: folders to leave out (e.g. the output folder when it lies inside ``root``).
    """
    root = Path(root)
    if root.is_file():
        return _read_manifest(root)
    if not root.is_dir():
        raise InputError(root, "batch root not found; give a folder of study folders or a CSV")
    skip = {p.resolve() for p in exclude}
    studies = [
        PatientStudy(_check_patient_id(p.name, p), p)
        for p in sorted(root.iterdir())
        if p.is_dir() and not p.name.startswith(".") and p.resolve() not in skip
    ]
    if not studies:
        raise InputError(root, "no study folders (one sub-folder per patient, named patient_id)")
    return studies


def _read_manifest(path: Path) -> list[PatientStudy]:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as err:  # pandas raises many types; the user needs file + reason
        raise InputError(path, f"cannot read manifest CSV ({type(err).__name__}: {err})") from None
    table.columns = [str(c).strip() for c in table.columns]
    if not {"patient_id", "study_path"} <= set(table.columns):
        raise InputError(path, "a manifest needs the columns patient_id,study_path")
    studies = []
    for i, (pid, study) in enumerate(zip(table["patient_id"], table["study_path"], strict=True)):
        where = f"{path} row {i + 1}"
        if not study.strip():
            raise InputError(where, "study_path is empty")
        p = Path(study.strip())
        studies.append(
            PatientStudy(_check_patient_id(pid, where), p if p.is_absolute() else path.parent / p)
        )
    ids = [s.patient_id for s in studies]
    repeated = sorted({p for p in ids if ids.count(p) > 1})
    if repeated:
        raise InputError(path, f"patient_id listed more than once: {', '.join(repeated)}")
    if not studies:
        raise InputError(path, "the manifest lists no studies")
    return sorted(studies, key=lambda s: s.patient_id)


def read_clinical_text(path: str | Path) -> pd.DataFrame:
    """The clinical table with every cell as text (missing = NaN), ``patient_id`` stripped.

    Read as text so the cohort table carries the clinical cells exactly as the user wrote them.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "clinical table not found")
    suffix = p.suffix.lower()
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            table = pd.read_csv(
                p,
                sep="\t" if suffix == ".tsv" else ",",
                dtype=str,
                keep_default_na=False,
                na_values=list(MISSING_TOKENS),
                encoding="utf-8-sig",
            )
        elif suffix in (".xlsx", ".xls"):
            table = pd.read_excel(p, dtype=str)
        elif suffix == ".parquet":
            table = pd.read_parquet(p).astype("string").astype(object)
        else:
            raise InputError(p, "unsupported clinical table; use .csv, .tsv, .xlsx or .parquet")
    except InputError:
        raise
    except Exception as err:  # pandas raises many types; the user needs file + reason
        raise InputError(p, f"cannot read table ({type(err).__name__}: {err})") from None
    table.columns = [str(c).strip() for c in table.columns]
    if "patient_id" not in table.columns:
        raise InputError(p, "the clinical table needs a 'patient_id' column")
    table["patient_id"] = table["patient_id"].astype(str).str.strip()
    return table


# ---------------------------------------------------------------------------------------------
# One patient (runs in a worker)


@dataclass(frozen=True)
class BatchTask:
    """What a worker needs to analyse one patient (picklable; paths as text)."""

    patient_id: str
    study_path: str
    clinical: Mapping[str, Any] | None
    options: AnalysisOptions
    patients_dir: str


@dataclass(frozen=True)
class TaskResult:
    """What a worker sends back: the store submission, or the reason it failed."""

    patient_id: str
    ok: bool
    reason: str = ""
    submission: StudySubmission | None = None
    seconds: float = 0.0
    timings_s: Mapping[str, float] = field(default_factory=dict)
    peak_rss_mb: float = float("nan")
    worker: str = ""


def _peak_rss_mb() -> float:
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return float("nan")
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1.0 / 1024.0**2 if sys.platform == "darwin" else 1.0 / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _failure_reason(err: BaseException) -> str:
    if isinstance(err, InputError):
        return str(err)
    where = traceback.extract_tb(err.__traceback__)[-1:] if err.__traceback__ else []
    at = f" (at {Path(where[0].filename).name}:{where[0].lineno})" if where else ""
    return f"{type(err).__name__}: {err}{at}"


def study_submission(
    result: AnalysisResult, patient_id: str, labelmap_path: str | Path | None = None
) -> StudySubmission:
    """One study's measurements as a store submission (one per level and map).

    Statistics are those of :data:`STORE_STATISTICS`; flags are the level's RoiFlag values.
    """
    prov = result.study.provenance
    measurements = []
    for row in result.statistics.to_dict("records"):
        series = prov.series.get(str(row["map"]))
        flags = tuple(f for f in str(row.get("flags") or "").split(FLAG_SEPARATOR) if f)
        stats = {k: float(row[k]) for k in STORE_STATISTICS if k in row and row[k] is not None}
        measurements.append(
            Measurement(
                level=str(row["level"]),
                map=str(row["map"]),
                unit=str(row["unit"]),
                statistics=stats,
                flags=flags,
                included=bool(row["included"]),
                series_uid=None if series is None else series.series_uid,
            )
        )
    return StudySubmission(
        patient_id=patient_id,
        study_uid=prov.study_uid or "unknown",
        reader=result.rois.roiset.reader,
        roi_method=result.rois.roiset.method.value,
        measurements=tuple(measurements),
        labelmap_path=None if labelmap_path is None else str(labelmap_path),
        provenance=dict(result.provenance) | {"timings_s": dict(result.timings_s)},
    )


def _publish(staging: Path, final: Path) -> None:
    """Move a finished staging folder to its final name, replacing an older result."""
    for _ in range(5):
        if final.exists():
            old = final.with_name(f"{REPLACED_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}")
            with contextlib.suppress(FileNotFoundError):
                final.rename(old)
                shutil.rmtree(old, ignore_errors=True)
        try:
            staging.rename(final)
            return
        except OSError:  # another process published the same patient in between: try again
            time.sleep(0.05)
    staging.rename(final)


def analyze_patient(task: BatchTask) -> TaskResult:
    """Analyse one patient's study into ``patients_dir/<patient_id>``; never raises.

    The files appear under their final name only when everything succeeded.
    """
    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    patients = Path(task.patients_dir)
    staging = patients / f"{STAGING_PREFIX}{task.patient_id}-{uuid.uuid4().hex[:8]}"
    final = patients / task.patient_id
    try:
        result = analyze_study(
            task.study_path,
            task.clinical,
            staging,
            task.options,
            patient_label=task.patient_id,
        )
        if not len(result.statistics):
            raise InputError(task.study_path, "no vertebral ROI could be measured")
        _publish(staging, final)
        rois = final / result.files["rois"].name
        submission = study_submission(result, task.patient_id, rois)
        submission = replace(
            submission,
            provenance=dict(submission.provenance) | {"study_path": task.study_path},
        )
        return TaskResult(
            task.patient_id,
            True,
            submission=submission,
            seconds=time.perf_counter() - t0,
            timings_s=dict(result.timings_s),
            peak_rss_mb=_peak_rss_mb(),
            worker=worker,
        )
    except Exception as err:  # a failing study must never stop the batch
        shutil.rmtree(staging, ignore_errors=True)
        return TaskResult(
            task.patient_id,
            False,
            reason=_failure_reason(err),
            seconds=time.perf_counter() - t0,
            peak_rss_mb=_peak_rss_mb(),
            worker=worker,
        )


def _worker_init(parent_pid: int | None = None) -> None:
    """Per worker process: die with the batch process, one ITK thread, no display.

    ``parent_pid``: the batch process that started this worker; when it is gone (killed), the
    worker exits too, so a killed batch leaves no worker behind to publish a stale result.
    """
    os.environ.setdefault("MPLBACKEND", "Agg")
    # Ctrl-C stops the batch process; workers just end with it instead of each printing a trace.
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if parent_pid is not None:
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    _one_thread_per_worker()


def _one_thread_per_worker() -> None:
    """Parallelism comes from processes; ITK and BLAS threads would only compete for cores."""
    with contextlib.suppress(Exception):
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)


def _watch_parent(parent_pid: int) -> None:
    """Exit when the parent is gone (where PR_SET_PDEATHSIG does not exist)."""
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


# ---------------------------------------------------------------------------------------------
# Executors: each yields TaskResults as studies finish


def _run_in_process(tasks: Sequence[BatchTask]) -> Iterator[TaskResult]:
    for task in tasks:
        yield analyze_patient(task)


def _mp_context() -> Any:
    # spawn: fresh interpreters, safe with the parent's threads (no fork), and each worker is a
    # direct child of the batch process, so it can die with it. (A forkserver would start
    # faster, but it and its workers outlive a batch killed with SIGKILL.)
    return mp.get_context("spawn")


def _died(task: BatchTask) -> TaskResult:
    return TaskResult(
        task.patient_id,
        False,
        reason="the worker process died while analysing this study (killed, crashed or out of "
        "memory)",
    )


def _run_processes(
    tasks: Sequence[BatchTask],
    workers: int,
    work: Callable[[BatchTask], TaskResult] = analyze_patient,
) -> Iterator[TaskResult]:
    """Local worker processes, at most ``IN_FLIGHT_PER_WORKER * workers`` studies in flight.

    A worker that dies (segfault, SIGKILL, out of memory) breaks the whole pool: the studies then
    in flight are re-run one at a time in a new pool, so the one that kills its worker again,
    alone, is reported as failed and the others complete. ``work`` must be importable by name.
    """
    todo = deque(tasks)
    suspects: deque[BatchTask] = deque()
    ctx = _mp_context()
    while todo or suspects:
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),)
        ) as pool:
            running: dict[Future[TaskResult], BatchTask] = {}
            isolated: BatchTask | None = None
            broken = False
            while not broken:
                batch: list[BatchTask] = []
                if suspects and not running:
                    isolated = suspects.popleft()
                    batch = [isolated]
                elif not suspects:
                    while todo and len(running) + len(batch) < IN_FLIGHT_PER_WORKER * workers:
                        batch.append(todo.popleft())
                for task in batch:
                    try:
                        running[pool.submit(work, task)] = task
                    except BrokenProcessPool:
                        (suspects if task is isolated else todo).appendleft(task)
                        broken = True
                if broken or not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    task = running.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        if task is isolated:
                            yield _died(task)
                        else:
                            suspects.append(task)
                        continue
                    except Exception as err:  # e.g. a result that cannot be pickled
                        result = TaskResult(task.patient_id, False, reason=_failure_reason(err))
                    if task is isolated:
                        isolated = None
                    yield result
            # The pool is broken: whatever was still running is suspect.
            suspects.extend(running.values())


def _run_dask(
    tasks: Sequence[BatchTask], scheduler: str | None, workers: int
) -> Iterator[TaskResult]:
    """Dask distributed: the cluster at ``scheduler`` (workers need RefractureRiskLib and the
    same paths to ``root`` and ``out``), or a local cluster of ``workers`` processes."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise InputError("--scheduler/--dask-local", "needs dask[distributed] installed") from None
    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout="30s"))
            except OSError as err:
                raise InputError(scheduler, f"cannot reach the Dask scheduler ({err})") from None
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=max(1, workers),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
            )
            client = stack.enter_context(Client(cluster))
        # Only thread limits on Dask workers: their lifetime belongs to the cluster.
        with contextlib.suppress(Exception):
            client.run(_one_thread_per_worker)
        futures = {
            client.submit(
                analyze_patient, t, pure=False, key=f"refracture-{t.patient_id}-{uuid.uuid4().hex}"
            ): t
            for t in tasks
        }
        for fut in as_completed(futures):
            task = futures[fut]
            try:
                yield fut.result()
            except Exception as err:  # KilledWorker and the like: the study failed, go on
                yield TaskResult(task.patient_id, False, reason=_failure_reason(err))
            finally:
                fut.release()


# ---------------------------------------------------------------------------------------------
# Progress


class _Progress:
    """A tqdm bar with ETA on a terminal; one plain line per study otherwise (logs, CI)."""

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total, self.stream, self.count = total, stream, 0
        self.t0 = time.perf_counter()
        self.bar: Any = None
        if stream is not None and total and stream.isatty():
            with contextlib.suppress(ImportError):
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="study", file=stream, dynamic_ncols=True)

    def update(self, patient_id: str, status: str, seconds: float) -> None:
        self.count += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"{patient_id} {status}", refresh=False)
            self.bar.update(1)
            return
        if self.stream is None:
            return
        elapsed = time.perf_counter() - self.t0
        left = (self.total - self.count) * elapsed / self.count
        print(
            f"[{self.count}/{self.total}] {patient_id}: {status} ({seconds:.1f} s); "
            f"elapsed {_hms(elapsed)}, ETA {_hms(left)}",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


# ---------------------------------------------------------------------------------------------
# The batch


@dataclass(frozen=True)
class BatchConfig:
    """One batch run.

    ``workers``: local processes (0 = in this process, for debugging); with ``dask_local`` the
    number of Dask workers. ``scheduler``: address of a Dask scheduler (``tcp://host:8786``).
    ``store``: SQLAlchemy URL or path (default ``out/measurements.sqlite``). ``options``: analysis
    options shared by all patients (the reader is ``options.reader``; each patient's treated
    levels come from its clinical row).
    """

    root: Path
    clinical: Path
    out: Path
    workers: int = 1
    scheduler: str | None = None
    dask_local: bool = False
    store: str | None = None
    retry_failed_only: bool = False
    options: AnalysisOptions = field(default_factory=AnalysisOptions)

    @property
    def reader(self) -> str:
        return self.options.reader

    @property
    def store_location(self) -> str:
        return self.store or str(self.out / STORE_FILE)

    @property
    def executor(self) -> str:
        if self.scheduler:
            return f"dask {self.scheduler}"
        if self.dask_local:
            return f"dask local cluster, {self.workers} worker(s)"
        if self.workers <= 0:
            return "in-process"
        return f"{self.workers} local process(es)"


@dataclass(frozen=True)
class PatientOutcome:
    """What happened to one patient in this run.

    ``status``: "done" (measured and recorded now), "skipped" (already complete in the store
    for this reader) or "failed" (recorded in the store's failures with ``reason``).
    ``note``: anything else the user must know (e.g. no clinical row: measured, no risk).
    ``seconds``: time in the worker; ``finished_s``: when it was recorded, from the batch start.
    """

    patient_id: str
    status: str
    reason: str = ""
    note: str = ""
    seconds: float = 0.0
    peak_rss_mb: float = float("nan")
    worker: str = ""
    finished_s: float = float("nan")


@dataclass(frozen=True)
class CohortBuild:
    """The cohort table, its schema problems and notes on how it was built."""

    table: pd.DataFrame
    problems: tuple[Problem, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class BatchSummary:
    """Result of :func:`run_batch`."""

    config: BatchConfig
    outcomes: tuple[PatientOutcome, ...]
    cohort: CohortBuild | None
    files: Mapping[str, Path]
    wall_s: float
    notes: tuple[str, ...] = ()
    store_url: str = ""

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> dict[str, str]:
        return {o.patient_id: o.reason for o in self.outcomes if o.status == "failed"}

    @property
    def ok(self) -> bool:
        """Every patient measured with a clinical row, and a cohort table without problems."""
        return (
            not self.failed
            and not any(o.note for o in self.outcomes)
            and self.cohort is not None
            and not self.cohort.problems
        )

    def format_text(self, max_listed: int = 50) -> str:
        """The end-of-run summary for the terminal: counts, then every problem per patient."""
        done = [o for o in self.outcomes if o.status == "done"]
        lines = [
            f"batch: {len(self.outcomes)} patient(s): {len(done)} done, "
            f"{self.count('skipped')} skipped (already in the store), "
            f"{self.count('failed')} failed; {self.wall_s:.1f} s with {self.config.executor}"
        ]
        if done:
            per = sum(o.seconds for o in done) / len(done)
            rss = [o.peak_rss_mb for o in done if math.isfinite(o.peak_rss_mb)]
            peak = f", peak worker memory {max(rss):.0f} MB" if rss else ""
            lines.append(
                f"  throughput {len(done) / max(self.wall_s, 1e-9) * 60:.1f} studies/min, "
                f"{per:.1f} s per study{peak}"
            )
        failed = [o for o in self.outcomes if o.status == "failed"]
        if failed:
            lines.append("failed (recorded in the store; a re-run retries them):")
            lines += [f"  {o.patient_id}: {o.reason}" for o in failed[:max_listed]]
            if len(failed) > max_listed:
                lines.append(f"  ... and {len(failed) - max_listed} more (see {STATUS_FILE})")
        noted = [o for o in self.outcomes if o.note]
        if noted:
            lines.append("reported:")
            lines += [f"  {o.patient_id}: {o.note}" for o in noted[:max_listed]]
        lines += [f"note: {n}" for n in self.notes]
        if self.cohort is not None:
            c = self.cohort
            lines += [f"cohort: {n}" for n in c.notes]
            if c.problems:
                lines.append(
                    f"cohort table: {len(c.problems)} schema problem(s) (all in "
                    f"{self.files.get('cohort_problems', COHORT_PROBLEMS_FILE)}):"
                )
                lines += [f"  {p}" for p in c.problems[:max_listed]]
            else:
                lines.append("cohort table: passes the cohort schema (ready for train)")
        lines += [f"{key:>16}: {path}" for key, path in self.files.items()]
        lines.append(f"{'store':>16}: {self.store_url}")
        return "\n".join(lines)


def _clean_staging(patients: Path) -> None:
    """Remove staging folders left by a killed run (run batches on one ``out`` one at a time)."""
    for p in patients.iterdir():
        if p.name.startswith((STAGING_PREFIX, REPLACED_PREFIX)):
            shutil.rmtree(p, ignore_errors=True)


def _index_levels(clinical: Mapping[str, Any] | None, base: tuple[str, ...]) -> tuple[str, ...]:
    value = None if clinical is None else clinical.get("index_levels")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return base
    names = (v.strip().upper() for v in str(value).replace(",", ";").split(";"))
    # Treated levels outside T10-S1 (e.g. T8) are outside the imaged levels: nothing to flag.
    return tuple(v for v in names if _is_level(v))


def _run_tasks(config: BatchConfig, tasks: Sequence[BatchTask]) -> Iterator[TaskResult]:
    if config.scheduler or config.dask_local:
        return _run_dask(tasks, config.scheduler, config.workers)
    if config.workers <= 0:
        return _run_in_process(tasks)
    return _run_processes(tasks, config.workers)


def run_batch(config: BatchConfig, stream: TextIO | None = sys.stderr) -> BatchSummary:
    """Analyse every patient not yet complete, record each in the store, build the cohort table.

    Progress goes to ``stream`` (None = quiet). Raises InputError for a bad root, clinical table
    or store location before any study is analysed; failing studies never raise.
    """
    t0 = time.perf_counter()
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    patients_dir = out / PATIENTS_DIR
    patients_dir.mkdir(exist_ok=True)
    _clean_staging(patients_dir)
    studies = discover_studies(config.root, exclude=[out])
    clinical_table = read_clinical_text(config.clinical)
    clinical_ids = set(clinical_table["patient_id"])
    store = MeasurementStore(config.store_location)
    try:
        complete = store.completed_patients(config.reader)
        previously_failed = set(store.failed_patients())
        outcomes: dict[str, PatientOutcome] = {}
        tasks: list[BatchTask] = []
        notes: dict[str, str] = {}
        for s in studies:
            if s.patient_id in complete:
                outcomes[s.patient_id] = PatientOutcome(s.patient_id, "skipped")
                continue
            if config.retry_failed_only and s.patient_id not in previously_failed:
                continue
            clinical: Mapping[str, Any] | None = None
            if s.patient_id in clinical_ids:
                try:
                    clinical = load_clinical(config.clinical, s.patient_id)
                except InputError as err:  # e.g. the patient_id appears twice
                    store.record_failure(s.patient_id, str(err), source=str(s.study_path))
                    outcomes[s.patient_id] = PatientOutcome(s.patient_id, "failed", str(err))
                    continue
            else:
                notes[s.patient_id] = (
                    "not in the clinical table: measured and recorded, no risk, "
                    "not in the cohort table"
                )
            options = replace(
                config.options, index_levels=_index_levels(clinical, config.options.index_levels)
            )
            tasks.append(
                BatchTask(s.patient_id, str(s.study_path), clinical, options, str(patients_dir))
            )
        if stream is not None:
            print(
                f"batch: {len(studies)} studies, {len(complete & {s.patient_id for s in studies})}"
                f" already complete for reader {config.reader!r}, {len(tasks)} to analyse with "
                f"{config.executor}; store {_safe_url(store.url)}",
                file=stream,
                flush=True,
            )
        sources = {t.patient_id: t.study_path for t in tasks}
        progress = _Progress(len(tasks), stream)
        try:
            for result in _run_tasks(config, tasks):
                outcome = _record(store, result, notes.get(result.patient_id, ""), sources)
                outcome = replace(outcome, finished_s=time.perf_counter() - t0)
                outcomes[result.patient_id] = outcome
                progress.update(result.patient_id, outcome.status, result.seconds)
        finally:
            progress.close()

        ordered = tuple(outcomes[s.patient_id] for s in studies if s.patient_id in outcomes)
        files: dict[str, Path] = {}
        cohort = cohort_table(store, clinical_table, config.reader)
        files["cohort"] = out / COHORT_FILE
        cohort.table.to_csv(files["cohort"], index=False)
        problems_path = out / COHORT_PROBLEMS_FILE
        if cohort.problems:
            problems_frame(cohort.problems).to_csv(problems_path, index=False)
            files["cohort_problems"] = problems_path
        elif problems_path.exists():
            problems_path.unlink()
        files["status"] = out / STATUS_FILE
        pd.DataFrame([o.__dict__ for o in ordered]).to_csv(files["status"], index=False)
        run_notes = []
        without_study = sorted(clinical_ids - {s.patient_id for s in studies})
        if without_study:
            run_notes.append(
                f"{len(without_study)} clinical row(s) without a study folder (no imaging in "
                f"the cohort table): {', '.join(without_study[:20])}"
                + (" ..." if len(without_study) > 20 else "")
            )
        return BatchSummary(
            config,
            ordered,
            cohort,
            files,
            time.perf_counter() - t0,
            tuple(run_notes),
            _safe_url(store.url),
        )
    finally:
        store.close()


def _safe_url(url: str) -> str:
    """The store URL without a password."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _record(
    store: MeasurementStore, result: TaskResult, note: str, sources: Mapping[str, str]
) -> PatientOutcome:
    """Write one study's result to the store (the parent is the only writer)."""
    reason = result.reason
    if result.ok and result.submission is not None:
        try:
            store.record_study(result.submission)
        except (ValueError, sa.exc.IntegrityError, sa.exc.DataError) as err:
            # This study's values do not fit the store (nothing of it was written): report it.
            reason = f"the measurement store refused this study ({_failure_reason(err)[:300]})"
        else:
            return PatientOutcome(
                result.patient_id,
                "done",
                note=note,
                seconds=result.seconds,
                peak_rss_mb=result.peak_rss_mb,
                worker=result.worker,
            )
    store.record_failure(result.patient_id, reason, source=sources.get(result.patient_id))
    return PatientOutcome(
        result.patient_id,
        "failed",
        reason=reason,
        seconds=result.seconds,
        peak_rss_mb=result.peak_rss_mb,
        worker=result.worker,
    )


# ---------------------------------------------------------------------------------------------
# Cohort table


def _patient_statistics(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Store rows of one patient -> the long statistics table :func:`summarize_statistics` reads."""
    records = []
    for r in rows:
        stats = json.loads(r["statistics_json"] or "{}")
        flags = [f for f in str(r["flags"] or "").split(",") if f]
        records.append(
            {
                "level": r["level"],
                "map": r["map"],
                "mean": _num(r["mean"]),
                "n_voxels": _num(stats.get("n_voxels")),
                "body_volume_ml": _num(stats.get("body_volume_ml")),
                "flags": FLAG_SEPARATOR.join(sorted(flags)),
                "included": bool(r["included"]),
            }
        )
    return pd.DataFrame(records)


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


#: Manufacturer name prefixes (upper case) -> the cohort schema's vendor categories.
_VENDOR_PREFIXES = {
    "GE": "GE",
    "SIEMENS": "Siemens",
    "PHILIPS": "Philips",
    "CANON": "Canon",
    "TOSHIBA": "Canon",
    "UIH": "United Imaging",
    "UNITED IMAGING": "United Imaging",
}


def _vendor(value: Any) -> str | None:
    """The cohort's ``mri_vendor`` category of a manufacturer name ("other" when unknown)."""
    if not value:
        return None
    allowed = column_spec("mri_vendor").allowed or ()
    if value in allowed:
        return str(value)
    name = str(value).strip().upper()
    return next((v for p, v in _VENDOR_PREFIXES.items() if name.startswith(p)), "other")


def imaging_columns(
    rows: Sequence[Mapping[str, Any]],
    provenance: Mapping[str, Any],
    reader: str,
    index_levels: Sequence[str] = (),
) -> dict[str, Any]:
    """The cohort's imaging cells of one patient from its current store rows (one study).

    Per level: mean PDFF (%) and R2* (1/s) and the exclusion codes (the level's flags when it
    is excluded from summaries, empty when eligible); summaries recomputed from these rows with
    :func:`summarize_statistics`; field strength (nominal 1.5/3 T) and vendor from the study's
    provenance.
    """
    stats = _patient_statistics(list(rows))
    cells: dict[str, Any] = {"reader_id": reader}
    cells["mri_field_T"] = nominal_field_t(provenance.get("field_strength_t"))
    cells["mri_vendor"] = _vendor(provenance.get("vendor"))
    for r in stats.to_dict("records"):
        level = str(r["level"])
        if level not in MEASURED_LEVELS:
            continue
        name = "pdff_pct" if r["map"] == "pdff" else "r2s_per_s" if r["map"] == "r2s" else None
        if name is not None and math.isfinite(r["mean"]):
            cells[f"{name}_{level}"] = round(r["mean"], 3)
        cells[f"excl_{level}"] = "" if r["included"] else r["flags"]
    summary = summarize_statistics(stats, tuple(index_levels))
    for column, attr in IMAGING_INPUTS.items():
        value = float(getattr(summary, attr))
        cells[column] = round(value, 3) if math.isfinite(value) else None
    volumes = stats[
        (stats["map"] == "pdff") & stats["included"] & stats["level"].isin(["L1", "L2", "L3", "L4"])
    ]["body_volume_ml"].dropna()
    cells["body_volume_ml_L1L4"] = round(float(volumes.mean()), 2) if len(volumes) >= 2 else None
    return cells


def cohort_table(
    store: MeasurementStore, clinical: pd.DataFrame | str | Path, reader: str
) -> CohortBuild:
    """The cohort table: every clinical row, with imaging columns from the store (``reader``).

    Clinical cells are kept as written; columns of :data:`IMAGING_COLUMNS` come from the store
    only (a clinical column of the same name is replaced). When a patient has several studies
    or sessions in the store, the most recently recorded one is used.
    """
    table = clinical if isinstance(clinical, pd.DataFrame) else read_clinical_text(clinical)
    table = table.copy()
    notes: list[str] = []
    replaced = [c for c in IMAGING_COLUMNS if c in table.columns]
    if replaced:
        notes.append(
            f"clinical column(s) {', '.join(replaced[:6])}{' ...' if len(replaced) > 6 else ''}"
            " replaced by the measurements in the store"
        )
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for row in store.current_measurements(readers=[reader], with_run_provenance=True):
        by_patient.setdefault(str(row["patient_id"]), []).append(row)
    imaging: dict[str, dict[str, Any]] = {}
    index_by_patient = {
        str(pid): _index_levels({"index_levels": lv}, ())
        for pid, lv in zip(
            table["patient_id"],
            table["index_levels"] if "index_levels" in table else [None] * len(table),
            strict=True,
        )
    }
    for pid, rows in by_patient.items():
        if pid not in index_by_patient:
            continue
        latest = max(rows, key=lambda r: r["measurement_id"])
        key = (latest["study_uid"], latest["session"])
        mine = [r for r in rows if (r["study_uid"], r["session"]) == key]
        if len({(r["study_uid"], r["session"]) for r in rows}) > 1:
            notes.append(f"{pid}: several studies/sessions in the store; the latest is used")
        prov = json.loads(latest["run_provenance_json"] or "{}")
        try:
            imaging[pid] = imaging_columns(mine, prov, reader, index_by_patient[pid])
        except InputError as err:
            notes.append(f"{pid}: imaging columns left empty ({err})")
    columns = {
        c: [imaging.get(pid, {}).get(c) for pid in table["patient_id"]] for c in IMAGING_COLUMNS
    }
    for c, values in columns.items():
        table[c] = pd.Series(values, index=table.index, dtype=object)
    schema_order = [s.name for s in COHORT_SCHEMA if s.name in table.columns]
    derived = [c for c in DERIVED_COLUMNS if c in table.columns]
    extra = [c for c in table.columns if c not in schema_order and c not in derived]
    table = table[schema_order + extra + derived]
    n_img = sum(pid in imaging for pid in table["patient_id"])
    notes.insert(0, f"{len(table)} clinical row(s), {n_img} with imaging from reader {reader!r}")
    problems = validate_cohort(table)
    return CohortBuild(table, tuple(problems), tuple(notes))


def _is_level(name: str) -> bool:
    try:
        level_index(name)
    except ValueError:
        return False
    return True
