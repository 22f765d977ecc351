"""REFRACTURE_REQUIRE_REFERENCES=1 turns every skip into a failure (CI); without it, skips stay
skips. Checked by running pytest on a small suite that uses this project's conftest."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SUITE = {
    "test_inline.py": """
import pytest

def test_passes():
    pass

def test_reference_missing():
    pytest.skip("dciodvfy not installed")

@pytest.mark.skipif(True, reason="needs pdftoppm")
def test_marked():
    pass

@pytest.fixture()
def tool():
    pytest.skip("R package rms not installed")

def test_fixture_skips(tool):
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
""",
    "test_module_level.py": """
import pytest
pytest.skip("slicer-core not importable", allow_module_level=True)

def test_never_runs():
    pass
""",
}


def _run(tmp_path: Path, require: str | None, files=tuple(SUITE)) -> str:
    for name in files:
        (tmp_path / name).write_text(SUITE[name])
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    env = {k: v for k, v in os.environ.items() if k != "REFRACTURE_REQUIRE_REFERENCES"}
    if require is not None:
        env["REFRACTURE_REQUIRE_REFERENCES"] = require
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    return proc.stdout + proc.stderr


def _count(output: str, word: str) -> int:
    match = re.search(rf"(\d+) {word}", output.splitlines()[-1])
    return int(match.group(1)) if match else 0


@pytest.mark.parametrize("require", [None, "0"])
def test_without_the_switch_skips_stay_skips(tmp_path, require) -> None:
    out = _run(tmp_path, require)
    assert _count(out, "passed") == 1 and _count(out, "xfailed") == 1, out
    assert _count(out, "skipped") == 4, out
    assert _count(out, "failed") == 0 and _count(out, "error") == 0, out


def test_with_the_switch_every_skip_fails_with_its_reason(tmp_path) -> None:
    out = _run(tmp_path, "1", files=("test_inline.py",))
    assert _count(out, "passed") == 1 and _count(out, "xfailed") == 1, out
    assert _count(out, "skipped") == 0, out
    assert _count(out, "failed") + _count(out, "error") == 3, out
    for reason in ("dciodvfy not installed", "needs pdftoppm", "rms not installed"):
        assert reason in out, reason
    assert "REFRACTURE_REQUIRE_REFERENCES=1 requires" in out


def test_with_the_switch_a_module_skipped_at_import_stops_the_run(tmp_path) -> None:
    out = _run(tmp_path, "1")
    assert "ERROR collecting test_module_level.py" in out, out
    assert "slicer-core not importable" in out
    assert _count(out, "skipped") == 0, out


def test_ci_sets_the_switch() -> None:
    repo = HERE.parent
    assert "REFRACTURE_REQUIRE_REFERENCES=1" in (repo / ".ci" / "run").read_text()
    test_sh = (repo / "scripts" / "test.sh").read_text()
    assert re.search(r"CI:-.*true.*\n.*REFRACTURE_REQUIRE_REFERENCES=1", test_sh), test_sh[-800:]
    assert '".[test]"' in test_sh or "'.[test]'" in test_sh
