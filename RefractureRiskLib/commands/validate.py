"""``refracture-risk validate``: external validation of a model file on a new cohort table."""

from __future__ import annotations

import argparse
import datetime as _dt
import warnings
from pathlib import Path

from RefractureRiskLib.commands.train import warning_lines
from RefractureRiskLib.core.errors import InputError

NAME = "validate"
#: Bootstrap replicates beyond this only cost time and memory (the replicate indices alone take
#: 8 bytes x replicates x patients: 10^9 replicates asked for a terabyte).
MAX_BOOTSTRAP = 20_000
HELP = (
    "external validation of a model file on a new cohort (a clinic's own patients): "
    "discrimination, calibration and net benefit with 95% bootstrap intervals"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="model file (.json) to validate")
    parser.add_argument(
        "cohort",
        type=Path,
        help="cohort table with 1-year follow-up (.csv, .xlsx or .parquet; "
        "see docs/cohort_schema.md)",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap replicates for the 95%% intervals"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed of the bootstrap: same seed, same numbers"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the results of an earlier run in --out"
    )
    parser.add_argument(
        "--missing",
        choices=("refuse", "substitute"),
        default="refuse",
        help="a row without a model input: refuse the cohort naming the inputs, or score it "
        "with the model's stand-in value for the cohort's figures only (marked in "
        "predictions.csv)",
    )


def run(args: argparse.Namespace) -> int:
    from RefractureRiskLib.commands.options import refuse_inputs_inside
    from RefractureRiskLib.core.atomic import OutputSet, recover_before_reading

    if not 1 <= args.bootstrap <= MAX_BOOTSTRAP:
        raise InputError(
            "--bootstrap", f"must be between 1 and {MAX_BOOTSTRAP}, got {args.bootstrap}"
        )
    refuse_inputs_inside(args.out, {"the model file": args.model, "the cohort table": args.cohort})
    if args.seed < 0:  # numpy refuses it only after the scoring, with a traceback
        raise InputError("--seed", f"must be 0 or more, got {args.seed}")
    if args.out.exists() and not args.out.is_dir():
        raise InputError(args.out, "exists and is not a folder; choose another --out")
    if (args.out / "validation.json").exists() and not args.overwrite:
        raise InputError(
            args.out / "validation.json",
            "already exists; choose another --out or add --overwrite",
        )
    for note in recover_before_reading(args.model):  # a train killed after its commit point
        print(f"note: {note}")
    # Written beside --out and moved into place at the end (see core.atomic).
    with OutputSet(overwrite=args.overwrite) as outputs:
        paths = _validate(args, outputs.folder(args.out, marker="validation.json"))
    paths = {name: outputs.final(path) for name, path in paths.items()}
    for note in outputs.notes:
        print(f"note: {note}")
    for path in paths.values():
        print(f"written: {path}")
    return 0


def _validate(args: argparse.Namespace, staging: Path) -> dict[str, Path]:
    """Validate, print the figures and write the result files into ``staging``."""
    from RefractureRiskLib import __version__
    from RefractureRiskLib.core.hashing import file_sha256
    from RefractureRiskLib.model.dev.external import validate_external
    from RefractureRiskLib.model.dev.external_report import estimate_text, write_external_report
    from RefractureRiskLib.model.dev.schema import read_cohort
    from RefractureRiskLib.model.modelfile import load_model

    model = load_model(args.model)
    cohort = read_cohort(args.cohort)
    if len(cohort) == 0:
        raise InputError(args.cohort, "the cohort table is empty")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # printed as one line each below
            result = validate_external(
                model, cohort, n_bootstrap=args.bootstrap, seed=args.seed, missing=args.missing
            )
    except InputError as err:  # name the cohort file with the column at fault
        source = err.source or ""
        if not source.startswith("model"):
            source = f"{args.cohort}: {source}" if source else str(args.cohort)
        raise InputError(source, err.reason) from None
    provenance = {
        "cohort": {
            "file": args.cohort.name,
            "sha256": file_sha256(args.cohort),
            "rows": len(cohort),
        },
        "model_file": args.model.name,
        "software": {"name": "RefractureRisk", "version": __version__},
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    paths = write_external_report(result, staging, args.cohort.name, provenance)

    c = estimate_text(result.metrics["c_statistic"], result.ci["c_statistic"], 3)
    s = estimate_text(result.metrics["cal_slope"], result.ci["cal_slope"], 2)
    n_refused = len({r.row for r in result.refused})
    print(f"external validation of {model.name} on {args.cohort.name}")
    print(
        f"n = {result.n} with known 1-year outcome, {result.events} events "
        f"({n_refused} rows refused, {result.n_unknown_outcome} outcome unknown)"
    )
    substituted = {k: n for k, n in result.missing_counts.items() if n}
    if substituted:
        rows = int((result.predictions["missing_inputs"].fillna("") != "").sum())
        per_input = ", ".join(f"{k} {n}" for k, n in substituted.items())
        print(
            f"note: {rows} row(s) scored with the model's substitute for a missing input "
            f"({per_input}): their risks in predictions.csv are marked (missing_inputs) and "
            "serve the cohort figures, not as any patient's risk"
        )
    print(f"C-statistic {c}")
    print(f"calibration slope {s}")
    for line in warning_lines(caught):
        print(f"warning: {line}")
    if result.model_warning:
        print(f"note: {result.model_warning}")
    return paths
