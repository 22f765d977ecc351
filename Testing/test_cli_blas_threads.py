"""The ``refracture-risk`` process runs OpenBLAS on one thread unless the caller chose a count
(issue 13: idle OpenBLAS threads spinning after numpy and scipy load cost ~0.2 s of a cold
``analyze``'s CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from RefractureRiskLib.cli import BLAS_THREAD_VARIABLES, one_blas_thread


@pytest.fixture
def no_thread_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_one_thread_is_asked_for_when_nothing_is_set(no_thread_variables: None) -> None:
    one_blas_thread()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"


@pytest.mark.parametrize("name", BLAS_THREAD_VARIABLES)
def test_a_thread_count_the_caller_set_is_left_alone(
    no_thread_variables: None, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "3")
    one_blas_thread()
    assert os.environ[name] == "3"
    assert name == "OPENBLAS_NUM_THREADS" or "OPENBLAS_NUM_THREADS" not in os.environ


_PROBE = """
import json, sys
from RefractureRiskLib.cli import main
sys.argv = ["refracture-risk", "describe", "--help"]
try:
    main(sys.argv[1:])
except SystemExit:
    pass
import numpy, scipy.ndimage  # what analyze loads first
from threadpoolctl import threadpool_info
print(json.dumps([(i["internal_api"], i["num_threads"]) for i in threadpool_info()
                  if i["user_api"] == "blas"]))
"""


def test_the_command_process_loads_openblas_with_one_thread() -> None:
    pytest.importorskip("threadpoolctl")
    env = {k: v for k, v in os.environ.items() if k not in BLAS_THREAD_VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=True
    )
    blas = json.loads(done.stdout.strip().splitlines()[-1])
    openblas = [n for api, n in blas if api == "openblas"]
    if not openblas:
        pytest.skip(f"numpy is not built with OpenBLAS here: {blas}")
    assert openblas == [1] * len(openblas), blas
