"""QA regression: a store that cannot be opened is one line naming it (password hidden), exit 2."""

from __future__ import annotations

import pytest

from RefractureRiskLib.cli import main
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.store.measurements import MeasurementStore


def test_a_file_that_is_not_sqlite_is_refused_naming_it(tmp_path) -> None:
    junk = tmp_path / "notes.sqlite"
    junk.write_text("these are my notes, not a database\n" * 20)
    with pytest.raises(InputError) as err:
        MeasurementStore(junk)
    assert "notes.sqlite" in str(err.value) and "not a database" in str(err.value)


def test_unreachable_server_hides_the_password(capsys) -> None:
    url = "postgresql+psycopg://reader:s3cret@127.0.0.1:1/store"
    assert main(["agreement", "--store", url]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "s3cret" not in err and "127.0.0.1:1" in err


def test_agreement_on_a_non_database_file_exits_2(tmp_path, capsys) -> None:
    junk = tmp_path / "m.sqlite"
    junk.write_bytes(b"\x00" * 4096 + b"junk")
    assert main(["agreement", "--store", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "m.sqlite" in err and "Traceback" not in err


def test_a_sqlite_store_error_names_the_file_not_the_url(tmp_path) -> None:
    """A file that is not SQLite is refused naming the file as the user gave it."""
    from RefractureRiskLib.core.errors import InputError
    from RefractureRiskLib.store.measurements import MeasurementStore

    bad = tmp_path / "store.sqlite"
    bad.write_bytes(b"not a database at all, just text" * 10)
    with pytest.raises(InputError) as info:
        MeasurementStore(bad)
    text = str(info.value)
    assert "sqlite:///" not in text
    assert str(bad.resolve()) in text or str(bad) in text
