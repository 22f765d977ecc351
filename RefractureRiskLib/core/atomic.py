"""Atomic output sets: a command's files appear complete, or not at all.

Every output (a folder such as ``analyze --out``, or a file such as ``train --out model.json``)
is first written into a staging folder beside it, on the same file system::

    .<name>.staging-<txn>       the new folder, or a folder holding the new file under its name
    .<name>.old-<txn>           the old folder, moved aside while the new one moves in
    .<name>.prepare-<txn>.json  the journal of a set of several outputs, one copy in every folder
                                the set writes into (written before the commit point)
    .<name>.commit-<txn>.json   the primary copy once renamed: the commit point of the set

``<txn>`` is ``<host hash>-<pid>-<random>``, so the next run can tell the leftovers of a dead
process (same host, pid gone) from those of a live one. Publishing:

- a file: ``os.replace`` of the staged file onto the target (atomic);
- a new folder: ``rename`` onto the target name (atomic; an empty folder there is replaced);
- a folder replacing an old one (``overwrite``): ``renameat2(RENAME_EXCHANGE)`` swaps the two
  in one step (Linux), then the old one is deleted. No window: a kill -9 leaves the complete old
  or the complete new folder at the target name;
- several outputs (``train``: model file, card and report), or a folder replacement where the
  exchange is not available, in two phases:

  1. *prepare*: once everything is staged and synced, the journal (every move of the set) is
     written to a ``prepare`` file in each folder the set writes into;
  2. *commit*: the primary copy (beside the first output) is renamed to ``commit`` — one atomic
     rename decides the set. Then the moves are made (old folder aside, new one in, old
     deleted) and the journals are deleted, the commit last.

  A kill -9 before the commit leaves the old set at the targets; the staging and the prepare
  files are deleted by the next run. A kill after it leaves the new set complete in staging (and
  possibly some targets already moved): the next run on any of these folders, or any command
  reading a model there (``score``, ``card``, ``validate``), finishes the moves first. So the
  files a command of this project reads are always the complete old or the complete new set;
  between the kill and that next run, another program listing the folder can see old and new
  files side by side, with the commit journal beside them saying so.

Durability: staged files and folders are fsync'ed before the first rename, journals before
they are renamed, and every folder whose entries changed after its renames, so a power loss
after a command reported success keeps its outputs (where the file system honours fsync; on
Windows folders cannot be fsync'ed and only files are).

On any exception (disk full, KeyboardInterrupt, a failing writer) the staging folders are
deleted and the targets are untouched.

The file-system steps (fsync, locks, the exchange, the journal's format) are in
:mod:`.atomic_fs`; every step a kill is tested at is here.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from RefractureRiskLib.core.atomic_fs import (
    ARTEFACT,
    Entry,
    dead_txn,
    fsync_dir,
    fsync_tree,
    host_tag,
    journal_paths,
    locked,
    pid_alive,  # noqa: F401 - public here too (batch/lock.py): liveness of a lock's owner
    read_journal,
    rmtree,
    write_durable,
)
from RefractureRiskLib.core.atomic_fs import exchange as _exchange  # tests replace this name
from RefractureRiskLib.core.errors import InputError


def _checkpoint_none(step: str) -> None:
    """Called between the steps of publishing and recovery (tests kill the process there)."""


#: Replaced by tests (fault injection at every step); never by the library.
checkpoint: Callable[[str], None] = _checkpoint_none


def _roll_forward(entries: list[Entry]) -> None:
    """Make every move of a committed set; safe to repeat after a kill at any point."""
    parents: dict[Path, None] = {}
    for e in entries:
        parents[e.target.parent] = None
        if e.folder:
            if e.staging.is_dir():
                if e.target.exists():
                    if e.old.exists():  # cannot happen by this protocol; keep the new set
                        rmtree(e.old)
                    os.rename(e.target, e.old)
                    checkpoint(f"moved aside {e.target.name}")
                os.rename(e.staging, e.target)
                checkpoint(f"moved in {e.target.name}")
        else:
            if e.staged.exists():
                os.replace(e.staged, e.target)
                checkpoint(f"moved in {e.target.name}")
            rmtree(e.staging)
    for folder in parents:
        fsync_dir(folder)
    checkpoint("synced the targets' folders")
    for e in entries:
        if e.old.exists():
            rmtree(e.old)
            checkpoint(f"deleted the old {e.target.name}")


def _finish(entries: list[Entry], prepares: list[Path], commit: Path) -> str:
    """Finish a dead run's set: forward if it was committed, back otherwise; returns a note."""
    if commit.exists():
        _roll_forward(entries)
        for path in prepares[1:]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            fsync_dir(path.parent)
        commit.unlink()
        fsync_dir(commit.parent)
        return f"completed the output set a killed run had committed ({commit.name})"
    for e in entries:  # not committed: no target was touched; only staging to delete
        rmtree(e.staging)
        if e.old.exists() and not e.target.exists():  # cannot happen before the commit
            os.rename(e.old, e.target)
    for path in prepares:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return f"removed the unfinished output set of a killed run ({prepares[0].name})"


