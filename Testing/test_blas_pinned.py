"""core.blas skips threadpoolctl only when the limit cannot change anything: OpenBLAS started on
one thread (``OPENBLAS_NUM_THREADS=1`` before any BLAS loaded) and OpenBLAS is the only BLAS
loaded, without an OpenMP runtime. Otherwise the one-thread limit is asked for, once for nested
contexts, as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from RefractureRiskLib.core import blas

OPENBLAS = "libscipy_openblas64_-32a4b2a6.so"


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Calls of threadpoolctl's limit (replaced by a recorder); the flag restored after."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    calls: list[int] = []
    real = threadpoolctl.threadpool_limits

    def limits(n: int, user_api: str) -> object:
        assert (n, user_api) == (1, "blas")
        calls.append(n)
        return real(1, user_api="blas")

    monkeypatch.setattr(threadpoolctl, "threadpool_limits", limits)
    monkeypatch.setattr(blas, "_one_thread_from_load", False)
    return calls


def _pin(monkeypatch: pytest.MonkeyPatch, loaded_before: set[str], value: str = "1") -> None:
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", value)
    monkeypatch.setattr(blas, "_loaded_libraries", lambda: loaded_before)
    blas.note_environment_before_load()


def test_pinned_before_load_and_only_openblas_loaded_asks_nothing(monkeypatch, asked) -> None:
    _pin(monkeypatch, {"libc.so.6", "libz.so.1"})
    monkeypatch.setattr(blas, "_loaded_libraries", lambda: {"libc.so.6", OPENBLAS})
    with blas.single_threaded_blas(), blas.single_threaded_blas():
        pass
    assert asked == []
    assert blas._held == 0


@pytest.mark.parametrize(
    "also_loaded",
    ["libmkl_rt.so.2", "libblis.so.4", "libflexiblas.so.3", "libblas.so.3", "libgomp.so.1"],
)
def test_another_blas_or_openmp_loaded_asks_threadpoolctl(monkeypatch, asked, also_loaded) -> None:
    _pin(monkeypatch, {"libc.so.6"})
    monkeypatch.setattr(blas, "_loaded_libraries", lambda: {OPENBLAS, also_loaded})
    with blas.single_threaded_blas(), blas.single_threaded_blas():
        pass
    assert asked == [1]


@pytest.mark.parametrize(
    ("value", "loaded_before", "listable"),
    [("2", set(), True), ("1", {OPENBLAS}, True), ("1", set(), False)],
    ids=["another count", "BLAS loaded before", "libraries not listable"],
)
def test_not_pinned_asks_threadpoolctl(monkeypatch, asked, value, loaded_before, listable) -> None:
    _pin(monkeypatch, loaded_before, value)
    if not listable:
        monkeypatch.setattr(blas, "_loaded_libraries", lambda: None)
        blas.note_environment_before_load()
    monkeypatch.setattr(blas, "_loaded_libraries", lambda: {OPENBLAS})
    with blas.single_threaded_blas():
        pass
    assert asked == [1]


def test_variable_changed_after_the_note_asks_threadpoolctl(monkeypatch, asked) -> None:
    """An OpenBLAS loaded after the variable changed would not start on one thread."""
    _pin(monkeypatch, set())
    monkeypatch.setattr(blas, "_loaded_libraries", lambda: {OPENBLAS})
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    with blas.single_threaded_blas():
        pass
    assert asked == [1]


def test_loaded_libraries_lists_this_process_s_shared_libraries() -> None:
    libraries = blas._loaded_libraries()
    if libraries is None:
        pytest.skip("no /proc/self/maps here")
    assert any(name.startswith("libc") or name.startswith("ld-") for name in libraries)
    assert all("/" not in name for name in libraries)


_PROBE = """
import json, sys
from RefractureRiskLib.cli import one_blas_thread
one_blas_thread()
import numpy
from RefractureRiskLib.core import blas
with blas.single_threaded_blas():
    (numpy.ones((300, 40)).T @ numpy.ones((300, 40))).sum()
    skipped = "threadpoolctl" not in sys.modules
from threadpoolctl import threadpool_info
print(json.dumps([skipped, [(i["internal_api"], i["num_threads"]) for i in threadpool_info()
                            if i["user_api"] == "blas"]]))
"""


def test_command_process_skips_the_scan_and_openblas_runs_one_thread() -> None:
    """In a new process set up as the command line sets it up, the limit imports no
    threadpoolctl, and every BLAS threadpoolctl then finds runs one thread."""
    pytest.importorskip("threadpoolctl")
    env = {k: v for k, v in os.environ.items() if not k.endswith("NUM_THREADS")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=True
    )
    skipped, found = json.loads(done.stdout.strip().splitlines()[-1])
    if not found or any(api != "openblas" for api, _n in found):
        pytest.skip(f"numpy does not use OpenBLAS alone here: {found}")
    assert skipped
    assert [n for _api, n in found] == [1] * len(found)
