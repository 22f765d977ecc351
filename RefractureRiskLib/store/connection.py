"""Opening a measurement store's database: its URL, its SQLite file, its engine.

What a location names (a URL, a file, a folder), whether an existing database is a store, and
the engine settings that let several processes write one SQLite file. Used by
:class:`RefractureRiskLib.store.measurements.MeasurementStore` and by commands that name a store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from RefractureRiskLib.store.schema import APPLICATION, CORE_TABLES


def store_url(location: str | Path, create: bool = True) -> str:
    """SQLAlchemy URL for ``location``: a URL is kept, a path becomes a SQLite file URL.

    ``create``: make the file's folder (not when the store is only read).
    """
    text = str(location)
    if "://" in text:
        return text
    path = Path(text)
    if path.suffix == "" and (path.is_dir() or not path.exists()):
        path = path / "measurements.sqlite" if path.is_dir() else path.with_suffix(".sqlite")
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def _sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for an in-memory database or another dialect)."""
    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _sqlite_tables(path: Path) -> tuple[set[str], dict[str, str]]:
    """Table names and ``store_info`` rows of a SQLite file, read with ``mode=ro`` (the file
    is never modified, whatever it is)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        info: dict[str, str] = {}
        if "store_info" in tables:
            info = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM store_info")}
        return tables, info
    finally:
        conn.close()


def is_store(tables: set[str], info: Mapping[str, str]) -> bool:
    """Whether a database with these tables and ``store_info`` rows is a measurement store:
    it carries the marker, or (a store of an older version) has the store's tables."""
    if info.get("application") == APPLICATION:
        return True
    return tables >= CORE_TABLES and "schema_version" in info


def _safe_url(url: str) -> str:
    """``url`` for messages: a SQLite store's file, any other with its password masked."""
    try:
        path = _sqlite_path(url)
        return str(path) if path else sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "measurement store URL"


def make_engine(url: str, read_only: bool = False) -> Engine:
    """SQLAlchemy engine for a store URL: SQLite with WAL, busy timeout and ``BEGIN IMMEDIATE``
    (``mode=ro`` when only read); a read-only PostgreSQL session when only read."""
    if url.startswith("sqlite") and read_only:
        path = _sqlite_path(url)
        if path is not None:  # mode=ro: SQLite itself refuses every write
            url = f"sqlite:///{path.resolve().as_uri()}?mode=ro&uri=true"
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_ro_pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA busy_timeout=60000")

        return engine
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets readers run beside a writer; the busy timeout makes writers queue.
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Take the write lock at BEGIN so two writers never interleave a study.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if read_only and url.startswith("postgresql"):
        return sa.create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"options": "-c default_transaction_read_only=on"},
        )
    return sa.create_engine(url, pool_pre_ping=True)


def _not_a_store(tables: set[str]) -> str:
    shown = ", ".join(sorted(tables)[:6]) + (" ..." if len(tables) > 6 else "")
    held = f"tables {shown}" if tables else "no tables"
    return (
        f"not a RefractureRisk measurement store ({held}); it is left as it is: give the "
        "store a batch created, or a new file name"
    )
