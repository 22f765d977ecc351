"""``refracture-risk describe``: Table 1, marker correlations and odds ratios of a cohort."""

from __future__ import annotations

import argparse
from pathlib import Path

from RefractureRiskLib.core.errors import InputError

NAME = "describe"
#: Fewer patients give no spread, no test and no odds ratio: nothing to describe.
MIN_PATIENTS = 2
HELP = (
    "describe a cohort: Table 1 by 1-year outcome, PDFF/R2* correlations, marker odds ratios "
    "(descriptive only, not used to select model terms)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cohort", type=Path, help="cohort table (.csv, .xlsx or .parquet)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument(
        "--allow-unknown-columns",
        action="store_true",
        help="keep columns the cohort schema does not define instead of refusing the file",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier description in --out"
    )


def run(args: argparse.Namespace) -> int:
    from RefractureRiskLib.commands.options import refuse_inputs_inside
    from RefractureRiskLib.core.atomic import OutputSet
    from RefractureRiskLib.core.extras import require

    require("statsmodels", what="refracture-risk describe")
    from RefractureRiskLib.model.dev.describe import DESCRIPTIVE_NOTE, describe_cohort
    from RefractureRiskLib.model.dev.schema import read_cohort

    refuse_inputs_inside(args.out, {"the cohort table": args.cohort})
    # Written beside --out and moved into place at the end (see core.atomic).
    with OutputSet(overwrite=args.overwrite) as outputs:
        staging = outputs.folder(args.out, marker="describe.html")
        cohort = read_cohort(args.cohort, allow_unknown_columns=args.allow_unknown_columns)
        if len(cohort) < MIN_PATIENTS:  # one patient gave blank means and an empty test table
            raise InputError(
                args.cohort,
                f"{len(cohort)} patient row(s): describing a cohort needs at least {MIN_PATIENTS}",
            )
        result = describe_cohort(cohort, staging)
    y = cohort["outcome_1y"]
    print(
        f"{len(cohort)} patients from {cohort['centre_id'].nunique()} centre(s); 1-year outcome "
        f"known for {int(y.notna().sum())}, with {int((y == 1).sum())} re-fractures."
    )
    for path in result.files:
        print(f"wrote {outputs.final(path)}")
    # odds ratios that could not be estimated, each reason once (e.g. perfect separation)
    ors = result.odds_ratios
    for note in dict.fromkeys(n for n in ors.get("note", []) if isinstance(n, str) and n):
        markers = ", ".join(ors.loc[ors["note"] == note, "marker"])
        print(f"odds ratio of {markers}: {note}")
    print(DESCRIPTIVE_NOTE)
    return 0
