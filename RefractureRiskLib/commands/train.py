"""``refracture-risk train``: fit, validate and export a risk model from a cohort table."""

from __future__ import annotations

import argparse
from pathlib import Path

from RefractureRiskLib.core.errors import InputError

NAME = "train"
HELP = (
    "train a penalised logistic risk model on a cohort table, validate it and write the model file"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "cohort",
        type=Path,
        help="cohort table (.csv, .xlsx or .parquet; see docs/cohort_schema.md)",
    )
    parser.add_argument("--out", type=Path, required=True, help="model file to write (.json)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing model file and its card"
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="folder for the validation report"
    )
    parser.add_argument("--penalty", choices=("l2", "l1", "elasticnet", "none"), default="l2")
    parser.add_argument("--l1-ratio", type=float, default=0.5, help="elastic-net mixing (0-1)")
    parser.add_argument(
        "--splines",
        default="",
        help="comma-separated continuous inputs to model with restricted cubic splines",
    )
    parser.add_argument("--knots", type=int, default=4, help="knots per spline (3-7)")
    parser.add_argument(
        "--bootstrap", type=int, default=200, help="bootstrap replicates (>= 200 recommended)"
    )
    parser.add_argument(
        "--imputations", type=int, default=5, help="imputed data sets when predictors are missing"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-loco", action="store_true", help="skip leave-one-centre-out validation"
    )
    parser.add_argument(
        "--mark-validated",
        action="store_true",
        help="mark the model validated (only after external validation and approval; default: "
        "every output says not validated, not for clinical use)",
    )
    parser.add_argument(
        "--name", default="locally trained model", help="model name stored in the file"
    )


def run(args: argparse.Namespace) -> int:
    from RefractureRiskLib.core.hashing import file_sha256
    from RefractureRiskLib.model.modelcard import write_model_card
    from RefractureRiskLib.model.schema import read_cohort
    from RefractureRiskLib.model.training import DEFAULT_CANDIDATES, train_model, with_splines
    from RefractureRiskLib.model.validation import FitSpec
    from RefractureRiskLib.model.validation_report import write_report

    if args.out.suffix.lower() != ".json":
        raise InputError("--out", f"the model file must end in .json, got {args.out.name!r}")
    if args.out.exists() and not args.overwrite:
        raise InputError(args.out, "already exists; choose another --out or add --overwrite")
    cohort = read_cohort(args.cohort)
    candidates = DEFAULT_CANDIDATES
    names = [s.strip() for s in args.splines.split(",") if s.strip()]
    if names:
        candidates = with_splines(candidates, names, args.knots)
    result = train_model(
        cohort,
        candidates,
        FitSpec(args.penalty, args.l1_ratio),
        n_imputations=args.imputations,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
        loco=not args.no_loco,
        name=args.name,
        validated=args.mark_validated,
        data_source={
            "file": args.cohort.name,
            "sha256": file_sha256(args.cohort),
            "rows": len(cohort),
        },
    )
    path = result.model.save(args.out)
    print(f"model written to {path} (sha256 {result.model.to_document()['content_sha256']})")
    card = write_model_card(result.model, path.with_suffix(".md"), file_name=path.name)
    print(f"model card written to {card}")
    if args.report is not None:
        print(f"report written to {write_report(result, args.report)}")
    if result.model.warning_text:
        print(f"note: {result.model.warning_text}")
    return 0
