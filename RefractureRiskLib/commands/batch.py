"""``refracture-risk batch``: every patient's study -> measurement store -> cohort table.

ROOT is a folder with one sub-folder per patient, named by its (pseudonymised) patient_id, each
holding that patient's DICOM study; or a manifest CSV with columns patient_id,study_path.
Outputs in --out: patients/<patient_id>/ (the per-patient files of ``analyze``),
measurements.sqlite (unless --store), cohort.csv (the model's cohort schema, ready for
``train``), cohort_problems.csv (when the table does not pass the schema) and batch_status.csv.

Exit status: 0 when every patient was measured, had a clinical row and the cohort table passes
the schema; 1 when the batch ran to the end but some patient failed or was reported, or the
cohort table has schema problems (all listed); 2 for bad input (root, clinical table, options).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

NAME = "batch"
HELP = "analyse a cohort (one study per patient) in parallel into a store and a cohort table"


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


EPILOG = (
    "Writes OUT/patients/<patient_id>/ (as analyze), the measurement store, OUT/cohort.csv (the "
    "cohort schema, ready for train; problems in OUT/cohort_problems.csv) and "
    "OUT/batch_status.csv. Re-running skips studies the store already holds with the same "
    "inputs, settings and software version (--reanalyze: analyse them again) and retries the "
    "rest; a failing study is recorded with its reason and never stops the batch. One batch "
    "at a time per OUT (lock file OUT/.batch.lock); batches with different OUT may share one "
    "--store and record each study once. OUT and a SQLite --store lie outside the input "
    "(ROOT itself and every study folder; OUT may be a folder inside ROOT). "
    "Exit status 0: all measured and the cohort passes the schema; 1: finished with per-patient "
    "problems or schema problems (listed); 2: bad input."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    _add_inputs_and_output(parser)
    _add_where_it_runs(parser)
    _add_store_options(parser)
    _add_analysis_options(parser)


def _add_inputs_and_output(parser: argparse.ArgumentParser) -> None:
    """The studies, the cohort's clinical table and the output folder."""
    parser.add_argument(
        "root",
        type=Path,
        help="folder of study folders (one per patient, folder name = patient_id), or a "
        "manifest CSV with columns patient_id,study_path",
    )
    parser.add_argument(
        "--clinical",
        type=Path,
        required=True,
        help="cohort clinical table (CSV/Excel/Parquet, one row per patient_id); a patient "
        "without a row is measured without risk and reported",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")


def _add_where_it_runs(parser: argparse.ArgumentParser) -> None:
    """Worker processes here, or a Dask cluster."""
    parser.add_argument(
        "--workers",
        type=int,
        default=_default_workers(),
        help="parallel worker processes (default: the CPUs available; 0 = in this process)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on a Dask distributed cluster (e.g. tcp://host:8786); its workers need "
        "RefractureRiskLib and the same paths to ROOT and --out",
    )
    where.add_argument(
        "--dask-local",
        action="store_true",
        help="run on a local Dask cluster of --workers processes",
    )


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    """Who is recorded, in which store, and which studies are (re)analysed."""
    parser.add_argument(
        "--reader", default="automatic", help="reader name recorded with every measurement"
    )
    parser.add_argument(
        "--store",
        help="measurement store: SQLAlchemy URL (e.g. postgresql+psycopg://user@host/db) or "
        "SQLite file (default: OUT/measurements.sqlite)",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="analyse only the patients whose last attempt failed (a plain re-run retries "
        "them too, together with every patient not yet complete)",
    )
    parser.add_argument(
        "--reanalyze",
        action="store_true",
        help="analyse and record again the studies the store already holds with the same "
        "inputs and settings (default: skip them)",
    )


def _add_analysis_options(parser: argparse.ArgumentParser) -> None:
    """The model, the maps' units, missing model inputs, and what is written per patient."""
    parser.add_argument("--model", type=Path, help="model file (default: demonstration model)")
    parser.add_argument(
        "--pdff-unit",
        choices=("fraction", "percent", "permille"),
        help="stored PDFF unit of every study (override when inspect reports an ambiguous "
        "range; default: detected per study)",
    )
    parser.add_argument(
        "--r2s-unit",
        choices=("per_s", "per_ms", "t2star_ms", "t2star_s"),
        help="stored R2*/T2* unit of every study (override when inspect reports an ambiguous "
        "range; default: detected per study)",
    )
    parser.add_argument(
        "--missing",
        choices=("refuse", "range"),
        default="refuse",
        help="a model input missing from a patient's clinical row: 'refuse' computes no risk "
        "for that patient and names the input; 'range' shows the risk as the range over the "
        "input's plausible values, labelled as a range",
    )
    parser.add_argument(
        "--no-report", action="store_true", help="skip the per-patient HTML/PDF/PNG report"
    )
    parser.add_argument(
        "--export-dicom", action="store_true", help="also write DICOM SEG + SR per patient"
    )


def run(args: argparse.Namespace) -> int:
    from RefractureRiskLib.core.extras import require, require_store, require_table_reader

    # Before anything is imported or analysed: a missing extra is one line, not a traceback.
    require("sqlalchemy", extra="batch", what="refracture-risk batch")
    if args.scheduler or args.dask_local:
        require("dask.distributed", extra="batch", what="batch with --scheduler/--dask-local")
    require_store(args.store)
    require_table_reader(args.clinical.suffix)

    from RefractureRiskLib.batch import BatchConfig, run_batch
    from RefractureRiskLib.commands.options import analysis_options
    from RefractureRiskLib.core.errors import InputError

    if args.workers < 0:
        raise InputError("--workers", f"got {args.workers}; expected 0 or more")
    if args.dask_local and args.workers < 1:
        raise InputError("--workers", "a local Dask cluster needs at least 1 worker")
    config = BatchConfig(
        root=args.root,
        clinical=args.clinical,
        out=args.out,
        workers=args.workers,
        scheduler=args.scheduler,
        dask_local=args.dask_local,
        store=args.store,
        retry_failed_only=args.retry_failed,
        reanalyze=args.reanalyze,
        options=analysis_options(args),
    )
    summary = run_batch(config, stream=sys.stderr)
    print(summary.format_text())
    return 0 if summary.ok else 1
