"""Shared pytest fixtures, and the switch that makes CI fail instead of skip.

Real public test files live in ``../shared/data`` beside the repository (never copied into it);
tests that need them use the ``shared_data`` fixture, which skips with the reason when absent.

Tests that need a reference tool (R/rms, pyradiomics, pmsampsize, PostgreSQL, dciodvfy,
slicer-core, dcm2niix, chromium, pdftoppm, a local Dask cluster) or the shared data skip with the
reason on a developer's machine that lacks them. With ``REFRACTURE_REQUIRE_REFERENCES=1`` (set by
``.ci/run`` and by ``scripts/test.sh`` under ``CI=true``) every such skip is a failure, so CI
cannot go green without its references.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Property-based tests explore new inputs on a developer's machine; in CI they replay a fixed
# sequence (derandomize), so a run cannot fail on an input that no earlier run saw: a new
# failure found locally is fixed and kept as an explicit example.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REFRACTURE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
REQUIRE_REFERENCES_VAR = "REFRACTURE_REQUIRE_REFERENCES"


def references_required() -> bool:
    """Whether a skipped test counts as failed (CI)."""
    return os.environ.get(REQUIRE_REFERENCES_VAR, "").strip() not in ("", "0")


def _skip_reason(longrepr) -> str:
    # a skip's longrepr is (file, line, "Skipped: reason")
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ")


def _as_failure(report) -> None:
    report.outcome = "failed"
    report.longrepr = (
        f"skipped, but {REQUIRE_REFERENCES_VAR}=1 requires every reference tool and the shared "
        f"data: {_skip_reason(report.longrepr)}"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and references_required():
        _as_failure(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A whole module skipped at import (e.g. slicer-core missing) fails too."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and references_required():
        _as_failure(report)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; skips the test when the folder is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (set REFRACTURE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fmap_root(shared_data) -> Path:
    """The real GE, Philips and Siemens field-map DICOM of ``dcm_qa_fmap`` (its ``In``
    folder); skips the test when it is not there."""
    root = shared_data / "dicom" / "dcm_qa_fmap" / "In"
    if not root.is_dir():
        pytest.skip(f"dcm_qa_fmap not found at {root}")
    return root
