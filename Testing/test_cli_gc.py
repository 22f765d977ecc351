"""The command line pauses cyclic garbage collection while a command runs (its imports alone set
off dozens of collections) and freezes the objects at the interpreter's exit, for every command
but those that run many studies or fits in one process (``COLLECTING_COMMANDS``); collection is
back on when the command returns or fails, so an in-process caller keeps it."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from RefractureRiskLib import cli
from RefractureRiskLib.commands import batch, samplesize
from RefractureRiskLib.core.errors import InputError


def test_paused_inside_and_back_on_after_return_and_error() -> None:
    assert gc.isenabled()
    with cli.collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), cli.collection_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    with cli.collection_paused(pause=False):
        assert gc.isenabled()


def test_a_caller_that_had_collection_off_keeps_it_off() -> None:
    gc.disable()
    try:
        with cli.collection_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def _recording_run(seen: list[bool], result: int | Exception):
    def run(_args) -> int:
        seen.append(gc.isenabled())
        if isinstance(result, Exception):
            raise result
        return result

    return run


def test_main_runs_a_command_without_collection_and_restores_it(monkeypatch) -> None:
    seen: list[bool] = []
    monkeypatch.setattr(samplesize, "run", _recording_run(seen, 0))
    assert cli.main(["samplesize", "--parameters", "5"]) == 0
    assert gc.isenabled() and gc.get_freeze_count() == 0
    monkeypatch.setattr(samplesize, "run", _recording_run(seen, InputError("x.csv", "bad")))
    assert cli.main(["samplesize"]) == cli.EXIT_BAD_INPUT
    monkeypatch.setattr(samplesize, "run", _recording_run(seen, RuntimeError("bug")))
    with pytest.raises(RuntimeError):
        cli.main(["samplesize"])
    assert seen == [False, False, False]
    assert gc.isenabled()


def test_collecting_commands_run_with_collection_on(monkeypatch) -> None:
    assert "batch" in cli.COLLECTING_COMMANDS
    assert set(cli.COMMAND_MODULES) >= cli.COLLECTING_COMMANDS
    seen: list[bool] = []
    monkeypatch.setattr(batch, "run", _recording_run(seen, 0))
    monkeypatch.setattr(sys, "argv", ["refracture-risk"])
    with pytest.raises(SystemExit):  # batch's required arguments are missing
        cli.main(["batch"])
    assert seen == [] and gc.isenabled()


_PROBE = """
import atexit, gc, sys
# registered before main(): runs after main's gc.freeze (exit functions run last in, first out)
atexit.register(lambda: print("FROZEN", gc.get_freeze_count() > 0, calls, flush=True))
# counts the freezes at exit (re-enabling collection after a command freezes and unfreezes)
calls, freeze, exiting = [], gc.freeze, []
gc.freeze = lambda: (exiting and calls.append(1), freeze())[1]
from RefractureRiskLib.cli import main
for _ in range(3):  # as often as an in-process caller likes: frozen once at exit
    try:
        main([sys.argv[1], "--help"])
    except SystemExit:
        pass
exiting.append(True)
"""


@pytest.mark.parametrize(("command", "frozen"), [("fatwater", True), ("batch", False)])
def test_exit_finds_the_objects_frozen(command: str, frozen: bool) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, command], capture_output=True, text=True, check=True
    )
    want = f"FROZEN {frozen} {[1] if frozen else []}"
    assert want in done.stdout.splitlines(), done.stdout[-500:]
