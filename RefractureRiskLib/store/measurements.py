"""Append-only measurement store: who measured what, when and how.

One row per (study, level, map) measurement. A correction is a new row that *supersedes* the
previous one for the same key (patient, study, level, map, reader, session); nothing is updated in
place or deleted. All rows of one study are written in one transaction, so a killed batch leaves
either the whole study or none of it.

The store is SQLite by default (a file, WAL mode, busy timeout so several processes can write)
or any SQLAlchemy URL (e.g. ``postgresql+psycopg://user@host/db``) for a store shared by readers.

A store marks itself at creation (``store_info`` rows ``application`` and ``schema_version``);
stores of older versions, without the ``application`` row, are recognised by their tables. A
database that is neither is refused before anything is written to it. ``read_only=True`` opens
a SQLite file with ``mode=ro`` (and a PostgreSQL session read-only), for commands that only read.

``analysis_keys`` ties a fingerprint of a study's inputs and analysis settings (see
:func:`RefractureRiskLib.batch.workers.analysis_key`) to the run that recorded it, so batches
sharing one store record each study once.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from RefractureRiskLib import __version__
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.hashing import file_sha256
from RefractureRiskLib.store.connection import (
    _not_a_store,
    _safe_url,
    _sqlite_path,
    _sqlite_tables,
    is_store,
    make_engine,
    store_url,
)
from RefractureRiskLib.store.rows import _now, measurement_row, run_row
from RefractureRiskLib.store.schema import (
    APPLICATION,
    SCHEMA_VERSION,
    _meta,
    analysis_keys,
    failures,
    measurements,
    store_info,
    study_runs,
)
from RefractureRiskLib.store.schema import (
    CORE_TABLES as CORE_TABLES,  # re-exported: importable from here as before
)


@dataclass(frozen=True)
class Measurement:
    """Statistics of one ROI on one map, as handed to the store.

    ``statistics`` maps statistic keys (with units in the key or in ``unit``) to numbers;
    ``mean``/``sd``/``median``/``n_voxels`` are also stored in their own columns for queries.
    """

    level: str
    map: str
    unit: str
    statistics: Mapping[str, float]
    flags: tuple[str, ...] = ()
    included: bool = True
    series_uid: str | None = None
    roi_geometry: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class StudySubmission:
    """Everything measured on one study by one reader in one session."""

    patient_id: str
    study_uid: str
    reader: str
    roi_method: str
    measurements: tuple[Measurement, ...]
    session: int = 1
    labelmap_path: str | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)


#: Opening a store that another process is creating (its tables, WAL mode) can meet a lock
#: SQLite reports at once instead of waiting its busy timeout (where waiting could deadlock):
#: the opening steps are tried again for up to this long (seconds). Seen in CI: two batch
#: commands started together on one new store, one refused "database is locked".
OPEN_RETRY_S = 30.0


class MeasurementStore:
    """Append-only store of measurements; safe for several concurrent writers.

    ``location``: a SQLAlchemy URL, or a path (a folder gets ``measurements.sqlite``).
    ``read_only``: only read (the store must exist; nothing is ever written to it).
    A database that is not a measurement store (see :func:`is_store`) is refused untouched.
    """

    def __init__(self, location: str | Path, read_only: bool = False) -> None:
        self.url = store_url(location, create=not read_only)
        self.read_only = read_only
        deadline = time.monotonic() + OPEN_RETRY_S
        delay = 0.05
        while True:
            try:
                self._open()
                return
            except (sa.exc.SQLAlchemyError, sqlite3.Error, ImportError) as err:
                # Not SQLite, no server, no driver: one line naming the store, never a
                # traceback; a lock the busy timeout does not wait for: try again.
                with contextlib.suppress(AttributeError):
                    self.engine.dispose()
                cause = getattr(err, "orig", None) or err
                detail = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
                if "locked" in detail and time.monotonic() + delay < deadline:
                    time.sleep(delay)
                    delay = min(2.0 * delay, 1.0)
                    continue
                raise InputError(
                    _safe_url(self.url),
                    f"cannot open the measurement store ({type(cause).__name__}: {detail})",
                ) from None

    def _open(self) -> None:
        """Check the store, make its engine and (writable) its tables and marker rows."""
        try:
            self._check_sqlite_file()
            self.engine: Engine = self._make_engine(self.url, self.read_only)
            if self.read_only:
                self._check_is_store()
            else:
                self._check_is_store(allow_empty=True)
                _meta.create_all(self.engine, checkfirst=True)
            self._check_schema_version()
        except InputError:
            with contextlib.suppress(AttributeError):
                self.engine.dispose()
            raise

    def _check_sqlite_file(self) -> None:
        """A SQLite file is judged with a read-only connection before any engine touches it
        (the engine's WAL pragma alone would rewrite an unrelated file's header)."""
        path = _sqlite_path(self.url)
        if path is None:
            return
        if not path.is_file():
            if self.read_only:
                raise InputError(path, "measurement store not found")
            return
        if path.stat().st_size == 0:
            if self.read_only:
                raise InputError(path, "is empty, not a measurement store")
            return
        tables, info = _sqlite_tables(path)
        if not self.read_only and tables <= set(_meta.tables):
            # empty, or a store another writer is creating right now (its tables come first,
            # the marker row just after): only a store's own tables, nothing foreign
            return
        if not is_store(tables, info):
            raise InputError(path, _not_a_store(tables))

    def _check_is_store(self, allow_empty: bool = False) -> None:
        """Any database (e.g. PostgreSQL): refuse one that holds tables but not a store's."""
        tables = set(sa.inspect(self.engine).get_table_names())
        info: dict[str, str] = {}
        if "store_info" in tables:
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(store_info.c.key, store_info.c.value)).all()
            info = {str(k): str(v) for k, v in rows}
        if is_store(tables, info) or (allow_empty and tables <= set(_meta.tables)):
            return
        raise InputError(_safe_url(self.url), _not_a_store(tables))

    def _check_schema_version(self) -> None:
        version_q = sa.select(store_info.c.value).where(store_info.c.key == "schema_version")
        if not self.read_only:
            for key, value in (
                ("schema_version", str(SCHEMA_VERSION)),
                ("application", APPLICATION),
            ):
                # IntegrityError: another writer created the row first, which is fine.
                with contextlib.suppress(sa.exc.IntegrityError), self.engine.begin() as conn:
                    q = sa.select(store_info.c.value).where(store_info.c.key == key)
                    if conn.execute(q).first() is None:
                        conn.execute(store_info.insert().values(key=key, value=value))
        with self.engine.connect() as conn:
            found = conn.execute(version_q).scalar_one_or_none()
        if found is None:  # read-only, a store of an older version without the row
            return
        if int(found) != SCHEMA_VERSION:
            raise InputError(
                _safe_url(self.url),
                f"store schema version {found}, this software expects {SCHEMA_VERSION}",
            )

    _make_engine = staticmethod(make_engine)

    # -- writing ---------------------------------------------------------------------------
    def record_study(
        self,
        submission: StudySubmission,
        analysis_key: str | None = None,
        reanalyze: bool = False,
    ) -> str | None:
        """Write all measurements of one study in one transaction; returns the run id.

        A measurement whose key (patient, study, level, map, reader, session) already exists
        supersedes the current row for that key (the old row stays).

        ``analysis_key``: fingerprint of the study's inputs and settings. When a run with the
        same key is already recorded (by this or a concurrent batch), nothing is written and
        None is returned, unless ``reanalyze`` (then the key points to the new run).
        """
        if not submission.measurements:
            raise ValueError(f"patient {submission.patient_id}: no measurements to record")
        try:
            return self._record_study(submission, analysis_key, reanalyze)
        except sa.exc.IntegrityError:
            # Another writer recorded the same key between our check and our insert (a server
            # database; SQLite's BEGIN IMMEDIATE serialises the check already).
            if analysis_key is not None and analysis_key in self.recorded_analyses([analysis_key]):
                return None
            raise

    def _record_study(
        self, submission: StudySubmission, analysis_key: str | None, reanalyze: bool
    ) -> str | None:
        run_id = str(uuid.uuid4())
        now = _now()
        sha = file_sha256(submission.labelmap_path) if submission.labelmap_path else None
        with self.engine.begin() as conn:
            known = None
            if analysis_key is not None:
                q = sa.select(analysis_keys.c.run_id).where(
                    analysis_keys.c.analysis_key == analysis_key
                )
                known = conn.execute(q).first()
                if known is not None and not reanalyze:
                    return None
            conn.execute(study_runs.insert().values(**run_row(run_id, submission, now)))
            current = self._current_ids(conn, submission)
            rows = [
                measurement_row(m, run_id, submission, sha, now, current.get((m.level, m.map)))
                for m in submission.measurements
            ]
            conn.execute(measurements.insert(), rows)
            if analysis_key is not None:
                key_row = {"run_id": run_id, "patient_id": submission.patient_id}
                key_row["recorded_at_utc"] = now
                if known is None:
                    conn.execute(
                        analysis_keys.insert().values(analysis_key=analysis_key, **key_row)
                    )
                else:
                    conn.execute(
                        analysis_keys.update()
                        .where(analysis_keys.c.analysis_key == analysis_key)
                        .values(**key_row)
                    )
        return run_id

    @staticmethod
    def _current_ids(conn: Any, sub: StudySubmission) -> dict[tuple[str, str], int]:
        m = measurements.c
        rows = conn.execute(
            sa.select(m.level, m.map, sa.func.max(m.measurement_id))
            .where(
                m.patient_id == sub.patient_id,
                m.study_uid == sub.study_uid,
                m.reader == sub.reader,
                m.session == sub.session,
            )
            .group_by(m.level, m.map)
        ).all()
        return {(lv, mp): int(mid) for lv, mp, mid in rows}

    def record_failure(self, patient_id: str, reason: str, source: str | None = None) -> None:
        """Record that a study could not be measured (kept; a later success is what counts)."""
        with self.engine.begin() as conn:
            conn.execute(
                failures.insert().values(
                    patient_id=patient_id,
                    source=source,
                    reason=reason,
                    recorded_at_utc=_now(),
                    software_version=__version__,
                )
            )

    # -- reading ---------------------------------------------------------------------------
    def completed_patients(self, reader: str | None = None) -> set[str]:
        """Patients with at least one completed study run (by ``reader`` if given)."""
        q = sa.select(study_runs.c.patient_id).distinct()
        if reader is not None:
            q = q.where(study_runs.c.reader == reader)
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(q)}

    def recorded_analyses(self, keys: Iterable[str]) -> set[str]:
        """Which of these analysis keys are recorded (see :meth:`record_study`)."""
        wanted = list(keys)
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                q = sa.select(analysis_keys.c.analysis_key).where(
                    analysis_keys.c.analysis_key.in_(wanted[i : i + 500])
                )
                found |= {r[0] for r in conn.execute(q)}
        return found

    def failed_patients(self) -> dict[str, str]:
        """Latest failure reason per patient that has no completed run."""
        done = sa.select(study_runs.c.patient_id)
        q = (
            sa.select(failures.c.patient_id, failures.c.reason)
            .where(failures.c.patient_id.not_in(done))
            .order_by(failures.c.failure_id)
        )
        with self.engine.connect() as conn:  # one statement: consistent while others write
            rows = conn.execute(q).all()
        return dict(rows)

    def current_measurements(
        self,
        *,
        maps: Sequence[str] | None = None,
        readers: Iterable[str] | None = None,
        with_run_provenance: bool = False,
    ) -> list[dict[str, Any]]:
        """Rows not superseded by a later row, oldest first, as dicts.

        With ``with_run_provenance`` each row also carries its study run's provenance JSON as
        ``run_provenance_json``, read in the same statement, so a study recorded by another
        process meanwhile can never give a row whose run is missing.
        """
        m = measurements.c
        superseded = sa.select(m.supersedes_id).where(m.supersedes_id.is_not(None))
        if with_run_provenance:
            q = sa.select(
                measurements, study_runs.c.provenance_json.label("run_provenance_json")
            ).join(study_runs, study_runs.c.run_id == m.run_id)
        else:
            q = sa.select(measurements)
        q = q.where(m.measurement_id.not_in(superseded))
        if maps is not None:
            q = q.where(m.map.in_(list(maps)))
        if readers is not None:
            q = q.where(m.reader.in_(list(readers)))
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(m.measurement_id)).mappings().all()
        return [dict(r) for r in rows]

    def all_measurements(self) -> list[dict[str, Any]]:
        """Every row ever written, superseded ones included, oldest first."""
        with self.engine.connect() as conn:
            q = sa.select(measurements).order_by(measurements.c.measurement_id)
            return [dict(r) for r in conn.execute(q).mappings().all()]

    def study_runs(self) -> list[dict[str, Any]]:
        """Every completed study run, oldest first."""
        with self.engine.connect() as conn:
            q = sa.select(study_runs).order_by(study_runs.c.recorded_at_utc)
            return [dict(r) for r in conn.execute(q).mappings().all()]

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> MeasurementStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
