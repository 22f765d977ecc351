"""Manual ROIs: from points named by level (RAS mm, as a Slicer markups list gives them) or from a
label map the user drew plus a level table.

Each level is computed in a box around its point (see :mod:`RefractureRiskLib.roi.body`), so
moving one point recomputes only that level (:func:`update_level`, in
:mod:`RefractureRiskLib.roi.level_update`), and the result equals a full recomputation with the
moved point. Each level's box-local masks are kept in ``extras["level_masks"]`` for that.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import level_index
from RefractureRiskLib.core.roiset import LevelRoi, RoiMethod, RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.roi.body import (
    BodyPlacement,
    StudyArrays,
    focal_lesion_ml,
    level_placement,
    local_marrow,
)
from RefractureRiskLib.roi.cache import study_arrays_cached
from RefractureRiskLib.roi.cement import void_fraction
from RefractureRiskLib.roi.geometry import (
    DEFAULT_CORE,
    Box,
    CoreRoiParams,
    body_frame,
    box_from_ijk,
    safe_core_roi,
)
from RefractureRiskLib.roi.marrow import DEFAULT_CRITERIA, MarrowCriteria
from RefractureRiskLib.roi.point_roi import core_at_point, sphere_at_point
from RefractureRiskLib.roi.qc import apply_qc
from RefractureRiskLib.roi.result import LevelPlacement, RoiResult
from RefractureRiskLib.roi.seeded import place_at_seed


def _normalise_points(points: Mapping[str, Sequence[float]]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, xyz in points.items():
        try:
            level = name.strip().upper()
            level_index(level)
        except ValueError as err:
            raise InputError(f"point {name!r}", str(err)) from None
        arr = np.asarray(xyz, float)
        if arr.shape != (3,) or not np.all(np.isfinite(arr)):
            raise InputError(
                f"point {name!r}", f"expected 3 finite RAS coordinates (mm), got {xyz!r}"
            )
        out[level] = arr
    if not out:
        raise InputError("points", "no points given; expected at least one level point")
    return out


def _write(target: np.ndarray, box_slices, mask: np.ndarray, label: int) -> None:
    view = target[box_slices]
    view[mask & ((view == 0) | (view == label))] = label


def _assemble(
    study: Study,
    roi_arr: np.ndarray,
    body_arr: np.ndarray,
    entries: dict[str, LevelPlacement],
    reader: str,
    index_levels: Sequence[str],
    notes: Sequence[str],
    signal_min: float,
    method: RoiMethod,
    points: Mapping[str, np.ndarray],
    masks: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    measure: Collection[str] | None = None,
    cut: Collection[str] = (),
) -> RoiResult:
    """The result of placed levels; ``measure``: the levels whose heights along the spine are
    measured (None: all; the others' entries already hold them), ``masks``: each level's
    box-local (ROI, body) masks, kept for a one-level update; ``cut``: the levels whose body
    was cut at the planes halfway to the neighbouring points."""
    grid = study.grid
    levels = tuple(sorted(entries.values(), key=lambda e: level_index(e.level)))
    if method == RoiMethod.MANUAL_POINTS:
        levels = tuple(
            _heights_along_spine(e, body_arr, points)
            if measure is None or e.level in measure
            else e
            for e in levels
        )
    roiset = RoiSet(
        labelmap=Volume(roi_arr, grid.ijk_to_ras),
        levels=tuple(LevelRoi(e.level, e.label) for e in levels),
        method=method,
        reader=reader,
        notes=tuple(notes),
    )
    result = RoiResult(
        roiset=roiset,
        body_labels=Volume(body_arr, grid.ijk_to_ras),
        levels=levels,
        uncertain=False,
        reasons=tuple(notes),
        signal_min=signal_min,
        extras={
            "points_ras": dict(points),
            "index_levels": tuple(index_levels),
            "level_masks": dict(masks or {}),
            "cut_at_neighbours": frozenset(cut),
        },
    )
    return apply_qc(result, study, index_levels=index_levels)


def spine_direction(points: Mapping[str, np.ndarray], level: str) -> np.ndarray | None:
    """Unit vector (RAS) along the spine at ``level``, pointing superior, through the named points
    of the nearest levels above and below (None without another point)."""
    order = sorted(points, key=level_index)
    i = order.index(level)
    above = points[order[i - 1]] if i > 0 else points[level]
    below = points[order[i + 1]] if i + 1 < len(order) else points[level]
    d = np.asarray(above, float) - np.asarray(below, float)
    n = float(np.linalg.norm(d))
    if n < 1e-6:
        return None
    d = d / n
    return d if d[2] >= 0 else -d


def _heights_along_spine(
    entry: LevelPlacement, body_arr: np.ndarray, points: Mapping[str, np.ndarray]
) -> LevelPlacement:
    """``entry`` with its body heights measured along the spine through the named points.

    A body's own voxels give a poor height axis for a tilted or wedged body (its heights then
    look like a fracture); the line through the neighbouring points is what the automatic
    method's centre line gives, so heights and the fracture flag mean the same in both modes.
    Only the measurement changes (the ROI is kept), and it is cheap, so every level is measured
    again after one point moves and a one-level update still equals a full recompute.
    """
    hint = spine_direction(points, entry.level) if entry.level in points else None
    body = body_arr[entry.box.slices] == entry.label
    if hint is None or not body.any():
        return entry
    frame = body_frame(body, entry.box.ijk_to_ras, hint)
    return replace(entry, heights_mm=frame.heights_mm)


def _order_notes(points: Mapping[str, np.ndarray]) -> list[str]:
    names = sorted(points, key=level_index)
    notes = []
    for upper, lower in itertools.pairwise(names):
        if points[upper][2] <= points[lower][2]:
            notes.append(
                f"point {upper} is not above point {lower} (S coordinate); check the names"
            )
    return notes


def rois_from_points(
    study: Study,
    points: Mapping[str, Sequence[float]],
    *,
    params: CoreRoiParams = DEFAULT_CORE,
    criteria: MarrowCriteria = DEFAULT_CRITERIA,
    reader: str = "unknown",
    index_levels: Sequence[str] = (),
) -> RoiResult:
    """ROIs from one point per level (RAS mm, inside the vertebral body).

    Each level's whole body is segmented around its point and its safe-core ROI placed
    (docs/architecture.md, ROIs and summaries). A point with no marrow nearby raises
    :class:`InputError` naming the level.
    """
    pts = _normalise_points(points)
    arrays = study_arrays_cached(study, criteria)
    shape = arrays.shape
    roi_arr = np.zeros(shape, np.int16)
    body_arr = np.zeros(shape, np.int16)
    entries: dict[str, LevelPlacement] = {}
    masks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    cut: set[str] = set()
    for level in sorted(pts, key=level_index):
        near = neighbour_points(pts, level)
        entry, roi, body, was_cut = _place_one(arrays, level, pts[level], params, criteria, near)
        _write(body_arr, entry.box.slices, body, entry.label)
        _write(roi_arr, entry.box.slices, roi, entry.label)
        entries[level], masks[level] = entry, (roi, body)
        cut |= {level} if was_cut else set()
    return _assemble(
        study, roi_arr, body_arr, entries, reader, index_levels, _order_notes(pts),
        arrays.signal_min, RoiMethod.MANUAL_POINTS, pts, masks, cut=cut,
    )  # fmt: skip


def neighbour_points(points: Mapping[str, np.ndarray], level: str) -> tuple[np.ndarray, ...]:
    """The points of the named levels next to ``level`` (above and below, where given)."""
    order = sorted(points, key=level_index)
    i = order.index(level)
    return tuple(points[order[n]] for n in (i - 1, i + 1) if 0 <= n < len(order))


def _place_one(arrays, level, point, params, criteria, neighbours=()):
    placement = place_at_seed(arrays, point, params, criteria, neighbours=neighbours)
    if placement.frame is None:
        placement = sphere_at_point(arrays, point, placement.message, criteria)
    elif not placement.roi.any():
        placement = core_at_point(arrays, placement, point, criteria)
    if placement.frame is None:
        where = ", ".join(f"{c:.1f}" for c in point)
        raise InputError(f"point {level}", f"{placement.message} at RAS ({where}) mm")
    entry = level_placement(level, placement, arrays)
    return entry, placement.roi, placement.body, placement.cut_at_neighbours


def rois_from_labelmap(
    labelmap: Volume,
    level_table: Mapping[int, str],
    study: Study,
    *,
    drawn: str = "roi",
    params: CoreRoiParams = DEFAULT_CORE,
    criteria: MarrowCriteria = DEFAULT_CRITERIA,
    reader: str = "unknown",
    index_levels: Sequence[str] = (),
) -> RoiResult:
    """ROIs from a label map the user drew, with a table label value -> level name.

    ``drawn="roi"``: the drawn regions are the measurement ROIs, used as drawn (whole bodies are
    not known; ``body_labels`` then holds the drawn regions, body heights and volumes are NaN and
    the fracture flag is not assessed). ``drawn="body"``: the drawn regions
    are whole vertebral bodies; the safe-core ROI is placed inside each. Labels are renumbered to
    the product's level label values. The label map must be on the study grid.
    """
    arr = _checked_labels(labelmap, study, drawn)
    present = set(np.unique(arr).tolist()) - {0}
    table = _checked_level_table(level_table, present)
    arrays = study_arrays_cached(study, criteria)
    shape = arrays.shape
    roi_arr = np.zeros(shape, np.int16)
    body_arr = np.zeros(shape, np.int16)
    entries: dict[str, LevelPlacement] = {}
    notes: list[str] = []
    for value, level in sorted(table.items(), key=lambda kv: level_index(kv[1])):
        if value not in present:
            notes.append(f"level {level} (label {value}) is empty in the label map")
            continue
        box, local, roi, entry = _drawn_level(arr == value, level, arrays, drawn, params, criteria)
        _write(body_arr, box.slices, local, entry.label)
        _write(roi_arr, box.slices, roi, entry.label)
        entries[level] = entry
    if not entries:
        raise InputError("label map", "no labelled voxels")
    return _assemble(
        study, roi_arr, body_arr, entries, reader, index_levels, notes, arrays.signal_min,
        RoiMethod.IMPORTED_MASK, {},
    )  # fmt: skip


def _checked_labels(labelmap: Volume, study: Study, drawn: str) -> np.ndarray:
    """The label map's integer array, after checking ``drawn`` and that it is on the study grid."""
    if drawn not in ("roi", "body"):
        raise InputError("drawn", f"expected 'roi' or 'body', got {drawn!r}")
    if not labelmap.same_grid(study.grid):
        raise InputError(
            "label map",
            f"not on the study grid: {labelmap.describe_geometry()} vs "
            f"{study.grid.describe_geometry()}; resample it first",
        )
    arr = np.asarray(labelmap.array)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError("label map", f"expected integer labels, got {arr.dtype}")
    return arr


