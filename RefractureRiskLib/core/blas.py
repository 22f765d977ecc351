"""BLAS threads: one per calling thread where the library runs its own threads or small products.

OpenBLAS splits even thin matrix products (millions of rows by a few dozen columns) over all
cores; on a busy machine, or when the library already runs chunks on its own threads
(``maps/fatwater/chunks.py``), those threads only wait for each other (measured: the voxel fit's
chunk 2.4x slower with two BLAS threads on a loaded 2-core machine). threadpoolctl (extras
``train`` and ``batch``) sets the limit; without it nothing is changed and
:func:`blas_limit_available` says so, so callers can fall back to one thread of their own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
from collections.abc import Iterator


def blas_limit_available() -> bool:
    """True when threadpoolctl is installed (the BLAS thread count can be limited)."""
    return importlib.util.find_spec("threadpoolctl") is not None


_held = 0  # open single_threaded_blas() contexts (the limit is process-wide)
_held_lock = threading.Lock()


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Context in which BLAS uses one thread (a no-op without threadpoolctl).

    The limit is process-wide, and setting it scans the loaded libraries (0.2-1 ms): only the
    outermost of nested contexts (in any thread: the chunks of a separation open one each)
    sets it, and restores the count when it closes."""
    global _held
    with _held_lock:
        outermost = _held == 0
        _held += 1
    try:
        with _limit() if outermost else contextlib.nullcontext():
            yield
    finally:
        with _held_lock:
            _held -= 1


def _limit() -> contextlib.AbstractContextManager:
    """threadpoolctl's one-thread BLAS limit, or nothing without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")
