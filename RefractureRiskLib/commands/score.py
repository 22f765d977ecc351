"""``refracture-risk score``: risk of one patient from a model file (default: the demo model)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "score"
HELP = "risk of a new vertebral fracture for one patient (JSON inputs) under a model file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="model file (default: the bundled demonstration model, not for clinical use)",
    )
    parser.add_argument(
        "--patient",
        type=Path,
        required=True,
        help="JSON object of input name -> value, named as the cohort columns",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from RefractureRiskLib.core.jsonfile import read_json_file
    from RefractureRiskLib.model.modelfile import bundled_model_path, load_model, plain_json
    from RefractureRiskLib.model.scoring import score

    model = load_model(args.model if args.model is not None else bundled_model_path())
    patient = read_json_file(args.patient, "patient file")
    result = score(model, patient, source=str(args.patient))
    if args.json:
        # Strict JSON: a non-finite number would be written as null, never as NaN/Infinity.
        print(json.dumps(plain_json(result.to_dict()), indent=2, allow_nan=False))
    else:
        print(result.format_text())
    return 0
