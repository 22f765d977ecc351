"""Benchmark: ``load_study`` vs dcm2niix and SimpleITK on the same 6-series DICOM folder.

Run:  python bench/bench_load.py [--vendor GE|Siemens|Philips] [--repeats N]

A 6-series study (PDFF, R2*, water, fat, in-phase, out-phase; 256x256, 40 slices each; the phantom
when available, else synthetic maps) is written with the project's vendor DICOM writer into a
temporary folder. In the same run, on the same (warm) files:

- ``load_study(folder)``: scan, classify, assemble, rescale, convert units -> Study;
- ``dcm2niix -z n`` converting the folder to NIfTI (the PyPI ``dcm2niix`` binary, subprocess);
- SimpleITK ``ImageSeriesReader`` reading each series (GDCM file ordering per series).

Prints the median wall time of each, the ratios (goal: load_study / dcm2niix <= 0.5) and the peak
Python memory of one ``load_study`` (tracemalloc, which also traces numpy buffers) against the
decoded voxel bytes of the returned maps (goal <= 3x).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from RefractureRiskLib.core import Study, StudyProvenance, Volume
from RefractureRiskLib.io.dicom_load import load_study
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study

SHAPE = (40, 256, 256)


def make_study() -> tuple[Study, str]:
    """The phantom (256x256x40) when the generator is available, else synthetic maps."""
    try:
        from RefractureRiskLib.phantom import PhantomSpec, generate_phantom

        ph = generate_phantom(PhantomSpec(seed=7, matrix_size=SHAPE[1:], n_slices=SHAPE[0]))
        return ph.study, "phantom seed 7"
    except ImportError:
        rng = np.random.default_rng(0)
        aff = np.array([[0, 0, 3.0, -60], [-1.25, 0, 0, 160], [0, -1.25, 0, 160], [0, 0, 0, 1]])
        water = rng.uniform(50, 1000, SHAPE)
        pdff = rng.uniform(0, 100, SHAPE)
        maps = {
            "pdff": pdff,
            "r2s": rng.uniform(20, 200, SHAPE),
            "water": water,
            "fat": water * pdff / 100,
            "in_phase": water * 1.1,
            "out_phase": water * 0.4,
        }
        study = Study(
            {k: Volume(v, aff) for k, v in maps.items()}, StudyProvenance(field_strength_t=1.5)
        )
        return study, "synthetic maps"


def time_load(folder: Path) -> float:
    t0 = time.perf_counter()
    load_study(folder)
    return time.perf_counter() - t0


def time_dcm2niix(exe: str, folder: Path, work: Path) -> float:
    out = work / f"nii_{time.perf_counter_ns()}"
    out.mkdir()
    t0 = time.perf_counter()
    subprocess.run(
        [exe, "-z", "n", "-b", "n", "-o", str(out), "-f", "%s_%e_%t", str(folder)],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - t0
    n_nifti = len(list(out.glob("*.nii")))
    shutil.rmtree(out)
    if n_nifti < 6:
        raise RuntimeError(f"dcm2niix wrote {n_nifti} NIfTI files, expected 6")
    return elapsed


def time_sitk(folder: Path) -> float:
    t0 = time.perf_counter()
    n = 0
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(sub)):
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(sub), uid))
            reader.Execute()
            n += 1
    elapsed = time.perf_counter() - t0
    if n < 6:
        raise RuntimeError(f"SimpleITK read {n} series, expected 6")
    return elapsed


def peak_memory(folder: Path) -> tuple[int, int]:
    """(tracemalloc peak bytes during one load_study, decoded voxel bytes of its maps)."""
    tracemalloc.start()
    study = load_study(folder)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    voxels = sum(np.asarray(v.array).nbytes for v in study.maps.values())
    return peak, voxels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vendor", default="GE", choices=("GE", "Siemens", "Philips"))
    parser.add_argument("--philips-enhanced", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    beside = Path(sys.executable).with_name("dcm2niix")  # the PyPI build, not an older Debian one
    exe = str(beside) if beside.exists() else shutil.which("dcm2niix")
    if exe is None:
        print("dcm2niix not found: pip install dcm2niix", file=sys.stderr)
        return 2
    study, what = make_study()
    with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
        work = Path(tmp)
        folder = work / "dicom"
        options = {"philips_enhanced": True} if args.philips_enhanced else {}
        written = write_dicom_study(study, folder, vendor=args.vendor, **options)
        n_files = len(written.files)
        size_mb = sum(f.stat().st_size for f in written.files) / 1e6
        print(f"study: {what}; {args.vendor} style, 6 series {SHAPE[2]}x{SHAPE[1]}x{SHAPE[0]}")
        print(f"folder: {n_files} files, {size_mb:.1f} MB; dcm2niix: {exe}")
        # Warm the file cache and imports once for every tool, then alternate the timed runs.
        time_load(folder), time_dcm2niix(exe, folder, work), time_sitk(folder)
        ours, d2n, itk = [], [], []
        for _ in range(args.repeats):
            ours.append(time_load(folder))
            d2n.append(time_dcm2niix(exe, folder, work))
            itk.append(time_sitk(folder))
        t_ours, t_d2n, t_itk = (statistics.median(x) for x in (ours, d2n, itk))
        peak, voxels = peak_memory(folder)
    print(f"load_study           median {t_ours * 1000:8.1f} ms  (runs: {_ms(ours)})")
    print(f"dcm2niix -z n        median {t_d2n * 1000:8.1f} ms  (runs: {_ms(d2n)})")
    print(f"SimpleITK per series median {t_itk * 1000:8.1f} ms  (runs: {_ms(itk)})")
    print(f"ratio load_study / dcm2niix  = {t_ours / t_d2n:.2f}  (goal <= 0.5)")
    print(f"ratio load_study / SimpleITK = {t_ours / t_itk:.2f}")
    print(
        f"peak memory (tracemalloc) {peak / 1e6:.1f} MB vs decoded voxels {voxels / 1e6:.1f} MB "
        f"(float32): ratio {peak / voxels:.2f}  (goal <= 3.0)"
    )
    return 0


def _ms(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.0f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
