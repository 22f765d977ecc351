"""``refracture-risk score``: risk of one patient from a model file (default: the demo model)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

NAME = "score"
HELP = "risk of a new vertebral fracture for one patient (JSON inputs) under a model file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="model file (default: the bundled demonstration model, not for clinical use)",
    )
    parser.add_argument(
        "--patient",
        required=True,
        help="the patient's inputs as a JSON object of input name -> value (named as the cohort "
        "columns): a file, '-' to read standard input, or the JSON text itself (starting with "
        "'{')",
    )
    parser.add_argument(
        "--missing",
        choices=("refuse", "range"),
        default="refuse",
        help="a model input the patient lacks: 'refuse' names it and computes no risk; 'range' "
        "shows the risk as the range over its plausible values (the model's training range), "
        "labelled as a range, never a point",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON (default: text)"
    )


def read_patient(text: str) -> tuple[dict[str, Any], str]:
    """(inputs, where they came from) from a file path, '-' (stdin) or inline JSON."""
    from RefractureRiskLib.core.errors import InputError
    from RefractureRiskLib.core.jsonfile import parse_json_text, read_json_file

    if text == "-" or text.lstrip().startswith(("{", "[")):
        source = "standard input" if text == "-" else "--patient"
        data = parse_json_text(sys.stdin.read() if text == "-" else text, source, "patient")
    else:
        source = text
        data = read_json_file(text, "patient file")
    if not isinstance(data, dict):
        raise InputError(source, "expected a JSON object of input name -> value")
    return data, source


def refuse_booleans_for_numbers(model, patient: dict[str, Any], source: str) -> None:
    """Refuse, before any work, a JSON true/false given for a numeric input (a T-score, a
    count): the rule is the input's own (:meth:`InputSpec.coerce`), checked early here."""
    for spec in model.inputs:
        value = patient.get(spec.name)
        if isinstance(value, bool):
            spec.coerce(value, source)


def run(args: argparse.Namespace) -> int:
    from RefractureRiskLib.core.atomic import recover_before_reading
    from RefractureRiskLib.model.modelfile import bundled_model_path, load_model, plain_json
    from RefractureRiskLib.model.scoring import score

    path = args.model if args.model is not None else bundled_model_path()
    if args.model is not None:  # a set that a train killed after its commit point left
        for note in recover_before_reading(path):
            print(f"note: {note}", file=sys.stderr)
    model = load_model(path)
    patient, source = read_patient(args.patient)
    refuse_booleans_for_numbers(model, patient, source)
    result = score(model, patient, source=source, missing=args.missing)
    if args.json:
        # Strict JSON: a non-finite number would be written as null, never as NaN/Infinity.
        print(json.dumps(plain_json(result.to_dict()), indent=2, allow_nan=False))
    else:
        print(result.format_text())
    return 0
