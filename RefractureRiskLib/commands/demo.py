"""``refracture-risk demo``: a synthetic IDEAL-IQ study through the whole pipeline.

Generates a phantom spine study (deterministic from ``--seed``) with a fractured, treated L1,
writes it as vendor-styled DICOM, then loads it like a real export, places ROIs automatically,
measures, scores the risk with the demonstration model and writes the report.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from RefractureRiskLib.core.errors import InputError

NAME = "demo"
HELP = "generate a synthetic IDEAL-IQ spine study and run the whole pipeline on it"

#: The demo patient's clinical inputs (fictitious).
DEMO_CLINICAL = {
    "age_years": 74,
    "sex": "F",
    "dxa_l1l4_tscore": -3.0,
    "cement_leak_disc": 1,
    "antiop_post": 0,
    "tl_junction": 1,
    "glucocorticoid_use": 0,
    "n_prevalent_vertebral_fractures": 1,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("refracture-demo"), help="output folder (created)"
    )
    parser.add_argument("--seed", type=int, default=1, help="phantom seed (deterministic)")
    parser.add_argument(
        "--vendor", choices=("GE", "Siemens", "Philips"), default="GE", help="DICOM style"
    )
    parser.add_argument(
        "--field-strength",
        type=float,
        choices=(1.5, 3.0),
        default=1.5,
        help="magnetic field strength (T) of the synthetic study; R2* roughly doubles at 3 T",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier demo's files in --out"
    )


def run(args: argparse.Namespace) -> int:
    from RefractureRiskLib.commands.analyze import print_result
    from RefractureRiskLib.core.atomic import OutputSet

    say = lambda msg: print(f"... {msg}", file=sys.stderr)  # noqa: E731
    # Everything is written beside --out and moved into place at the end (see core.atomic).
    out: Path = args.out
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise InputError(out, "already holds files; choose another --out or add --overwrite")
    with OutputSet(overwrite=args.overwrite) as outputs:
        out = outputs.folder(args.out, marker="patient.json")
        result, left_out = _run_demo(args, out, say)
    files = {k: outputs.final(p) for k, p in result.files.items()}
    print_result(replace(result, files=files))
    final = args.out
    print(f"   clinical: {final / 'patient.json'}\n      truth: {final / 'phantom_truth.csv'}")
    if left_out:  # said once, at the end, where the written files are listed
        print(left_out)
    print(f"Open the report: {files['report_html']}")
    return 0


def _run_demo(args: argparse.Namespace, out: Path, say):
    """Phantom -> DICOM in ``out/dicom`` -> the whole pipeline into ``out/results``; returns
    the result and the line saying what was left out for a missing extra (or None)."""
    import pandas as pd

    from RefractureRiskLib.core.extras import available, install_hint
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
    from RefractureRiskLib.phantom.dicom_writer import write_dicom_study
    from RefractureRiskLib.pipeline import AnalysisOptions, analyze_study

    dicom = out / "dicom"
    say(f"generating a synthetic IDEAL-IQ spine study (seed {args.seed})")
    phantom = generate_phantom(
        PhantomSpec(
            seed=args.seed,
            field_strength_t=args.field_strength,
            fractured={"L1": 0.3},
            snr=80.0,
        )
    )
    written = write_dicom_study(phantom.study, dicom, vendor=args.vendor, seed=args.seed)
    print(f"Synthetic study written to {args.out / 'dicom'} ({args.vendor} style):")
    columns = ("series_number", "kind", "series_description", "image_type", "n_files")
    columns += ("stored_meaning", "rescale_slope")
    print(pd.DataFrame(written.summary_rows())[list(columns)].to_string(index=False))
    clinical_path = out / "patient.json"
    clinical_path.write_text(json.dumps(DEMO_CLINICAL, indent=2))
    truth_path = out / "phantom_truth.csv"
    phantom.truth.level_table().to_csv(truth_path, index=False)
    # The base install has no DICOM SEG/SR writer; the demo shows the rest without it and says
    # so in one line with the install command.
    export_dicom = available("highdicom")
    left_out = None
    if not export_dicom:
        left_out = (
            "Not written: DICOM SEG and SR (they need highdicom; add them with "
            f"{install_hint('highdicom')})"
        )
    result = analyze_study(
        dicom,
        DEMO_CLINICAL,
        out / "results",
        AnalysisOptions(index_levels=("L1",), reader="demo", export_dicom=export_dicom),
        progress=say,
        # Not the DICOM PatientID (SYN-<seed>): the report never shows a DICOM identifier.
        patient_label=f"synthetic phantom, seed {args.seed}",
    )
    return result, left_out
