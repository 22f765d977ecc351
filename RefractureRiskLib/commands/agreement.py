"""``refracture-risk agreement``: intra- and inter-reader ICC and Bland-Altman from the store."""

from __future__ import annotations

import argparse
from pathlib import Path

from RefractureRiskLib.core.errors import InputError

NAME = "agreement"
HELP = "intra- and inter-reader agreement (ICC(A,1) with 95% CI, Bland-Altman) per level"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", required=True, help="measurement store: SQLite file/folder or SQLAlchemy URL"
    )
    parser.add_argument("--map", default="pdff", choices=("pdff", "r2s"), help="map to compare")
    parser.add_argument(
        "--intra", metavar="READER", help="intra-reader agreement of READER across sessions"
    )
    parser.add_argument(
        "--session",
        type=int,
        default=1,
        help="for agreement between readers: which reading session to compare (each reader's "
        "first reading is session 1)",
    )
    parser.add_argument("--out", type=Path, help="write the table as CSV here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def run(args: argparse.Namespace) -> int:
    from RefractureRiskLib.core.extras import require_store

    require_store(str(args.store))
    from RefractureRiskLib.core.atomic import atomic_file
    from RefractureRiskLib.store.agreement import inter_reader_agreement, intra_reader_agreement
    from RefractureRiskLib.store.measurements import MeasurementStore, _sqlite_path, store_url

    location = str(args.store)
    if "://" not in location and not Path(location).exists():
        raise InputError(location, "measurement store not found")
    if args.out is not None and args.out.exists() and not args.overwrite:
        raise InputError(args.out, "already exists; choose another --out or add --overwrite")
    db = _sqlite_path(store_url(location, create=False))
    files = {Path(f"{db.resolve()}{end}") for end in ("", "-wal", "-shm")} if db else set()
    if args.out is not None and args.out.resolve() in files:  # --overwrite replaced the store
        raise InputError(args.out, "is the measurement store itself; choose another --out")
    with MeasurementStore(location, read_only=True) as store:
        rows = store.current_measurements(maps=[args.map])
    try:
        if args.intra:
            table = intra_reader_agreement(rows, args.intra, args.map)
        else:
            table = inter_reader_agreement(rows, args.map, args.session)
    except ValueError as err:
        raise InputError(location, str(err)) from None
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if args.out:
        with atomic_file(args.out, overwrite=args.overwrite) as staged:
            table.to_csv(staged, index=False)
        print(f"written: {args.out}")
    return 0
