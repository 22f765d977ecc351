"""``refracture-risk analyze``: one study -> ROIs, statistics, risk, report and files.

The study is a folder of quantitative maps (PDFF, R2*, ... as the scanner exported them), its
maps as NIfTI/NRRD files with their units (``--map``, ``commands/map_inputs.py``), or raw
multi-echo data: an imDataParams ``.mat`` file, or a DICOM folder with ``--echoes``. Echoes are
separated first (``maps/fatwater/study.py``); the maps used, their overview and provenance are
written to ``fatwater/`` beside the results, and the results' provenance says, for every map,
that it was computed from the echoes (method, fat spectrum, echo times, field strength).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from RefractureRiskLib.commands.map_inputs import add_map_arguments
from RefractureRiskLib.commands.options import add_separation_arguments

NAME = "analyze"
HELP = "analyse one study: ROIs, PDFF/R2* statistics, risk, one-page report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study",
        type=Path,
        nargs="?",
        help="folder with the study's DICOM files, or an imDataParams .mat file of echoes "
        "(or give the maps as files with --map instead)",
    )
    add_map_arguments(parser)
    _add_echo_arguments(parser)
    parser.add_argument(
        "--clinical", type=Path, help="patient.json, or a CSV/Excel/Parquet table (see --patient)"
    )
    parser.add_argument("--patient", help="patient_id of the row to use in a clinical table")
    parser.add_argument(
        "--study",
        dest="which_study",
        help="which study when the folder holds several (index or StudyInstanceUID)",
    )
    parser.add_argument(
        "--pdff-series", help="which PDFF series when there are several (SeriesNumber or UID)"
    )
    parser.add_argument("--model", type=Path, help="model file (default: demonstration model)")
    parser.add_argument(
        "--roi",
        default="auto",
        help="'auto' (default), a points JSON {level: [x, y, z] RAS mm} / Slicer .mrk.json, "
        "or a label map / .seg.nrrd",
    )
    parser.add_argument("--anchor", help="LEVEL:x,y,z (RAS mm) fixing the automatic labels")
    parser.add_argument("--index-levels", default="", help="treated levels, e.g. L1,L2")
    parser.add_argument("--reader", default="automatic", help="who placed/checked the ROIs")
    parser.add_argument(
        "--pdff-unit",
        choices=("fraction", "percent", "permille"),
        help="stored PDFF unit (override when inspect reports an ambiguous range)",
    )
    parser.add_argument(
        "--r2s-unit",
        choices=("per_s", "per_ms", "t2star_ms", "t2star_s"),
        help="stored R2*/T2* unit (override when inspect reports an ambiguous range)",
    )
    parser.add_argument(
        "--missing",
        choices=("refuse", "range"),
        default="refuse",
        help="a model input missing from --clinical: 'refuse' names it and computes no risk; "
        "'range' shows the risk as the range over its plausible values (the model's training "
        "range), labelled as a range in every output, never a point",
    )
    parser.add_argument("--export-dicom", action="store_true", help="also write DICOM SEG + SR")
    parser.add_argument("--deidentify", action="store_true", help="de-identify DICOM exports")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results already in --out (refused otherwise, so none are lost)",
    )


def _add_echo_arguments(parser: argparse.ArgumentParser) -> None:
    """Raw echoes as the study: maps computed first (``maps/fatwater/study.py``)."""
    parser.add_argument(
        "--echoes",
        action="store_true",
        help="the folder holds raw multi-echo images: compute PDFF/R2* from them first "
        "(implied for a .mat file)",
    )
    add_separation_arguments(parser, " (with --echoes)")


def run(args: argparse.Namespace) -> int:
    from RefractureRiskLib.commands.map_inputs import (
        check_study_source,
        external_labels,
        map_study,
        parse_maps,
    )
    from RefractureRiskLib.commands.options import analysis_options, refuse_inputs_inside
    from RefractureRiskLib.core.atomic import OutputSet
    from RefractureRiskLib.pipeline import analyze_study, load_clinical

    check_study_source(args)
    maps = parse_maps(args.map) if args.map else {}
    options = replace(analysis_options(args), external_labels=external_labels(args))
    inputs = {"the study": args.study, "--clinical": args.clinical, "--roi": args.roi}
    inputs |= {f"--map {kind}": path for kind, (path, _unit) in maps.items()}
    inputs["--external-labels"] = args.external_labels
    refuse_inputs_inside(args.out, inputs | {"--model": args.model})
    clinical = load_clinical(args.clinical, args.patient) if args.clinical else None
    if clinical is not None:
        from RefractureRiskLib.commands.score import refuse_booleans_for_numbers
        from RefractureRiskLib.model.modelfile import bundled_model_path, load_model

        model = load_model(options.model_path or bundled_model_path())
        refuse_booleans_for_numbers(model, clinical, str(args.clinical))

    def say(msg: str) -> None:
        print(f"... {msg}", file=sys.stderr)

    separated = _separate_echoes(args, say) if is_echo_input(args) else None
    source = args.study if separated is None else separated[0]
    if maps:
        source = map_study(maps, say)
    # The whole result set is written beside --out and moved into place at the end: a failure
    # leaves nothing new, and --overwrite replaces the old set only by a complete new one.
    with OutputSet(overwrite=args.overwrite) as outputs:
        staging = outputs.folder(args.out, marker="results.json")
        result = analyze_study(
            source,
            clinical,
            staging,
            options,
            progress=say,
            patient_label=args.patient or "anonymous",
            clinical_source=str(args.clinical) if args.clinical else "clinical inputs",
        )
        if separated is not None:
            result = _with_separation_files(result, separated, staging, say)
    result = replace(result, files={k: outputs.final(p) for k, p in result.files.items()})
    print_result(result)
    for note in outputs.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def is_echo_input(args: argparse.Namespace) -> bool:
    """True when the study is raw echoes: ``--echoes``, or a .mat file."""
    study = args.study
    return bool(args.echoes) or (
        study is not None and study.is_file() and study.suffix.lower() == ".mat"
    )


def _separate_echoes(args: argparse.Namespace, say):
    """``(Study, FatWaterResult, EchoSet)`` of the echo input (refused early if it is none)."""
    from RefractureRiskLib.maps.fatwater.compute import load_echoes
    from RefractureRiskLib.maps.fatwater.study import echo_study

    if args.export_dicom:
        from RefractureRiskLib.core.errors import InputError

        raise InputError(
            "--export-dicom",
            "DICOM SEG/SR refer to the scanner's PDFF images; maps computed from echoes have "
            "none (write them as DICOM with 'refracture-risk fatwater --dicom' first)",
        )
    say(f"reading echoes from {args.study}")
    echoes = load_echoes(args.study, args.precession)
    study, result = echo_study(echoes, args.spectrum, progress=say)
    return study, result, echoes


def _with_separation_files(result, separated, staging: Path, say):
    """The separation's maps, overview and provenance in ``fatwater/``, added to the files."""
    from RefractureRiskLib.commands.fatwater import write_outputs

    _study, fw_result, echoes = separated
    folder = staging / "fatwater"
    folder.mkdir()
    names = write_outputs(fw_result, echoes, folder, say)
    files = dict(result.files) | {f"fatwater_{Path(n).stem}": folder / n for n in names}
    return replace(result, files=files)


