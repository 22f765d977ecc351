"""Geometry of one vertebral body: its whole-body mask, its local axes and the safe-core ROI.

Everything here works on a *local box* (a sub-array of the study grid around one body) so that a
single level is recomputed in milliseconds. A box is described by :class:`Box` (array slices plus
the local IJK-to-RAS matrix). Coordinates: arrays ``[k, j, i]``; points RAS in millimetres.

The safe core (docs/architecture.md, ROIs and summaries): inside the body, at least ``margin_mm``
from cortex, endplates and signal voids (PDFF drops 4-8 points within 2 mm of cortex), away from
the basivertebral vein (posterior, mid-height), within an ellipsoid shifted anteriorly (default)
or a mid-sagittal 2D ellipse (clinical alternative).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from RefractureRiskLib.roi.crop import bbox_slices, nonzero
from RefractureRiskLib.roi.distance import boundary_distance_mm
from RefractureRiskLib.roi.marrow import spacing_kji


class RoiShape(StrEnum):
    """Shape of the measurement ROI inside the safe marrow."""

    ELLIPSOID = "ellipsoid"  # 3D ellipsoid shifted anteriorly (default)
    SAGITTAL_ELLIPSE = "sagittal_ellipse"  # 2D ellipse on the mid-sagittal plane (clinical)


@dataclass(frozen=True)
class CoreRoiParams:
    """Safe-core ROI parameters (fractions are of the body's half-extents along its own axes).

    - ``margin_mm``: minimum distance of every ROI voxel (its whole extent, not just its centre)
      from the body surface, the endplates and signal voids (cement).
    - ``semi_axes_frac``: ellipsoid semi-axes (LR, AP, SI) as fractions of the half-extents.
    - ``anterior_shift_frac``: ellipsoid centre moved anteriorly by this fraction of the AP
      half-extent (away from the basivertebral vein and the posterior cortex).
    - ``vein_ap_frac`` / ``vein_si_frac`` / ``vein_lr_frac``: the basivertebral-vein zone excluded:
      posterior of ``-vein_ap_frac`` (normalised AP), within ``vein_si_frac`` of mid-height and
      ``vein_lr_frac`` of the midline.
    """

    shape: RoiShape = RoiShape.ELLIPSOID
    margin_mm: float = 3.0
    semi_axes_frac: tuple[float, float, float] = (0.75, 0.7, 0.85)
    anterior_shift_frac: float = 0.15
    vein_ap_frac: float = 0.1
    vein_si_frac: float = 0.6
    vein_lr_frac: float = 0.45


DEFAULT_CORE = CoreRoiParams()


@dataclass(frozen=True)
class Box:
    """A sub-box of a grid: ``slices`` index ``[k, j, i]``; ``ijk_to_ras`` is the box's matrix."""

    slices: tuple[slice, slice, slice]
    ijk_to_ras: npt.NDArray[np.float64]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(s.stop - s.start for s in self.slices)  # type: ignore[return-value]


def box_around(
    shape_kji: tuple[int, int, int],
    ijk_to_ras: npt.NDArray,
    centre_ras: npt.ArrayLike,
    half_size_mm: float | tuple[float, float, float],
) -> Box:
    """The box of voxels within ``half_size_mm`` (per RAS axis or one value) of a RAS point."""
    mat = np.asarray(ijk_to_ras, float)
    half = np.broadcast_to(np.asarray(half_size_mm, float), (3,))
    centre = np.asarray(centre_ras, float)
    signs = np.array(np.meshgrid((-1, 1), (-1, 1), (-1, 1), indexing="ij")).reshape(3, -1).T
    corners = centre + signs * half
    ijk = (np.c_[corners, np.ones(8)] @ np.linalg.inv(mat).T)[:, :3]
    lo = np.floor(ijk.min(axis=0)).astype(int)
    hi = np.ceil(ijk.max(axis=0)).astype(int) + 1
    return box_from_ijk(shape_kji, mat, lo, hi)


def box_from_ijk(
    shape_kji: tuple[int, int, int],
    ijk_to_ras: npt.NDArray,
    lo_ijk: npt.ArrayLike,
    hi_ijk: npt.ArrayLike,
) -> Box:
    """Box from (i, j, k) lower (inclusive) and upper (exclusive) corners, clipped to the grid."""
    lo = np.asarray(lo_ijk, int)
    hi = np.asarray(hi_ijk, int)
    n_ijk = np.array(shape_kji[::-1])
    lo = np.clip(lo, 0, n_ijk)
    hi = np.clip(hi, lo, n_ijk)
    slices = tuple(slice(int(lo[a]), int(hi[a])) for a in (2, 1, 0))
    shift = np.eye(4)
    shift[:3, 3] = lo
    return Box(slices, np.asarray(ijk_to_ras, float) @ shift)  # type: ignore[arg-type]


def voxel_ras(mask: npt.NDArray[np.bool_], ijk_to_ras: npt.NDArray) -> npt.NDArray[np.float64]:
    """RAS centres (mm, shape (n, 3)) of the voxels set in ``mask``."""
    k, j, i = nonzero(mask)
    ijk = np.stack([i, j, k], axis=1).astype(float)
    return ijk @ np.asarray(ijk_to_ras)[:3, :3].T + np.asarray(ijk_to_ras)[:3, 3]


def grid_ras(shape_kji: tuple[int, int, int], ijk_to_ras: npt.NDArray) -> tuple[npt.NDArray, ...]:
    """RAS x, y, z (mm) of every voxel of a box, each of shape ``shape_kji`` (float32).

    Each coordinate is ``m[r, 0] * i + m[r, 1] * j + m[r, 2] * k + m[r, 3]`` in float32, summed
    left to right; on open index grids the first sum is one plane, broadcast (the same values
    as on full index arrays, bit for bit, without building them)."""
    nk, nj, ni = shape_kji
    k = np.arange(nk, dtype=np.float32).reshape(nk, 1, 1)
    j = np.arange(nj, dtype=np.float32).reshape(1, nj, 1)
    i = np.arange(ni, dtype=np.float32).reshape(1, 1, ni)
    m = np.asarray(ijk_to_ras, np.float32)
    return tuple(m[r, 0] * i + m[r, 1] * j + m[r, 2] * k + m[r, 3] for r in range(3))


@dataclass(frozen=True)
class BodyFrame:
    """Local frame of one vertebral body.

    ``axes_ras`` has unit columns (LR towards patient right, AP towards anterior, SI towards
    superior), ``centre_ras`` is the centre of the body's extent (mm), ``half_extent_mm`` the half
    size along each axis; ``heights_mm`` the body height (SI extent) in the anterior, middle and
    posterior thirds of its depth, measured near the midline (what Genant grading compares).
    """

    centre_ras: tuple[float, float, float]
    axes_ras: npt.NDArray[np.float64]
    half_extent_mm: tuple[float, float, float]
    heights_mm: tuple[float, float, float]
    volume_ml: float

    def to_local(self, points_ras: npt.NDArray) -> npt.NDArray[np.float64]:
        """(LR, AP, SI) coordinates (mm) of RAS points relative to the centre."""
        return (np.asarray(points_ras, float) - np.asarray(self.centre_ras)) @ self.axes_ras


def _orthonormal_axes(si_hint: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """LR, AP, SI unit columns with SI along ``si_hint`` and LR as close to RAS +x as possible."""
    si = np.asarray(si_hint, float)
    si = si / np.linalg.norm(si)
    if si[2] < 0:
        si = -si
    lr = np.array([1.0, 0.0, 0.0]) - si[0] * si
    if np.linalg.norm(lr) < 1e-6:
        lr = np.array([0.0, 1.0, 0.0]) - si[1] * si
    lr /= np.linalg.norm(lr)
    ap = np.cross(si, lr)  # right-handed: SI x LR = AP (for identity axes: z x x = y)
    return np.stack([lr, ap, si], axis=1)


def estimate_si_axis(points_ras: npt.NDArray) -> npt.NDArray[np.float64]:
    """Height axis of a body from its voxels: the minor principal axis in the sagittal plane.

    Vertebral bodies are flatter (height) than deep (AP), so in the plane orthogonal to LR the
    smaller-variance direction is the height axis; falls back to RAS +z when the two are too
    similar to tell apart.
    """
    yz = points_ras[:, 1:3] - points_ras[:, 1:3].mean(axis=0)
    cov = yz.T @ yz / max(len(yz), 1)
    evals, evecs = np.linalg.eigh(cov)
    if evals[1] < 1.2 * evals[0]:
        return np.array([0.0, 0.0, 1.0])
    v = evecs[:, 0]
    axis = np.array([0.0, v[0], v[1]])
    if axis[2] < 0:
        axis = -axis
    # A tilt beyond 45 degrees means the estimate is not a height axis.
    return axis if axis[2] > np.cos(np.radians(45)) else np.array([0.0, 0.0, 1.0])


def body_axes(
    body_mask: npt.NDArray[np.bool_], ijk_to_ras: npt.NDArray, si_hint: npt.ArrayLike | None = None
) -> npt.NDArray[np.float64]:
    """The axes :func:`body_frame` gives a body mask (``axes_ras``), without the rest."""
    si = estimate_si_axis(voxel_ras(body_mask, ijk_to_ras)) if si_hint is None else si_hint
    return _orthonormal_axes(si)


def body_frame(
    body_mask: npt.NDArray[np.bool_],
    ijk_to_ras: npt.NDArray,
    si_hint: npt.ArrayLike | None = None,
) -> BodyFrame:
    """Frame, extents, heights and volume of a body mask (local box and its matrix)."""
    pts = voxel_ras(body_mask, ijk_to_ras)
    if len(pts) == 0:
        raise ValueError("empty body mask")
    voxel_ml = abs(np.linalg.det(np.asarray(ijk_to_ras)[:3, :3])) / 1000.0
    si = estimate_si_axis(pts) if si_hint is None else np.asarray(si_hint, float)
    axes = _orthonormal_axes(si)
    mean = pts.mean(axis=0)
    local = (pts - mean) @ axes
    lo, hi = np.percentile(local, [1.0, 99.0], axis=0)
    mid = (lo + hi) / 2.0
    centre = mean + axes @ mid
    half = (hi - lo) / 2.0
    local = local - mid
    heights = _band_heights(ijk_to_ras, local, half)
    return BodyFrame(
        centre_ras=tuple(float(c) for c in centre),  # type: ignore[arg-type]
        axes_ras=axes,
        half_extent_mm=tuple(float(h) for h in half),  # type: ignore[arg-type]
        heights_mm=tuple(heights),  # type: ignore[arg-type]
        volume_ml=float(np.count_nonzero(body_mask) * voxel_ml),
    )


def cell_groups(key: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """``np.unique(key, return_inverse=True, return_counts=True)[1:]`` for keys >= 0 of a small
    range (cell numbers): each key's rank among the distinct keys, and each distinct key's count,
    by counting instead of sorting (the same arrays)."""
    full = np.bincount(key)
    present = full > 0
    return (np.cumsum(present) - 1)[key], full[present]


def _band_heights(ijk_to_ras: npt.NDArray, local: npt.NDArray, half: npt.NDArray) -> list[float]:
    """Anterior, middle and posterior body heights (mm), measured along the body's own axis.

    The body's cross-section (LR, AP in its frame) is cut into square cells as large as the
    coarsest voxel side; a cell's height is the volume of the voxels projecting into it divided
    by its area. A band's height is the mean over its cells (near the midline; AP at +0.55, 0,
    -0.55 of the half depth, clear of the rounded rims; paramedian posteriorly, beside the
    basivertebral vein). Averaging whole prisms along the body axis, it is neither quantised by
    thick slices nor shortened where a tilted body's walls cross the image axes.
    """
    sp = spacing_kji(ijk_to_ras)
    cell = float(sp.max())
    voxel_mm3 = abs(float(np.linalg.det(np.asarray(ijk_to_ras)[:3, :3])))
    ci = np.floor(local[:, 0] / cell).astype(np.int64)
    cj = np.floor(local[:, 1] / cell).astype(np.int64)
    key = (ci - ci.min()) * (cj.max() - cj.min() + 2) + (cj - cj.min())
    inv, counts = cell_groups(key)
    centre_lr = (np.bincount(inv, weights=ci) / counts + 0.5) * cell
    centre_ap = (np.bincount(inv, weights=cj) / counts + 0.5) * cell
    col_h = counts * voxel_mm3 / cell**2
    lr_n = np.abs(centre_lr) / max(half[0], 1e-3)
    heights = []
    for ap_n in (0.55, 0.0, -0.55):
        band = max(0.2 * half[1], 0.75 * cell)
        lr_ok = (lr_n <= 0.35) if ap_n >= 0 else ((lr_n >= 0.25) & (lr_n <= 0.55))
        sel = lr_ok & (np.abs(centre_ap - ap_n * half[1]) <= band)
        if np.count_nonzero(sel) < 2:
            heights.append(float("nan"))
            continue
        heights.append(float(col_h[sel].mean()))
    return heights


def fill_holes(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """``mask`` with its enclosed holes filled (components of the background not touching the
    array border, face connectivity) — the same as ``ndimage.binary_fill_holes``, faster."""
    sl = bbox_slices(mask, 1)  # outside it all background reaches the border
    if sl is not None and mask[sl].size < mask.size:
        out = mask.copy()
        out[sl] = fill_holes(mask[sl])
        return out
    lab, n = ndimage.label(~mask)
    if n == 0:
        return mask.copy()
    border = np.zeros(n + 1, bool)
    for face in (lab[0], lab[-1], lab[:, 0], lab[:, -1], lab[:, :, 0], lab[:, :, -1]):
        border[face] = True  # every label on the face (repeats set it again)
    border[0] = True
    return mask | ~border[lab]


def axis_along(ijk_to_ras: npt.NDArray, direction_ras: npt.ArrayLike) -> int:
    """The array axis (0 = k, 1 = j, 2 = i) most nearly parallel to a RAS direction."""
    cols = np.asarray(ijk_to_ras, float)[:3, :3]
    cols = cols / np.linalg.norm(cols, axis=0)
    cos = np.abs(np.asarray(direction_ras, float) @ cols)  # per i, j, k
    return int(2 - int(np.argmax(cos)))


def safe_core_roi(
    body_mask: npt.NDArray[np.bool_],
    marrow_mask_local: npt.NDArray[np.bool_],
    ijk_to_ras: npt.NDArray,
    frame: BodyFrame,
    params: CoreRoiParams = DEFAULT_CORE,
) -> npt.NDArray[np.bool_]:
    """The measurement ROI of one body (local box): safe marrow within the chosen shape.

    Allowed voxels are body voxels that are marrow (voids such as cement are excluded and kept
    ``margin_mm`` away like cortex); the ROI is the allowed voxels whose extent is at least
    ``margin_mm`` from anything not allowed, inside the ellipsoid (or mid-sagittal ellipse), and
    outside the basivertebral-vein zone. Computed on the body's bounding box only.
    """
    out = np.zeros(body_mask.shape, bool)
    if not body_mask.any():
        return out
    sl, mat = _bbox(body_mask, ijk_to_ras)
    out[sl] = _safe_core_in_box(body_mask[sl], marrow_mask_local[sl], mat, frame, params)
    return out


def _bbox(mask: npt.NDArray[np.bool_], ijk_to_ras: npt.NDArray, pad: int = 1):
    """Slices of the bounding box of ``mask`` (padded, clipped) and that box's IJK-to-RAS."""
    sl = bbox_slices(mask, pad)
    shift = np.eye(4)
    shift[:3, 3] = [s.start for s in sl[::-1]]
    return sl, np.asarray(ijk_to_ras, float) @ shift


def _safe_core_in_box(
    body_mask: npt.NDArray[np.bool_],
    marrow_mask_local: npt.NDArray[np.bool_],
    ijk_to_ras: npt.NDArray,
    frame: BodyFrame,
    params: CoreRoiParams,
) -> npt.NDArray[np.bool_]:
    # Small holes (noise) are filled; large ones (cement, lesions with no signal) stay holes.
    allowed = body_mask  # without holes the whole body is marrow
    holes = body_mask & ~marrow_mask_local
    if holes.any():
        lab, _n = ndimage.label(holes)
        voxel_ml = abs(np.linalg.det(np.asarray(ijk_to_ras)[:3, :3])) / 1000.0
        big = np.bincount(lab.ravel()) * voxel_ml >= 0.05  # per label
        big[0] = False
        allowed = body_mask & ~big[lab]
    safe = boundary_distance_mm(allowed, ijk_to_ras) >= params.margin_mm
    x, y, z = grid_ras(body_mask.shape, ijk_to_ras)
    c = np.asarray(frame.centre_ras, np.float32)
    ax = frame.axes_ras.astype(np.float32)
    dx, dy, dz = x - c[0], y - c[1], z - c[2]
    lr = dx * ax[0, 0] + dy * ax[1, 0] + dz * ax[2, 0]
    ap = dx * ax[0, 1] + dy * ax[1, 1] + dz * ax[2, 1]
    si = dx * ax[0, 2] + dy * ax[1, 2] + dz * ax[2, 2]
    h = np.maximum(np.asarray(frame.half_extent_mm, np.float32), 1e-3)
    lr_n, ap_n, si_n = lr / h[0], ap / h[1], si / h[2]
    fa, fb, fc = params.semi_axes_frac
    shifted = ap_n - params.anterior_shift_frac
    if params.shape == RoiShape.SAGITTAL_ELLIPSE:
        sp_lr = float(np.abs(frame.axes_ras[:, 0] @ np.asarray(ijk_to_ras)[:3, :3]).max())
        # mid-sagittal plane: the voxels nearest to it (one voxel thick)
        shape_ok = (np.abs(lr) <= 0.5 * sp_lr) & ((shifted / fb) ** 2 + (si_n / fc) ** 2 <= 1.0)
    else:
        shape_ok = (lr_n / fa) ** 2 + (shifted / fb) ** 2 + (si_n / fc) ** 2 <= 1.0
    vein = (
        (ap_n < -params.vein_ap_frac)
        & (np.abs(si_n) < params.vein_si_frac)
        & (np.abs(lr_n) < params.vein_lr_frac)
    )
    return safe & shape_ok & ~vein


__all__ = [
    "DEFAULT_CORE",
    "BodyFrame",
    "Box",
    "CoreRoiParams",
    "RoiShape",
    "axis_along",
    "body_axes",
    "body_frame",
    "box_around",
    "box_from_ijk",
    "cell_groups",
    "estimate_si_axis",
    "fill_holes",
    "grid_ras",
    "safe_core_roi",
    "voxel_ras",
]
