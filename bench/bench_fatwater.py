"""Benchmark: fat-water separation, the whole command run cold, against hmrGC when installed.

Run:  python bench/bench_fatwater.py [--data ../shared/data/ismrm2012] [--cases 13,15,16]
                                     [--repeat 3] [--no-lumbar] [--no-bytecode-cache] [--no-hmrgc]
                                     [--keep DIR]

For each ISMRM 2012 case, ``refracture-risk fatwater NN.mat --out DIR`` runs as a new process
(as a user runs it: interpreter start, imports, reading, separation, writing the NRRDs and the
PNG), ``--repeat`` times; the median wall time is the case's figure. The child processes may
cache bytecode (``PYTHONPYCACHEPREFIX`` in the work folder, as an installed package has its
``.pyc`` files; one untimed run fills it first); ``--no-bytecode-cache`` compiles every module
from source in every run instead (``PYTHONDONTWRITEBYTECODE``). Our separation is also timed in
this process, warm (the second call on the same echoes): the library call without start-up.
Then the 3D lumbar phantom (256 x 256 x 40 voxels, 6 echoes,
:func:`RefractureRiskLib.phantom.echoes.lumbar_echoes`) is written as an imDataParams .mat file
and timed the same way, together with the time of only loading that file in a new process
(goal of issue 14: command < 10x loading).

hmrGC (GPL-3.0, not on PyPI, BMRRgroup/fieldmapping-hmrGC; never part of this repository) runs
when it is importable (install it in a separate virtual environment and run this script with
that environment's Python; see docs/fatwater_validation.md), with the call defined in
evaluation/evaluate_fatwater.py, once per case in a *new process of its own*: its in-process
time (construction + ``perform()``, as evaluate_fatwater times it; hmrGC's interpreter start
and imports not counted) of the first call, which includes numba's compilation, and of a second
call on the same echoes (compiled). Issue 14's goal is hmrGC's in-process time >= 5x ours on
every case; three ratios are printed per case and over the cases:

- hmrGC first call / our cold command (each as one run of one case from nothing);
- hmrGC compiled / our cold command (hmrGC at its best against our whole process);
- hmrGC compiled / our warm separation (both library calls in a running process).

Wall and CPU time (user + system, all threads) are printed; the machine's load average too
(other jobs on a shared machine slow everything down). No assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "ismrm2012"
# hmrGC is called in one place: evaluation/evaluate_fatwater.py (also used for the map comparison)
sys.path.insert(0, str(REPO / "evaluation"))
from evaluate_fatwater import hmrgc_available  # noqa: E402


def _child_cpu_s() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def child_env(work: Path, bytecode_cache: bool) -> dict[str, str]:
    """Environment of our child processes: bytecode cached in ``work/pycache`` (outside the
    repository) or never written."""
    env = dict(os.environ)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_command(mat: Path, out: Path, env: dict[str, str]) -> tuple[float, float | None, float]:
    """Wall time (s) of the cold command, the separation time it reports, and its CPU time."""
    cmd = [sys.executable, "-m", "RefractureRiskLib.cli", "fatwater", str(mat), "--out", str(out)]
    c0 = _child_cpu_s()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*cmd, "--overwrite"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    wall = time.perf_counter() - t0
    cpu = _child_cpu_s() - c0
    if proc.returncode != 0:
        raise RuntimeError(f"fatwater failed on {mat}: {proc.stderr.strip()[-500:]}")
    m = re.search(r"separation done in ([\d.]+) s", proc.stderr)
    return wall, float(m.group(1)) if m else None, cpu


def time_cold_load(mat: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU time (s) of a new process that only reads the .mat file into an EchoSet."""
    code = (
        "from RefractureRiskLib.io.echo_mat import read_echo_mat; import sys; "
        "read_echo_mat(sys.argv[1])"
    )
    c0 = _child_cpu_s()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(mat)], check=True, cwd=REPO, env=env)
    return time.perf_counter() - t0, _child_cpu_s() - c0


