"""Independent jobs of the model development (imputed data sets, their validations) side by side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def map_parallel(fn: Callable[..., Any], arguments: list[tuple]) -> list[Any]:
    """fn(*args) for each args, in worker processes (one per core) when there are several.

    The imputed data sets are independent; on a machine with more than one core their
    bootstrap validations run side by side. Falls back to a plain loop where processes cannot
    be forked (or for a single data set), with identical results: every call has its own seed.
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    workers = min(len(arguments), os.cpu_count() or 1)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(*a) for a in arguments]
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(fn, *a) for a in arguments]
            return [f.result() for f in futures]
    except (OSError, RuntimeError):  # pragma: no cover - no process support here
        return [fn(*a) for a in arguments]
