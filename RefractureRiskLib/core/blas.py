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


def blas_limit_available() -> bool:
    """True when threadpoolctl is installed (the BLAS thread count can be limited)."""
    return importlib.util.find_spec("threadpoolctl") is not None


def single_threaded_blas() -> contextlib.AbstractContextManager:
    """Context in which BLAS uses one thread (a no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")
