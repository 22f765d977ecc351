"""``refracture-risk card``: the model card of a model file (checked on loading)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from RefractureRiskLib.core.errors import InputError

NAME = "card"
HELP = "print or write the model card of a model file (default: the demonstration model)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", type=Path, nargs="?", default=None, help="model file (.json); default: demo"
    )
    parser.add_argument("--out", type=Path, help="write the card here (.md) instead of printing")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def run(args: argparse.Namespace) -> int:
    from RefractureRiskLib.core.atomic import atomic_file, recover_before_reading
    from RefractureRiskLib.model.modelcard import model_card, write_model_card
    from RefractureRiskLib.model.modelfile import bundled_model_path, load_model

    path = args.model if args.model is not None else bundled_model_path()
    if args.model is not None:  # a set that a train killed after its commit point left
        for note in recover_before_reading(path):
            print(f"note: {note}", file=sys.stderr)
    model = load_model(path)
    if args.out is None:
        print(model_card(model, Path(path).name))
        return 0
    if args.out.suffix.lower() == ".json":
        raise InputError(args.out, "a model card is Markdown (.md), not a .json model file")
    if args.out.is_dir():  # --overwrite would not help: a card is a file
        raise InputError(args.out, "is a folder; give the card's file name (.md)")
    if args.out.exists() and not args.overwrite:
        raise InputError(args.out, "already exists; choose another --out or add --overwrite")
    with atomic_file(args.out, overwrite=args.overwrite) as staged:
        write_model_card(model, staged, Path(path).name)
    print(f"model card written to {args.out}")
    return 0
