"""Every option of every subcommand has help text showing its default (or that it is required)."""

from __future__ import annotations

import argparse

import pytest

from RefractureRiskLib.cli import COMMAND_MODULES, build_parser, main


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", COMMAND_MODULES)
def test_every_option_has_help_and_shows_its_default(command: str) -> None:
    sub = _subparsers()[command]
    formatter = sub._get_formatter()
    problems = []
    for action in sub._actions:
        if not action.option_strings or action.dest == "help":
            continue
        name = action.option_strings[-1]
        if not (action.help or "").strip():
            problems.append(f"{name}: no help text")
            continue
        shown = formatter._expand_help(action)
        if "default" not in shown.lower() and "(required)" not in shown:
            problems.append(f"{name}: help does not show the default: {shown!r}")
    assert not problems, problems


def test_help_renders_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for command in COMMAND_MODULES:
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert "(default: None)" not in out, command  # a default said in words, not as None
    # the defaults the issue named, shown in plain words
    helps = {
        c: " ".join(_subparsers()[c].format_help().split())
        for c in ("demo", "train", "agreement", "score")
    }
    assert "(default: 1.5)" in helps["demo"]
    assert "(default: l2)" in helps["train"]
    assert "reading session" in helps["agreement"]
    assert "(default: refuse)" in helps["score"]


def test_analyze_and_batch_take_the_same_unit_and_missing_options() -> None:
    subs = _subparsers()

    def options(command: str) -> dict[str, tuple]:
        return {
            a.option_strings[-1]: tuple(a.choices or ())
            for a in subs[command]._actions
            if a.option_strings
        }

    analyze, batch = options("analyze"), options("batch")
    for name in ("--pdff-unit", "--r2s-unit", "--missing"):
        assert name in analyze and name in batch, name
        assert analyze[name] == batch[name], name
