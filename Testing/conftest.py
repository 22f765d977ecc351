"""Shared pytest fixtures.

Real public test files live in ``../shared/data`` beside the repository (never copied into it);
tests that need them use the ``shared_data`` fixture, which skips with the reason when absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("REFRACTURE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; skips the test when the folder is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (set REFRACTURE_SHARED_DATA)")
    return SHARED_DATA
