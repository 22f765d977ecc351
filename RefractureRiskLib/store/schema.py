"""The tables of the measurement store (see :mod:`RefractureRiskLib.store.measurements`).

Declarative: one ``sa.Table`` per kind of row, all on one ``MetaData``, plus the markers a store
carries in ``store_info`` so a database can be recognised as a store.
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = 1
#: ``store_info`` row ``application`` of every store this software creates.
APPLICATION = "RefractureRisk measurement store"
#: The tables of a store (the ``analysis_keys`` table came later and is added on opening).
CORE_TABLES = frozenset({"study_runs", "measurements", "failures", "store_info"})

_meta = sa.MetaData()

#: One row per completed study submission (the unit of a transaction).
study_runs = sa.Table(
    "study_runs",
    _meta,
    sa.Column("run_id", sa.String(36), primary_key=True),
    sa.Column("patient_id", sa.String(64), nullable=False, index=True),
    sa.Column("study_uid", sa.String(128), nullable=False, index=True),
    sa.Column("reader", sa.String(128), nullable=False),
    sa.Column("session", sa.Integer, nullable=False),
    sa.Column("roi_method", sa.String(32), nullable=False),
    sa.Column("software_version", sa.String(32), nullable=False),
    sa.Column("recorded_at_utc", sa.String(32), nullable=False),
    sa.Column("n_measurements", sa.Integer, nullable=False),
    sa.Column("provenance_json", sa.Text, nullable=False),
)

#: One row per (level, map) statistic set; never updated in place.
measurements = sa.Table(
    "measurements",
    _meta,
    sa.Column("measurement_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(36), sa.ForeignKey("study_runs.run_id"), nullable=False),
    sa.Column("patient_id", sa.String(64), nullable=False),
    sa.Column("study_uid", sa.String(128), nullable=False),
    sa.Column("series_uid", sa.String(128)),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("map", sa.String(16), nullable=False),
    sa.Column("unit", sa.String(16), nullable=False),
    sa.Column("reader", sa.String(128), nullable=False),
    sa.Column("session", sa.Integer, nullable=False),
    sa.Column("roi_method", sa.String(32), nullable=False),
    sa.Column("roi_geometry_json", sa.Text),
    sa.Column("labelmap_path", sa.Text),
    sa.Column("labelmap_sha256", sa.String(64)),
    sa.Column("flags", sa.String(128), nullable=False, default=""),
    sa.Column("included", sa.Boolean, nullable=False),
    sa.Column("n_voxels", sa.Integer),
    sa.Column("mean", sa.Float),
    sa.Column("sd", sa.Float),
    sa.Column("median", sa.Float),
    sa.Column("statistics_json", sa.Text, nullable=False),
    sa.Column("recorded_at_utc", sa.String(32), nullable=False),
    sa.Column("software_version", sa.String(32), nullable=False),
    sa.Column("supersedes_id", sa.Integer, nullable=True),
    sa.Index("ix_measurement_key", "patient_id", "study_uid", "level", "map", "reader", "session"),
)

#: Failed attempts, kept for the record and for retries (a later success supersedes them).
failures = sa.Table(
    "failures",
    _meta,
    sa.Column("failure_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("patient_id", sa.String(64), nullable=False, index=True),
    sa.Column("source", sa.Text),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("recorded_at_utc", sa.String(32), nullable=False),
    sa.Column("software_version", sa.String(32), nullable=False),
)

store_info = sa.Table(
    "store_info",
    _meta,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


#: One row per recorded analysis fingerprint (inputs + settings + software version).
analysis_keys = sa.Table(
    "analysis_keys",
    _meta,
    sa.Column("analysis_key", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(36), sa.ForeignKey("study_runs.run_id"), nullable=False),
    sa.Column("patient_id", sa.String(64), nullable=False),
    sa.Column("recorded_at_utc", sa.String(32), nullable=False),
)
