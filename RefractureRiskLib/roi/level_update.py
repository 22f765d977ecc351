"""One level of a manual ROI result recomputed from its moved (or new) point: a viewer's live
update, equal to a full recomputation with the moved point (:func:`~.manual.rois_from_points`).

What one point changes, and so all that is recomputed:

- the level's body and ROI, placed in a box around the new point (the per-study arrays are
  cached by :func:`~RefractureRiskLib.roi.cache.study_arrays_cached`: no map is copied), and
  those of the levels next to it whose body was cut at, or now reaches past, the plane halfway
  to the moved point (a body is cut there when it runs on into its neighbour);
- the label maps inside the level's old and new boxes only: there every level is painted again
  from its box-local masks, in level order, as the full computation paints them (where bodies
  overlap, the upper level keeps the voxels);
- the body heights of the levels whose spine direction (through the neighbouring points) or
  whose body voxels changed; every other level's entry is kept as it was (the same object);
- the QC flags of every level, from the stored measurements (they compare neighbours).

``extras["updated_levels"]`` names the levels whose ROI voxels changed (a viewer re-measures and
redraws those only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from RefractureRiskLib.core.levels import level_index
from RefractureRiskLib.core.roiset import RoiMethod
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.roi.cache import study_arrays_cached
from RefractureRiskLib.roi.geometry import DEFAULT_CORE, Box, CoreRoiParams
from RefractureRiskLib.roi.manual import (
    _assemble,
    _normalise_points,
    _order_notes,
    _place_one,
    _write,
    neighbour_points,
    spine_direction,
)
from RefractureRiskLib.roi.marrow import DEFAULT_CRITERIA, MarrowCriteria
from RefractureRiskLib.roi.result import LevelPlacement, RoiResult
from RefractureRiskLib.roi.seeded import beyond_neighbours

Slices = tuple[slice, slice, slice]
Masks = Mapping[str, tuple[np.ndarray, np.ndarray]]


def update_level(
    result: RoiResult,
    study: Study,
    level: str,
    point_ras: Sequence[float],
    *,
    params: CoreRoiParams = DEFAULT_CORE,
    criteria: MarrowCriteria = DEFAULT_CRITERIA,
) -> RoiResult:
    """``result`` with level ``level`` recomputed from a moved (or new) point; other levels kept.

    Only the level's old and new boxes of the label maps are painted again; QC flags are
    re-derived for all levels (they compare neighbours) from the stored per-level measurements.
    """
    old_points = dict(result.extras.get("points_ras", {}))
    pts = {**old_points, **_normalise_points({level: point_ras})}
    level = level.strip().upper()
    arrays = study_arrays_cached(study, criteria)
    entries = {e.level: e for e in result.levels}
    masks = dict(result.extras.get("level_masks", {}))
    cut = set(result.extras.get("cut_at_neighbours", ()))
    boxes = []
    for lv in _to_place(old_points, pts, level, entries, masks, cut):
        near = neighbour_points(pts, lv)
        entry, roi, body, was_cut = _place_one(arrays, lv, pts[lv], params, criteria, near)
        old = entries.get(lv)
        boxes += [entry.box] if old is None else [old.box, entry.box]
        entries[lv], masks[lv] = entry, (roi, body)
        cut = cut | {lv} if was_cut else cut - {lv}
    region = _union(boxes)
    old_roi, old_body = result.roiset.labelmap.array, result.body_labels.array
    roi_arr, body_arr = old_roi.copy(), old_body.copy()
    if all(lv in masks for lv in entries):
        _repaint(roi_arr, body_arr, region, entries, masks)
    else:  # masks not kept (another method's result): the level's own voxels only
        entry, (roi, body) = entries[level], masks[level]
        _replace_level(roi_arr, body_arr, boxes, entry, roi, body)
    changed_roi = _changed(old_roi, roi_arr, region, entries) | {level}
    changed_body = _changed(old_body, body_arr, region, entries)
    turned = {lv for lv in entries if _direction(old_points, lv) != _direction(pts, lv)}
    updated = _assemble(
        study, roi_arr, body_arr, entries, result.roiset.reader,
        result.extras.get("index_levels", ()), _order_notes(pts), result.signal_min,
        RoiMethod.MANUAL_POINTS, pts, masks, measure=changed_body | turned | {level}, cut=cut,
    )  # fmt: skip
    order = sorted(changed_roi, key=level_index)
    return _with_extra(updated, "updated_levels", tuple(order))


def _to_place(
    old_points: Mapping[str, np.ndarray],
    points: Mapping[str, np.ndarray],
    level: str,
    entries: Mapping[str, LevelPlacement],
    masks: Masks,
    cut: set[str],
) -> list[str]:
    """``level`` and the levels next to it whose placement the move changes: a body is cut at
    the planes halfway to its neighbours' points when it reaches past one of them, so a level
    is placed again when it was cut or when its body reaches past a moved plane."""
    out = [level]
    for lv in entries:
        if lv == level or lv not in old_points or lv not in points or lv not in masks:
            continue
        near = neighbour_points(points, lv)
        before = [p.tolist() for p in neighbour_points(old_points, lv)]
        if before == [p.tolist() for p in near]:
            continue
        body = masks[lv][1]
        if lv in cut or beyond_neighbours(body, entries[lv].box, points[lv], near):
            out.append(lv)
    return out


def _union(boxes: Sequence[Box]) -> Slices:
    """Slices of the smallest box holding every box of ``boxes``."""
    lo = [min(b.slices[a].start for b in boxes) for a in range(3)]
    hi = [max(b.slices[a].stop for b in boxes) for a in range(3)]
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]


def _within(box: Box, region: Slices) -> tuple[Slices, Slices] | None:
    """(slices into the region, slices into the box) of where ``box`` meets ``region``."""
    into_region, into_box = [], []
    for b, r in zip(box.slices, region, strict=True):
        lo, hi = max(b.start, r.start), min(b.stop, r.stop)
        if lo >= hi:
            return None
        into_region.append(slice(lo - r.start, hi - r.start))
        into_box.append(slice(lo - b.start, hi - b.start))
    return tuple(into_region), tuple(into_box)  # type: ignore[return-value]


def _repaint(
    roi_arr: np.ndarray,
    body_arr: np.ndarray,
    region: Slices,
    entries: Mapping[str, LevelPlacement],
    masks: Masks,
) -> None:
    """Paint ``region`` of both label maps again from every level's masks, in level order (the
    order :func:`~.manual.rois_from_points` paints them in: an upper level keeps shared voxels)."""
    shape = tuple(s.stop - s.start for s in region)
    roi_view, body_view = np.zeros(shape, roi_arr.dtype), np.zeros(shape, body_arr.dtype)
    for lv in sorted(entries, key=level_index):
        meet = _within(entries[lv].box, region)
        if meet is None:
            continue
        roi, body = masks[lv]
        _write(body_view, meet[0], body[meet[1]], entries[lv].label)
        _write(roi_view, meet[0], roi[meet[1]], entries[lv].label)
    roi_arr[region] = roi_view
    body_arr[region] = body_view


def _replace_level(roi_arr, body_arr, boxes, entry, roi, body) -> None:
    """The level's voxels cleared from its boxes, its new masks painted where no other level is."""
    for box in boxes:
        for arr in (roi_arr, body_arr):
            view = arr[box.slices]
            view[view == entry.label] = 0
    _write(body_arr, entry.box.slices, body, entry.label)
    _write(roi_arr, entry.box.slices, roi, entry.label)


def _changed(
    before: np.ndarray, after: np.ndarray, region: Slices, entries: Mapping[str, LevelPlacement]
) -> set[str]:
    """The levels whose voxels differ between two label maps (which differ inside ``region``)."""
    a, b = before[region], after[region]
    differ = a != b
    labels = set(np.unique(a[differ]).tolist()) | set(np.unique(b[differ]).tolist())
    return {lv for lv, e in entries.items() if e.label in labels}


def _direction(points: Mapping[str, np.ndarray], level: str) -> tuple[float, ...] | None:
    """The spine direction a level's heights are measured along (None: its own axis)."""
    if level not in points:
        return None
    d = spine_direction(points, level)
    return None if d is None else tuple(d.tolist())


def _with_extra(result: RoiResult, key: str, value) -> RoiResult:
    return replace(result, extras={**result.extras, key: value})


__all__ = ["update_level"]
