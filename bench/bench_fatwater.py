"""Benchmark: fat-water separation, the whole command run cold, against hmrGC when installed.

Run:  python bench/bench_fatwater.py [--data ../shared/data/ismrm2012] [--cases 13,15,16]
                                     [--no-lumbar] [--keep DIR]

For each ISMRM 2012 case, ``refracture-risk fatwater NN.mat --out DIR`` runs as a new process
(as a user runs it: interpreter start, imports, reading, separation, writing the NRRDs and the
PNG); its wall time is printed with the separation time the command reports. Then the 3D lumbar
phantom (256 x 256 x 40 voxels, 6 echoes, :func:`RefractureRiskLib.phantom.echoes.lumbar_echoes`)
is written as an imDataParams .mat file and timed the same way, together with the time of only
loading that file in a new process (goal of issue 14: command < 10x loading).

hmrGC (GPL-3.0, not on PyPI, BMRRgroup/fieldmapping-hmrGC; never part of this repository) is run
in this process on the same cases when it is importable (install it in a separate virtual
environment and run this script with that environment's Python; see
docs/fatwater_validation.md), with the call defined in evaluation/evaluate_fatwater.py. Its
first call includes numba's compilation; unless ``--no-warm``, each case is run a second time
(compiled) as well. Wall and CPU time (user + system, all threads: our command's child process,
hmrGC's own process) and the ratios hmrGC / ours per case and over all cases are printed
(issue 14's goal: >= 5x); otherwise the script says hmrGC is absent. No assertions; the
machine's load average is printed (other jobs on a shared machine slow everything down, CPU time
much less), and for the 3D phantom also the CPU time of loading and of the command.
"""

from __future__ import annotations

import argparse
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
from evaluate_fatwater import hmrgc_available, hmrgc_separate  # noqa: E402


def _child_cpu_s() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def run_command(mat: Path, out: Path) -> tuple[float, float | None, float]:
    """Wall time (s) of the cold command, the separation time it reports, and its CPU time."""
    c0 = _child_cpu_s()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "RefractureRiskLib.cli", "fatwater", str(mat), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    wall = time.perf_counter() - t0
    cpu = _child_cpu_s() - c0
    if proc.returncode != 0:
        raise RuntimeError(f"fatwater failed on {mat}: {proc.stderr.strip()[-500:]}")
    m = re.search(r"separation done in ([\d.]+) s", proc.stderr)
    return wall, float(m.group(1)) if m else None, cpu


def time_cold_load(mat: Path) -> tuple[float, float]:
    """Wall and CPU time (s) of a new process that only reads the .mat file into an EchoSet."""
    code = (
        "from RefractureRiskLib.io.echo_mat import read_echo_mat; import sys; "
        "read_echo_mat(sys.argv[1])"
    )
    c0 = _child_cpu_s()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(mat)], check=True, cwd=REPO)
    return time.perf_counter() - t0, _child_cpu_s() - c0


def run_hmrgc(mat: Path, warm: bool) -> tuple[float, float, float | None, float | None]:
    """hmrGC in this process on one case: wall and CPU time (s) of the first call and, with
    ``warm``, of a second call on the same case (numba compiled by then)."""
    from RefractureRiskLib.io.echo_mat import read_echo_mat

    echoes = read_echo_mat(mat)
    first = hmrgc_separate(echoes)
    if not warm:
        return first.seconds, first.cpu_s, None, None
    again = hmrgc_separate(echoes)
    return first.seconds, first.cpu_s, again.seconds, again.cpu_s


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


def time_cases(data: Path, cases: list[int], work: Path, have_hmrgc: bool, warm: bool) -> None:
    """Per case: our cold command (wall, CPU) and hmrGC in this process; totals and ratios."""
    print(
        "\n| case | ours: command, cold (s) | separation (s) | command CPU (s) "
        "| hmrGC in-process (s) | hmrGC CPU (s) | hmrGC again (s) | hmrGC again CPU (s) "
        "| ratio wall | ratio CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    tot = np.zeros(6)
    for case in cases:
        mat = data / f"{case}.mat"
        wall, sep, cpu = run_command(mat, work / f"out{case}")
        hm = run_hmrgc(mat, warm) if have_hmrgc else (None, None, None, None)
        row = [wall, cpu, *hm]
        tot += [0.0 if v is None else v for v in row]
        cells = [f"{v:.1f}" if v is not None else "-" for v in row]
        ratios = [f"{hm[0] / wall:.1f}x", f"{hm[1] / cpu:.1f}x"] if have_hmrgc else ["-", "-"]
        sep_txt = f"{sep:.1f}" if sep is not None else "?"
        print(
            f"| {case} | {cells[0]} | {sep_txt} | {' | '.join(cells[1:])} | {' | '.join(ratios)} |"
        )
    if have_hmrgc:
        print(
            f"| all | {tot[0]:.1f} | | {tot[1]:.1f} | {tot[2]:.1f} | {tot[3]:.1f} "
            f"| {tot[4]:.1f} | {tot[5]:.1f} | {tot[2] / tot[0]:.1f}x | {tot[3] / tot[1]:.1f}x |"
        )
        if warm:
            print(
                f"hmrGC's second call (numba compiled) against our cold command: "
                f"{tot[4] / tot[0]:.1f}x wall, {tot[5] / tot[1]:.1f}x CPU"
            )
        print(f"goal: hmrGC / ours >= 5x; load average now {os.getloadavg()[0]:.2f}")
    else:
        print(f"| all | {tot[0]:.1f} | | {tot[1]:.1f} | absent | | | | | |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cases", default="13,15,16")
    parser.add_argument("--no-lumbar", action="store_true", help="skip the 3D phantom")
    parser.add_argument("--keep", type=Path, default=None, help="keep outputs here")
    parser.add_argument(
        "--no-warm", action="store_true", help="run hmrGC once per case (no compiled second call)"
    )
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-fatwater-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; outputs in {work}")
    have_hmrgc = hmrgc_available()
    cases = [int(c) for c in args.cases.split(",") if c.strip()]
    if args.data.is_dir():
        time_cases(args.data, cases, work, have_hmrgc, not args.no_warm)
    else:
        print(f"ISMRM data not found at {args.data}: cases skipped")
    if not have_hmrgc:
        print("\nhmrGC is not importable here (GPL, not on PyPI): no ratio measured.")
    if not args.no_lumbar:
        mat = work / "lumbar.mat"
        shape = write_lumbar_mat(mat)
        load, load_cpu = time_cold_load(mat)
        wall, sep, cpu = run_command(mat, work / "outlumbar")
        print(
            f"\n3D lumbar phantom {shape[0]}x{shape[1]}x{shape[2]}, {shape[4]} echoes: "
            f"loading (cold) {load:.1f} s, command (cold) {wall:.1f} s "
            f"(separation {sep if sep is not None else '?'} s): {wall / load:.1f}x loading "
            f"(goal < 10x)\nCPU time (user + system, all threads): loading {load_cpu:.1f} s, "
            f"command {cpu:.1f} s: {cpu / load_cpu:.1f}x (less sensitive to other jobs on the "
            f"machine than wall time; load average now {os.getloadavg()[0]:.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
