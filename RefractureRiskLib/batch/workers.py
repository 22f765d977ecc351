"""One patient per task, and the executors that run the tasks: in this process, in local worker
processes (spawn; a dying worker fails only its study) or on Dask workers.

Everything a worker runs is a module-level function, importable by name in a spawned process.
Workers write only below ``patients_dir``; their results go back to the parent, the only writer
to the measurement store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
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
from typing import Any

from RefractureRiskLib import __version__
from RefractureRiskLib.core.atomic import OutputSet
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.hashing import file_sha256
from RefractureRiskLib.pipeline import AnalysisOptions, AnalysisResult, analyze_study
from RefractureRiskLib.store import submission
from RefractureRiskLib.store.measurements import StudySubmission

#: Staging names of earlier versions (now: core.atomic's ``.<name>.staging-<txn>``).
STAGING_PREFIX = ".partial-"
REPLACED_PREFIX = ".replaced-"
#: Studies queued per local worker: the next one waits while the parent records the last.
IN_FLIGHT_PER_WORKER = 2


@dataclass(frozen=True)
class BatchTask:
    """What a worker needs to analyse one patient (picklable; paths as text)."""

    patient_id: str
    study_path: str
    clinical: Mapping[str, Any] | None
    options: AnalysisOptions
    patients_dir: str
    analysis_key: str | None = None


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
    """One study's measurements as a store submission (store.submission's builder, which the
    Slicer panel also uses), with the analysis' timings added to its provenance."""
    return submission.study_submission(
        result.study,
        result.rois.roiset,
        result.statistics,
        patient_id,
        provenance=dict(result.provenance) | {"timings_s": dict(result.timings_s)},
        labelmap_path=labelmap_path,
    )


#: Options that change what is recorded in the store (not: report, DICOM export, de-identify).
_KEY_OPTIONS = ("roi", "study", "pdff_series", "anchor", "index_levels", "reader")
_KEY_OPTIONS += ("pdff_unit", "r2s_unit")


def input_fingerprint(study_path: str | Path) -> list[tuple[str, int, int]]:
    """Every file of a study folder as (relative path, size, mtime ns), sorted: cheap (no
    reading) and changed by any added, removed, re-exported or edited file."""
    root = Path(study_path)
    if root.is_file():
        st = root.stat()
        return [(root.name, st.st_size, st.st_mtime_ns)]
    rows = []
    for path in root.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                st = path.stat()
                rows.append((path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return sorted(rows)


def analysis_key(
    patient_id: str,
    study_path: str | Path,
    clinical: Mapping[str, Any] | None,
    options: AnalysisOptions,
) -> str:
    """SHA-256 of what one analysis depends on: the patient, the study folder's files
    (:func:`input_fingerprint`), the clinical row, the measurement options, the model file
    and the software version. Equal keys mean the store already holds this exact analysis."""
    model = options.model_path
    doc = {
        "patient_id": patient_id,
        "inputs": input_fingerprint(study_path),
        "clinical": None if clinical is None else {str(k): str(v) for k, v in clinical.items()},
        "options": {name: getattr(options, name) for name in _KEY_OPTIONS},
        "model_sha256": None if model is None or not Path(model).is_file() else file_sha256(model),
        "software": __version__,
    }
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def analyze_patient(task: BatchTask) -> TaskResult:
    """Analyse one patient's study into ``patients_dir/<patient_id>``; never raises.

    The folder is written as ``.<patient_id>.staging-<txn>`` and replaces the final one only
    when everything succeeded (see core.atomic): a killed or failing study leaves the previous
    folder, if any, as it was.
    """
    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    patients = Path(task.patients_dir)
    final = patients / task.patient_id
    try:
        # The batch recovers the patients folder once at its start (under its lock).
        with OutputSet(overwrite=True, recover=False) as outputs:
            staging = outputs.folder(final)
            result = analyze_study(
                task.study_path,
                task.clinical,
                staging,
                task.options,
                patient_label=task.patient_id,
            )
            if not len(result.statistics):
                raise InputError(task.study_path, "no vertebral ROI could be measured")
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
