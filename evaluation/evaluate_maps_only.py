"""Maps-only exports against the same studies exported with every map (paired).

Usage (from the repository root, with the project installed)::

    python evaluation/evaluate_maps_only.py --set test
    python evaluation/evaluate_maps_only.py --set dev --source world --verbose

The table of ``evaluate_auto_roi.py`` compares the maps-only studies with the others, but those
are different studies (seed, anatomy, coverage, noise). Here each maps-only study (PDFF and R2*
alone) is run again as the same study with water, fat and in/out-phase images too (same seed,
anatomy, acquisition and noise draws), so the difference is what the export holds (and, for
some world studies, the vendor's background mask) and nothing else. Automatic ROIs only;
levels counted as in ``evaluate_auto_roi.py`` (:func:`level_rows`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_roi_cases import maps_only_pairs
from evaluate_auto_roi import level_rows

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.phantom.truth import LabelledStudy
from RefractureRiskLib.roi.auto import automatic_rois

SOURCES = ("world", "realct")


def levels_right(case: LabelledStudy) -> tuple[int, int, bool]:
    """Levels right, levels counted and whether the study was warned (a refusal: none right,
    every whole level counted, warned)."""
    try:
        res = automatic_rois(case.study)
    except InputError:
        return 0, sum(1 for tl in case.truth.levels if not tl.truncated), True
    rows = [r for r in level_rows(case, res) if r["counted"]]
    return sum(r["right"] for r in rows), len(rows), bool(res.uncertain)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=("dev", "test"), default="test", help="default: test")
    ap.add_argument("--source", action="append", choices=SOURCES, help="default: both")
    ap.add_argument("--n", type=int, default=None, help="studies per source, before the filter")
    ap.add_argument("--verbose", action="store_true", help="print every pair, not only unequal")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    totals = {"maps-only": [0, 0, 0, 0], "every map": [0, 0, 0, 0]}  # right, levels, full, n
    for source in args.source or SOURCES:
        for only, full in maps_only_pairs(source, args.set, args.n):
            got = {"maps-only": levels_right(only), "every map": levels_right(full)}
            for key, (right, total, _warned) in got.items():
                acc = totals[key]
                acc[0] += right
                acc[1] += total
                acc[2] += right == total
                acc[3] += 1
            (a, at, aw), (b, bt, bw) = got["maps-only"], got["every map"]
            if args.verbose or a != b:
                line = f"{only.name}: maps-only {a}/{at} warned={aw}"
                print(f"{line}, every map {b}/{bt} warned={bw}")
    print(
        f"Maps-only exports against the same studies with every map, set {args.set} "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    print("| export | studies | levels right | studies fully right |")
    print("|---|---|---|---|")
    for key, (right, total, full, n) in totals.items():
        share = f"{right / total:.1%}" if total else "-"
        print(f"| {key} | {n} | {share} of {total} | {full}/{n} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
