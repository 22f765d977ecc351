"""The nearest point of a sampled centre line to each of many points, with numpy (the answer of
a k-d tree, bit for bit, without importing scipy.spatial at start-up), and the index box of
the grid around the line with its voxels' RAS coordinates."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt


def nearest_line_points(
    line_pts: npt.NDArray, pts: npt.NDArray, radius: float
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.intp]]:
    """For each point: is a line point closer than ``radius`` mm, and the index of the nearest.

    The same answer as ``scipy.spatial.cKDTree(line_pts).query(pts,
    distance_upper_bound=radius)`` (``isfinite(dist)``, ``idx``), bit for bit: the squared
    distance summed in the same order (x, y, z) and compared strictly with ``radius**2``. A
    centre line is sampled at falling z (``roi.detection.fit_centre_line``), so only the line points
    within ``radius`` in z of a point are candidates; numpy does that in a few milliseconds and
    spares the import of scipy.spatial (with scipy.linalg), about a tenth of a second at start.
    A line that is not sampled so, or a point at exactly the same distance from two line points
    (where which one a k-d tree returns depends on its traversal), goes to cKDTree itself.
    """
    line_pts = np.asarray(line_pts, float)
    pts = np.asarray(pts, float)
    n = len(line_pts)
    z = line_pts[:, 2] if n else line_pts
    usable = n >= 1 and bool(np.isfinite(line_pts).all()) and bool(np.all(np.diff(z) < 0))
    if not usable or not np.isfinite(pts).all():
        return _nearest_by_kdtree(line_pts, pts, radius)
    idx = np.full(len(pts), n, dtype=np.intp)  # cKDTree's index for "none within radius"
    if len(pts) == 0:
        return np.zeros(0, dtype=bool), idx
    # A window from just beyond the radius above each point to just beyond it below: every line
    # point nearer than the radius is in it (the exact test is the distance below). Candidates
    # past a window's end are other line points (harmless: the nearest stays the nearest) or,
    # past the line's end, a point at infinity.
    reach = radius + 0.01
    lo = np.searchsorted(-z, -pts[:, 2] - reach, side="left")
    hi = np.searchsorted(-z, -pts[:, 2] + reach, side="right")
    width = int((hi - lo).max())
    lx, ly, lz = (np.append(line_pts[:, axis], np.inf) for axis in range(3))
    px, py, pz = (np.ascontiguousarray(pts[:, axis]) for axis in range(3))
    best = np.full(len(pts), np.inf)
    tied = np.zeros(len(pts), dtype=bool)  # another candidate at exactly the best distance
    cand = lo.copy()
    for _ in range(width):  # the next candidate of every point's window at once
        np.minimum(cand, n, out=cand)
        diff = px - lx[cand]
        d = diff * diff  # x, y, z summed in this order, as the k-d tree does
        diff = py - ly[cand]
        d += diff * diff
        diff = pz - lz[cand]
        d += diff * diff
        closer = d < best
        tied &= ~closer
        tied |= d == best
        np.copyto(best, d, where=closer)
        np.copyto(idx, cand, where=closer)
        cand += 1
    inside = best < radius * radius
    if np.any(tied & inside):
        return _nearest_by_kdtree(line_pts, pts, radius)  # a tie: the k-d tree decides
    idx[~inside] = n
    return inside, idx


def _nearest_by_kdtree(
    line_pts: npt.NDArray, pts: npt.NDArray, radius: float
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.intp]]:
    from scipy.spatial import cKDTree  # only for lines and points numpy cannot answer exactly

    dist, idx = cKDTree(line_pts).query(pts, distance_upper_bound=radius)
    return np.isfinite(dist), idx


def index_box(
    mat: npt.NDArray, lo: npt.NDArray, hi: npt.NDArray, shape_kji: tuple[int, ...]
) -> tuple[slice, slice, slice]:
    """(k, j, i) index ranges of the grid holding every voxel centred in the RAS box
    ``lo``..``hi`` (one voxel to spare)."""
    corners = np.array(list(itertools.product(*zip(lo, hi, strict=True))), float)
    ijk = (corners - mat[:3, 3]) @ np.linalg.inv(mat[:3, :3]).T
    first = np.clip(np.floor(ijk.min(axis=0)) - 1, 0, shape_kji[::-1]).astype(int)
    last = np.clip(np.ceil(ijk.max(axis=0)) + 2, 0, shape_kji[::-1]).astype(int)
    return tuple(slice(first[a], last[a]) for a in (2, 1, 0))  # type: ignore[return-value]


def box_ras(box: tuple[slice, slice, slice], mat: npt.NDArray) -> tuple[npt.NDArray, ...]:
    """RAS x, y, z (mm, float32) of the voxels in ``box``: ``roi.geometry.grid_ras`` of the
    whole grid cut to the box, the same float32 operations on the same indices (bit for bit)."""
    k, j, i = (np.arange(s.start, s.stop, dtype=np.float32) for s in box)
    k, j = k[:, None, None], j[None, :, None]
    m = np.asarray(mat, np.float32)
    return tuple(m[r, 0] * i + m[r, 1] * j + m[r, 2] * k + m[r, 3] for r in range(3))


def values_at(
    arr: npt.NDArray, mat: npt.NDArray, points_h: npt.NDArray
) -> tuple[npt.NDArray, npt.NDArray[np.bool_]]:
    """``arr``'s values at the voxels nearest to homogeneous RAS points ``points_h`` (shape
    ``(..., 4)``, last column 1) on the grid with IJK-to-RAS ``mat``, and whether each point
    lies in the grid (values there are 0)."""
    kji = np.rint((points_h @ np.linalg.inv(mat).T)[..., :3]).astype(int)[..., ::-1]
    ok = np.all((kji >= 0) & (kji < np.array(arr.shape)), axis=-1)
    found = np.zeros(ok.shape, arr.dtype)
    found[ok] = arr[tuple(kji[ok].T)]
    return found, ok


__all__ = ["box_ras", "index_box", "nearest_line_points", "values_at"]
