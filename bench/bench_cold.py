"""Benchmark: what a user waits for, in new processes, against reference commands.

Run:  python bench/bench_cold.py [--repeats N] [--vendor GE|Siemens|Philips] [--baseline REV]

Writes the demo's phantom study (6 DICOM series, GE style by default) and its clinical file into a
temporary folder, then alternates, ``--repeats`` times each, in new processes as a user runs them:

- ``refracture-risk analyze STUDY --clinical patient.json --index-levels L1 --out OUT`` (report
  included) against ``dcm2niix -z n`` converting the same study (goal: ratio <= 5);
- ``refracture-risk --help`` against ``python -c "import numpy"`` (goal: ratio <= 2).

``--baseline REV`` (repeatable) also runs the library of git revision REV (``git archive`` of
``RefractureRiskLib`` and ``Resources`` into the temporary folder, run as ``python -m
RefractureRiskLib.cli`` from that folder, also first on ``PYTHONPATH``) in the same
alternation, so a change's before/after ratios come from one run under the same machine load.

Python children run with a bytecode cache of their own (``PYTHONPYCACHEPREFIX`` in the temporary
folder, filled by the warm-up round; ``PYTHONDONTWRITEBYTECODE`` removed), as an installed
package runs with its ``.pyc`` files: without it every run compiled the library's ~100 modules
from source (~0.15 s) whenever the caller's environment set ``PYTHONDONTWRITEBYTECODE``.
``--no-pycache`` runs them in the caller's environment unchanged.

Prints the median wall time and CPU time (user + system of the child) of each command and the
ratios, and the machine's load average at the start and the end. ``refracture-risk`` is the console
script beside this Python (else ``python -m RefractureRiskLib.cli``); dcm2niix is the PyPI build
beside this Python, else the one on PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_ANALYZE = 5.0
GOAL_HELP = 2.0


def _wall(
    cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``cmd`` in a new process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:3])} ... failed ({proc.returncode}): {proc.stderr[-800:]}"
        )
    return elapsed, cpu


def _load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages (what the ratios were measured under)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # not available on this platform
        return "unknown"


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


def alternate(commands: list, repeats: int, before=None) -> list[list[tuple[float, float]]]:
    """(wall, CPU) times of each command, run in turn (a, b, c, a, b, c, ...) after one
    untimed warm-up round, so that file-cache and machine-load changes hit all alike.

    A command is a list of arguments, or (arguments, environment, working folder)."""
    times: list[list[tuple[float, float]]] = [[] for _ in commands]
    for i in range(repeats + 1):
        for n, command in enumerate(commands):
            cmd, env, cwd = command if isinstance(command, tuple) else (command, None, None)
            if before:
                before(i)
            measured = _wall(cmd, env, cwd)
            if i:  # the first round warms the file cache and Python's bytecode cache
                times[n].append(measured)
    return times


def _median(times: list[tuple[float, float]], which: int = 0) -> float:
    return statistics.median(t[which] for t in times)


def _line(label: str, times: list[tuple[float, float]]) -> str:
    runs = ", ".join(f"{t[0]:.2f}" for t in times)
    return (
        f"{label:<38} median {_median(times):7.3f} s wall, {_median(times, 1):6.3f} s CPU"
        f"  (wall runs: {runs})"
    )


def baseline_tree(rev: str, work: Path) -> Path:
    """The library and resources of git revision ``rev``, extracted under ``work``."""
    repo = Path(__file__).resolve().parents[1]
    tree = work / f"baseline-{rev}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", rev, "RefractureRiskLib", "Resources"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def python_env(work: Path, inherit: bool) -> dict[str, str]:
    """The environment of the Python children: the caller's, with (unless ``inherit``) a
    bytecode cache under ``work`` that the warm-up round fills."""
    if inherit:
        return dict(os.environ)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPYCACHEPREFIX": str(work / "pycache")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--vendor", choices=("GE", "Siemens", "Philips"), default="GE")
    ap.add_argument(
        "--baseline",
        action="append",
        default=[],
        help="git revision to compare with (repeatable; none by default)",
    )
    ap.add_argument("--skip-help", action="store_true", help="measure analyze only")
    ap.add_argument(
        "--no-pycache",
        action="store_true",
        help="Python children in the caller's environment (no bytecode cache of their own)",
    )
    args = ap.parse_args(argv)

    script = _tool("refracture-risk")
    ours = [script] if script else [sys.executable, "-m", "RefractureRiskLib.cli"]
    dcm2niix = _tool("dcm2niix")
    with tempfile.TemporaryDirectory(prefix="bench_cold_") as tmp:
        work = Path(tmp)
        study, clinical = make_study(work, args.vendor)
        n_files = sum(1 for p in study.rglob("*") if p.is_file())
        print(f"study: {n_files} DICOM files ({args.vendor} style); refracture-risk: {ours[0]}")
        print(f"load average at start: {_load_average()}")
        env = python_env(work, args.no_pycache)
        base_envs = {}
        for rev in args.baseline:
            tree = baseline_tree(rev, work)
            # run from the tree: ``python -m`` puts the working folder first on sys.path
            base_envs[rev] = (dict(env, PYTHONPATH=str(tree)), str(tree))
            print(f"baseline: {rev} from {tree}")
        base_cmd = [sys.executable, "-m", "RefractureRiskLib.cli"]

        help_ratio, base_help = None, {}
        if not args.skip_help:
            commands = [([*ours, "--help"], env, None)]
            commands += [([sys.executable, "-c", "import numpy"], env, None)]
            commands += [([*base_cmd, "--help"], e, cwd) for e, cwd in base_envs.values()]
            times = alternate(commands, args.repeats)
            print(_line("refracture-risk --help", times[0]))
            print(_line('python -c "import numpy"', times[1]))
            help_ratio = _median(times[0]) / _median(times[1])
            for rev, t in zip(base_envs, times[2:], strict=True):
                print(_line(f"baseline {rev} --help", t))
                base_help[rev] = _median(t) / _median(times[1])

        analyze_ratio, base_analyze = None, {}
        if dcm2niix is None:
            print("dcm2niix not found (pip install dcm2niix): analyze ratio not measured")
        else:
            out, nifti = work / "out", work / "nifti"

            def clean(_i: int) -> None:
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(nifti, ignore_errors=True)
                nifti.mkdir()

            analyze = ["analyze", str(study), "--clinical", str(clinical)]
            analyze += ["--index-levels", "L1", "--out", str(out)]
            commands = [([*ours, *analyze], env, None)]
            commands += [[dcm2niix, "-z", "n", "-o", str(nifti), str(study)]]
            commands += [([*base_cmd, *analyze], e, cwd) for e, cwd in base_envs.values()]
            times = alternate(commands, args.repeats, clean)
            print(_line("refracture-risk analyze (report)", times[0]))
            print(_line("dcm2niix -z n", times[1]))
            analyze_ratio = _median(times[0]) / _median(times[1])
            cpu_ratio = _median(times[0], 1) / _median(times[1], 1)
            for rev, t in zip(base_envs, times[2:], strict=True):
                print(_line(f"baseline {rev} analyze (report)", t))
                base_analyze[rev] = (
                    _median(t) / _median(times[1]),
                    _median(t, 1) / _median(times[1], 1),
                )

    print(f"load average at end: {_load_average()}")
    if help_ratio is not None:
        print(f"ratio --help / import numpy      = {help_ratio:.2f}  (goal <= {GOAL_HELP:g})")
    for rev, ratio in base_help.items():
        print(f"  baseline {rev}: {ratio:.2f}")
    if analyze_ratio is not None:
        print(
            f"ratio analyze / dcm2niix         = {analyze_ratio:.2f} wall, {cpu_ratio:.2f} CPU"
            f"  (goal <= {GOAL_ANALYZE:g})"
        )
    for rev, (wall, cpu) in base_analyze.items():
        print(f"  baseline {rev}: {wall:.2f} wall, {cpu:.2f} CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
