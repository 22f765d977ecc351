"""``refracture-risk demo``: generate a synthetic IDEAL-IQ study and run the pipeline on it."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "demo"
HELP = "generate a synthetic IDEAL-IQ spine study and run the pipeline on it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("refracture-demo"), help="output folder (created)"
    )
    parser.add_argument("--seed", type=int, default=1, help="phantom seed (deterministic)")
    parser.add_argument(
        "--vendor", choices=("GE", "Siemens", "Philips"), default="GE", help="DICOM style"
    )


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("demo pipeline is being built")  # replaced when the phantom lands
