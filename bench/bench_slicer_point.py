"""Benchmark: a live point move in the Slicer panel on a 512x512x40 study (issue 16).

Run:  python bench/bench_slicer_point.py [--repeats N]   (needs slicer-core; no Slicer)

Study: the phantom with a 512x512 matrix and 40 sagittal slices (0.8 mm pixels, 3 mm slices),
in a real MRML scene (slicer-core, Testing/slicer_core_bootstrap.py), ROIs from one point per
level L1-L4 shown as the panel shows them (segmentation, statistics table, chart).

Timed, on the same scene, alternating the L2 point between two positions 2 mm apart:

1. the panel's live update (``RefractureRiskWidget._onLevelPointChanged``): the cached Study (no
   copy of the maps), the one-level ROI update and that level's statistics on its box only (in
   the worker thread), its segment only, the table and the chart. Goal: <= 100 ms.
2. reference in the same run, the full recompute the panel did before: a new Study copied from
   the four volume nodes, the one-level ROI update (the ROI engine's per-study cache misses on a
   new Study), statistics of every level, every segment rebuilt, the table and the chart.

Also timed: the ROI engine's one-level update alone (``roi.level_update.update_level``) against
its full recomputation from all points (``roi.manual.rois_from_points``), and the panel's own
part (one level's statistics, its segment, table and chart) against the panel's full refresh
(new Study, all statistics, all segments). Prints medians of the wall time and of the process's
CPU time (the machine may be shared: the load average is printed before and after) and the
ratios live / full.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from Testing import slicer_core_bootstrap as boot  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    reason = boot.slicer_core_missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return 0

    import slicer

    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
    from RefractureRiskLib.roi import level_update
    from RefractureRiskLib.roi.manual import rois_from_points

    env = boot.bootstrap()
    module = boot.load_module()
    mrml, display, studies = module.mrml, module.display, module.studies
    widget = boot.make_widget(module, env)
    slicer.util.createProgressDialog = lambda **kw: boot.FakeProgressDialog(**kw)
    logic = widget.logic

    t0 = time.perf_counter()
    spec = PhantomSpec(seed=0, matrix_size=(512, 512), n_slices=40, in_plane_spacing_mm=0.8)
    phantom = generate_phantom(spec)
    print(f"study {phantom.study.grid.shape} (k, j, i), made in {time.perf_counter() - t0:.1f} s")
    nodes = logic.addStudyToScene(phantom.study, baseName="bench")
    p = widget._parameterNode
    p.pdffVolume, p.r2sVolume = nodes["pdff"], nodes["r2s"]
    p.waterVolume, p.fatVolume = nodes.get("water"), nodes.get("fat")
    truth = {
        t.level: t.centre_ras for t in phantom.truth.levels if t.level in ("L1", "L2", "L3", "L4")
    }
    points = mrml.updateMarkupsFromLevelPoints(truth)
    p.roiPoints = points
    study = widget._study()
    result = logic.roisFromPoints(study, truth, "bench", ())
    widget._showRoiResult(result, study)
    index = points.GetControlPointIndexByLabel("L2")
    base = list(truth["L2"])

    def move(step: int) -> None:
        points.SetNthControlPointPosition(index, base[0], base[1] + 2.0 * (step % 2), base[2])

    def live(step: int) -> None:
        move(step)
        widget._onLevelPointChanged(points, "L2")

    def full(step: int) -> None:
        move(step)
        studies._built.clear()  # before: every move built a new Study from the nodes
        full_study = widget._study()
        placed = mrml.levelPointsFromMarkups(points, strict=False)
        moved = logic.updateLevel(widget._roiResult, full_study, "L2", placed["L2"])
        stats = logic.computeStatistics(moved, full_study)
        colors = display.levelColors(moved.roiset, mrml.meanPdffByLevel(stats))
        p.segmentation = mrml.roiSetToSegmentation(
            moved.roiset, p.pdffVolume, p.segmentation, colors
        )
        p.statisticsTable = mrml.updateTableNode(stats, p.statisticsTable)
        display.updatePdffChart(stats)
        widget._roiResult, widget._statistics = moved, stats

    def engine(step: int) -> None:  # the ROI engine's one-level update alone
        move(step)
        placed = mrml.levelPointsFromMarkups(points, strict=False)
        level_update.update_level(widget._roiResult, widget._study(), "L2", placed["L2"])

    def engine_full(step: int) -> None:  # the ROI engine's full recomputation from all points
        move(step)
        placed = mrml.levelPointsFromMarkups(points, strict=False)
        rois_from_points(widget._study(), placed, reader="bench")

    # the panel's own part, on the two results the engine gives for the two positions
    moved = []
    for step in (0, 1):
        move(step)
        placed = mrml.levelPointsFromMarkups(points, strict=False)
        moved.append(logic.updateLevel(widget._roiResult, study, "L2", placed["L2"]))

    def panel_live(step: int) -> None:
        result = moved[step % 2]
        stats = logic.updateStatistics(widget._statistics, result, study, "L2")
        widget._showRoiResult(result, study, stats, changedLevels=("L2",))

    def panel_full(step: int) -> None:
        studies._built.clear()
        full_study = widget._study()  # copies the four maps
        widget._showRoiResult(moved[step % 2], full_study)  # all statistics, all segments

    timings, cpu = {}, {}
    runs = (
        ("live move", live),
        ("full move", full),
        ("engine", engine),
        ("engine full", engine_full),
        ("panel live", panel_live),
        ("panel full", panel_full),
    )
    print(f"load average before: {_load()}")
    for name, fn in runs:
        fn(0)  # warm: caches filled as in an interactive session
        times, cpus = [], []
        for step in range(1, args.repeats + 1):
            t, c = time.perf_counter(), time.process_time()
            fn(step)
            times.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        timings[name], cpu[name] = statistics.median(times), statistics.median(cpus)
        print(
            f"{name:>11}: median {1000 * timings[name]:7.1f} ms  (max {1000 * max(times):.1f}), "
            f"CPU median {1000 * cpu[name]:6.1f} ms"
        )
    print(f"load average after: {_load()}")
    live_s, engine_s, panel_s = timings["live move"], timings["engine"], timings["panel live"]
    print(f"ratio live move / full recompute: {live_s / timings['full move']:.3f}")
    print(f"ratio engine, one level / all levels: {engine_s / timings['engine full']:.3f}")
    print(f"ratio panel part, one level / all levels: {panel_s / timings['panel full']:.3f}")
    print(
        f"live move <= 100 ms: {'yes' if live_s <= 0.1 else 'NO'} ({1000 * live_s:.0f} ms; "
        f"CPU {1000 * cpu['live move']:.0f} ms):"
    )
    print(
        f"  the ROI engine's update_level (roi.level_update) {1000 * engine_s:.0f} ms (CPU "
        f"{1000 * cpu['engine']:.0f}), the panel's part (one level's statistics, its segment, "
        f"table, chart) {1000 * panel_s:.0f} ms (CPU {1000 * cpu['panel live']:.0f})"
    )
    widget.cleanup()
    return 0


def _load() -> str:
    """The 1, 5 and 15 minute load averages and the number of CPUs."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


if __name__ == "__main__":
    raise SystemExit(main())