def warm_separation_s(mat: Path) -> float:
    """Our separation in this process: wall time (s) of a second call on the same echoes."""
    from RefractureRiskLib.io.echo_mat import read_echo_mat
    from RefractureRiskLib.maps.fatwater import separate

    echoes = read_echo_mat(mat)
    separate(echoes)
    t0 = time.perf_counter()
    separate(echoes)
    return time.perf_counter() - t0


_HMRGC_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[2])
from evaluate_fatwater import hmrgc_separate
from RefractureRiskLib.io.echo_mat import read_echo_mat
echoes = read_echo_mat(sys.argv[1])
first = hmrgc_separate(echoes)
again = hmrgc_separate(echoes)
print("HMRGC=" + json.dumps([first.seconds, first.cpu_s, again.seconds, again.cpu_s]))
"""


def run_hmrgc(mat: Path) -> list[float]:
    """hmrGC on one case in a new process: in-process wall and CPU time (s) of its first call
    (numba compiles) and of a second call (compiled)."""
    proc = subprocess.run(
        [sys.executable, "-c", _HMRGC_CHILD, str(mat), str(REPO / "evaluation")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("HMRGC=")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"hmrGC failed on {mat}: {proc.stderr.strip()[-500:]}")
    return [float(v) for v in json.loads(line[0].removeprefix("HMRGC="))]


def write_lumbar_mat(path: Path) -> tuple[int, ...]:
    """The 3D lumbar phantom's echoes as an imDataParams .mat file; returns the echo shape."""
    import scipy.io as sio

    from RefractureRiskLib.phantom import PhantomSpec
    from RefractureRiskLib.phantom.echoes import lumbar_echoes

    ph = lumbar_echoes(PhantomSpec(seed=1, matrix_size=(256, 256), n_slices=40), snr=30.0)
    images = ph.echoes.signal.transpose(2, 1, 0, 3)[:, :, :, None, :]
    params = {
        "images": images,
        "TE": np.asarray(ph.echoes.te_s)[None, :],
        "FieldStrength": ph.echoes.field_strength_t,
        "PrecessionIsClockwise": np.uint8(1),
    }
    sio.savemat(path, {"imDataParams": params})
    return images.shape


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "-"


