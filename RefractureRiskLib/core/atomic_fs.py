"""The file-system steps of atomic output sets (:mod:`.atomic`): who owns a leftover (host tag,
process liveness), deleting, fsync of files, trees and folders, folder locks, the one-step swap
of two folders, and the journal of a set (its entries, prepare and commit files).

Nothing here calls :data:`.atomic.checkpoint` (the fault-injection hook): every step a test
kills the process at is in :mod:`.atomic`.

Only what every command's output set uses is imported here: ``shutil``, ``ctypes`` and
``socket`` are imported by the steps that need them (deleting a tree with subfolders, the
exchange, a host without ``os.uname``), and :mod:`hashlib` when the host tag is first made.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: The name of a staging folder, an old folder moved aside, or a journal file:
#: ``.<name>.<kind>-<host>-<pid>-<random>[.json]``.
ARTEFACT = re.compile(
    r"^\.(?P<name>.+)\.(?P<kind>staging|old|prepare|commit)-"
    r"(?P<txn>(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{8})(?:\.json)?$"
)


def host_tag() -> str:
    """A short, file-name-safe tag of this host (names the owner of staging folders): the
    first 8 hex digits of the SHA-256 of its host name."""
    import hashlib

    return hashlib.sha256(host_name().encode()).hexdigest()[:8]


def host_name() -> str:
    """``socket.gethostname()``: on POSIX the node name ``uname`` gives (what gethostname
    returns), without importing socket."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (a zombie, dead but not yet reaped by
    its parent, does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    with contextlib.suppress(OSError, IndexError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    return True


def dead_txn(host: str, pid: str) -> bool:
    return host == host_tag() and not pid_alive(int(pid))


def rmtree(path: Path) -> None:
    """Delete ``path``, a file or a whole folder (best effort, as ``shutil.rmtree`` with
    ``ignore_errors``; symbolic links are removed, never followed). A folder's own files are
    unlinked concurrently (:func:`_concurrently`: an unlink waits for the disk as an fsync
    does; the 8 files of a fatwater output took 23-36 ms one by one, 3-12 ms together);
    ``shutil`` deletes what is left (subfolders) and is imported only then."""
    if not path.is_dir() or path.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    with contextlib.suppress(OSError):
        with os.scandir(path) as entries:
            files = [Path(e.path) for e in entries if not e.is_dir(follow_symlinks=False)]
        _concurrently(_unlink_quietly, files)
        os.rmdir(path)
        return
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def fsync_dir(path: Path) -> None:
    """Make ``path``'s entries (names created, renamed, deleted) durable."""
    if os.name == "nt":  # folders cannot be opened for fsync on Windows
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    except OSError as err:  # some file systems cannot sync a folder; a real I/O error can
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Files :func:`fsync_tree` syncs (:func:`rmtree` unlinks) at once. Each fsync waits for the
#: disk (on the development machine's ext4 ~4 ms, even for a file just synced); concurrent ones
#: share the journal's commits: the 8 files of a fatwater output took 27-32 ms one by one, 5-9
#: ms together.
SYNC_THREADS = 8


def fsync_tree(root: Path) -> None:
    """fsync every file under ``root`` (or ``root`` itself), then the folders, deepest first.
    The files are synced concurrently (:data:`SYNC_THREADS` threads; fsync releases the GIL);
    the first error is raised once they are done."""
    if not root.is_dir() or root.is_symlink():
        if root.is_file():
            fsync_file(root)
        return
    files: list[Path] = []
    folders: list[Path] = []
    for here, _dirs, names in os.walk(root, topdown=False):
        paths = (Path(here) / name for name in names)
        files += [p for p in paths if p.is_file() and not p.is_symlink()]
        folders.append(Path(here))
    _concurrently(fsync_file, files)
    for folder in folders:
        fsync_dir(folder)


def _concurrently(action: Callable[[Path], None], paths: list[Path]) -> None:
    """``action(path)`` for every path, on up to :data:`SYNC_THREADS` threads (one path: in
    this thread); the first error is raised once every path was tried."""
    if len(paths) < 2:
        for path in paths:
            action(path)
        return
    from concurrent.futures import ThreadPoolExecutor

    workers = min(SYNC_THREADS, len(paths))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="files") as pool:
        done = [pool.submit(action, path) for path in paths]  # (map would cancel the rest)
    for future in done:  # all finished: the first error is raised
        future.result()


def write_durable(path: Path, text: str) -> None:
    """Write ``path`` and fsync it (a journal must be whole before it is renamed or trusted)."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def locked(folders: list[Path]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on each folder (in path order, so two sets sharing folders
    cannot deadlock) while a set is published or a dead run's set is finished: two commands
    writing the same outputs, or two recovering the same leftovers, take turns. Best effort:
    where folders cannot be locked (Windows, some network file systems) nothing is held."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fds: list[int] = []
    try:
        for folder in sorted(set(folders)):
            try:
                fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                os.close(fd)
                continue
            fds.append(fd)
        yield
    finally:
        for fd in reversed(fds):
            os.close(fd)  # closing the last descriptor releases the lock


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@dataclass(frozen=True)
class Entry:
    """One output: ``target`` is published from ``staging`` (a folder, or a folder holding the
    file under the target's name); ``old`` is where an old folder waits during the journal."""

    target: Path
    staging: Path
    old: Path
    folder: bool
    overwrite: bool = False

    @property
    def staged(self) -> Path:
        return self.staging if self.folder else self.staging / self.target.name

    def as_json(self) -> dict[str, object]:
        return {
            "target": str(self.target),
            "staging": str(self.staging),
            "old": str(self.old),
            "folder": self.folder,
        }


def journal_paths(entries: list[Entry], txn: str) -> tuple[list[Path], Path]:
    """The prepare files of a set (one per folder, the primary first) and its commit file."""
    seen: dict[Path, Path] = {}
    for e in entries:
        seen.setdefault(e.target.parent, e.target.parent / f".{e.target.name}.prepare-{txn}.json")
    prepares = list(seen.values())
    commit = prepares[0].with_name(prepares[0].name.replace(".prepare-", ".commit-", 1))
    return prepares, commit


def read_journal(path: Path, txn: str) -> tuple[list[Entry], list[Path], Path] | None:
    """The entries, prepare files and commit file a journal names; None if it is not whole or
    not one of ours (every path it names must be an artefact of its own transaction)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        entries = [
            Entry(Path(e["target"]), Path(e["staging"]), Path(e["old"]), bool(e["folder"]))
            for e in doc["entries"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not entries:
        return None
    for e in entries:
        if e.staging != e.target.parent / f".{e.target.name}.staging-{txn}":
            return None
        if e.old != e.target.parent / f".{e.target.name}.old-{txn}":
            return None
    prepares, commit = journal_paths(entries, txn)
    if path not in (*prepares, commit):
        return None
    return entries, prepares, commit
