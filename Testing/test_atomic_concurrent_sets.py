"""Two commands writing the same output set at the same moment (two ``train --overwrite`` on
one model file, card and report) publish one after the other: the outputs are afterwards one
complete set, never model and report of different runs. The children sleep at every step of
publishing (``atomic.checkpoint``) so that, without the lock, their moves would interleave."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from RefractureRiskLib.core.atomic import OutputSet

REPO = Path(__file__).resolve().parents[1]

WRITER = r"""
import sys, time
from pathlib import Path
from RefractureRiskLib.core import atomic
from RefractureRiskLib.core.atomic import OutputSet
a, b, tag, start = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
atomic.checkpoint = lambda step: time.sleep(0.02)
with OutputSet(overwrite=True) as outputs:
    outputs.file(a / "m.json").write_text(tag)
    outputs.file(a / "m.md").write_text(tag)
    folder = outputs.folder(b / "rep", marker="validation.json")
    for name in ("validation.json", "report.html"):
        (folder / name).write_text(tag)
    while time.time() < start:  # both publish at the same moment
        time.sleep(0.001)
"""


def _tags(a: Path, b: Path) -> set[str]:
    files = [a / "m.json", a / "m.md", b / "rep" / "validation.json", b / "rep" / "report.html"]
    return {p.read_text() for p in files}


def test_two_writers_of_one_set_never_leave_a_mix(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    with OutputSet() as outputs:
        outputs.file(a / "m.json").write_text("first")
        outputs.file(a / "m.md").write_text("first")
        folder = outputs.folder(b / "rep", marker="validation.json")
        (folder / "validation.json").write_text("first")
        (folder / "report.html").write_text("first")
    for round_ in range(6):
        start = time.time() + 1.5
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, str(a), str(b), f"r{round_}w{w}", str(start)],
                cwd=REPO,
                stderr=subprocess.PIPE,
                text=True,
            )
            for w in range(2)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        assert len(_tags(a, b)) == 1, f"round {round_}: a mix of two runs' outputs"
        assert _tags(a, b) <= {f"r{round_}w0", f"r{round_}w1"}
        leftovers = [p.name for d in (a, b) for p in d.iterdir() if p.name.startswith(".")]
        assert leftovers == []
