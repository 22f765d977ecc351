"""kill -9 at every step of publishing an output set (core.atomic): the targets then hold the
complete old set or the complete new set, never a mix, once the next run (or a command reading
the model) has recovered; before that, a mix is only ever present beside a commit journal.

A child process replaces ``atomic.checkpoint`` (called between every file-system step of
publishing and of finishing a committed set) by a function that counts the steps and sends
itself SIGKILL at step ``k``; the test runs k = 1, 2, ... until a child finishes.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from RefractureRiskLib.core.atomic import recover

REPO = Path(__file__).resolve().parents[1]

#: Prepended to every child: counts the steps and kills itself at the k-th (argv[1], argv[2]).
KILLER = r"""
import os, signal, sys
from RefractureRiskLib.core import atomic
_log, _kill_at = sys.argv[1], int(sys.argv[2])
_count = 0
def _step(name):
    global _count
    _count += 1
    with open(_log, "a") as fh:
        fh.write(name + "\n")
    if _count == _kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
atomic.checkpoint = _step
del sys.argv[1:3]
"""

#: A set like train's: two files in folder A, a report folder in folder B; content argv[1].
WRITE_SET = r"""
from pathlib import Path
from RefractureRiskLib.core.atomic import OutputSet
mode, a, b, tag = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
if mode == "no-exchange":
    atomic._exchange = lambda x, y: False
with OutputSet(overwrite=True) as outputs:
    if mode == "set":
        outputs.file(a / "m.json").write_text(f"model {tag}")
        atomic.checkpoint("wrote the model")
        outputs.file(a / "m.md").write_text(f"card {tag}")
        atomic.checkpoint("wrote the card")
    folder = outputs.folder(b / "rep", marker="validation.json")
    for name in ("validation.json", "report.html", "figure.png"):
        (folder / name).write_text(f"{name} {tag}")
        atomic.checkpoint(f"wrote {name}")
"""


def _snapshot(a: Path, b: Path) -> dict[str, str]:
    """Every visible file of the two output folders -> its text (or bytes' length and hash)."""
    out = {}
    for root in (a, b):
        for p in sorted(root.rglob("*")):
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts):
                out[f"{root.name}/{p.relative_to(root)}"] = p.read_bytes()
    return out


def _artefacts(*folders: Path) -> list[str]:
    return sorted(p.name for f in folders for p in f.iterdir() if p.name.startswith("."))


def _run_child(script: str, log: Path, k: int, args: list[str]) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", KILLER + script, str(log), str(k), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr
    return proc.returncode


def _kill_at_every_step(tmp_path, script, args, reset, old, new, reader=None):
    """Run the child killed at step 1, 2, ... until it finishes; check every state."""
    a, b, log = tmp_path / "A", tmp_path / "B", tmp_path / "steps.log"
    outcomes: list[str] = []
    for k in range(1, 60):
        reset()
        log.unlink(missing_ok=True)
        code = _run_child(script, log, k, args)
        state = _snapshot(a, b)
        committed = any(".commit-" in name for name in _artefacts(a, b))
        if code == 0:
            assert state == new and _artefacts(a, b) == []
            steps = log.read_text().splitlines()
            assert len(steps) == k - 1  # every step was tried as a kill point
            return outcomes, steps
        if not committed:  # before the commit point, or after the set was finished
            assert state in (old, new), f"mixed targets without a commit journal at step {k}"
        elif state not in (old, new):
            outcomes.append("mixed under a commit journal")
        # the next run: recovery from either folder first (the journal's copies), or a reader
        if reader is not None and k % 3 == 0:
            reader()
        first, second = (a, b) if k % 2 else (b, a)
        recover(first)
        recover(second)
        state = _snapshot(a, b)
        assert state in (old, new), f"a mix of old and new outputs after a kill at step {k}"
        assert _artefacts(a, b) == [], f"leftovers after recovery (kill at step {k})"
        outcomes.append("old" if state == old else "new")
    raise AssertionError("the child never finished")


@pytest.mark.parametrize("mode", ["set", "exchange", "no-exchange"])
def test_kill_at_every_step_of_publishing_leaves_old_or_new(tmp_path, mode):
    a, b = tmp_path / "A", tmp_path / "B"
    script = WRITE_SET

    def write(tag: str) -> None:
        for root in (a, b):
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
        if mode == "set":
            (a / "m.json").write_text(f"model {tag}")
            (a / "m.md").write_text(f"card {tag}")
        (b / "rep").mkdir()
        for name in ("validation.json", "report.html", "figure.png"):
            (b / "rep" / name).write_text(f"{name} {tag}")

    write("new")
    new = _snapshot(a, b)
    write("old")
    old = _snapshot(a, b)
    child_mode = "set" if mode == "set" else mode
    outcomes, steps = _kill_at_every_step(
        tmp_path, script, [child_mode, str(a), str(b), "new"], lambda: write("old"), old, new
    )
    assert "old" in outcomes and "new" in outcomes  # kills before and after the commit point
    # the window a journal closes exists (several targets), and only there
    assert ("mixed under a commit journal" in outcomes) == (mode != "exchange")
    if mode != "exchange":
        assert "committed" in steps
    else:
        assert any(s.startswith("exchanged") for s in steps)


