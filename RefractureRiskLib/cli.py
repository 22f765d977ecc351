"""The ``refracture-risk`` command.

Each subcommand is a module in :mod:`RefractureRiskLib.commands` exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; adding a command means adding one module and
one entry in :data:`COMMAND_MODULES`. Bad input (:class:`InputError`) is printed as one line
naming the file and the reason, without a traceback, and the exit code is 2; so is a missing
optional package, with the extra that installs it (:mod:`RefractureRiskLib.core.extras`).

Command modules import nothing heavy at module level: ``--help`` loads only argparse and the
command modules, and each command imports what it uses inside ``run``. A command line that names
a subcommand builds the parser of that subcommand alone (:func:`named_command`); one that names
none (``--help``, ``--version``, a typo) lists every command by its name and help, without
building their options (which may import numpy for their help texts).

The command's process runs BLAS on one thread (:func:`one_blas_thread`), as the library's heavy
paths already do (:mod:`RefractureRiskLib.core.blas`), unless the caller chose a thread count.

A command runs without cyclic garbage collection, and the interpreter's exit finds its objects
frozen (:func:`collection_paused`), except the commands of :data:`COLLECTING_COMMANDS`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from RefractureRiskLib import __version__
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.extras import MissingExtraError, install_hint

#: Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "inspect",
    "analyze",
    "batch",
    "agreement",
    "train",
    "validate",
    "score",
    "card",
    "samplesize",
    "describe",
    "fatwater",
)

#: Commands that keep cyclic garbage collection on: they run many studies or model fits in one
#: process (cyclic garbage of each would pile up without it), and their start-up is a small
#: part of their time.
COLLECTING_COMMANDS: frozenset[str] = frozenset({"batch", "train", "validate"})

EXIT_BAD_INPUT = 2

#: Variables that set OpenBLAS's thread count (first set one wins, in this order).
BLAS_THREAD_VARIABLES: tuple[str, ...] = (
    "OPENBLAS_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OMP_NUM_THREADS",
)


def one_blas_thread() -> None:
    """Ask OpenBLAS for one thread, unless a ``BLAS_THREAD_VARIABLES`` variable is set.

    OpenBLAS starts its threads when numpy (and again when scipy, which bundles its own copy)
    is loaded, and each spins for a while before it sleeps: ~0.1 s CPU per library on a
    2-core machine, about a quarter of a cold ``analyze``'s CPU, for no work (its products are
    small; the heavy paths run BLAS on one thread anyway). Read when the library loads: set
    before the command imports numpy, else without effect. :mod:`.core.blas` is told
    (:func:`~.core.blas.note_environment_before_load`): its one-thread limit then has nothing
    to change and neither imports threadpoolctl nor scans the libraries.
    """
    if not any(os.environ.get(name) for name in BLAS_THREAD_VARIABLES):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    from RefractureRiskLib.core.blas import note_environment_before_load

    note_environment_before_load()


@contextlib.contextmanager
def collection_paused(pause: bool = True) -> Iterator[None]:
    """No cyclic garbage collection inside (if ``pause``), back on when it ends, by return or
    error, and the objects frozen at the interpreter's exit.

    A cold command's imports alone set off ~80 collections (~6 ms of ``fatwater`` on ISMRM
    case 15), each over ever more module objects; a command's arrays are freed by reference
    counting, and any cyclic garbage waits for the end. The interpreter's exit collects over
    every object of numpy, Pillow and the library several times (10-35 ms); ``gc.freeze`` as
    an exit function takes them out of its reach (the other exit functions, logging's flush
    among them, still run: only collection stops). Outputs do not wait for it: commands
    publish them before they return (:mod:`.core.atomic`)."""
    if not pause:
        yield
        return
    atexit.unregister(gc.freeze)  # once, however often main() runs in one process
    atexit.register(gc.freeze)
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            _enable_collection()


def _enable_collection() -> None:
    """``gc.enable()``, the objects of the pause moved to the oldest generation first.

    Otherwise the youngest generation holds every object made during the pause (every module
    a command imported), and the first allocation after ``enable`` collects it whole: 13 ms
    after a cold ``fatwater``, between its last output and the exit. ``gc.freeze`` then
    ``gc.unfreeze`` moves them (no collection); a full collection still reaches them. Not
    when the caller froze objects itself: unfreezing would hand its objects back too."""
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
    gc.enable()


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``, the width argparse wraps help at: ``COLUMNS``
    if a positive integer, else the width of the terminal on ``sys.__stdout__``, else 80.
    Without importing shutil, which argparse imports for it whenever a parser or argument is
    made (shutil loads bz2 and lzma: ~3 ms of every command)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns or 80


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help says its default (or that it is required), once.

    Help text that already names its default ("default: ...") is left as written; a flag says
    "(default: off)", an option without a default "(default: not set)". Wrapped at
    :func:`terminal_columns` - 2, argparse's default width.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.default is argparse.SUPPRESS:
            return text
        if "default" in text.lower() or "%(default)" in text:
            return text
        if action.required:
            return f"{text} (required)"
        if action.default is None:
            return f"{text} (default: not set)"
        if action.default is False:
            return f"{text} (default: off)"
        if action.default == "":
            return f"{text} (default: none)"
        return f"{text} (default: %(default)s)"


def named_command(argv: Sequence[str]) -> str | None:
    """The subcommand that ``argv`` names, if any: its first word that is not an option (the
    top-level options take no value), or the word after ``--``, when that is a known command."""
    words = iter(argv)
    for word in words:
        if word == "--":
            word = next(words, "")
        elif word.startswith("-"):
            continue
        return word if word in COMMAND_MODULES else None
    return None


def build_parser(only: str | None = None, *, arguments: bool = True) -> argparse.ArgumentParser:
    """The ``refracture-risk`` parser with every subcommand, or with ``only`` that one (a name
    from :data:`COMMAND_MODULES`: a command line that names it parses the same either way).

    ``arguments=False`` lists the subcommands without their options: enough for a command line
    that names none (the top-level ``--help``, ``--version``, a misspelt command).
    """
    parser = argparse.ArgumentParser(
        prog="refracture-risk",
        description=(
            "Risk of a new vertebral fracture within 1 year after vertebroplasty/kyphoplasty, "
            "from clinical factors and vertebral marrow PDFF/R2* MRI."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress details (default: off)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES if only is None else (only,):
        module = importlib.import_module(f"RefractureRiskLib.commands.{name}")
        # argparse %-formats help strings: a literal "95%" must reach it as "95%%".
        cmd = sub.add_parser(
            module.NAME,
            help=module.HELP.replace("%", "%%"),
            description=module.HELP,
            formatter_class=HelpFormatter,
        )
        if arguments:
            module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    one_blas_thread()
    command = named_command(argv)
    with collection_paused(command not in COLLECTING_COMMANDS):
        return _main(argv, command)


def _main(argv: list[str], command: str | None) -> int:
    args = build_parser(command, arguments=command is not None).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args) or 0)
    except InputError as err:
        print(f"refracture-risk {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MissingExtraError as err:
        print(f"refracture-risk {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ModuleNotFoundError as err:
        # An optional package imported deep inside a library call: same one line.
        hint = install_hint(err.name or "")
        if hint is None:
            raise
        print(
            f"refracture-risk {args.command}: error: needs the optional package "
            f"{err.name!r}: {hint}",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    except OSError as err:  # a path the user gave that cannot be read or written
        where = err.filename or "file system"
        reason = err.strerror or type(err).__name__
        print(f"refracture-risk {args.command}: error: {where}: {reason}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"refracture-risk {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
