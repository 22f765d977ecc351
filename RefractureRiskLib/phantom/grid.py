"""The acquisition grid of a phantom study and its slice sub-samples.

Sagittal grids: columns (i) run A -> P, rows (j) S -> I, slices (k) L -> R, as scanners write a
sagittal series; ``oblique_deg`` turns the grid about the S-I axis. Axial grids: columns R -> L,
rows A -> P, slices I -> S; ``oblique_deg`` turns the grid about the L-R axis (the usual tilt
towards the disc planes). Both are right-handed and orthonormal.

Each slice is sampled at ``n_sub`` (odd) positions across its thickness, at
``k + (m + 0.5) / n_sub - 0.5`` for m = 0..n_sub-1, so averaging the sub-samples reproduces the
partial volume of a thick slice; the middle sub-sample is the voxel centre.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.phantom import anatomy as an
from RefractureRiskLib.phantom.spec import PhantomSpec

MARGIN_MM = 15.0  # around the labelled bodies (S-I) and behind the skin (A-P)
SLAB_HALF_WIDTH_MM = 48.0  # default sagittal coverage about the spine (L-R)
SMALL_FOV_SPINE_MARGIN_MM = 45.0  # an explicit small matrix keeps the spine this far inside


def rotation_matrix(axis: npt.ArrayLike, angle_deg: float) -> npt.NDArray[np.float64]:
    """3x3 rotation by ``angle_deg`` about ``axis`` (right-hand rule)."""
    a = math.radians(angle_deg)
    x, y, z = np.asarray(axis, float) / np.linalg.norm(axis)
    c, s, t = math.cos(a), math.sin(a), 1 - math.cos(a)
    return np.array(
        [
            [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
        ]
    )


def acquisition_grid(
    spec: PhantomSpec, bodies: tuple[an.BodyGeometry, ...], curve: an.SpineCurve
) -> tuple[npt.NDArray[np.float64], tuple[int, int, int]]:
    """IJK-to-RAS matrix and shape ``(nk, nj, ni)`` of the study grid.

    Without ``matrix_size``/``n_slices`` the grid covers T10-S1 (T10-S2 with a lumbarised S1)
    with MARGIN_MM to spare: a
    square sagittal field of view from the skin of the back forwards and +-48 mm (plus any
    scoliotic spread) of slices, or an axial stack over the whole trunk width.
    """
    labelled = [b for b in bodies if b.labelled]
    # a lumbarised S1 is a mobile segment: the study covers the sacrum's top (S2) below it
    covered = [*labelled, *(b for b in bodies if b.name == "S2")]
    covered = covered if spec.transitional == "lumbarised_S1" else labelled
    top = max(b.centre_ras[2] + b.height_mm / 2 for b in covered)
    bottom = min(b.centre_ras[2] - b.height_mm / 2 for b in covered)
    in_spine = (curve.points_ras[:, 2] <= top) & (curve.points_ras[:, 2] >= bottom)
    x_mid = float(np.mean([b.centre_ras[0] for b in labelled]))
    skin_back = an.TRUNK_CENTRE_V_MM - an.TRUNK_HALF_AP_MM
    skin_front = an.TRUNK_CENTRE_V_MM + an.TRUNK_HALF_AP_MM
    y_post = float(curve.points_ras[in_spine, 1].min()) + skin_back
    y_ant = float(curve.points_ras[in_spine, 1].max()) + skin_front
    sp, thk = spec.in_plane_spacing_mm, spec.slice_thickness_mm
    z_lo, z_hi = bottom - MARGIN_MM, top + MARGIN_MM
    if spec.orientation == "sagittal":
        dirs = np.column_stack([(0.0, -1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0)])
        nj = math.ceil((z_hi - z_lo) / sp) + 1
        nj += nj % 2
        ni = nj
        spread = max(abs(b.centre_ras[0] - x_mid) for b in labelled)
        nk = math.ceil(2 * (SLAB_HALF_WIDTH_MM + spread) / thk)
        # posterior edge MARGIN_MM behind the skin; anterior as far as the square FOV reaches
        centre = np.array([x_mid, y_post - MARGIN_MM + (ni - 1) * sp / 2, 0.5 * (z_lo + z_hi)])
        tilt_axis = (0.0, 0.0, 1.0)
    else:
        dirs = np.column_stack([(-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0)])
        ni = math.ceil((2 * an.TRUNK_HALF_WIDTH_MM + 2 * MARGIN_MM) / sp) + 1
        nj = math.ceil((y_ant - y_post + 2 * MARGIN_MM) / sp) + 1
        ni = nj = max(ni, nj) + max(ni, nj) % 2
        nk = math.ceil((top - bottom + 2 * MARGIN_MM) / thk)
        centre = np.array([x_mid, 0.5 * (y_post + y_ant), 0.5 * (top + bottom)])
        tilt_axis = (1.0, 0.0, 0.0)
    if spec.matrix_size is not None:
        nj, ni = spec.matrix_size
        # a small field of view moves towards the bodies so that it still shows the spine
        half_ap = ((ni if spec.orientation == "sagittal" else nj) - 1) * sp / 2
        slack = max(half_ap - SMALL_FOV_SPINE_MARGIN_MM, 0.0)
        spine_y = float(np.mean([b.centre_ras[1] for b in labelled]))
        centre[1] = float(np.clip(centre[1], spine_y - slack, spine_y + slack))
    if spec.n_slices is not None:
        nk = int(spec.n_slices)
    dirs = rotation_matrix(tilt_axis, spec.oblique_deg) @ dirs
    mat = np.eye(4)
    mat[:3, :3] = dirs * np.array([sp, sp, thk])[np.newaxis, :]
    half = (np.array([ni, nj, nk], float) - 1) / 2
    mat[:3, 3] = centre - mat[:3, :3] @ half
    return mat, (nk, nj, ni)


def n_subsamples(spec: PhantomSpec) -> int:
    """Sub-samples per slice: the spec's, or about one per millimetre; always odd."""
    if spec.slice_supersampling is not None:
        n = int(spec.slice_supersampling)
    else:
        n = max(1, math.ceil(spec.slice_thickness_mm - 1e-6))
    return n if n % 2 else n + 1


