"""Help is wrapped at the width argparse would use (``shutil.get_terminal_size``), found without
importing shutil, which a cold command then does not load."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

import pytest

from RefractureRiskLib.cli import HelpFormatter, build_parser, terminal_columns


@pytest.mark.parametrize("columns", [None, "100", "37", "0", "-5", "wide", ""])
def test_terminal_columns_equal_shutil(monkeypatch, columns: str | None) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert terminal_columns() == shutil.get_terminal_size().columns


def test_formatter_width_is_argparse_s(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "123")
    ours, theirs = HelpFormatter("prog"), argparse.HelpFormatter("prog")
    assert (ours._width, ours._max_help_position) == (theirs._width, theirs._max_help_position)
    assert HelpFormatter("prog", width=50)._width == 50


def _fatwater_parser() -> argparse.ArgumentParser:
    parser = build_parser("fatwater")
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices["fatwater"]


@pytest.mark.parametrize("columns", ["60", "140", None])
def test_help_is_argparse_s_own(monkeypatch, columns: str | None) -> None:
    """The help text equals the one argparse's own width (from shutil) gives."""
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    ours = _fatwater_parser().format_help() + build_parser().format_help()
    monkeypatch.setattr(HelpFormatter, "__init__", argparse.HelpFormatter.__init__)
    assert ours == _fatwater_parser().format_help() + build_parser().format_help()
    if columns is not None:  # and the width took effect
        monkeypatch.setenv("COLUMNS", "200" if columns == "60" else "60")
        assert ours != _fatwater_parser().format_help() + build_parser().format_help()


_PROBE = """
import argparse, json, sys
from RefractureRiskLib.cli import build_parser
parser = build_parser(sys.argv[1])
action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
print(json.dumps(["shutil" in sys.modules, action.choices[sys.argv[1]].format_help()]))
"""


def test_a_cold_parser_loads_no_shutil_and_wraps_at_columns() -> None:
    env = {**os.environ, "COLUMNS": "90"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, "fatwater"], capture_output=True, text=True, env=env,
        check=True,
    )  # fmt: skip
    loaded, text = json.loads(done.stdout)
    assert not loaded
    assert "--out OUT" in text
    assert max(len(line) for line in text.splitlines()) <= 88
    assert max(len(line) for line in text.splitlines()) > 70  # wrapped at 88, not at 80 - 2
