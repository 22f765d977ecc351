"""core.atomic_fs.fsync_tree syncs the files of a tree concurrently: every file is synced, all
of them before any folder, the folders deepest first, and an error syncing one file is raised
(after the others were synced), so publishing stops before any rename."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from RefractureRiskLib.core import atomic_fs

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")


def _tree(root: Path) -> list[Path]:
    files = []
    for sub in ("", "a", "a/b", "c"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for n in range(3):
            path = root / sub / f"f{n}.bin"
            path.write_bytes(os.urandom(1000))
            files.append(path)
    return files


def _recording(
    monkeypatch, fail: Path | None = None, others_s: float = 0.0
) -> list[tuple[Path, str]]:
    """Record each fsync's path and thread; ``fail`` raises at once, the others take at least
    ``others_s`` (so files are still queued when the error comes)."""
    log: list[tuple[Path, str]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        log.append((path, threading.current_thread().name))
        if path == fail:
            raise OSError(5, "Input/output error")
        time.sleep(others_s)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return log


def test_every_file_then_the_folders_deepest_first(tmp_path, monkeypatch) -> None:
    files = _tree(tmp_path)
    log = _recording(monkeypatch)
    atomic_fs.fsync_tree(tmp_path)
    synced = [p for p, _ in log]
    assert sorted(synced[: len(files)]) == sorted(files)
    folders = synced[len(files) :]
    assert set(folders) == {tmp_path, tmp_path / "a", tmp_path / "a/b", tmp_path / "c"}
    assert folders.index(tmp_path / "a/b") < folders.index(tmp_path / "a")
    assert folders[-1] == tmp_path
    assert any(name.startswith("files") for _, name in log[: len(files)])  # on the threads


def test_an_error_on_one_file_is_raised_after_the_others(tmp_path, monkeypatch) -> None:
    files = _tree(tmp_path)  # 12 files on 8 threads: 4 wait in the queue
    walk = os.walk(tmp_path, topdown=False)  # fsync_tree's order
    first = next(Path(here) / n for here, _, names in walk for n in names)
    log = _recording(monkeypatch, fail=first, others_s=0.05)  # the first submitted fails
    with pytest.raises(OSError, match="Input/output"):
        atomic_fs.fsync_tree(tmp_path)
    assert {p for p, _ in log} == set(files)  # every file tried, no folder synced after it


def test_one_file_and_a_file_root_are_synced_in_this_thread(tmp_path, monkeypatch) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "only.txt").write_text("x")
    (tmp_path / "single.txt").write_text("y")
    log = _recording(monkeypatch)
    atomic_fs.fsync_tree(tmp_path / "d")
    atomic_fs.fsync_tree(tmp_path / "single.txt")
    assert [p for p, _ in log] == [
        tmp_path / "d" / "only.txt",
        tmp_path / "d",
        tmp_path / "single.txt",
    ]
    assert {name for _, name in log} == {threading.current_thread().name}