def print_result(result) -> None:
    """Levels, summaries, risk and written files, for the terminal."""
    print("\n".join(level_lines(result.statistics_records)))
    if result.rois.uncertain:
        doubtful = [lv.level for lv in result.rois.levels if lv.confidence < 0.75]
        which = f" ({', '.join(doubtful)})" if doubtful else ""
        print(f"LEVEL LABELS UNCERTAIN{which}: " + "; ".join(result.rois.reasons))
    s = result.summary
    print(
        f"PDFF global L1-L4 {_fmt(s.pdff_global_L1L4_pct, '%')}, R2* global L1-L4 "
        f"{_fmt(s.r2s_global_L1L4_per_s, '1/s')}, PDFF adjacent {_fmt(s.pdff_adjacent_pct, '%')}"
    )
    if s.notes:
        print("Summary notes: " + "; ".join(s.notes))
    if result.risk is not None:
        print(result.risk.format_text())
    for key, path in result.files.items():
        print(f"{key:>12}: {path}")


#: The terminal's name of each map's mean column.
_MEAN_COLUMNS = {"pdff": "pdff_mean_pct", "r2s": "r2s_mean_per_s"}


def level_lines(records: list[dict]) -> list[str]:
    """The per-level table for the terminal: each map's mean (0.1), flags and inclusion, laid out
    as pandas' ``to_string`` lays out a table indexed by level (a level, map or flag cell never
    truncated; a mean that is not available shows as NaN)."""
    maps = list(dict.fromkeys(r["map"] for r in records))
    by_level: dict[str, dict[str, Any]] = {}
    for r in records:
        by_level.setdefault(r["level"], {"flags": r["flags"], "included": r["included"]})
        by_level[r["level"]][r["map"]] = r["mean"]
    names = [_MEAN_COLUMNS.get(m, m) for m in maps] + ["flags", "included"]
    cells = [
        [_mean_text(row[m]) if m in row else "NaN" for m in maps]
        + [str(row["flags"]), str(bool(row["included"]))]
        for row in by_level.values()
    ]
    index_width = max([len("level")] + [len(str(lv)) for lv in by_level])
    widths = [max([len(n)] + [len(c[j]) for c in cells]) for j, n in enumerate(names)]
    header = " " * index_width + "".join(f"  {n:>{w}}" for n, w in zip(names, widths, strict=True))
    lines = [header, "level".ljust(len(header))]
    for lv, row in zip(by_level, cells, strict=True):
        lines.append(
            str(lv).ljust(index_width)
            + "".join(f"  {c:>{w}}" for c, w in zip(row, widths, strict=True))
        )
    return lines


def _mean_text(value: float) -> str:
    return "NaN" if value is None or math.isnan(value) else f"{value:.1f}"


def _fmt(value: float | None, unit: str) -> str:
    """A summary value for the terminal; "not available" rather than "nan"."""
    if value is None or not math.isfinite(value):
        return "not available"
    return f"{value:.1f} {unit}"
