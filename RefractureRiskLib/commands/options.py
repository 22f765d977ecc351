"""The one builder of :class:`~RefractureRiskLib.pipeline.AnalysisOptions` from command arguments.

``analyze`` (one study) and ``batch`` (a cohort) run the same analysis; its settings are read from
their arguments here, once, so ``--model``, ``--pdff-unit``, ``--r2s-unit``, ``--missing``,
``--reader`` and ``--export-dicom`` mean the same in both. An argument a command does not define
keeps the option's default (``batch`` has no ``--roi``, ``--anchor``, ``--index-levels``,
``--study``, ``--pdff-series`` or ``--deidentify``; ``analyze`` has no ``--no-report``).

:func:`add_separation_arguments` defines ``--spectrum`` and ``--precession`` for the commands
that separate fat and water (``fatwater``, ``analyze --echoes``).

:func:`refuse_inputs_inside` is the commands' one check that an input does not lie in an output
folder a new result replaces whole.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from RefractureRiskLib.pipeline import AnalysisOptions


def analysis_options(args: argparse.Namespace) -> AnalysisOptions:
    """The analysis settings given by ``args``; raises InputError for a non-finite ``--anchor``
    or an unknown level in ``--index-levels``."""
    # Imported here: the command-line parser is built without loading the pipeline.
    from RefractureRiskLib.core.errors import InputError
    from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS
    from RefractureRiskLib.pipeline import AnalysisOptions, parse_anchor

    given = vars(args)
    default = AnalysisOptions()
    anchor = parse_anchor(given["anchor"]) if given.get("anchor") else None
    if anchor is not None and not all(math.isfinite(c) for c in anchor[1]):
        # float() reads "nan" and "inf": a non-finite point would silently relabel every level.
        raise InputError("--anchor", f"{args.anchor!r}: x, y and z must be finite numbers (RAS mm)")
    index_levels = tuple(
        v.strip().upper() for v in (given.get("index_levels") or "").split(",") if v.strip()
    )
    for level in index_levels:  # named here, before the images: a typo is not a traceback
        if level not in VERTEBRAL_LEVELS:
            raise InputError(
                "--index-levels",
                f"unknown vertebral level {level!r}; expected some of "
                + ", ".join(VERTEBRAL_LEVELS),
            )
    return AnalysisOptions(
        roi=given.get("roi", default.roi),
        study=given.get("which_study", default.study),
        pdff_series=given.get("pdff_series", default.pdff_series),
        anchor=anchor,
        index_levels=index_levels,
        reader=args.reader,
        model_path=args.model,
        pdff_unit=args.pdff_unit,
        r2s_unit=args.r2s_unit,
        missing=args.missing,
        export_dicom=args.export_dicom,
        deidentify=given.get("deidentify", default.deidentify),
        report=not given.get("no_report", False),
    )


def add_separation_arguments(parser: argparse.ArgumentParser, when: str = "") -> None:
    """``--spectrum`` and ``--precession`` of a fat-water separation (``when``: e.g. " (with
    --echoes)" where the separation is optional)."""
    parser.add_argument(
        "--spectrum",
        default="ismrm-6peak",
        help="fat spectrum of the separation: ismrm-6peak (default), hamilton-liver-9peak, "
        f"ren-marrow-9peak, single-peak{when}",
    )
    parser.add_argument(
        "--precession",
        choices=("auto", "clockwise", "counterclockwise"),
        default="auto",
        help=f"DICOM phase sense of the echoes (.mat files state it themselves){when}",
    )


def refuse_inputs_inside(out: Path | None, inputs: Mapping[str, str | Path | None]) -> None:
    """Refuse, before any work, an input (``inputs``: what the user calls it -> its path) that
    lies in the output folder ``out``: a new result replaces the folder whole (``--overwrite``),
    and the input would be deleted with the old result."""
    from RefractureRiskLib.core.errors import InputError

    if out is None:
        return
    folder = Path(out).resolve()
    for name, path in inputs.items():
        if (
            path is not None
            and "://" not in str(path)
            and Path(path).resolve().is_relative_to(folder)
        ):
            raise InputError(
                path,
                f"{name} lies in the output folder {out}, which a new result replaces whole; "
                "move it out of that folder first",
            )
