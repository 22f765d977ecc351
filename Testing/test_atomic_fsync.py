"""core.atomic syncs before it publishes: every staged file and its folder are fsync'ed before
the rename that makes them visible, a journal before it is renamed to commit, and the target's
folder after the rename (so a power loss after success keeps the outputs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from RefractureRiskLib.core import atomic
from RefractureRiskLib.core.atomic import OutputSet


@pytest.fixture
def events(monkeypatch):
    """Record ('fsync', path) and ('rename', src, dst) in order."""
    log: list[tuple] = []
    real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

    def fsync(fd):
        log.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}"))))
        return real_fsync(fd)

    def rename(src, dst):
        log.append(("rename", Path(src), Path(dst)))
        return real_rename(src, dst)

    def replace(src, dst):
        log.append(("rename", Path(src), Path(dst)))
        return real_replace(src, dst)

    def exchange(a, b):  # the exchange is a rename too
        log.append(("rename", Path(a), Path(b)))
        return real_exchange(a, b)

    real_exchange = atomic._exchange
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(atomic, "_exchange", exchange)
    return log


def _index(log, kind, path):
    for i, event in enumerate(log):
        if event[0] == kind and (path in event[1:]):
            return i
    raise AssertionError(f"no {kind} of {path} in {log}")


def _first_rename_of(log, src):
    return next(i for i, e in enumerate(log) if e[0] == "rename" and e[1] == src)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("overwrite", [False, True])
def test_files_and_folders_are_synced_before_the_rename_and_the_parent_after(
    tmp_path, events, overwrite
):
    out = tmp_path / "res"
    if overwrite:
        out.mkdir()
        (out / "results.json").write_text("old")
    with OutputSet(overwrite=overwrite) as outputs:
        staging = outputs.folder(out, marker="results.json")
        (staging / "sub").mkdir()
        (staging / "results.json").write_text("new")
        (staging / "sub" / "report.html").write_text("new")
    publish = _first_rename_of(events, staging)
    for path in (staging / "results.json", staging / "sub" / "report.html", staging / "sub"):
        assert _index(events, "fsync", path) < publish, path
    assert _index(events, "fsync", staging) < publish
    synced_parent = [i for i, e in enumerate(events) if e == ("fsync", tmp_path)]
    assert synced_parent and synced_parent[-1] > publish
    assert (out / "results.json").read_text() == "new"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_a_set_syncs_its_files_then_its_journals_before_the_commit_rename(tmp_path, events):
    a, b = tmp_path / "A", tmp_path / "B"
    with OutputSet() as outputs:
        model = outputs.file(a / "m.json")
        model.write_text("m")
        (outputs.folder(b / "rep") / "validation.json").write_text("r")
    commit = next(i for i, e in enumerate(events) if e[0] == "rename" and ".commit-" in e[2].name)
    prepare = events[commit][1]
    assert _index(events, "fsync", model) < commit
    assert _index(events, "fsync", prepare) < commit  # the journal is whole before it counts
    secondary = [e[1] for e in events[:commit] if e[0] == "fsync" and ".prepare-" in e[1].name]
    assert {p.parent for p in secondary} == {a, b}  # a copy in every folder of the set
    assert any(e == ("fsync", a) for e in events[commit + 1 :])
    assert (a / "m.json").read_text() == "m" and (b / "rep" / "validation.json").exists()
    assert sorted(p.name for p in a.iterdir()) == ["m.json"]
    assert sorted(p.name for p in b.iterdir()) == ["rep"]
