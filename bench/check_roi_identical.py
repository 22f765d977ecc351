"""Check that ROI placement gives bit-identical results after a speed change (issue 16).

Runs, on development studies of the three evaluation sources (evaluation/auto_roi_cases.py):

- ``place_at_seed`` at every level centre of the truth, and at points moved off it (the
  leak-guard and refusal paths), with and without a spine-axis hint;
- ``in_vertebral_bone`` at the same points;
- ``rois_from_points`` from all level centres (manual ROIs, the sphere fallback);
- ``automatic_rois`` (labels, levels, label maps, reasons);

and saves every output (masks, boxes, frames, messages, cement and lesion values, label maps).

    python bench/check_roi_identical.py --save      # the reference, before a change
    python bench/check_roi_identical.py             # compare with it, exactly (exit 1: differs)

A difference in any array element or float bit is reported with its path.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.auto_roi_cases import cases  # noqa: E402
from RefractureRiskLib.core.errors import InputError  # noqa: E402
from RefractureRiskLib.roi.auto import automatic_rois  # noqa: E402
from RefractureRiskLib.roi.body import in_vertebral_bone, study_arrays  # noqa: E402
from RefractureRiskLib.roi.manual import rois_from_points  # noqa: E402
from RefractureRiskLib.roi.seeded import place_at_seed  # noqa: E402

SETS = (("phantom", 4), ("world", 4), ("realct", 3))
#: Offsets (RAS mm) of the seeds from each level centre: the centre, off-centre in each
#: direction, and far enough to leave the body (leak guard, refusals).
OFFSETS = ((0, 0, 0), (6, 0, 0), (0, -8, 0), (0, 9, 4), (-3, 4, -9), (0, -22, 0), (14, 0, 0))


#: The ROI modules this check is not about: a reference made with other versions of them (work
#: by others in between) is not a reference for a speed change, and the check says so.
OTHERS = ("auto", "column", "detection", "dips", "labelling", "landmarks", "runs", "manual")


def others_versions() -> dict[str, str]:
    roi = ROOT / "RefractureRiskLib" / "roi"
    return {
        name: hashlib.sha1((roi / f"{name}.py").read_bytes()).hexdigest()[:12]
        for name in OTHERS
        if (roi / f"{name}.py").exists()
    }


def studies():
    for source, n in SETS:
        yield from cases(source, "dev", n)


def plain(value):
    """A comparable, picklable form of any result object (dataclasses as dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):  # no order of its own (string hashes vary by run)
        return sorted(repr(v) for v in value)
    if isinstance(value, slice):
        return ("slice", value.start, value.stop, value.step)
    if isinstance(value, np.ndarray):
        return value.copy()
    if hasattr(value, "array") and hasattr(value, "ijk_to_ras"):
        return {"array": value.array.copy(), "ijk_to_ras": np.asarray(value.ijk_to_ras)}
    if isinstance(value, int | float | str | bool | type(None) | np.generic):
        return value
    return repr(value)


def run_study(case) -> dict:
    study, out = case.study, {}
    arrays = study_arrays(study)
    centres = {t.level: np.asarray(t.centre_ras, float) for t in case.truth.levels}
    for level, centre in centres.items():
        for off in OFFSETS:
            p = centre + np.asarray(off, float)
            key = f"{level}{off}"
            out[f"seed {key}"] = plain(place_at_seed(arrays, p))
            out[f"seed tilted {key}"] = plain(place_at_seed(arrays, p, si_hint=(0.0, 0.2, 1.0)))
            out[f"bone {key}"] = plain(in_vertebral_bone(arrays, p))
    try:
        manual = rois_from_points(study, {lv: tuple(c) for lv, c in centres.items()})
        out["manual"] = plain(manual)
    except InputError as exc:
        out["manual"] = str(exc)
    out["auto"] = plain(automatic_rois(study))
    return out


def differences(a, b, path: str = "") -> list[str]:
    """Paths where ``a`` and ``b`` differ (arrays: dtype, shape or any element, NaN = NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return [f"{path}: type"]
        if a.dtype != b.dtype or a.shape != b.shape:
            return [f"{path}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"]
        same = np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        return [] if same else [f"{path}: {np.count_nonzero(a != b)} elements differ"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return []
    return [] if type(a) is type(b) and a == b else [f"{path}: {a!r} != {b!r}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", action="store_true", help="write the reference")
    parser.add_argument("--reference", type=Path, default=Path("/tmp/roi_identical.pkl"))
    args = parser.parse_args()
    reference = args.reference
    results, cpu = {}, 0.0
    for case in studies():
        t0 = time.process_time()
        results[case.name] = run_study(case)
        cpu += time.process_time() - t0
    n_seeds = sum(sum(k.startswith("seed") for k in r) for r in results.values())
    print(f"{len(results)} studies, {n_seeds} placements, CPU in the ROI code {cpu:.1f} s")
    results["versions of the other ROI modules"] = others_versions()
    if args.save:
        with reference.open("wb") as f:
            pickle.dump(results, f)
        print(f"reference written: {reference}")
        return 0
    with reference.open("rb") as f:
        ref = pickle.load(f)
    diffs = differences(ref, results)
    for d in diffs[:40]:
        print("DIFFERS", d)
    print("identical" if not diffs else f"{len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    raise SystemExit(main())
