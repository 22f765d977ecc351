"""``refracture-risk train``: fit, validate and export a risk model from a cohort table."""

from __future__ import annotations

import argparse
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from RefractureRiskLib.core.errors import InputError

NAME = "train"
#: Bootstrap replicates and imputed data sets beyond these only cost time and memory.
MAX_BOOTSTRAP = 20_000
MAX_IMPUTATIONS = 100
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
    parser.add_argument(
        "--penalty",
        choices=("l2", "l1", "elasticnet", "none"),
        default="l2",
        help="penalty of the logistic regression (shrinks coefficients against overfitting)",
    )
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
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed (bootstrap, imputation): same seed, same model",
    )
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
    from RefractureRiskLib.commands.options import refuse_inputs_inside
    from RefractureRiskLib.core.atomic import OutputSet
    from RefractureRiskLib.core.extras import require

    require("sklearn", what="refracture-risk train")

    if not 1 <= args.bootstrap <= MAX_BOOTSTRAP:  # before any work: 10^8 asked for 105 GB
        raise InputError(
            "--bootstrap", f"must be between 1 and {MAX_BOOTSTRAP}, got {args.bootstrap}"
        )
    if not 2 <= args.imputations <= MAX_IMPUTATIONS:  # was silently raised to 2
        raise InputError(
            "--imputations",
            f"must be between 2 and {MAX_IMPUTATIONS} (multiple imputation needs at least 2 "
            f"data sets), got {args.imputations}",
        )
    if args.seed < 0:  # numpy refuses it only after the fit, with a traceback
        raise InputError("--seed", f"must be 0 or more, got {args.seed}")
    if args.out.suffix.lower() != ".json":
        raise InputError("--out", f"the model file must end in .json, got {args.out.name!r}")
    if args.out.exists() and not args.overwrite:
        raise InputError(args.out, "already exists; choose another --out or add --overwrite")
    refuse_inputs_inside(args.report, {"the cohort table": args.cohort})
    if Path(args.cohort).resolve() == args.out.resolve():  # a .json cohort, then the model
        raise InputError(args.out, "is the cohort table itself; choose another --out")
    card_path = args.out.with_suffix(".md")  # the card goes with its model file
    if args.report is not None and args.report.exists() and not args.report.is_dir():
        raise InputError(args.report, "--report names a folder, but this is an existing file")
    # model.json, model.md and the report are written beside their targets and moved into
    # place together at the end (see core.atomic): a failure leaves the old set untouched.
    with OutputSet(overwrite=args.overwrite) as outputs:
        model_path, card_staged = outputs.file(args.out), outputs.file(card_path, overwrite=True)
        report_dir = None if args.report is None else outputs.folder(args.report, "validation.json")
        result = _train(args, model_path, card_staged, report_dir)
    for note in outputs.notes:
        print(f"note: {note}")
    print(f"model written to {args.out} (sha256 {result.model.to_document()['content_sha256']})")
    print(f"model card written to {card_path}")
    if args.report is not None:
        print(f"report written to {args.report / 'report.html'}")
    if result.model.warning_text:
        print(f"note: {result.model.warning_text}")
    return 0


def _train(args: argparse.Namespace, model_path: Path, card_path: Path, report_dir: Path | None):
    """Fit and validate; write the model file, its card and the report at the staged paths."""
    from RefractureRiskLib.core.hashing import file_sha256
    from RefractureRiskLib.model.dev.schema import read_cohort
    from RefractureRiskLib.model.dev.training import DEFAULT_CANDIDATES, train_model, with_splines
    from RefractureRiskLib.model.dev.validation import FitSpec
    from RefractureRiskLib.model.dev.validation_report import write_report
    from RefractureRiskLib.model.modelcard import write_model_card

    cohort = read_cohort(args.cohort)
    candidates = DEFAULT_CANDIDATES
    names = [s.strip() for s in args.splines.split(",") if s.strip()]
    if names:
        candidates = with_splines(candidates, names, args.knots)
    for line in separation_warnings(cohort, candidates):
        print(f"warning: {line}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # each one counted once, printed as one line below
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
    for line in warning_lines(caught):
        print(f"warning: {line}")
    result.model.save(model_path)
    write_model_card(result.model, card_path, file_name=model_path.name)
    if report_dir is not None:
        write_report(result, report_dir)
    return result


def separation_warnings(cohort: Any, candidates: Sequence[Any]) -> list[str]:
    """Yes/no terms (sex, treatment, leakage, ...) that separate the 1-year outcome perfectly,
    named with their counts ("perfect separation by sex: 0 events in men (n = 180)"): the
    penalty keeps such a coefficient finite, but the data do not determine its size."""
    import numpy as np
    import pandas as pd

    from RefractureRiskLib.model.dev.markers import separation_text
    from RefractureRiskLib.model.terms import design_matrix

    out = []
    known = cohort[cohort["outcome_1y"].notna()]
    for c in candidates:
        if c.transform not in ("indicator", "threshold") or c.input not in known:
            continue
        rows = known[known[c.input].notna()]
        if rows.empty:
            continue
        x = design_matrix([c.build(np.empty(0))], {c.input: rows[c.input]})[:, 0]
        text = separation_text(pd.DataFrame({c.name: x}), rows["outcome_1y"].to_numpy(float))
        if text:
            out.append(
                f"{text}: the penalty keeps the coefficient of {c.name} ({c.label}) finite, but "
                "these data do not determine its size; calibration in a centre and its Cox "
                "hazard ratio may not be estimable"
            )
    return out


def warning_lines(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    """Warnings of numpy, scikit-learn, statsmodels, ... as one line each, counted, in the
    project's words instead of their source lines: "numerical problem in validation (invalid
    value encountered in divide; 3 times): ..."."""
    counts = Counter(
        (Path(w.filename).stem, w.category.__name__, str(w.message).splitlines()[0]) for w in caught
    )
    return [
        f"numerical problem in {where} ({category}: {message}; {n} time{'s' * (n > 1)}): the "
        "estimates it affects may be not available (NaN) or infinite"
        for (where, category, message), n in counts.items()
    ]
