"""Benchmark: what a user waits for, in new processes, against reference commands.

Run:  python bench/bench_cold.py [--repeats N] [--vendor GE|Siemens|Philips]

Writes the demo's phantom study (6 DICOM series, GE style by default) and its clinical file into a
temporary folder, then alternates, ``--repeats`` times each, in new processes as a user runs them:

- ``refracture-risk analyze STUDY --clinical patient.json --index-levels L1 --out OUT`` (report
  included) against ``dcm2niix -z n`` converting the same study (goal: ratio <= 5);
- ``refracture-risk --help`` against ``python -c "import numpy"`` (goal: ratio <= 2).

Prints the median wall time of each command and the ratios. ``refracture-risk`` is the console
script beside this Python (else ``python -m RefractureRiskLib.cli``); dcm2niix is the PyPI build
beside this Python, else the one on PATH.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_ANALYZE = 5.0
GOAL_HELP = 2.0


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:3])} ... failed ({proc.returncode}): {proc.stderr[-800:]}"
        )
    return elapsed


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def make_study(folder: Path, vendor: str) -> tuple[Path, Path]:
    """The demo's phantom written as DICOM, and the demo patient's clinical file."""
    from RefractureRiskLib.commands.demo import DEMO_CLINICAL
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
    from RefractureRiskLib.phantom.dicom_writer import write_dicom_study

    phantom = generate_phantom(PhantomSpec(seed=1, fractured={"L1": 0.3}, snr=80.0))
    study = folder / "dicom"
    write_dicom_study(phantom.study, study, vendor=vendor, seed=1)
    clinical = folder / "patient.json"
    clinical.write_text(json.dumps(DEMO_CLINICAL))
    return study, clinical


def alternate(a: list[str], b: list[str], repeats: int, before=None) -> tuple[list, list]:
    """Wall times of ``a`` and ``b``, run in turn (a, b, a, b, ...) after one untimed warm-up
    of each, so that file-cache and machine-load changes hit both alike."""
    ta, tb = [], []
    for i in range(repeats + 1):
        if before:
            before(i)
        x, y = _wall(a), _wall(b)
        if i:  # the first round warms the file cache and Python's bytecode cache
            ta.append(x)
            tb.append(y)
    return ta, tb


def _line(label: str, times: list[float]) -> str:
    runs = ", ".join(f"{t:.2f}" for t in times)
    return f"{label:<34} median {statistics.median(times):7.3f} s  (runs: {runs})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--vendor", choices=("GE", "Siemens", "Philips"), default="GE")
    args = ap.parse_args(argv)

    script = _tool("refracture-risk")
    ours = [script] if script else [sys.executable, "-m", "RefractureRiskLib.cli"]
    dcm2niix = _tool("dcm2niix")
    with tempfile.TemporaryDirectory(prefix="bench_cold_") as tmp:
        work = Path(tmp)
        study, clinical = make_study(work, args.vendor)
        n_files = sum(1 for p in study.rglob("*") if p.is_file())
        print(f"study: {n_files} DICOM files ({args.vendor} style); refracture-risk: {ours[0]}")

        help_ours, help_numpy = alternate(
            [*ours, "--help"], [sys.executable, "-c", "import numpy"], args.repeats
        )
        print(_line("refracture-risk --help", help_ours))
        print(_line('python -c "import numpy"', help_numpy))
        help_ratio = statistics.median(help_ours) / statistics.median(help_numpy)

        analyze_ratio = None
        if dcm2niix is None:
            print("dcm2niix not found (pip install dcm2niix): analyze ratio not measured")
        else:
            out, nifti = work / "out", work / "nifti"

            def clean(_i: int) -> None:
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(nifti, ignore_errors=True)
                nifti.mkdir()

            analyze = [*ours, "analyze", str(study), "--clinical", str(clinical)]
            analyze += ["--index-levels", "L1", "--out", str(out)]
            t_ours, t_d2n = alternate(
                analyze, [dcm2niix, "-z", "n", "-o", str(nifti), str(study)], args.repeats, clean
            )
            print(_line("refracture-risk analyze (report)", t_ours))
            print(_line("dcm2niix -z n", t_d2n))
            analyze_ratio = statistics.median(t_ours) / statistics.median(t_d2n)

    print(f"ratio --help / import numpy      = {help_ratio:.2f}  (goal <= {GOAL_HELP:g})")
    if analyze_ratio is not None:
        print(f"ratio analyze / dcm2niix         = {analyze_ratio:.2f}  (goal <= {GOAL_ANALYZE:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
