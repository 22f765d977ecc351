"""BLAS threads: one per calling thread where the library runs its own threads or small products.

OpenBLAS splits even thin matrix products (millions of rows by a few dozen columns) over all
cores; on a busy machine, or when the library already runs chunks on its own threads
(``maps/fatwater/chunks.py``), those threads only wait for each other (measured: the voxel fit's
chunk 2.4x slower with two BLAS threads on a loaded 2-core machine). threadpoolctl (extras
``train`` and ``batch``) sets the limit; without it nothing is changed and
:func:`blas_limit_available` says so, so callers can fall back to one thread of their own.

The command line starts OpenBLAS on one thread (``OPENBLAS_NUM_THREADS=1`` before numpy loads,
:func:`note_environment_before_load`): then, while OpenBLAS is the only BLAS loaded, the limit
has nothing to change, and threadpoolctl is neither imported nor asked to scan the libraries
(~4 ms of a cold command, with ctypes).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections.abc import Iterator


def blas_limit_available() -> bool:
    """True when threadpoolctl is installed (the BLAS thread count can be limited)."""
    return importlib.util.find_spec("threadpoolctl") is not None


_held = 0  # open single_threaded_blas() contexts (the limit is process-wide)
_held_lock = threading.Lock()

#: ``OPENBLAS_NUM_THREADS`` was 1 before any BLAS library was loaded in this process.
_one_thread_from_load = False

#: File-name prefixes of the libraries threadpoolctl limits as BLAS (its controllers'), those
#: of them that are OpenBLAS, and the OpenMP runtimes (an OpenMP build of OpenBLAS follows
#: ``OMP_NUM_THREADS``, not ``OPENBLAS_NUM_THREADS``).
_BLAS_PREFIXES = ("libopenblas", "libscipy_openblas", "openblas", "libblas", "libblis",
                  "libflexiblas", "libmkl_rt", "mkl_rt")  # fmt: skip
_OPENBLAS_PREFIXES = ("libopenblas", "libscipy_openblas", "openblas")
_OPENMP_PREFIXES = ("libiomp", "libgomp", "libomp", "vcomp")


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
    """threadpoolctl's one-thread BLAS limit; nothing when every loaded BLAS already runs one
    thread (:func:`started_single_threaded`) or without threadpoolctl."""
    if started_single_threaded():
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def note_environment_before_load() -> None:
    """Record whether OpenBLAS will start on one thread: ``OPENBLAS_NUM_THREADS`` is 1 and no
    BLAS library is loaded yet (the command line calls this before it imports numpy; OpenBLAS
    reads the variable once, when it loads). False where the loaded libraries cannot be
    listed (no ``/proc/self/maps``)."""
    global _one_thread_from_load
    libraries = _loaded_libraries()
    _one_thread_from_load = (
        os.environ.get("OPENBLAS_NUM_THREADS") == "1"
        and libraries is not None
        and not any(name.startswith(_BLAS_PREFIXES) for name in libraries)
    )


def started_single_threaded() -> bool:
    """True when one-thread BLAS is already what every loaded BLAS runs: OpenBLAS started on
    one thread (:func:`note_environment_before_load`, and the variable still says 1 for any
    loaded later), and the BLAS libraries loaded are all OpenBLAS, with no OpenMP runtime.
    Assumes nothing in the process raised OpenBLAS's count since (the command line does not)."""
    if not _one_thread_from_load or os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        return False
    libraries = _loaded_libraries()
    if libraries is None or any(name.startswith(_OPENMP_PREFIXES) for name in libraries):
        return False
    blas = [name for name in libraries if name.startswith(_BLAS_PREFIXES)]
    return all(name.startswith(_OPENBLAS_PREFIXES) for name in blas)


def _loaded_libraries() -> set[str] | None:
    """File names of the shared libraries mapped into this process (Linux; ~0.1-0.3 ms), or
    None where that cannot be read."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            # address, perms, offset, device, inode, path (which may hold spaces)
            fields = [line.split(None, 5) for line in fh if ".so" in line]
    except OSError:
        return None
    return {os.path.basename(f[5].rstrip("\n")) for f in fields if len(f) == 6}
