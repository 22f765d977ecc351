"""Voxel chunks on a small thread pool, with progress between chunks.

numpy releases the GIL in its element-wise loops and matrix products, so chunks of a few tens of
thousands of voxels run in parallel in threads (no copies, no pickling, results written into
shared output arrays by slice). Progress is reported from the calling thread only, so a progress
callback that raises (the Slicer panel's, on Cancel) stops the run: the chunks not yet started are
dropped and the exception propagates. BLAS is held to one thread meanwhile
(:mod:`RefractureRiskLib.core.blas`): the chunks are the parallelism.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from RefractureRiskLib.core.blas import blas_limit_available, single_threaded_blas

#: Upper bound of the worker threads (the element-wise work is memory-bound beyond a few).
MAX_WORKERS = 4


def default_workers() -> int:
    """Worker threads for the voxel fit: the machine's cores, at most :data:`MAX_WORKERS`; one
    when BLAS cannot be held to one thread (then BLAS's own threads run the products)."""
    if not blas_limit_available():
        return 1
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def run_chunks(
    work: Callable[[slice], None],
    n_items: int,
    chunk: int,
    progress: Callable[[str], None] | None = None,
    label: str = "voxels",
    workers: int | None = None,
) -> None:
    """Call ``work(slice)`` for consecutive slices of ``range(n_items)`` (``chunk`` long).

    ``workers`` threads (default :func:`default_workers`; 1 runs in this thread). ``progress``
    receives ``"<label> NN%"`` about every tenth of the work.
    """
    slices = [slice(s, min(n_items, s + chunk)) for s in range(0, n_items, chunk)]
    n_workers = workers or default_workers()
    with single_threaded_blas():
        if n_workers <= 1 or len(slices) <= 1:
            _run_serial(work, slices, progress, label)
        else:
            _run_threads(work, slices, progress, label, n_workers)


def _run_serial(work, slices, progress, label) -> None:
    step = max(1, len(slices) // 10)
    for i, sl in enumerate(slices, 1):
        work(sl)
        if progress and (i % step == 0 or i == len(slices)):
            progress(f"{label} {100 * i // len(slices)}%")


def _run_threads(work, slices, progress, label, n_workers: int) -> None:
    step = max(1, len(slices) // 10)
    pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="fatwater")
    try:
        pending = {pool.submit(work, sl) for sl in slices}
        done_count = 0
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                fut.result()  # re-raise a worker's error here
            before, done_count = done_count, done_count + len(done)
            if progress and (done_count // step > before // step or not pending):
                progress(f"{label} {100 * done_count // len(slices)}%")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
