"""The batch run: which patients to analyse, the executor, recording each result in the store
(the parent process is its only writer), progress, the cohort table and the run's summary.

The plan (which studies, with which options and keys) is :mod:`RefractureRiskLib.batch.plan`'s;
the tables written into ``--out`` are :mod:`RefractureRiskLib.batch.outputs`'."""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import pandas as pd
import sqlalchemy as sa

from RefractureRiskLib.batch.cohort import CohortBuild, cohort_table
from RefractureRiskLib.batch.inputs import discover_studies, read_clinical_text
from RefractureRiskLib.batch.lock import batch_lock
from RefractureRiskLib.batch.outputs import (
    COHORT_FILE as COHORT_FILE,  # re-exported: importable from here as before
)
from RefractureRiskLib.batch.outputs import (
    COHORT_PROBLEMS_FILE,
    PATIENTS_DIR,
    STATUS_FILE,
    write_tables,
)
from RefractureRiskLib.batch.places import check_places
from RefractureRiskLib.batch.plan import plan_studies, select_tasks
from RefractureRiskLib.batch.progress import Progress
from RefractureRiskLib.batch.workers import (
    REPLACED_PREFIX,
    STAGING_PREFIX,
    BatchTask,
    TaskResult,
    _failure_reason,
    _run_dask,
    _run_in_process,
    _run_processes,
)
from RefractureRiskLib.core.atomic import recover
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.pipeline import AnalysisOptions
from RefractureRiskLib.store.measurements import MeasurementStore, _safe_url

