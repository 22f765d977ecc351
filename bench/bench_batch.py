"""Benchmark: batch throughput with 1 vs 2 worker processes, and peak memory per worker.

Run:  python bench/bench_batch.py [--n 200] [--distinct 8] [--no-report]
                                                  [--workers 1,2] [--small]

Builds a batch root of ``--n`` phantom studies (``--distinct`` different phantoms, default size,
GE DICOM with all six series, copied to fill ``--n`` patient folders) and a matching clinical
table, then runs ``refracture-risk batch`` (the console script, as the README does) as a new
process once per worker count on the same root, each into a fresh output folder and store. Wall
time includes starting the workers, as a user sees it. Prints studies/min per worker count, the
throughput ratio against 1 worker (goal >= 1.7x with 2 workers), the peak resident memory of
each worker process (reported by the worker itself, ``ru_maxrss``; goal <= 1 GB) and of the
largest process overall (``RUSAGE_CHILDREN``). The machine's load average is printed: on a
shared machine other jobs take
cores from the workers. No assertions.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def build_root(base: Path, n: int, distinct: int, small: bool) -> tuple[Path, Path]:
    from RefractureRiskLib.model.dev.synthetic_cohort import generate_cohort
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
    from RefractureRiskLib.phantom.dicom_writer import write_dicom_study

    root = base / "root"
    templates = []
    for i in range(min(distinct, n)):
        extra = {"in_plane_spacing_mm": 2.5, "slice_thickness_mm": 4.0} if small else {}
        ph = generate_phantom(PhantomSpec(seed=100 + i, snr=60.0, **extra))
        folder = base / "templates" / f"T{i}"
        write_dicom_study(ph.study, folder, seed=100 + i)
        templates.append(folder)
    ids = [f"B{i:04d}" for i in range(n)]
    for i, pid in enumerate(ids):
        shutil.copytree(templates[i % len(templates)], root / pid)
    table = generate_cohort(n=n, seed=9).data
    table["patient_id"] = ids
    imaging = [
        c
        for c in table.columns
        if c.startswith(("pdff", "r2s", "excl", "mri_", "reader", "body_vol", "paraspinal"))
    ]
    clinical = base / "clinical.csv"
    table.drop(columns=imaging).to_csv(clinical, index=False)
    return root, clinical


def _command() -> list[str]:
    """``refracture-risk`` as the README runs it: the console script beside this Python (a new
    process, cold), else ``python -m RefractureRiskLib.cli``."""
    script = Path(sys.executable).with_name("refracture-risk")
    return [str(script)] if script.exists() else [sys.executable, "-m", "RefractureRiskLib.cli"]


def run_batch(root: Path, clinical: Path, out: Path, workers: int, report: bool) -> dict:
    cmd = [*_command(), "batch", str(root)]
    cmd += ["--clinical", str(clinical), "--out", str(out), "--workers", str(workers)]
    if not report:
        cmd.append("--no-report")
    load0 = os.getloadavg()[0]
    stall0 = _cpu_stall_us()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stall1 = _cpu_stall_us()
    pressure = (
        "n/a"
        if stall0 is None or stall1 is None
        else f"{(stall1 - stall0) / 1e6 / wall:.0%} of the time a task waited for a core"
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"batch failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    status = pd.read_csv(out / "batch_status.csv")
    done = status[status["status"] == "done"]
    per_worker = done.groupby("worker")["peak_rss_mb"].max()
    finished = done["finished_s"].sort_values().to_numpy()
    steady = (len(finished) - 1) / (finished[-1] - finished[0]) if len(finished) > 2 else 0.0
    return {
        "workers": workers,
        "wall_s": wall,
        "done": len(done),
        "failed": int((status["status"] == "failed").sum()),
        "per_study_s": float(done["seconds"].mean()),
        "steady_per_min": steady * 60.0,
        "startup_s": float(finished[0]) if len(finished) else float("nan"),
        "worker_peak_mb": per_worker.to_dict(),
        "children_peak_mb": after.ru_maxrss / 1024.0,  # max over all finished descendants
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "load": (load0, os.getloadavg()[0]),
        "cpu_pressure": pressure,
    }


def _pooled(workers: int, runs: list[dict]) -> dict:
    done = sum(r["done"] for r in runs)
    return {
        "workers": workers,
        "per_min": done / sum(r["wall_s"] for r in runs) * 60.0,
        "steady_per_min": sum(r["steady_per_min"] for r in runs) / len(runs),
        "per_study_s": sum(r["per_study_s"] * r["done"] for r in runs) / max(done, 1),
        "cpu_per_study_s": sum(r["cpu_s"] for r in runs) / max(done, 1),
    }


def _autogroup() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def _cpu_stall_us() -> float | None:
    """Linux pressure stall information: microseconds some task waited for a CPU."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None
    return float(line.rsplit("total=", 1)[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="studies in the batch")
    parser.add_argument("--distinct", type=int, default=8, help="different phantoms")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare")
    parser.add_argument("--no-report", action="store_true", help="batch --no-report")
    parser.add_argument("--small", action="store_true", help="small phantoms (2.5 mm pixels)")
    parser.add_argument("--keep", type=Path, help="build the root here and keep it")
    parser.add_argument("--rounds", type=int, default=1, help="repeat, in ABBA order")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-batch-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        root, clinical = build_root(base, args.n, args.distinct, args.small)
        print(
            f"batch root: {args.n} studies ({args.distinct} distinct phantoms"
            f"{', small' if args.small else ', default size'}, 6 series each) built in "
            f"{time.perf_counter() - t0:.0f} s; per-patient report "
            f"{'off' if args.no_report else 'on'}; cores available "
            f"{len(os.sched_getaffinity(0))}"
        )
        if _autogroup():
            print(
                "note: the kernel shares CPU time per session (sched_autogroup): while other "
                "sessions are busy, this batch's share of the cores does not grow with its "
                "number of workers, so the ratio below measures the machine, not the batch"
            )
        order = []
        for i in range(args.rounds):  # ABBA: drifting machine load hits both counts alike
            order += counts if i % 2 == 0 else counts[::-1]
        runs: dict[int, list[dict]] = {w: [] for w in counts}
        for i, w in enumerate(order):
            r = run_batch(root, clinical, base / f"out_{i}_w{w}", w, not args.no_report)
            runs[w].append(r)
            peaks = ", ".join(f"{v:.0f}" for v in r["worker_peak_mb"].values())
            print(
                f"workers={w}: {r['done']} done, {r['failed']} failed in {r['wall_s']:.1f} s -> "
                f"{r['done'] / r['wall_s'] * 60:.1f} studies/min overall, "
                f"{r['steady_per_min']:.1f}/min between first and last study (first after "
                f"{r['startup_s']:.1f} s); {r['per_study_s']:.2f} s per study inside a worker; "
                f"CPU {r['cpu_s'] / max(r['done'], 1):.2f} s per study; peak memory per worker "
                f"[{peaks}] MB, largest process {r['children_peak_mb']:.0f} MB; load average "
                f"{r['load'][0]:.1f} -> {r['load'][1]:.1f}; CPU pressure {r['cpu_pressure']}"
            )
        results = [_pooled(w, runs[w]) for w in counts]
        base_thr, base_steady = results[0]["per_min"], results[0]["steady_per_min"]
        for r in results[1:]:
            print(
                f"throughput ratio {r['workers']} vs {results[0]['workers']} worker(s) over "
                f"{args.rounds} round(s): {r['per_min'] / base_thr:.2f}x overall, "
                f"{r['steady_per_min'] / base_steady:.2f}x steady state (goal >= 1.7x for 2 vs 1)"
            )
        if len(results) > 1 and results[0]["per_study_s"] > 0:
            grow = results[-1]["per_study_s"] / results[0]["per_study_s"]
            cpu = results[-1]["cpu_per_study_s"] / results[0]["cpu_per_study_s"]
            print(
                f"time per study inside a worker: {results[0]['per_study_s']:.2f} s with "
                f"{results[0]['workers']} worker(s), {results[-1]['per_study_s']:.2f} s with "
                f"{results[-1]['workers']} ({grow:.2f}x; above 1 = the workers did not each get "
                f"a core); CPU per study {cpu:.2f}x (the parallel overhead)"
            )
            n = results[-1]["workers"] / results[0]["workers"]
            print(
                f"estimate, not a measurement: with {results[-1]['workers']} idle cores the "
                f"ratio would be about {n / cpu:.2f}x ({n:g} x CPU per study "
                f"{results[0]['cpu_per_study_s']:.2f} / {results[-1]['cpu_per_study_s']:.2f} s)"
            )
        results = [r for rs in runs.values() for r in rs]
        worst = max(max(r["worker_peak_mb"].values(), default=0.0) for r in results)
        print(f"peak memory per worker: {worst:.0f} MB (goal <= 1024 MB)")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
