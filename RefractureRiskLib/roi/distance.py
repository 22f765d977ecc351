"""Distance of a mask's voxels from its outside, in millimetres (the safe core's margin, the
cement test's depth, the safe core of :mod:`RefractureRiskLib.roi.geometry`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from RefractureRiskLib.roi.crop import bbox_slices
from RefractureRiskLib.roi.marrow import spacing_kji

#: The last 3D :func:`boundary_distance_mm` (its mask's shape and bits, the voxel sizes) and its
#: result: a body's safe core and its cement test (``roi/body.void_fraction``) measure the same
#: body mask one after the other, mostly in different boxes of the same grid.
_last_distance: tuple[tuple, npt.NDArray[np.float64]] | None = None


def boundary_distance_mm(
    inside: npt.NDArray[np.bool_], ijk_to_ras: npt.NDArray, in_plane_of: int | None = None
) -> npt.NDArray:
    """Distance (mm) from each inside voxel's *extent* to the nearest outside voxel.

    The Euclidean distance transform gives centre-to-centre distances; the surface lies somewhere
    between the two voxels, so half the voxel's extent along the direction to the nearest outside
    voxel is subtracted (exact for axis-aligned directions, conservative otherwise). The box border
    counts as outside. ``in_plane_of`` (an array axis 0-2): distances within planes normal to
    that axis only. Computed in the padded bounding box of ``inside`` (same result, faster).
    The distances depend only on the mask and the voxel sizes: a repeat of the last 3D call
    (same mask, same voxel sizes, any box position) returns a copy of its result.
    """
    global _last_distance
    out = np.zeros(inside.shape)
    if not inside.any():
        return out
    sp = spacing_kji(ijk_to_ras)
    if in_plane_of is not None:
        return _in_plane_distance_mm(inside, sp, in_plane_of, out)
    key = (inside.shape, inside.dtype.str, np.packbits(inside).tobytes(), sp.tobytes())
    last = _last_distance
    if last is not None and last[0] == key:
        return last[1].copy()
    box, core = bbox_slices(inside, 1), (slice(1, -1),) * 3
    inside = inside[box]
    padded = np.pad(inside, 1, constant_values=False)
    # one feature transform; the distances from it as scipy computes them (float64 offsets
    # times the voxel sizes, squared, summed over the axes in order, square root)
    idx = ndimage.distance_transform_edt(
        padded, sampling=sp, return_distances=False, return_indices=True
    )
    offset = idx - np.indices(padded.shape, dtype=idx.dtype)
    squares = offset.astype(np.float64)
    for axis in range(3):
        squares[axis] *= sp[axis]
    np.multiply(squares, squares, squares)
    dist = np.sqrt(np.add.reduce(squares, axis=0))[core]
    disp = offset[(slice(None), *core)].astype(np.float32) * sp[:, None, None, None]
    norm = np.maximum(np.sqrt((disp**2).sum(axis=0)), 1e-6)
    local = dist - 0.5 * (np.abs(disp) * sp[:, None, None, None]).sum(axis=0) / norm
    local[~inside] = 0.0
    out[box] = local
    _last_distance = (key, out.copy())
    return out


def _in_plane_distance_mm(
    inside: npt.NDArray[np.bool_], sp: npt.NDArray, axis: int, out: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """:func:`boundary_distance_mm` within planes normal to ``axis``: a 2D transform per plane;
    half the coarser in-plane voxel is subtracted (no directions)."""
    box, core = bbox_slices(inside, 1), (slice(1, -1),) * 3
    inside = inside[box]
    padded = np.pad(inside, 1, constant_values=False)
    plane_sp, planes = np.delete(sp, axis), np.moveaxis(padded, axis, 0)
    dist = np.stack([ndimage.distance_transform_edt(p, sampling=plane_sp) for p in planes])
    local = np.moveaxis(dist, 0, axis)[core] - 0.5 * float(plane_sp.max())
    local[~inside] = 0.0
    out[box] = local
    return out


__all__ = ["boundary_distance_mm"]