STORE_FILE = "measurements.sqlite"


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
    reanalyze: bool = False

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

    ``status``: "done" (measured and recorded now), "skipped" (the store already holds this
    analysis: same inputs, settings and software version; ``reason`` says when another run
    recorded it meanwhile) or "failed" (recorded in the store's failures with ``reason``).
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


def _clean_staging(patients: Path) -> list[str]:
    """Finish or remove what a killed run left in ``patients`` (called under the batch lock)."""
    if not patients.is_dir():
        return []
    for p in patients.iterdir():  # staging names of earlier versions
        if p.name.startswith((STAGING_PREFIX, REPLACED_PREFIX)):
            shutil.rmtree(p, ignore_errors=True)
    return recover(patients)


def _run_tasks(config: BatchConfig, tasks: Sequence[BatchTask]) -> Iterator[TaskResult]:
    if config.scheduler or config.dask_local:
        return _run_dask(tasks, config.scheduler, config.workers)
    if config.workers <= 0:
        return _run_in_process(tasks)
    return _run_processes(tasks, config.workers)


def run_batch(config: BatchConfig, stream: TextIO | None = sys.stderr) -> BatchSummary:
    """Analyse every patient not yet recorded, record each in the store, build the cohort table.

    Progress goes to ``stream`` (None = quiet). Raises InputError for a bad root, clinical table
    or store location, or when another batch holds ``out``, before any study is analysed (and
    then leaves no folder it created behind); failing studies never raise.
    """
    t0 = time.perf_counter()
    out = config.out
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a folder; choose another --out")
    studies = discover_studies(config.root, exclude=[out])
    check_places(config.root, config.out, config.store_location, studies)
    clinical_table = read_clinical_text(config.clinical)
    created = [p for p in (out, out / PATIENTS_DIR) if not p.exists()]
    run_notes: list[str] = []
    started = False
    try:
        with batch_lock(out, run_notes):
            run_notes += _clean_staging(out / PATIENTS_DIR)
            run_notes += recover(out)
            store = MeasurementStore(config.store_location)
            try:
                started = True
                return _run_locked(config, studies, clinical_table, store, stream, t0, run_notes)
            except sa.exc.OperationalError as err:  # disk full, server gone: whole studies kept
                cause = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
                reason = f"cannot write to the measurement store ({cause}); the batch stopped"
                raise InputError(_safe_url(store.url), reason) from None
            finally:
                store.close()
    except BaseException:
        if not started:  # nothing was analysed: take back the (empty) folders this run made
            for p in reversed(created):
                with contextlib.suppress(OSError):  # not empty: another batch's by now
                    p.rmdir()
        raise


def _run_locked(
    config: BatchConfig,
    studies: Sequence[Any],
    clinical_table: pd.DataFrame,
    store: MeasurementStore,
    stream: TextIO | None,
    t0: float,
    run_notes: list[str],
) -> BatchSummary:
    patients_dir = config.out / PATIENTS_DIR
    clinical_ids = set(clinical_table["patient_id"])
    previously_failed = set(store.failed_patients())
    planned, refused = plan_studies(config, studies, clinical_ids, previously_failed, store)
    outcomes = {pid: PatientOutcome(pid, "failed", reason) for pid, reason in refused.items()}
    recorded = set() if config.reanalyze else store.recorded_analyses(p[3] for p in planned)
    tasks, skipped, notes = select_tasks(
        config, planned, recorded, previously_failed, clinical_ids, patients_dir
    )
    outcomes.update({pid: PatientOutcome(pid, "skipped") for pid in skipped})
    if tasks:
        patients_dir.mkdir(exist_ok=True)
    if stream is not None:
        _announce(stream, config, len(studies), len(recorded), len(tasks), store, run_notes)
    outcomes.update(_analyse_and_record(config, tasks, notes, store, stream, t0))
    return _summarise(config, studies, clinical_table, store, outcomes, run_notes, t0)


def _announce(
    stream: TextIO,
    config: BatchConfig,
    n_studies: int,
    n_recorded: int,
    n_tasks: int,
    store: MeasurementStore,
    run_notes: Sequence[str],
) -> None:
    """The run's plan, and the notes of what the lock's recovery found, before any analysis."""
    print(
        f"batch: {n_studies} studies, {n_recorded} already recorded with the same "
        f"inputs and settings, {n_tasks} to analyse with {config.executor}; store "
        f"{_safe_url(store.url)}",
        file=stream,
        flush=True,
    )
    for note in run_notes:
        print(f"note: {note}", file=stream, flush=True)


def _analyse_and_record(
    config: BatchConfig,
    tasks: Sequence[BatchTask],
    notes: Mapping[str, str],
    store: MeasurementStore,
    stream: TextIO | None,
    t0: float,
) -> dict[str, PatientOutcome]:
    """Run the tasks on the configured executor and record each result as it arrives;
    ``finished_s`` of an outcome counts from ``t0`` (the batch's start)."""
    sources = {t.patient_id: t.study_path for t in tasks}
    keys = {t.patient_id: t.analysis_key for t in tasks}
    outcomes: dict[str, PatientOutcome] = {}
    progress = Progress(len(tasks), stream)
    try:
        for result in _run_tasks(config, tasks):
            outcome = _record(
                store,
                result,
                notes.get(result.patient_id, ""),
                sources,
                keys.get(result.patient_id),
                config.reanalyze,
            )
            outcome = replace(outcome, finished_s=time.perf_counter() - t0)
            outcomes[result.patient_id] = outcome
            progress.update(result.patient_id, outcome.status, result.seconds)
    finally:
        progress.close()
    return outcomes


def _summarise(
    config: BatchConfig,
    studies: Sequence[Any],
    clinical_table: pd.DataFrame,
    store: MeasurementStore,
    outcomes: Mapping[str, PatientOutcome],
    run_notes: list[str],
    t0: float,
) -> BatchSummary:
    """The cohort table and the status table written, and the run's summary (outcomes in the
    studies' order; a note names the clinical rows without a study folder)."""
    ordered = tuple(outcomes[s.patient_id] for s in studies if s.patient_id in outcomes)
    cohort = cohort_table(store, clinical_table, config.reader)
    files = write_tables(config.out, cohort, ordered)
    without_study = sorted(set(clinical_table["patient_id"]) - {s.patient_id for s in studies})
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


def _record(
    store: MeasurementStore,
    result: TaskResult,
    note: str,
    sources: Mapping[str, str],
    key: str | None = None,
    reanalyze: bool = False,
) -> PatientOutcome:
    """Write one study's result to the store (this batch's parent is its only writer; another
    batch on the same store may have recorded the same analysis meanwhile: then it is kept
    once, and this outcome says "skipped")."""
    reason = result.reason
    if result.ok and result.submission is not None:
        try:
            run_id = store.record_study(result.submission, analysis_key=key, reanalyze=reanalyze)
        except (ValueError, sa.exc.IntegrityError, sa.exc.DataError) as err:
            # This study's values do not fit the store (nothing of it was written): report it.
            reason = f"the measurement store refused this study ({_failure_reason(err)[:300]})"
        else:
            return PatientOutcome(
                result.patient_id,
                "done" if run_id is not None else "skipped",
                reason="" if run_id is not None else "recorded meanwhile by another batch",
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
