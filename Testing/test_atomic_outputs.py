"""Atomic output sets (core.atomic): a failure leaves nothing new and the old set as it was;
--overwrite replaces the old set only by a complete new one; a kill -9 at any moment leaves the
complete old or the complete new set; leftovers of dead processes are recovered on the next run.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from RefractureRiskLib.cli import main
from RefractureRiskLib.core import atomic
from RefractureRiskLib.core.atomic import OutputSet, host_tag, recover
from RefractureRiskLib.core.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _tree(folder: Path) -> dict[str, str | bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        if p.suffix in (".nrrd", ".pdf", ".png")
        else p.read_text()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------------------------------------
# The helper


def test_new_folder_appears_only_complete_and_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(OSError), OutputSet() as outputs:
        staging = outputs.folder(target, marker="results.json")
        (staging / "results.json").write_text("new")
        assert not target.exists()  # nothing at the target while writing
        raise OSError(errno.ENOSPC, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no empty --out, no staging

    with OutputSet() as outputs:
        staging = outputs.folder(target, marker="results.json")
        (staging / "results.json").write_text("v1")
    assert _tree(target) == {"results.json": "v1"}
    assert outputs.final(staging / "results.json") == target / "results.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_overwrite_replaces_only_with_a_complete_set(tmp_path):
    target = tmp_path / "out"
    with OutputSet() as outputs:
        staging = outputs.folder(target, marker="results.json")
        (staging / "results.json").write_text("v1")
        (staging / "report.html").write_text("v1")
    with pytest.raises(InputError, match="already holds results"), OutputSet() as outputs:
        outputs.folder(target, marker="results.json")
    with pytest.raises(KeyboardInterrupt), OutputSet(overwrite=True) as outputs:
        staging = outputs.folder(target, marker="results.json")
        (staging / "results.json").write_text("v2")
        raise KeyboardInterrupt
    assert _tree(target) == {"results.json": "v1", "report.html": "v1"}
    with OutputSet(overwrite=True) as outputs:
        staging = outputs.folder(target, marker="results.json")
        (staging / "results.json").write_text("v2")
    assert _tree(target) == {"results.json": "v2"}  # the old set is gone as a whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_overwrite_never_deletes_a_folder_that_is_not_an_output(tmp_path):
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "letter.txt").write_text("keep me")
    with pytest.raises(InputError, match=r"no results\.json"), OutputSet(overwrite=True) as o:
        o.folder(mine, marker="results.json")
    assert _tree(mine) == {"letter.txt": "keep me"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["documents"]


def test_without_exchange_the_journal_path_gives_the_same_result(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    target = tmp_path / "out"
    target.mkdir()
    (target / "results.json").write_text("v1")
    with OutputSet(overwrite=True) as outputs:
        (outputs.folder(target, marker="results.json") / "results.json").write_text("v2")
    assert _tree(target) == {"results.json": "v2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_several_outputs_are_published_together(tmp_path):
    model, card, report = tmp_path / "m.json", tmp_path / "m.md", tmp_path / "rep"
    with OutputSet() as outputs:
        outputs.file(model).write_text("m1")
        outputs.file(card).write_text("c1")
        (outputs.folder(report) / "validation.json").write_text("r1")
    with pytest.raises(RuntimeError), OutputSet(overwrite=True) as outputs:
        outputs.file(model).write_text("m2")
        outputs.file(card).write_text("c2")
        raise RuntimeError("the report failed")
    assert (model.read_text(), card.read_text()) == ("m1", "c1")
    assert _tree(report) == {"validation.json": "r1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.md", "rep"]


def _artefacts(tmp_path: Path, pid: int, names: list[str]) -> str:
    txn = f"{host_tag()}-{pid}-0123abcd"
    for name in names:
        (tmp_path / f".{name}.staging-{txn}").mkdir()
    return txn


def test_a_dead_runs_staging_is_removed_and_a_live_ones_kept(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text("old")
    dead = _artefacts(tmp_path, _dead_pid(), ["out"])
    live = _artefacts(tmp_path, os.getpid(), ["other"])
    recover(tmp_path)
    assert not (tmp_path / f".out.staging-{dead}").exists()
    assert (tmp_path / f".other.staging-{live}").exists()
    assert _tree(tmp_path / "out") == {"results.json": "old"}


def test_a_committed_journal_of_a_dead_run_is_rolled_forward(tmp_path):
    """A kill -9 between the journal and the last move: the next run completes the new set."""
    pid = _dead_pid()
    txn = f"{host_tag()}-{pid}-0123abcd"
    model, report = tmp_path / "m.json", tmp_path / "rep"
    model.write_text("m1")
    report.mkdir()
    (report / "validation.json").write_text("r1")
    s_model, s_report = tmp_path / f".m.json.staging-{txn}", tmp_path / f".rep.staging-{txn}"
    s_model.mkdir()
    (s_model / "m.json").write_text("m2")
    s_report.mkdir()
    (s_report / "validation.json").write_text("r2")
    old_report = tmp_path / f".rep.old-{txn}"
    entries = [
        {"target": str(model), "staging": str(s_model), "old": "", "folder": False},
        {"target": str(report), "staging": str(s_report), "old": str(old_report), "folder": True},
    ]
    entries[0]["old"] = str(tmp_path / f".m.json.old-{txn}")
    (tmp_path / f".m.json.commit-{txn}.json").write_text(json.dumps({"entries": entries}))
    # the kill came after the model moved and the old report moved aside
    os.replace(s_model / "m.json", model)
    os.rename(report, old_report)
    notes = recover(tmp_path)
    assert notes and "completed" in notes[0]
    assert model.read_text() == "m2" and _tree(report) == {"validation.json": "r2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "rep"]


def test_an_old_folder_moved_aside_by_a_dead_run_without_journal_is_restored(tmp_path):
    txn = f"{host_tag()}-{_dead_pid()}-0123abcd"
    aside = tmp_path / f".out.old-{txn}"
    aside.mkdir()
    (aside / "results.json").write_text("old")
    recover(tmp_path)
    assert _tree(tmp_path / "out") == {"results.json": "old"}


# ---------------------------------------------------------------------------------------------
# The commands


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's DICOM study and two clinical files giving different risks."""
    base = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(base / "demo"), "--seed", "2"]) == 0
    clinical = json.loads((base / "demo" / "patient.json").read_text())
    older = base / "older.json"
    older.write_text(json.dumps(clinical | {"age_years": 88, "dxa_l1l4_tscore": -4.0}))
    return base / "demo" / "dicom", base / "demo" / "patient.json", older


