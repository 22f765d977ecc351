"""Benchmark: fat-water separation, the whole command run cold, against hmrGC when installed.

Run:  python bench/bench_fatwater.py [--data ../shared/data/ismrm2012] [--cases 13,15,16]
                                     [--no-lumbar] [--keep DIR]

For each ISMRM 2012 case, ``refracture-risk fatwater NN.mat --out DIR`` runs as a new process
(as a user runs it: interpreter start, imports, reading, separation, writing the NRRDs and the
PNG); its wall time is printed with the separation time the command reports. Then the 3D lumbar
phantom (256 x 256 x 40 voxels, 6 echoes, :func:`RefractureRiskLib.phantom.echoes.lumbar_echoes`)
is written as an imDataParams .mat file and timed the same way, together with the time of only
loading that file in a new process (goal of issue 14: command < 10x loading).

hmrGC (GPL-3.0, not on PyPI, BMRRgroup/fieldmapping-hmrGC) is run in this process on the same
cases when it is importable (its first call includes numba compilation) and the ratio hmrGC /
ours is printed; otherwise the script says it is absent. No assertions; the machine's load
average is printed (other jobs on a shared machine slow everything down), and for the 3D phantom
also the CPU time (user + system) of both processes, which other jobs disturb much less.
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


def hmrgc_available() -> bool:
    try:
        import hmrGC  # noqa: F401
    except ImportError:
        return False
    return True


def run_hmrgc(mat: Path) -> float:
    """In-process time (s) of hmrGC's multi-echo graph cut on one case (its README's API)."""
    from hmrGC.dixon_imaging import MultiEcho

    from RefractureRiskLib.io.echo_mat import read_echo_mat
    from RefractureRiskLib.maps.fatwater.spectrum import GAMMA_BAR_HZ_PER_T_PPM, ISMRM_6PEAK

    echoes = read_echo_mat(mat)
    signal = echoes.signal.transpose(2, 1, 0, 3)  # back to the file's x, y, z, echo
    mask = (
        echoes.mask.transpose(2, 1, 0)
        if echoes.mask is not None
        else np.ones(signal.shape[:3], bool)
    )
    params = {
        "TE_s": np.asarray(echoes.te_s),
        "centerFreq_Hz": GAMMA_BAR_HZ_PER_T_PPM * 1e6 * echoes.field_strength_t,
        "fieldStrength_T": echoes.field_strength_t,
        "voxelSize_mm": np.array([1.0, 1.0, 1.0]),
        "FatModel": {
            "freqs_ppm": np.asarray(ISMRM_6PEAK.shifts_ppm),
            "relAmps": np.asarray(ISMRM_6PEAK.amplitudes),
        },
    }
    t0 = time.perf_counter()
    g = MultiEcho(signal, mask, params)
    g.perform()
    return time.perf_counter() - t0


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cases", default="13,15,16")
    parser.add_argument("--no-lumbar", action="store_true", help="skip the 3D phantom")
    parser.add_argument("--keep", type=Path, default=None, help="keep outputs here")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-fatwater-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; outputs in {work}")
    have_hmrgc = hmrgc_available()
    cases = [int(c) for c in args.cases.split(",") if c.strip()]
    total_ours = total_hmrgc = 0.0
    if args.data.is_dir():
        print("\n| case | command, cold (s) | separation (s) | hmrGC in-process (s) | ratio |")
        print("|---|---|---|---|---|")
        for case in cases:
            mat = args.data / f"{case}.mat"
            wall, sep, _cpu = run_command(mat, work / f"out{case}")
            total_ours += wall
            hm = run_hmrgc(mat) if have_hmrgc else None
            if hm is not None:
                total_hmrgc += hm
            sep_txt = f"{sep:.1f}" if sep is not None else "?"
            hm_txt = f"{hm:.1f}" if hm is not None else "absent"
            ratio = f"{hm / wall:.1f}x" if hm is not None else "-"
            print(f"| {case} | {wall:.1f} | {sep_txt} | {hm_txt} | {ratio} |")
        print(
            f"| all | {total_ours:.1f} | | {total_hmrgc:.1f} |"
            if have_hmrgc
            else f"| all | {total_ours:.1f} | | absent | |"
        )
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
