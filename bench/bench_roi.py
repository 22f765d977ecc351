"""Benchmark: automatic ROI placement + statistics of a 256x256x40 study, and a one-level update.

Run:  python bench/bench_roi.py [--repeats N]   (with the project installed)

Study: a phantom with a 256x256 matrix and 40 sagittal slices (3 mm, SNR 30, bias field 0.2).
Timed in this process, on the same arrays:

1. ``automatic_rois`` (column, bodies, labels, safe-core ROIs, QC) + per-level PDFF/R2*
   statistics (``RefractureRiskLib.stats.roi_statistics``): target within 1 s on 2 cores.
   Reference in the same run: SimpleITK connected components of the marrow threshold mask plus
   ``LabelStatisticsImageFilter`` of PDFF and R2* over the ROI label map (a classical pipeline
   doing less: no labels, no bodies). The ratio ours / reference is printed.
2. A single-level manual update (``update_level``, one moved point): goal <= 100 ms; the
   reference is the full recomputation of all levels from points (``rois_from_points``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import SimpleITK as sitk

from RefractureRiskLib.io.images import volume_to_sitk
from RefractureRiskLib.phantom.generate import generate_phantom
from RefractureRiskLib.phantom.spec import PhantomSpec
from RefractureRiskLib.roi.auto import automatic_rois
from RefractureRiskLib.roi.manual import rois_from_points, update_level


def _stats(roiset, study):
    try:
        from RefractureRiskLib.stats import roi_statistics
    except ImportError:  # statistics layer absent: a plain numpy mean per label
        arr = roiset.labelmap.array
        return {lv.level: float(study.pdff.array[arr == lv.label].mean()) for lv in roiset.levels}
    return roi_statistics(roiset, study)


def _reference(study, roiset) -> None:
    pdff = volume_to_sitk(study.pdff)
    signal = volume_to_sitk(study.maps["water"].with_array(
        study.maps["water"].array + study.maps["fat"].array))  # fmt: skip
    mask = sitk.BinaryThreshold(pdff, 12.0, 80.0) & sitk.BinaryThreshold(signal, 120.0, 1e9)
    cc = sitk.RelabelComponent(sitk.ConnectedComponent(mask), minimumObjectSize=1000)
    labels = volume_to_sitk(roiset.labelmap)
    for image in (pdff, volume_to_sitk(study.r2s)):
        f = sitk.LabelStatisticsImageFilter()
        f.Execute(image, labels)
        for lab in f.GetLabels():
            f.GetMean(lab), f.GetMedian(lab), f.GetVariance(lab)
    sitk.LabelShapeStatisticsImageFilter().Execute(cc)


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    spec = PhantomSpec(seed=7, matrix_size=(256, 256), n_slices=40, snr=30.0, bias_field=0.2)
    study = generate_phantom(spec).study
    print(f"study: {study.grid.describe_geometry()}; cores available: {os.cpu_count()}")
    automatic_rois(study)  # warm-up (imports, caches)

    def ours():
        res = automatic_rois(study)
        return res, _stats(res.roiset, study)

    t_ours, (res, _) = _timed(ours, args.repeats)
    t_ref, _ = _timed(lambda: _reference(study, res.roiset), args.repeats)
    print(f"automatic placement + statistics: {t_ours:.3f} s (target <= 1 s); "
          f"levels {', '.join(res.roiset.level_names)}; uncertain={res.uncertain}")  # fmt: skip
    print(f"reference (SimpleITK threshold + connected components + label statistics): "
          f"{t_ref:.3f} s; ratio ours/reference = {t_ours / t_ref:.2f}")  # fmt: skip

    # the same on a study of the independent world generator (real lumbar field of view,
    # bowel, fat-infiltrated muscle; a dev-set seed, 3 T axial 3D)
    from RefractureRiskLib.phantom.world import generate_world, world_set

    (wspec,) = [s for s in world_set("dev", 11) if s.seed == 10]
    world = generate_world(wspec).study
    t_world, (wres, _) = _timed(
        lambda: (lambda r: (r, _stats(r.roiset, world)))(automatic_rois(world)), args.repeats
    )
    t_wref, _ = _timed(lambda: _reference(world, wres.roiset), args.repeats)
    print(f"world study ({world.grid.describe_geometry()}): automatic placement + statistics "
          f"{t_world:.3f} s (target <= 1 s); reference {t_wref:.3f} s; ratio "
          f"{t_world / t_wref:.2f}; levels {', '.join(wres.roiset.level_names)}")  # fmt: skip

    points = {p.level: p.centre_ras for p in res.levels}
    manual = rois_from_points(study, points)
    moved = tuple(np.asarray(points["L3"]) + np.array([2.0, 1.0, -2.0]))
    t_one, _ = _timed(lambda: update_level(manual, study, "L3", moved), max(args.repeats, 5))
    t_all, _ = _timed(lambda: rois_from_points(study, points), args.repeats)
    print(f"single-level manual update: {1000 * t_one:.0f} ms (goal <= 100 ms); full recompute of "
          f"{len(points)} levels: {1000 * t_all:.0f} ms; ratio = {t_all / t_one:.1f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
