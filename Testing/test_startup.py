"""``refracture-risk --help`` and each subcommand's ``--help`` load no heavy package.

Start-up is what a user waits for before anything happens: command modules import what they use
inside ``run``. Checked in a fresh interpreter: the modules loaded when the command exits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from RefractureRiskLib.cli import COMMAND_MODULES

HEAVY = (
    "matplotlib",
    "pandas",
    "scipy",
    "SimpleITK",
    "pydicom",
    "dask",
    "distributed",
    "sqlalchemy",
    "sklearn",
    "statsmodels",
    "highdicom",
    "pyarrow",
    "PIL",
)


#: Runs the command as ``python -m RefractureRiskLib.cli`` does, then lists sys.modules (which,
#: unlike ``-X importtime``, includes modules loaded through importlib).
_PROBE = """
import json, runpy, sys
sys.argv = ["refracture-risk", *json.loads(sys.argv[1])]
try:
    runpy.run_module("RefractureRiskLib.cli", run_name="__main__")
except SystemExit:
    pass
print("MODULES=" + json.dumps(sorted(sys.modules)))
"""


def imported_modules(*args: str) -> set[str]:
    """Every module a new ``refracture-risk ARGS`` process has imported when it exits."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: refracture-risk" in proc.stdout
    line = next(x for x in proc.stdout.splitlines() if x.startswith("MODULES="))
    return set(json.loads(line.removeprefix("MODULES=")))


def _heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in HEAVY)


def test_help_imports_no_heavy_package() -> None:
    names = imported_modules("--help")
    assert {f"RefractureRiskLib.commands.{c}" for c in COMMAND_MODULES} <= names
    assert not _heavy(names), _heavy(names)


@pytest.mark.parametrize("command", COMMAND_MODULES)
def test_subcommand_help_imports_no_heavy_package(command: str) -> None:
    names = imported_modules(command, "--help")
    assert not _heavy(names), _heavy(names)


def test_the_check_sees_a_heavy_import(monkeypatch, tmp_path) -> None:
    """A command module importing pydicom at module level is caught (the check can fail)."""
    shim = tmp_path / "sitecustomize.py"
    shim.write_text("import pydicom\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    assert "pydicom" in _heavy(imported_modules("--help"))
