"""``refracture-risk samplesize``: Riley et al. minimum sample size for the 1-year risk model."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from RefractureRiskLib.core.errors import InputError

NAME = "samplesize"
HELP = (
    "minimum sample size for developing the risk model (Riley et al. 2019/2020 criteria, as "
    "pmsampsize computes them), or how many parameters a cohort supports"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--parameters", type=int, help="number of candidate predictor parameters (P)"
    )
    parser.add_argument(
        "--prevalence", type=float, help="anticipated 1-year outcome proportion (0-1), e.g. 0.12"
    )
    perf = parser.add_mutually_exclusive_group()
    perf.add_argument("--c-statistic", type=float, help="anticipated C-statistic, e.g. 0.75")
    perf.add_argument("--r2-cs", type=float, help="anticipated Cox-Snell R^2")
    perf.add_argument("--nagelkerke-r2", type=float, help="anticipated Nagelkerke R^2")
    parser.add_argument("--shrinkage", type=float, default=0.9, help="target shrinkage (0.9)")
    parser.add_argument("--mape", type=float, default=0.05, help="target MAPE (0.05)")
    parser.add_argument(
        "--cohort",
        type=Path,
        help="cohort table: report how many parameters its patients with a known 1-year "
        "outcome support (and use its outcome proportion when --prevalence is not given)",
    )


def run(args: argparse.Namespace) -> int:
    from RefractureRiskLib.model.dev.samplesize import riley_sample_size, supported_parameters

    perf = {
        "c_statistic": args.c_statistic,
        "r2_cs": args.r2_cs,
        "nagelkerke_r2": args.nagelkerke_r2,
    }
    prevalence = args.prevalence
    if args.cohort is not None:
        from RefractureRiskLib.model.dev.schema import read_cohort

        cohort = read_cohort(args.cohort)
        known = cohort["outcome_1y"].dropna()
        n, events = len(known), int(known.sum())
        if events == 0 or events == n:
            reason = f"{n} patients with a known 1-year outcome and {events} events"
            raise InputError(args.cohort, reason + ": need both events and non-events")
        if all(v is None for v in perf.values()):
            print("No anticipated performance given: assuming Nagelkerke R^2 = 0.15 (Riley 2020).")
        sup = _computed(
            lambda: supported_parameters(
                n, events, **perf, shrinkage=args.shrinkage, mape=args.mape
            ),
            events / n,
            perf,
        )
        print(sup.message())
        if prevalence is None:
            prevalence = events / n
        if args.parameters is None:
            return 0
        print()
    if args.parameters is None or prevalence is None:
        raise InputError("samplesize", "give --parameters and --prevalence (or --cohort)")
    if all(v is None for v in perf.values()):
        raise InputError("samplesize", "give one of --c-statistic, --r2-cs or --nagelkerke-r2")
    result = _computed(
        lambda: riley_sample_size(
            args.parameters, prevalence, **perf, shrinkage=args.shrinkage, mape=args.mape
        ),
        prevalence,
        perf,
    )
    print(result.format_table())
    print(
        f"\nMinimum sample size: {result.minimum_n} patients with "
        f"{math.ceil(result.events)} events (outcome proportion {result.prevalence:g})."
    )
    return 0


def _computed(compute, prevalence: float, perf: dict):
    """``compute()``, with a numerical failure of the formulas as one line naming the inputs.

    Values inside the allowed ranges can still be beyond what the formulas handle (prevalence
    1e-5, C-statistic 0.501 gave ZeroDivisionError, LinAlgError or a math domain error).
    """
    import numpy as np

    try:
        return compute()
    except InputError:
        raise
    except (ArithmeticError, ValueError, np.linalg.LinAlgError) as err:
        given = ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in perf.items() if v is not None)
        raise InputError(
            "samplesize",
            f"no sample size can be computed for outcome proportion {prevalence:.10g}"
            f"{' and ' + given if given else ''} ({type(err).__name__}: {err}): a performance this "
            "close to chance, or an outcome this rare or this common, is beyond Riley's formulas",
        ) from None
