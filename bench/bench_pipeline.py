"""Benchmark: one phantom study end to end vs reading the same DICOM folder with reference tools.

Run:  python bench/bench_pipeline.py [--repeats N] [--vendor GE]

The study is the demo's: a default-size synthetic IDEAL-IQ spine study (about 266x266x32, six
series: PDFF, R2*, water, fat, in/out of phase) written as vendor-styled DICOM. Ours: load the
DICOM, automatic ROIs, statistics, risk, files and the one-page report (HTML/PDF/PNG), with the
per-step timings of ``analyze_study``; the first (cold) run in this process and the median of
``--repeats`` warm runs. References on the same folder in the same run: dcm2niix converting every
series to NIfTI (a separate process, as a user would run it) and SimpleITK reading every series.
Prints figures and ratios (goal: end to end within 5 s on 2 cores); no assertions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _dcm2niix() -> str | None:
    beside = Path(sys.executable).parent / "dcm2niix"
    return str(beside) if beside.exists() else shutil.which("dcm2niix")


def _sitk_read_all(folder: Path) -> float:
    import SimpleITK as sitk

    t0 = time.perf_counter()
    reader = sitk.ImageSeriesReader()
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        for uid in reader.GetGDCMSeriesIDs(str(sub)):
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(sub), uid))
            reader.Execute()
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm runs (median reported)")
    parser.add_argument("--vendor", default="GE", choices=("GE", "Siemens", "Philips"))
    args = parser.parse_args()

    t_import = time.perf_counter()
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
    from RefractureRiskLib.phantom.dicom_writer import write_dicom_study
    from RefractureRiskLib.pipeline import AnalysisOptions, analyze_study

    t_import = time.perf_counter() - t_import

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores available: {cores}; load average {os.getloadavg()[0]:.1f} (shared machine)")
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        phantom = generate_phantom(PhantomSpec(seed=1, fractured={"L1": 0.3}, snr=80.0))
        dicom = work / "dicom"
        written = write_dicom_study(phantom.study, dicom, vendor=args.vendor, seed=1)
        n_files = sum(len(s.files) for s in written.series)
        nk, nj, ni = phantom.study.grid.shape
        print(
            f"study: {args.vendor} phantom {ni}x{nj}x{nk}, {len(written.series)} series, "
            f"{n_files} DICOM files; library import {t_import:.2f} s (not counted below)"
        )
        clinical = {"age_years": 74, "sex": "F", "dxa_l1l4_tscore": -3.0, "tl_junction": 1}
        options = AnalysisOptions(index_levels=("L1",), reader="bench")
        steps = ("load_s", "rois_s", "statistics_s", "risk_s", "write_s", "total_s")

        runs = []
        for i in range(1 + args.repeats):
            result = analyze_study(dicom, clinical, work / f"out{i}", options)
            runs.append(dict(result.timings_s))
        no_report = [
            dict(analyze_study(dicom, clinical, work / f"nr{i}", _no_report(options)).timings_s)
            for i in range(max(1, args.repeats))
        ]

        print("\nours, seconds per step (write = statistics CSV, label maps, JSON and report):")
        print(f"{'step':<14}{'cold':>8}{'warm median':>14}")
        for step in steps:
            warm = statistics.median(r[step] for r in runs[1:]) if args.repeats else runs[0][step]
            print(f"{step:<14}{runs[0][step]:>8.2f}{warm:>14.2f}")
        ours_warm = statistics.median(r["total_s"] for r in runs[1:]) if args.repeats else None
        ours_cold = runs[0]["total_s"]
        files_only = statistics.median(r["write_s"] for r in no_report)
        report_s = statistics.median(r["write_s"] for r in runs[1:] or runs) - files_only
        print(
            f"of which the one-page report (HTML/PDF/PNG): {report_s:.2f} s; the same study "
            f"without the report: {statistics.median(r['total_s'] for r in no_report):.2f} s"
        )
        ours = ours_warm if ours_warm is not None else ours_cold
        print(
            f"\nend to end: {ours:.2f} s warm, {ours_cold:.2f} s cold "
            f"(goal <= 5 s on 2 cores): {'met' if ours <= 5.0 else 'NOT met'}"
        )

        sitk_s = statistics.median(_sitk_read_all(dicom) for _ in range(max(1, args.repeats)))
        load = statistics.median(r["load_s"] for r in runs[1:] or runs)
        print(
            f"\nSimpleITK reading all {len(written.series)} series: {sitk_s:.2f} s; our load "
            f"(scan, classify, scale, assemble): {load:.2f} s -> ratio ours/SimpleITK "
            f"{load / sitk_s:.2f}"
        )
        exe = _dcm2niix()
        if exe is None:
            print("dcm2niix not found (pip install dcm2niix): reference skipped")
        else:
            times = []
            for i in range(max(1, args.repeats)):
                target = work / f"nii{i}"
                target.mkdir()
                t0 = time.perf_counter()
                subprocess.run(
                    [exe, "-z", "n", "-b", "n", "-o", str(target), str(dicom)],
                    check=True,
                    capture_output=True,
                )
                times.append(time.perf_counter() - t0)
            d2n = statistics.median(times)
            print(
                f"dcm2niix converting the folder to NIfTI: {d2n:.2f} s -> ratio end-to-end "
                f"ours/dcm2niix {ours / d2n:.1f}, load only ours/dcm2niix {load / d2n:.2f}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _no_report(options):
    from dataclasses import replace

    return replace(options, report=False)


if __name__ == "__main__":
    sys.exit(main())