def recover(directory: str | Path) -> list[str]:
    """Finish or undo what dead processes of this host left in ``directory``; returns notes.

    A set whose commit file exists is rolled forward (its new set is complete; the journal may
    sit in another folder of the set: the prepare file here names it); a set that was not
    committed is deleted (the old set never moved); staging folders without a journal are
    deleted; an old folder whose target is missing is put back. Leftovers of live processes
    and of other hosts are left alone, and so is a commit file that cannot be read (with fsync
    before its rename, only a damaged disk gives one).
    """
    folder = Path(directory)
    if not folder.is_dir():
        return []
    notes: list[str] = []
    found = [(p, m) for p in folder.iterdir() if (m := ARTEFACT.match(p.name))]
    dead = [(p, m) for p, m in found if dead_txn(m["host"], m["pid"])]
    keep: set[str] = set()
    # commit files first: a prepare file here may belong to a set committed elsewhere
    for p, m in sorted(dead, key=lambda pm: pm[1]["kind"] != "commit"):
        if m["kind"] not in ("prepare", "commit") or not p.exists():
            continue
        journal = read_journal(p, m["txn"])
        if journal is None:
            if m["kind"] == "commit":
                keep.add(m["txn"])  # not ours or damaged: leave the whole set for a person
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()  # a prepare file cut short: written before any commit
            continue
        entries, prepares, commit = journal
        with locked([e.target.parent for e in entries]):
            if p.exists():  # not finished meanwhile by another command recovering it
                notes.append(_finish(entries, prepares, commit))
    with locked([folder]):
        for p, m in dead:
            if m["kind"] in ("prepare", "commit") or m["txn"] in keep or not p.exists():
                continue
            target = folder / m["name"]
            if m["kind"] == "old" and not target.exists():
                os.rename(p, target)
                notes.append(f"restored {target.name} that a killed run had moved aside")
            else:
                rmtree(p)
    return notes


def recover_before_reading(path: str | Path) -> list[str]:
    """Finish what a killed run left beside ``path`` before a command reads it (``score``,
    ``card`` and ``validate`` read model files that ``train`` writes as a set); returns notes.
    A folder this user cannot change is read as it is."""
    try:
        return recover(Path(path).parent)
    except OSError:
        return []