def test_a_prepare_journal_cut_short_is_removed_and_the_old_set_kept(tmp_path):
    from RefractureRiskLib.core.atomic import host_tag

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    txn = f"{host_tag()}-{proc.pid}-0123abcd"
    (tmp_path / "m.json").write_text("old")
    staging = tmp_path / f".m.json.staging-{txn}"
    staging.mkdir()
    (staging / "m.json").write_text("new")
    (tmp_path / f".m.json.prepare-{txn}.json").write_text('{"entries": [{"tar')
    recover(tmp_path)
    assert (tmp_path / "m.json").read_text() == "old"
    assert _artefacts(tmp_path) == []


def test_a_journal_naming_paths_outside_its_own_set_is_not_followed(tmp_path):
    """Recovery deletes only artefacts of the journal's own transaction, never what a
    damaged or crafted journal names."""
    import json

    from RefractureRiskLib.core.atomic import host_tag

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    txn = f"{host_tag()}-{proc.pid}-0123abcd"
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("keep me")
    entries = [
        {
            "target": str(tmp_path / "out"),
            "staging": str(precious),
            "old": str(tmp_path / f".out.old-{txn}"),
            "folder": True,
        }
    ]
    journal = tmp_path / f".out.commit-{txn}.json"
    journal.write_text(json.dumps({"entries": entries}))
    recover(tmp_path)
    assert (precious / "data.txt").read_text() == "keep me"
    assert journal.exists()  # left for a person, with everything of its transaction


def _cohort(path: Path) -> None:
    from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort

    generate_cohort(n=150, seed=3).data.to_csv(path, index=False)


TRAIN = r"""
from RefractureRiskLib.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_kill_at_every_step_of_train_leaves_the_old_or_the_new_model_card_and_report(tmp_path):
    """``train --overwrite`` writes model.json, model.md (folder A) and the report (folder B):
    killed at every step, the three are afterwards the complete old or the complete new set;
    ``score --model`` (a reader) finishes a committed set before reading it."""
    cohort = tmp_path / "cohort.csv"
    _cohort(cohort)
    a, b = tmp_path / "A", tmp_path / "B"
    common = ["--bootstrap", "5", "--no-loco", "--imputations", "2"]

    def train(root: Path, name: str) -> None:
        argv = [
            str(cohort),
            "--out",
            str(root / "A" / "m.json"),
            "--report",
            str(root / "B" / "rep"),
        ]
        cmd = [sys.executable, "-m", "RefractureRiskLib.cli", "train", *argv, *common]
        subprocess.run([*cmd, "--name", name], cwd=REPO, check=True, capture_output=True)

    refs = {}
    for name in ("old", "new"):
        root = tmp_path / f"ref_{name}"
        train(root, f"model {name}")
        refs[name] = _snapshot(root / "A", root / "B")
    assert refs["old"] != refs["new"]
    assert len(refs["new"]) >= 4  # model, card and several report files

    def reset() -> None:
        for root in (a, b):
            shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(tmp_path / "ref_old" / "A", a)
        shutil.copytree(tmp_path / "ref_old" / "B", b)

    def reader() -> None:
        patient = '{"age_years": 70}'
        cmd = [sys.executable, "-m", "RefractureRiskLib.cli", "score", "--model", str(a / "m.json")]
        subprocess.run([*cmd, "--patient", patient], cwd=REPO, capture_output=True, timeout=120)
        if not _artefacts(a, b):  # the reader finished the set
            assert _snapshot(a, b) in (refs["old"], refs["new"])

    argv = ["train", str(cohort), "--out", str(a / "m.json"), "--report", str(b / "rep")]
    outcomes, steps = _kill_at_every_step(
        tmp_path,
        TRAIN,
        [*argv, *common, "--name", "model new", "--overwrite"],
        reset,
        refs["old"],
        refs["new"],
        reader=reader,
    )
    assert "committed" in steps and "old" in outcomes and "new" in outcomes
    assert "mixed under a commit journal" in outcomes
    assert filecmp.cmp(a / "m.json", tmp_path / "ref_new" / "A" / "m.json", shallow=False)
    assert os.path.isfile(b / "rep" / "report.html")
