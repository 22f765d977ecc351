"""Opening a measurement store another process is creating can meet a lock SQLite reports at
once, without waiting its busy timeout (CI: two batch commands started together on one new
store, one refused "database is locked"). The opening steps are tried again for a while; a
lock that stays is still one clear line naming the store."""

from __future__ import annotations

import sqlite3

import pytest

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.store import measurements
from RefractureRiskLib.store.measurements import MeasurementStore


def _locked_first(monkeypatch, times: int) -> list[int]:
    calls = [0]
    original = MeasurementStore._check_schema_version

    def flaky(self):
        calls[0] += 1
        if calls[0] <= times:
            raise sqlite3.OperationalError("database is locked")
        return original(self)

    monkeypatch.setattr(MeasurementStore, "_check_schema_version", flaky)
    return calls


def test_a_passing_lock_while_opening_is_waited_out(tmp_path, monkeypatch):
    calls = _locked_first(monkeypatch, 2)
    store = MeasurementStore(tmp_path / "s.sqlite")
    assert calls[0] == 3
    assert store.study_runs() == []


def test_a_lock_that_stays_is_one_clear_error_naming_the_store(tmp_path, monkeypatch):
    monkeypatch.setattr(measurements, "OPEN_RETRY_S", 0.3)
    calls = _locked_first(monkeypatch, 10**6)
    path = tmp_path / "s.sqlite"
    with pytest.raises(InputError) as err:
        MeasurementStore(path)
    assert str(path) in str(err.value) and "database is locked" in str(err.value)
    assert 2 <= calls[0] < 20


def test_other_errors_are_not_tried_again(tmp_path, monkeypatch):
    calls = [0]

    def broken(self):
        calls[0] += 1
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(MeasurementStore, "_check_schema_version", broken)
    with pytest.raises(InputError, match="disk I/O error"):
        MeasurementStore(tmp_path / "s.sqlite")
    assert calls[0] == 1