def subsample_points(
    mat: npt.NDArray[np.float64],
    n_sub: int,
    m_range: tuple[int, int],
    j_range: tuple[int, int],
    i_range: tuple[int, int],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """RAS x, y, z (mm, float32, shape (m, j, i)) of the sub-samples in the index ranges."""
    k = (np.arange(*m_range, dtype=np.float64) + 0.5) / n_sub - 0.5
    j = np.arange(*j_range, dtype=np.float64)
    i = np.arange(*i_range, dtype=np.float64)
    out = []
    for row in range(3):
        a = (mat[row, 2] * k + mat[row, 3]).astype(np.float32)[:, None, None]
        b = (mat[row, 1] * j).astype(np.float32)[None, :, None]
        c = (mat[row, 0] * i).astype(np.float32)[None, None, :]
        out.append(a + b + c)
    return out[0], out[1], out[2]


def box_index_ranges(
    mat: npt.NDArray[np.float64],
    n_sub: int,
    shape_sub: tuple[int, int, int],
    centre: npt.NDArray[np.float64],
    rotation: npt.NDArray[np.float64],
    lo: tuple[float, float, float],
    hi: tuple[float, float, float],
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None:
    """Sub-sample index ranges (m, j, i) covering the local box [lo, hi] (mm) of a frame at
    ``centre`` whose axes are the rows of ``rotation``; None when the box misses the grid."""
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    ras = centre + corners @ rotation
    ijk = (np.c_[ras, np.ones(8)] @ np.linalg.inv(mat).T)[:, :3]
    m = (ijk[:, 2] + 0.5) * n_sub - 0.5
    ranges = []
    for values, n in ((m, shape_sub[0]), (ijk[:, 1], shape_sub[1]), (ijk[:, 0], shape_sub[2])):
        a = max(math.floor(values.min()) - 1, 0)
        b = min(math.ceil(values.max()) + 2, n)
        if a >= b:
            return None
        ranges.append((a, b))
    return ranges[0], ranges[1], ranges[2]
