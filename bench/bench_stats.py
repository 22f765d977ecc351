"""Benchmark: per-level statistics vs pyradiomics first-order extraction on the same masks.

Run:  python bench/bench_stats.py [--synthetic] [--repeats N]

A 256x256x40 study (the phantom when available, else a synthetic label map with noisy maps);
masks = the vertebral body label map, every level, PDFF and R2*. Both tools run in this process
on the same arrays; the script prints both times, the speed ratio (goal >= 50x) and the largest
relative difference of the shared features (goal < 1e-6).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time

import numpy as np

from RefractureRiskLib.core import LevelRoi, RoiMethod, RoiSet, Study, Volume
from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS, level_from_label
from RefractureRiskLib.io.images import volume_to_sitk
from RefractureRiskLib.stats import roi_statistics

SHARED = {
    "Mean": "mean",
    "Median": "median",
    "10Percentile": "p10",
    "90Percentile": "p90",
    "Minimum": "min",
    "Maximum": "max",
    "Variance": "variance",
}


def phantom_case() -> tuple[Study, Volume, str]:
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom

    ph = generate_phantom(PhantomSpec(seed=7, matrix_size=(256, 256), n_slices=40, snr=40))
    study = Study({"pdff": ph.study.pdff, "r2s": ph.study.r2s})
    return study, ph.truth.body_labels, "phantom (seed 7, SNR 40)"


def synthetic_case() -> tuple[Study, Volume, str]:
    rng = np.random.default_rng(0)
    shape = (40, 256, 256)
    k, j, i = np.ogrid[: shape[0], : shape[1], : shape[2]]
    labels = np.zeros(shape, np.int16)
    for n in range(len(VERTEBRAL_LEVELS)):
        cj = 20 + 26 * n
        body = ((k - 20) / 14.0) ** 2 + ((j - cj) / 10.0) ** 2 + ((i - 128) / 16.0) ** 2 <= 1
        labels[body] = n + 1
    pdff = rng.normal(45, 8, shape).astype(np.float32)
    r2s = rng.gamma(8, 8, shape).astype(np.float32)
    grid = Volume.from_geometry(pdff, (1.25, 1.25, 3.0))
    study = Study({"pdff": grid, "r2s": grid.with_array(r2s)})
    return study, grid.with_array(labels), "synthetic ellipsoids"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", action="store_true", help="skip the phantom")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs of our statistics")
    args = parser.parse_args()

    try:
        import radiomics
        from radiomics import featureextractor
    except ImportError:
        print(
            "pyradiomics is not installed: pip install numpy wheel && "
            "pip install --no-build-isolation pyradiomics==3.0.1"
        )
        return 2
    radiomics.setVerbosity(logging.ERROR)

    source = "synthetic"
    if not args.synthetic:
        try:
            study, labels, source = phantom_case()
        except ImportError as err:
            print(f"phantom not available ({err}); using a synthetic study")
            study, labels, source = synthetic_case()
    else:
        study, labels, source = synthetic_case()

    present = [int(v) for v in np.unique(labels.array) if v > 0]
    roiset = RoiSet(
        labels.with_array(labels.array.astype(np.int16)),
        tuple(LevelRoi(level_from_label(v), v) for v in present),
        RoiMethod.IMPORTED_MASK,
    )
    nk, nj, ni = study.grid.shape
    n_roi = int(np.count_nonzero(np.isin(labels.array, present)))
    print(f"study: {source}, {ni}x{nj}x{nk} voxels, {len(present)} levels, {n_roi} ROI voxels")

    # ours: all levels, PDFF and R2*, all registered statistics
    table = roi_statistics(roiset, study)  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        table = roi_statistics(roiset, study)
        times.append(time.perf_counter() - t0)
    ours = statistics.median(times)

    # pyradiomics: first-order class, same masks, one extraction per (level, map)
    def extractor(features: list[str] | None):
        ex = featureextractor.RadiomicsFeatureExtractor(force2D=False, additionalInfo=False)
        ex.disableAllFeatures()
        if features is None:
            ex.enableFeatureClassByName("firstorder")
        else:
            ex.enableFeaturesByName(firstorder=features)
        return ex

    mask = volume_to_sitk(roiset.labelmap)
    images = {kind: volume_to_sitk(study.maps[kind]) for kind in ("pdff", "r2s")}
    results = {}
    timings = {}
    for name, features in (
        ("all first-order features", None),
        ("only the 7 shared features", list(SHARED)),
    ):
        ex = extractor(features)
        t0 = time.perf_counter()
        for kind, image in images.items():
            for lv in roiset.levels:
                results[(name, kind, lv.level)] = ex.execute(image, mask, label=lv.label)
        timings[name] = time.perf_counter() - t0

    worst = 0.0
    for kind in images:
        for lv in roiset.levels:
            ref = results[("all first-order features", kind, lv.level)]
            row = table[(table["level"] == lv.level) & (table["map"] == kind)].iloc[0]
            for feature, key in SHARED.items():
                expected = float(ref[f"original_firstorder_{feature}"])
                rel = abs(row[key] - expected) / max(abs(expected), 1e-300)
                worst = max(worst, rel)

    print(
        f"ours (all levels, 2 maps, {len(table.columns)} columns): {ours * 1000:.1f} ms "
        f"(median of {args.repeats})"
    )
    for name, seconds in timings.items():
        print(
            f"pyradiomics ({name}): {seconds * 1000:.0f} ms -> speed ratio "
            f"{seconds / ours:.0f}x (goal >= 50x)"
        )
    print(f"largest relative difference on {list(SHARED)}: {worst:.2e} (goal < 1e-6)")
    ok = timings["all first-order features"] / ours >= 50 and worst < 1e-6
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