def time_case(case: int, data: Path, work: Path, env: dict, repeat: int, hmrgc: bool) -> list:
    """One case: our cold command ``repeat`` times (median wall, its CPU), our warm separation,
    hmrGC's first and compiled call; hmrGC runs between our runs (same load for both)."""
    mat = data / f"{case}.mat"
    runs = [run_command(mat, work / f"out{case}", env)]
    hm = run_hmrgc(mat) if hmrgc else [float("nan")] * 4
    runs += [run_command(mat, work / f"out{case}", env) for _ in range(max(0, repeat - 1))]
    wall, sep, cpu = sorted(runs)[len(runs) // 2]
    return [wall, cpu, sep if sep is not None else float("nan"), warm_separation_s(mat), *hm]


def time_cases(data: Path, cases: list[int], work: Path, env: dict, repeat: int, hmrgc: bool):
    """Per case: our cold command, our warm separation and hmrGC; totals, ratios, the goal."""
    print(
        "\n| case | ours cold (s) | ours cold CPU (s) | sep in command (s) | ours warm sep (s) "
        "| hmrGC first (s) | hmrGC first CPU (s) | hmrGC compiled (s) | hmrGC compiled CPU (s) "
        "| first / ours cold | compiled / ours cold | compiled / ours warm |"
    )
    print("|---" * 12 + "|")
    rows = []
    for case in cases:
        r = time_case(case, data, work, env, repeat, hmrgc)
        rows.append(r)
        cells = " | ".join(f"{v:.2f}" if v == v else "-" for v in r)
        ratios = [_ratio(r[4], r[0]), _ratio(r[6], r[0]), _ratio(r[6], r[3])]
        print(f"| {case} | {cells} | {' | '.join(ratios) if hmrgc else '- | - | -'} |")
    tot = np.nansum(np.asarray(rows), axis=0)
    if not hmrgc:
        print(f"| all | {tot[0]:.2f} | {tot[1]:.2f} | {tot[2]:.2f} | {tot[3]:.2f} | absent |")
        return
    ratios = [_ratio(tot[4], tot[0]), _ratio(tot[6], tot[0]), _ratio(tot[6], tot[3])]
    cells = " | ".join(f"{v:.2f}" for v in tot)
    print(f"| all | {cells} | {' | '.join(ratios)} |")
    arr = np.asarray(rows)
    for label, num, den in (
        ("hmrGC first call / our cold command", 4, 0),
        ("hmrGC compiled / our cold command", 6, 0),
        ("hmrGC compiled / our warm separation", 6, 3),
    ):
        per_case = arr[:, num] / arr[:, den]
        met = int((per_case >= 5.0).sum())
        print(
            f"goal >= 5x, {label}: {met} of {len(rows)} cases (lowest {per_case.min():.1f}x), "
            f"over the cases {tot[num] / tot[den]:.1f}x"
        )
    print(f"load average now {os.getloadavg()[0]:.2f}")


def time_lumbar(work: Path, env: dict[str, str], repeat: int) -> None:
    """The 3D phantom: loading and the command, alternating ``repeat`` times; medians."""
    mat = work / "lumbar.mat"
    shape = write_lumbar_mat(mat)
    time_cold_load(mat, env)  # untimed: bytecode and page caches
    loads, runs = [], []
    for _ in range(max(1, repeat)):
        loads.append(time_cold_load(mat, env))
        runs.append(run_command(mat, work / "outlumbar", env))
    load, load_cpu = (float(np.median([x[i] for x in loads])) for i in (0, 1))
    wall, cpu = (float(np.median([x[i] for x in runs])) for i in (0, 2))
    seps = [x[1] for x in runs if x[1] is not None]
    sep = f"{np.median(seps):.1f}" if seps else "?"
    each = ", ".join(f"{c[0]:.2f}/{ld[0]:.2f}" for c, ld in zip(runs, loads, strict=True))
    each_cpu = ", ".join(f"{c[2] / ld[1]:.1f}x" for c, ld in zip(runs, loads, strict=True))
    print(
        f"\n3D lumbar phantom {shape[0]}x{shape[1]}x{shape[2]}, {shape[4]} echoes (median of "
        f"{len(runs)}): loading (cold) {load:.2f} s, command (cold) {wall:.2f} s (separation "
        f"{sep} s): {wall / load:.1f}x loading (goal < 10x; each run command/loading s: {each})"
        f"\nCPU time (user + system, all threads): loading {load_cpu:.2f} s, command "
        f"{cpu:.2f} s: {cpu / load_cpu:.1f}x (each run: {each_cpu}; load average now "
        f"{os.getloadavg()[0]:.2f})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cases", default="13,15,16")
    parser.add_argument("--repeat", type=int, default=3, help="cold runs of ours per case")
    parser.add_argument("--no-lumbar", action="store_true", help="skip the 3D phantom")
    parser.add_argument("--keep", type=Path, default=None, help="keep outputs here")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="our child processes compile every module from source (no .pyc)",
    )
    parser.add_argument("--no-hmrgc", action="store_true", help="do not run hmrGC")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-fatwater-"))
    work.mkdir(parents=True, exist_ok=True)
    env = child_env(work, not args.no_bytecode_cache)
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; outputs in {work}; "
        f"Python {sys.version.split()[0]}, NumPy {np.__version__}; our command: "
        + ("bytecode cached" if not args.no_bytecode_cache else "no bytecode cache")
        + f", median of {args.repeat} cold runs per case"
    )
    have_hmrgc = not args.no_hmrgc and hmrgc_available()
    cases = [int(c) for c in args.cases.split(",") if c.strip()]
    if cases and not args.data.is_dir():
        print(f"ISMRM data not found at {args.data}: cases skipped")
    elif cases:
        run_command(args.data / f"{cases[0]}.mat", work / "warmup", env)  # untimed: fills caches
        time_cases(args.data, cases, work, env, args.repeat, have_hmrgc)
    if not have_hmrgc:
        print("\nhmrGC not run (--no-hmrgc, or not importable here: GPL, not on PyPI).")
    if not args.no_lumbar:
        time_lumbar(work, env, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
