"""``analyze``'s inputs besides a DICOM folder: map files (``--map``) and an external vertebra
labelling to cross-check the level labels against (``--external-labels``).

``--map KIND=FILE:UNIT`` (repeatable) names one NIfTI/NRRD map, its kind and the unit of its
values: image files carry no trustworthy unit, so it is never guessed. The study is built by
:func:`RefractureRiskLib.io.study_files.load_map_files` (PDFF required; the other maps resampled
onto its grid), whose provenance names each file and its unit; everything after loading is the
same as for DICOM. A magnitude map (water, fat, in/out-phase) may omit ``:signal_au``.

``--external-labels FILE`` is a vertebra label image made elsewhere (e.g. TotalSegmentator's
``vertebrae_mr``); ``--external-labels-scheme`` says how its values are numbered
(:data:`RefractureRiskLib.roi.external.EXTERNAL_SCHEMES`). Nothing is installed or downloaded.

Every bad input is refused here, before any image is read, naming the option or the file.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from RefractureRiskLib.core.study import Study

#: ``analyze`` options that choose or convert DICOM series: meaningless with ``--map``.
DICOM_ONLY_OPTIONS = {
    "echoes": "--echoes",
    "which_study": "--study",
    "pdff_series": "--pdff-series",
    "pdff_unit": "--pdff-unit",
    "r2s_unit": "--r2s-unit",
    "export_dicom": "--export-dicom",
}


def add_map_arguments(parser: argparse.ArgumentParser) -> None:
    """``--map`` and ``--external-labels`` (with its scheme)."""
    parser.add_argument(
        "--map",
        action="append",
        metavar="KIND=FILE:UNIT",
        help="a NIfTI/NRRD map instead of the STUDY folder, repeatable: KIND pdff (units "
        "fraction, percent, permille), r2s (per_s, per_ms, t2star_ms, t2star_s), or water, fat, "
        "in_phase, out_phase (signal_au); e.g. --map pdff=PDFF.nii.gz:percent "
        "--map r2s=R2S.nrrd:per_s (default: none; a pdff map is required)",
    )
    parser.add_argument(
        "--external-labels",
        type=Path,
        metavar="FILE",
        help="a vertebra label image made elsewhere (e.g. TotalSegmentator vertebrae_mr) to "
        "cross-check the level labels against; a disagreement makes them uncertain",
    )
    parser.add_argument(
        "--external-labels-scheme",
        default="totalsegmentator",
        metavar="SCHEME",
        help="numbering of --external-labels: totalsegmentator (its vertebrae_mr task), "
        "totalsegmentator-total (its CT total task) or refracture (this program's label maps, "
        "T10=1 ... S1=9) (default: %(default)s)",
    )


def check_study_source(args: argparse.Namespace) -> None:
    """Exactly one of STUDY and ``--map``; no DICOM-only option with ``--map``."""
    from RefractureRiskLib.core.errors import InputError

    if args.study is None and not args.map:
        raise InputError(
            "analyze", "give the STUDY (DICOM folder or .mat file) or its maps with --map"
        )
    if args.study is not None and args.map:
        raise InputError(
            "--map", f"give either the STUDY ({args.study}) or map files with --map, not both"
        )
    if args.map:
        for dest, option in DICOM_ONLY_OPTIONS.items():
            if getattr(args, dest, None):
                raise InputError(
                    option,
                    "chooses or converts DICOM series or echoes; not used with --map files "
                    "(their units are given in --map KIND=FILE:UNIT)",
                )


def parse_map(text: str) -> tuple[str, Path, str]:
    """``"pdff=PDFF.nii.gz:percent"`` -> ("pdff", Path("PDFF.nii.gz"), "percent").

    The unit is what follows the last ``:`` unless that holds a path separator or a dot (a
    Windows drive letter); a magnitude map's unit defaults to ``signal_au``.
    """
    from RefractureRiskLib.core.errors import InputError
    from RefractureRiskLib.core.study import MAP_KINDS
    from RefractureRiskLib.io.study_files import allowed_units

    kind, equals, rest = text.partition("=")
    kind = kind.strip().lower()
    if not equals or not rest:
        raise InputError("--map", f"{text!r}: expected KIND=FILE:UNIT, e.g. pdff=PDFF.nii:percent")
    if kind not in MAP_KINDS:
        raise InputError(
            "--map", f"{text!r}: unknown map kind {kind!r}; expected one of {', '.join(MAP_KINDS)}"
        )
    units = allowed_units(kind)
    path, colon, unit = rest.rpartition(":")
    if not colon or not path or any(c in unit for c in "/\\."):
        path, unit = rest, "signal_au" if kind not in ("pdff", "r2s") else ""
    if not unit:
        raise InputError(
            "--map", f"{text!r}: the {kind} map needs its unit: {kind}=FILE:UNIT with UNIT one "
            f"of {', '.join(units)}",
        )  # fmt: skip
    if unit not in units:
        raise InputError(
            "--map", f"{text!r}: unit {unit!r} is not one of the {kind} units {', '.join(units)}"
        )
    if not Path(path).is_file():
        raise InputError(path, f"file not found (--map {kind})")
    return kind, Path(path), unit


def parse_maps(texts: list[str]) -> dict[str, tuple[Path, str]]:
    """Every ``--map`` as kind -> (file, unit); each kind once, a PDFF map among them."""
    from RefractureRiskLib.core.errors import InputError

    maps: dict[str, tuple[Path, str]] = {}
    for text in texts:
        kind, path, unit = parse_map(text)
        if kind in maps:
            raise InputError("--map", f"{kind} given twice ({maps[kind][0]} and {path})")
        maps[kind] = (path, unit)
    if "pdff" not in maps:
        raise InputError("--map", f"a pdff map is required (got {', '.join(maps)})")
    return maps


def map_study(maps: dict[str, tuple[Path, str]], say: Callable[[str], None]) -> Study:
    """The study of ``maps`` (from :func:`parse_maps`), read by ``load_map_files``."""
    from RefractureRiskLib.io.study_files import load_map_files

    say("reading the maps " + ", ".join(f"{k}={p.name} ({u})" for k, (p, u) in maps.items()))

    files = {kind: path for kind, (path, _unit) in maps.items()}
    return load_map_files(files, {kind: unit for kind, (_path, unit) in maps.items()})


def external_labels(args: argparse.Namespace) -> tuple[Path, str] | None:
    """``(label image, scheme)`` of ``--external-labels``, both checked, or None."""
    from RefractureRiskLib.core.errors import InputError
    from RefractureRiskLib.roi.external import scheme_table

    scheme = args.external_labels_scheme
    scheme_table(scheme)
    if args.external_labels is None:
        return None
    if not args.external_labels.is_file():
        raise InputError(args.external_labels, "file not found (--external-labels)")
    return args.external_labels, scheme