def _risk_pair(folder: Path) -> tuple[float, str]:
    doc = json.loads((folder / "results.json").read_text())
    return doc["risk"]["probability"], (folder / "report.html").read_text()


def test_analyze_failing_mid_way_leaves_no_folder_and_keeps_old_results(
    demo, tmp_path, monkeypatch, capsys
):
    from RefractureRiskLib import pipeline_files as pipeline  # the result folder's writer

    dicom, clinical, older = demo
    real_write = pipeline.write_statistics

    def disk_full(stats, path, *rest):
        real_write(stats, path, *rest)  # a first file is written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    out = tmp_path / "res"
    monkeypatch.setattr(pipeline, "write_statistics", disk_full)
    argv = ["analyze", str(dicom), "--clinical", str(clinical), "--index-levels", "L1"]
    assert main([*argv, "--out", str(out)]) == 2
    assert "No space left" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no empty --out, no staging

    monkeypatch.setattr(pipeline, "write_statistics", real_write)
    assert main([*argv, "--out", str(out)]) == 0
    before = _tree(out)
    monkeypatch.setattr(pipeline, "write_statistics", disk_full)
    assert main([*argv[:3], str(older), *argv[4:], "--out", str(out), "--overwrite"]) == 2
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]


def test_train_report_naming_a_file_is_refused_before_anything_is_written(tmp_path, capsys):
    from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort

    cohort = tmp_path / "cohort.csv"
    generate_cohort(n=150, seed=3).data.to_csv(cohort, index=False)
    report = tmp_path / "report.html"
    report.write_text("not a folder")
    argv = ["train", str(cohort), "--out", str(tmp_path / "m.json"), "--report", str(report)]
    assert main([*argv, "--bootstrap", "5"]) == 2
    assert "report.html" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort.csv", "report.html"]