class OutputSet:
    """Stage outputs beside their targets and publish them together (see the module doc).

    >>> with OutputSet(overwrite=args.overwrite) as outputs:      # doctest: +SKIP
    ...     folder = outputs.folder(args.out, marker="results.json")
    ...     write_everything(folder)
    ...                      # published here; on an exception the staging is deleted

    ``overwrite``: replace existing targets; otherwise an existing file, or a folder that is
    not empty, is refused when declared (before any work) and again when publishing.
    ``recover``: first clean up what dead processes left beside the targets (:func:`recover`).
    ``marker``: a file only this command's outputs hold; ``overwrite`` replaces a non-empty
    folder only when it holds the marker, so a user's unrelated folder is never deleted.
    """

    def __init__(self, overwrite: bool = False, recover: bool = True) -> None:
        self.overwrite = overwrite
        self.recover = recover
        # 8 random hex digits (as uuid4's first 8, without importing uuid: ~3 ms with platform)
        self.txn = f"{host_tag()}-{os.getpid()}-{os.urandom(4).hex()}"
        self.entries: list[Entry] = []
        self.published = False
        self.notes: list[str] = []
        self._recovered: set[Path] = set()
        self._created: list[Path] = []  # folders made for the targets, outermost first

    # -- declaring -------------------------------------------------------------------------
    def folder(self, target: str | Path, marker: str | None = None) -> Path:
        """Declare an output folder; returns the (created) staging folder to write into."""
        target = Path(target)
        self._recover(target.parent)
        if target.exists() and not target.is_dir():
            raise InputError(target, "exists and is not a folder; choose another --out")
        self._check_folder(target, marker)
        return self._declare(target, folder=True)

    def file(self, target: str | Path, overwrite: bool | None = None) -> Path:
        """Declare an output file; returns the path to write it at (same name, in staging).

        ``overwrite``: for this file only (default: the set's), e.g. a companion file that
        always goes with the main one.
        """
        target = Path(target)
        overwrite = self.overwrite if overwrite is None else overwrite
        self._recover(target.parent)
        if target.is_dir():
            raise InputError(target, "is a folder; expected a file name")
        if target.exists() and not overwrite:
            raise InputError(target, "already exists; choose another --out or add --overwrite")
        return self._declare(target, folder=False, overwrite=overwrite) / target.name

    def final(self, path: str | Path) -> Path:
        """The published path of ``path`` (a path inside a staging folder), else ``path``."""
        path = Path(path)
        for e in self.entries:
            if path == e.staged or e.staged in path.parents:
                return e.target / path.relative_to(e.staged) if e.folder else e.target
        return path

    def _declare(self, target: Path, folder: bool, overwrite: bool | None = None) -> Path:
        if any(e.target == target for e in self.entries):
            raise ValueError(f"{target} declared twice")
        missing = [d for d in (target.parent, *target.parent.parents) if not d.exists()]
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._created += reversed(missing)  # removed again (if empty) when discarding
        except OSError as err:  # named as the user gave it, not as our staging folder
            raise InputError(target, f"cannot create its folder ({err.strerror})") from None
        name = target.name
        entry = Entry(
            target,
            target.parent / f".{name}.staging-{self.txn}",
            target.parent / f".{name}.old-{self.txn}",
            folder,
            self.overwrite if overwrite is None else overwrite,
        )
        try:
            entry.staging.mkdir()
        except OSError as err:
            raise InputError(target, f"cannot write beside it ({err.strerror})") from None
        self.entries.append(entry)
        return entry.staging

    def _recover(self, directory: Path) -> None:
        directory = directory.resolve()
        if self.recover and directory not in self._recovered:
            self._recovered.add(directory)
            self.notes += recover(directory)

    def _check_folder(self, target: Path, marker: str | None) -> None:
        if not target.is_dir() or not any(target.iterdir()):
            return
        holds = marker is not None and (target / marker).exists()
        what = f"results ({marker})" if holds else "files"
        if not self.overwrite:
            raise InputError(
                target, f"already holds {what}; choose another --out or add --overwrite"
            )
        if marker is not None and not holds:
            raise InputError(
                target,
                f"holds files but no {marker}: not an earlier output of this command, so "
                "--overwrite does not replace it; choose another --out",
            )

    # -- publishing ------------------------------------------------------------------------
    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.discard()
            return
        try:
            self.publish()
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Delete the staging folders and the folders made for them; the targets stay as they
        were (a failed ``train --out new/m.json`` leaves no empty ``new/``)."""
        if not self.published:
            for e in self.entries:
                rmtree(e.staging)
            for folder in reversed(self._created):
                with contextlib.suppress(OSError):  # not empty: someone else wrote there
                    folder.rmdir()

    def publish(self) -> None:
        """Move every staged output into place (atomically for one output; for several, by
        the two-phase journal of the module doc)."""
        if self.published or not self.entries:
            return
        for e in self.entries:  # the new files are on disk before any name points at them
            fsync_tree(e.staging)
        checkpoint("synced the staged outputs")
        # Two commands writing the same outputs publish one after the other, never interleaved.
        with locked([e.target.parent for e in self.entries]):
            self._publish_locked()

    def _publish_locked(self) -> None:
        for e in self.entries:  # another process may have written a target meanwhile
            if not e.overwrite:
                taken = e.target.is_dir() and any(e.target.iterdir())
                if taken or (e.target.exists() and not e.target.is_dir()):
                    raise InputError(e.target, "was written meanwhile; choose another --out")
        if len(self.entries) == 1 and self._publish_one(self.entries[0]):
            self.published = True
            return
        prepares, commit = journal_paths(self.entries, self.txn)
        text = json.dumps({"entries": [e.as_json() for e in self.entries]}, indent=1)
        for path in prepares:
            write_durable(path, text)
            fsync_dir(path.parent)
            checkpoint(f"prepared {path.name}")
        os.rename(prepares[0], commit)
        fsync_dir(commit.parent)
        self.published = True  # committed: from here on a failure is finished by the next run
        checkpoint("committed")
        _roll_forward(self.entries)
        for path in prepares[1:]:
            path.unlink()
            fsync_dir(path.parent)
            checkpoint(f"deleted {path.name}")
        commit.unlink()
        fsync_dir(commit.parent)
        checkpoint("deleted the commit journal")

    @staticmethod
    def _publish_one(e: Entry) -> bool:
        """Publish one output in one atomic step; False when that needs the journal."""
        if not e.folder:
            os.replace(e.staged, e.target)
            fsync_dir(e.target.parent)
            checkpoint(f"moved in {e.target.name}")
            os.rmdir(e.staging)
            return True
        if not e.target.exists() or (e.target.is_dir() and not any(e.target.iterdir())):
            os.rename(e.staging, e.target)  # an empty folder at the target is replaced
            fsync_dir(e.target.parent)
            checkpoint(f"moved in {e.target.name}")
            return True
        if _exchange(e.staging, e.target):
            fsync_dir(e.target.parent)
            checkpoint(f"exchanged {e.target.name}")
            rmtree(e.staging)  # now the old folder
            return True
        return False


@contextlib.contextmanager
def atomic_folder(
    target: str | Path, overwrite: bool = False, marker: str | None = None
) -> Iterator[Path]:
    """One output folder: yields the staging folder, published at the end (see OutputSet)."""
    with OutputSet(overwrite) as outputs:
        yield outputs.folder(target, marker)


@contextlib.contextmanager
def atomic_file(target: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """One output file: yields the path to write, published at the end (see OutputSet)."""
    with OutputSet(overwrite) as outputs:
        yield outputs.file(target)