def _checked_level_table(level_table: Mapping[int, str], present: set[int]) -> dict[int, str]:
    """The table label value -> level name, names normalised (upper case); every label value
    ``present`` in the map must have a level, and no two values may name the same level."""
    table: dict[int, str] = {}
    for value, name in level_table.items():
        try:
            level_index(str(name).strip().upper())
        except ValueError as err:
            raise InputError(f"level table entry {value}", str(err)) from None
        table[int(value)] = str(name).strip().upper()
    missing = sorted(present - set(table))
    if missing:
        raise InputError("level table", f"label values {missing} in the label map have no level")
    if len(set(table.values())) != len(table):
        raise InputError("level table", "two label values name the same level")
    return table


def _drawn_level(
    mask: np.ndarray,
    level: str,
    arrays: StudyArrays,
    drawn: str,
    params: CoreRoiParams,
    criteria: MarrowCriteria,
) -> tuple[Box, np.ndarray, np.ndarray, LevelPlacement]:
    """One drawn level (``mask`` on the study grid, not empty): its box (the region's extent
    with a 2-voxel margin), the region and the ROI in that box, and the level's entry."""
    shape = arrays.shape
    k, j, i = np.nonzero(mask)
    lo = np.array([i.min(), j.min(), k.min()]) - 2
    hi = np.array([i.max(), j.max(), k.max()]) + 3
    box = box_from_ijk(shape, arrays.ijk_to_ras, lo, hi)
    local = mask[box.slices]
    frame = body_frame(local, box.ijk_to_ras)
    marrow, void, _, _ = local_marrow(arrays, box, criteria)
    roi = safe_core_roi(local, marrow, box.ijk_to_ras, frame, params) if drawn == "body" else local
    lesion = focal_lesion_ml(local, marrow, void, frame, box.ijk_to_ras)
    # a drawn body's cement is judged inside it (its rim is partial volume); a drawn ROI's
    # every void voxel counts (it is what is measured)
    cement = void_fraction(local, void, None, box.ijk_to_ras if drawn == "body" else None)
    placement = BodyPlacement(box, local, roi, frame, "", cement, lesion)
    entry = level_placement(level, placement, arrays)
    if drawn == "roi":
        # The drawn region is not the whole body: its height and volume say nothing about
        # the body, so height-based QC (fracture) cannot be judged from it.
        entry = replace(entry, heights_mm=(np.nan, np.nan, np.nan), body_volume_ml=np.nan)
    return box, local, roi, entry


def __getattr__(name: str):
    # update_level lives in roi/level_update.py (it imports this module); still importable here
    if name == "update_level":
        from RefractureRiskLib.roi.level_update import update_level

        return update_level
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["rois_from_labelmap", "rois_from_points"]
