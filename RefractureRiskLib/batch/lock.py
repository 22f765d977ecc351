"""One batch per output folder: a lock file created with O_EXCL, naming its owner.

``OUT/.batch.lock`` holds the owner's pid, host and start time (JSON). A second batch on the
same ``--out`` is refused with a message naming the first. A lock left by a killed batch on this
host (its pid is gone) is taken over, with a note; a lock of another host is never taken over
(remove the file by hand once that run is known to be dead).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from RefractureRiskLib.core.atomic import pid_alive
from RefractureRiskLib.core.errors import InputError

LOCK_FILE = ".batch.lock"


def _owner() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv[:12]),
    }


def _describe(owner: dict[str, object]) -> str:
    return (
        f"pid {owner.get('pid')} on {owner.get('host')}, started {owner.get('started_utc')}"
        if owner
        else "an unreadable lock file"
    )


def _read(path: Path) -> dict[str, object]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _stale(owner: dict[str, object]) -> bool:
    """A lock of this host whose process is gone."""
    pid = owner.get("pid")
    return owner.get("host") == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid)


def _create(path: Path, owner: dict[str, object]) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(owner, fh)
    return True


@contextlib.contextmanager
def batch_lock(out: Path, notes: list[str] | None = None) -> Iterator[Path]:
    """Hold the lock on batch folder ``out`` (created) for the ``with`` block.

    Raises InputError naming the other batch when one holds it. ``notes`` receives a line when
    a dead batch's lock was taken over.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    owner = _owner()
    if not _create(path, owner):
        # Judge and replace a stale lock under an flock of the folder, so two batches that
        # both find it stale cannot both take it over.
        fd = os.open(out, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            other = _read(path)
            if path.exists() and not _stale(other):
                raise InputError(
                    out,
                    f"another batch is running on this folder ({_describe(other)}; lock file "
                    f"{path.name}); wait for it to finish or choose another --out",
                )
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            if not _create(path, owner):  # pragma: no cover - a non-cooperating writer
                raise InputError(out, f"another batch took the lock ({_describe(_read(path))})")
            if other and notes is not None:
                notes.append(
                    f"took over the lock of a batch that is no longer running ({_describe(other)})"
                )
        finally:
            os.close(fd)
    try:
        yield path
    finally:
        if _read(path).get("pid") == owner["pid"] and _read(path) == owner:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
