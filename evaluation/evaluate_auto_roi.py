"""Evaluate the automatic vertebral ROIs against level truth, on a development or the test set.

Usage (from the repository root, with the project installed)::

    python evaluation/evaluate_auto_roi.py --set test             # the frozen test set
    python evaluation/evaluate_auto_roi.py --set dev --n 20 --source world --verbose
    python evaluation/evaluate_auto_roi.py --set test --markdown docs/auto_roi_evaluation.md

Sources (:mod:`auto_roi_cases`): the project's phantom, the independent world generator and
studies built from a real labelled CT. Tune only on ``--set dev``; ``--set test`` seeds are
frozen and never used while tuning.

Each study runs three ways: automatic without help, with one anchor (a random level's true
centre, as a click would give) and with manual points (every level's true centre). Measured,
with the goals of the automatic-ROI issue:

- level labels right: share of true levels whose ROI of that name lies mostly in that body
  (>= 98% of levels, >= 95% of studies fully right; 100% with one anchor and with points). A
  body cut by the field of view (truncated) counts only when an ROI was put there;
- ROIs outside every vertebral body (majority of voxels in no true body): <= 1%;
- PDFF read by level name on normal levels (not fractured, cemented, lesion, truncated): the
  ROI's mean PDFF minus the true core PDFF of the level of that NAME (what a user reads):
  mean |error| <= 0.5 points, worst <= 1;
- cement and fracture flags on rightly labelled levels: recall >= 95%; "fractured" on <= 2%
  of normal levels (truncated levels count as normal for this: never "fractured"); "cemented"
  on levels without cement is reported too (no goal in the issue: a false flag excludes the
  level from the summaries);
- uncertainty: every study with a wrong label (an ROI under a level's name outside that
  level's body; a level not found is a miss, not a wrong label) carries the warning; <= 20% of
  the studies without a wrong label do.

A refusal (no column found) is counted as a study without labels, not as a crash; any other
exception is reported as a crash.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_roi_cases import SOURCES, cases

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.roiset import RoiFlag
from RefractureRiskLib.phantom.truth import LabelledStudy
from RefractureRiskLib.roi.auto import Anchor, automatic_rois
from RefractureRiskLib.roi.manual import rois_from_points
from RefractureRiskLib.roi.result import RoiResult


def _is_normal(tl) -> bool:
    return not (tl.fractured or tl.cemented or tl.lesion or tl.truncated)


def level_rows(case: LabelledStudy, result: RoiResult) -> list[dict]:
    """One row per true level: named right?, ROI inside, PDFF read by name, flags."""
    tb = case.truth.body_labels.array
    pdff = case.study.pdff.array
    roi = result.roiset.labelmap.array
    by_name = {lr.level: lr for lr in result.roiset.levels}
    label_to_level = {lv.label: lv.level for lv in case.truth.levels}
    rows = []
    for tl in case.truth.levels:
        lr = by_name.get(tl.level)
        row = {"level": tl.level, "right": False, "outside": False, "pdff_err": np.nan}
        row.update(
            normal=_is_normal(tl),
            true_fractured=tl.fractured,
            true_cemented=tl.cemented,
            truncated=tl.truncated,
        )
        row.update(flag_fractured=False, flag_cemented=False, flag_truncated=False)
        row["placed"] = lr is not None
        if lr is not None:
            mask = roi == lr.label
            under = tb[mask]
            if under.size:
                vals, counts = np.unique(under, return_counts=True)
                top = int(vals[np.argmax(counts)])
                row["right"] = label_to_level.get(top) == tl.level
                row["outside"] = top == 0
                row["pdff_err"] = float(pdff[mask].mean() - tl.marrow_pdff_pct)
                # against the map's own mean over the level's true core: the placement's share
                # of the error (the map itself is biased by noise at low SNR)
                core = (tb == tl.label) & (case.truth.core.array > 0)
                if core.any():
                    row["pdff_err_map"] = float(pdff[mask].mean() - pdff[core].mean())
            row["flag_fractured"] = RoiFlag.FRACTURED in lr.flags
            row["flag_cemented"] = RoiFlag.CEMENTED in lr.flags
            row["flag_truncated"] = "truncated" in {str(f) for f in lr.flags}
        # A body cut by the field of view need not be found (a sliver at the edge is no level
        # to measure); if an ROI is put there under its name, it must be right.
        row["counted"] = not tl.truncated or lr is not None
        rows.append(row)
    return rows


def outside_rois(case: LabelledStudy, result: RoiResult) -> tuple[int, int]:
    """(ROIs whose majority lies in no true body, all ROIs)."""
    tb = case.truth.body_labels.array
    roi = result.roiset.labelmap.array
    n_out = n = 0
    for lr in result.roiset.levels:
        under = tb[roi == lr.label]
        if not under.size:
            continue
        n += 1
        n_out += int(np.mean(under == 0) > 0.5)
    return n_out, n


def run_case(case: LabelledStudy, rng: np.random.Generator) -> dict:
    """Automatic, anchored and manual-point results of one study, scored."""
    out: dict = {"name": case.name, "conditions": dict(case.conditions)}
    t0 = time.perf_counter()
    try:
        res = automatic_rois(case.study)
        out["status"] = "ok"
    except InputError as err:
        res, out["status"], out["error"] = None, "refused", str(err)
    except Exception as err:
        res, out["status"], out["error"] = None, "crash", f"{type(err).__name__}: {err}"
    out["seconds"] = time.perf_counter() - t0
    levels = case.truth.levels
    if res is not None:
        rows = level_rows(case, res)
        out["rows"] = rows
        out["uncertain"] = bool(res.uncertain)
        out["reasons"] = list(res.reasons)
        out["outside"] = outside_rois(case, res)
    else:
        out["rows"] = [
            {"level": tl.level, "right": False, "normal": _is_normal(tl), "counted": True}
            for tl in levels
            if not tl.truncated
        ]
        out["uncertain"] = True  # refused: the user is told, no labels shown
        out["reasons"] = [out["error"]]
        out["outside"] = (0, 0)
    out["right"] = sum(r["right"] for r in out["rows"] if r.get("counted", True))
    out["total"] = sum(1 for r in out["rows"] if r.get("counted", True))
    # a wrong label: an ROI shown under a level's name that is not in that level's body (a
    # level not found at all is a miss, counted in "levels right", not a wrong label)
    out["mislabelled"] = res is None or any(
        not r["right"] and r.get("placed", False) for r in out["rows"]
    )
    # one anchor: a random level that lies whole in the field of view
    whole = [tl for tl in levels if not tl.truncated] or list(levels)
    pick = whole[int(rng.integers(len(whole)))]
    try:
        res_a = automatic_rois(case.study, anchor=Anchor(pick.level, pick.centre_ras))
        rows_a = [r for r in level_rows(case, res_a) if r["counted"]]
        out["anchor_right"], out["anchor_total"] = sum(r["right"] for r in rows_a), len(rows_a)
    except Exception as err:
        out["anchor_right"], out["anchor_total"] = 0, out["total"]
        out["anchor_error"] = f"{type(err).__name__}: {err}"
    points = {tl.level: tl.centre_ras for tl in whole}
    try:
        res_m = rois_from_points(case.study, points)
        rows_m = level_rows(case, res_m)
        out["manual_right"] = sum(r["right"] for r in rows_m if r["level"] in points)
    except Exception as err:
        out["manual_right"] = 0
        out["manual_error"] = f"{type(err).__name__}: {err}"
    out["manual_total"] = len(points)
    return out


def summarise(results: list[dict]) -> dict[str, float]:
    """The goal figures over a list of scored studies."""
    n = len(results)
    right = sum(r["right"] for r in results)
    total = sum(r["total"] for r in results)
    full = [r for r in results if r["right"] == r["total"]]
    wrong = [r for r in results if r["mislabelled"]]
    right_labels = [r for r in results if not r["mislabelled"]]
    rows = [row for r in results for row in r["rows"] if row.get("right")]
    normal_err = np.array(
        [row["pdff_err"] for row in rows if row["normal"] and np.isfinite(row["pdff_err"])]
    )
    map_err = np.array(
        [row["pdff_err_map"] for row in rows if row["normal"] and "pdff_err_map" in row]
    )
    outside = np.array([r["outside"] for r in results]).sum(axis=0) if results else (0, 0)

    def recall(kind: str) -> tuple[int, int]:
        pos = [row for row in rows if row[f"true_{kind}"]]
        return sum(row[f"flag_{kind}"] for row in pos), len(pos)

    plain = [row for row in rows if not (row["true_fractured"] or row["true_cemented"])]
    return {
        "studies": n,
        "refused": sum(r["status"] == "refused" for r in results),
        "crashed": sum(r["status"] == "crash" for r in results),
        "levels_right": right / max(total, 1),
        "levels": total,
        "studies_full": len(full) / max(n, 1),
        "anchor_right": sum(r["anchor_right"] for r in results)
        / max(sum(r["anchor_total"] for r in results), 1),
        "manual_right": sum(r["manual_right"] for r in results)
        / max(sum(r["manual_total"] for r in results), 1),
        "roi_outside": outside[0] / max(outside[1], 1),
        "pdff_mae": float(np.mean(np.abs(normal_err))) if normal_err.size else np.nan,
        "pdff_max": float(np.max(np.abs(normal_err))) if normal_err.size else np.nan,
        "map_mae": float(np.mean(np.abs(map_err))) if map_err.size else np.nan,
        "map_max": float(np.max(np.abs(map_err))) if map_err.size else np.nan,
        "fracture_recall": recall("fractured"),
        "cement_recall": recall("cemented"),
        "fractured_on_normal": (sum(row["flag_fractured"] for row in plain), len(plain)),
        "cemented_without": (
            sum(row["flag_cemented"] for row in rows if not row["true_cemented"]),
            sum(not row["true_cemented"] for row in rows),
        ),
        "wrong_flagged": (sum(r["uncertain"] for r in wrong), len(wrong)),
        "right_flagged": (sum(r["uncertain"] for r in right_labels), len(right_labels)),
        "median_s": float(np.median([r["seconds"] for r in results])) if results else np.nan,
    }


def _ratio(pair: tuple[int, int]) -> str:
    a, b = pair
    return f"{a}/{b}" + (f" ({a / b:.0%})" if b else "")


COLUMNS = (
    ("studies", "studies", lambda s: f"{s['studies']}"),
    ("labels", "levels right", lambda s: f"{s['levels_right']:.1%} of {s['levels']}"),
    ("full", "studies fully right", lambda s: f"{s['studies_full']:.0%}"),
    ("anchor", "levels right, 1 anchor", lambda s: f"{s['anchor_right']:.1%}"),
    ("manual", "levels right, points", lambda s: f"{s['manual_right']:.1%}"),
    ("outside", "ROIs outside bodies", lambda s: f"{s['roi_outside']:.1%}"),
    (
        "pdff",
        "PDFF by name, mean/max abs err (pp)",
        lambda s: f"{s['pdff_mae']:.2f} / {s['pdff_max']:.2f}",
    ),
    (
        "pdffmap",
        "same against the map's core mean (placement only)",
        lambda s: f"{s['map_mae']:.2f} / {s['map_max']:.2f}",
    ),
    ("frac", "fracture recall", lambda s: _ratio(s["fracture_recall"])),
    ("cem", "cement recall", lambda s: _ratio(s["cement_recall"])),
    ("fpfrac", "'fractured' on normal", lambda s: _ratio(s["fractured_on_normal"])),
    ("fpcem", "'cemented' without cement", lambda s: _ratio(s["cemented_without"])),
    ("wrongflag", "studies with a wrong label warned", lambda s: _ratio(s["wrong_flagged"])),
    ("rightflag", "studies without one warned", lambda s: _ratio(s["right_flagged"])),
    ("refused", "refused / crashed", lambda s: f"{s['refused']} / {s['crashed']}"),
    ("time", "median s", lambda s: f"{s['median_s']:.2f}"),
)


def table(results: list[dict]) -> list[str]:
    """Markdown table: all studies, each source, then each value of each condition."""
    groups: dict[str, list[dict]] = defaultdict(list)
    groups["all"] = list(results)
    for r in results:
        groups[f"source={r['name'].split('-')[0]}"].append(r)
    keys = sorted({k for r in results for k in r["conditions"]})
    for key in keys:
        for r in results:
            if key in r["conditions"]:
                groups[f"{key}={r['conditions'][key]}"].append(r)
    head = "| group | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, rs in groups.items():
        s = summarise(rs)
        lines.append(f"| {name} | " + " | ".join(c[2](s) for c in COLUMNS) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=("dev", "test"), default="dev", help="default: dev")
    ap.add_argument(
        "--source",
        action="append",
        choices=SOURCES,
        help="study source (repeatable; default: all three)",
    )
    ap.add_argument("--n", type=int, default=None, help="studies per source (default: all)")
    ap.add_argument("--verbose", action="store_true", help="print every study, not only wrong")
    ap.add_argument("--markdown", default=None, help="also write the table to this file")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(12345)
    results = []
    t0 = time.perf_counter()
    for source in args.source or SOURCES:
        for case in cases(source, args.set, args.n):
            r = run_case(case, rng)
            results.append(r)
            wrong = r["right"] < r["total"]
            if args.verbose or wrong or r["status"] != "ok":
                print(
                    f"{r['name']}: {r['right']}/{r['total']} right, anchor {r['anchor_right']}, "
                    f"points {r['manual_right']}/{r['manual_total']}, {r['status']}, "
                    f"warned={r['uncertain']} {r['conditions']} {r['reasons'][:3]}"
                    + (f" [anchor: {r['anchor_error']}]" if "anchor_error" in r else ""),
                    flush=True,
                )
    lines = [
        f"Automatic ROI evaluation, set {args.set}: {len(results)} studies "
        f"({time.perf_counter() - t0:.0f} s)",
        "",
        *table(results),
    ]
    print("\n".join(lines))
    if args.markdown:
        Path(args.markdown).write_text(markdown_report(args, results, lines), encoding="utf-8")
        print(f"report written to {args.markdown}")
    return 0


def markdown_report(args: argparse.Namespace, results: list[dict], lines: list[str]) -> str:
    """The table with how it was made, what each column means and every study that failed."""
    from RefractureRiskLib import __version__

    failed = [
        f"- `{r['name']}` ({', '.join(f'{k} {v}' for k, v in r['conditions'].items())}): "
        f"{r['right']}/{r['total']} levels right, {r['status']}, "
        f"{'warned' if r['uncertain'] else 'NOT warned'}"
        + (f": {'; '.join(r['reasons'][:3])}" if r["reasons"] else "")
        for r in results
        if r["right"] < r["total"] or r["status"] != "ok"
    ]
    head = [
        "# Automatic vertebral ROIs: evaluation",
        "",
        f"Made by `python evaluation/evaluate_auto_roi.py --set {args.set}"
        + "".join(f" --source {s}" for s in args.source or ())
        + (f" --n {args.n}" if args.n else "")
        + f" --markdown ...` with RefractureRiskLib {__version__}.",
        "",
        "Sources: `phantom` is the project's own phantom; `world` the independent world generator",
        "(`RefractureRiskLib/phantom/world`: a lumbar field of view with bowel, vessels, kidneys,",
        "fat-infiltrated muscle, degenerated discs, partial coverage, 3-8 mm slices, SNR 5-50,",
        "maps-only exports); `realct` IDEAL-IQ-like studies built from a real labelled CT",
        "(`RefractureRiskLib/phantom/realct.py`, `../shared/data/realspine`). The test set's seeds",
        "are frozen and were never used while tuning (`--set dev` is for that).",
        "",
        "Columns: *levels right*: true levels whose ROI of that name lies mostly in that body",
        "(a body cut by the field of view counts only if an ROI was put there); *studies fully",
        "right*;",
        "the same with one anchor click at a random level's true centre and with manual points at",
        "every level's true centre; *ROIs outside bodies*: ROIs whose majority lies in no true",
        "body; *PDFF by name*: |ROI mean PDFF - true core PDFF of the level of that name| on",
        "rightly labelled normal levels (the map's own noise bias included), and against the",
        "mean of the map over that level's true core (the placement alone); flag recalls on",
        "rightly labelled levels; *'fractured' on",
        "normal*: false fracture flags; *'cemented' without cement*: false cement flags on",
        "rightly labelled levels; *studies with a wrong label warned*: studies where an ROI",
        "carries a wrong name and the uncertainty warning is shown (goal: all); *studies without",
        "one warned*: false alarms (goal: at most 20%).",
        "",
    ]
    tail = ["", "## Studies with a level not right or no result", "", *(failed or ["- none"])]
    return "\n".join([*head, *lines, *tail]) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