def test_describe_and_agreement_refuse_to_replace_without_overwrite(tmp_path, capsys):
    from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort
    from RefractureRiskLib.store.measurements import Measurement, MeasurementStore, StudySubmission

    cohort = tmp_path / "cohort.csv"
    generate_cohort(n=120, seed=1).data.to_csv(cohort, index=False)
    out = tmp_path / "desc"
    assert main(["describe", str(cohort), "--out", str(out)]) == 0
    (out / "README.txt").write_text("changed by hand")
    assert main(["describe", str(cohort), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "README.txt").read_text() == "changed by hand"
    assert main(["describe", str(cohort), "--out", str(out), "--overwrite"]) == 0
    assert (out / "README.txt").read_text() != "changed by hand"

    store_path = tmp_path / "store.sqlite"
    with MeasurementStore(store_path) as store:
        for reader in ("a", "b"):
            for pid, value in (("P1", 30.0), ("P2", 50.0), ("P3", 42.0)):
                m = Measurement("L1", "pdff", "%", {"mean": value + (reader == "b")})
                store.record_study(StudySubmission(pid, f"1.{pid[1]}", reader, "auto", (m,)))
    table = tmp_path / "icc.csv"
    table.write_text("mine")
    argv = ["agreement", "--store", str(store_path), "--out", str(table)]
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err and table.read_text() == "mine"
    assert main([*argv, "--overwrite"]) == 0
    assert table.read_text().startswith("level")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


KILL_DELAYS = (0.3, 0.6, 0.8, 0.9, 0.95, 1.0, 1.05)


@pytest.mark.slow
def test_sigkill_during_analyze_overwrite_leaves_old_or_new_complete(demo, tmp_path):
    dicom, clinical, older = demo
    out = tmp_path / "res"
    base = ["analyze", str(dicom), "--index-levels", "L1", "--out", str(out)]
    assert main([*base, "--clinical", str(clinical)]) == 0
    p_old, _ = _risk_pair(out)
    cmd = [sys.executable, "-m", "RefractureRiskLib.cli", *base, "--overwrite"]
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--clinical", str(older)], cwd=REPO, check=True, capture_output=True)
    duration = time.perf_counter() - t0
    p_new, _ = _risk_pair(out)
    assert f"{100 * p_new:.1f}%" != f"{100 * p_old:.1f}%"  # the two sets can be told apart
    seen = set()
    for i, fraction in enumerate(KILL_DELAYS):
        which = (clinical, older)[i % 2]
        proc = subprocess.Popen(
            [*cmd, "--clinical", str(which)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(duration * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        probability, html = _risk_pair(out)
        assert probability in (p_old, p_new)
        assert f"{100 * probability:.1f}%" in html  # results.json and report.html agree
        other = p_new if probability == p_old else p_old
        assert f"{100 * other:.1f}%" not in html
        assert {p.name for p in out.iterdir()} >= {"statistics.csv", "rois.seg.nrrd"}
        seen.add(proc.returncode)
    # the next run cleans what the killed ones left beside --out
    subprocess.run([*cmd, "--clinical", str(clinical)], cwd=REPO, check=True, capture_output=True)
    leftovers = [p.name for p in tmp_path.iterdir() if re.match(r"\.res\.", p.name)]
    assert leftovers == []
    assert -signal.SIGKILL in seen  # at least one run was killed, not finished
