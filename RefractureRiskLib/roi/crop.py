"""Mask operations on a body's bounding box instead of the whole search box: the same result.

A body fills a small part of the box searched around its seed (84 x 76 x 68 mm), so what only
depends on the body and its neighbourhood (its holes, components, rim and growth) is computed in
its bounding box, padded by as much as the operation can reach. Each function here says why its
result equals the whole-box computation bit for bit (tests: Testing/test_roi_crop.py).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from RefractureRiskLib.roi.marrow import spacing_kji

Slices = tuple[slice, slice, slice]


def bbox_slices(mask: npt.NDArray[np.bool_], pad: int | tuple[int, int, int] = 0) -> Slices | None:
    """Slices (k, j, i) of the bounding box of ``mask``, padded by ``pad`` voxels (per axis or
    one value) and clipped to the array; None when ``mask`` is empty."""
    pads = np.broadcast_to(np.asarray(pad, int), (3,))
    k = np.flatnonzero(mask.any(axis=(1, 2)))
    if k.size == 0:
        return None
    plane = mask[k[0] : k[-1] + 1].any(axis=0)  # one pass over the slab holding the mask
    hits = (k, np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0)))
    return tuple(  # type: ignore[return-value]
        slice(max(int(h[0]) - int(p), 0), min(int(h[-1]) + int(p) + 1, n))
        for h, p, n in zip(hits, pads, mask.shape, strict=True)
    )


def nonzero(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], ...]:
    """``np.nonzero(mask)`` (same indices, same order), scanning only its bounding box."""
    sl = bbox_slices(mask)
    if sl is None:
        return np.nonzero(mask)
    return tuple(a + s.start for a, s in zip(np.nonzero(mask[sl]), sl, strict=True))


def in_plane_core(
    inside: npt.NDArray[np.bool_], ijk_to_ras: npt.NDArray, axis: int, depth_mm: float
) -> npt.NDArray[np.bool_]:
    """``boundary_distance_mm(inside, ijk_to_ras, in_plane_of=axis) >= depth_mm``, as an erosion.

    That distance is the 2D Euclidean distance transform's (within planes normal to ``axis``,
    the box border outside) minus half the coarser in-plane voxel side. An inside voxel is kept
    when no outside voxel lies at an in-plane offset (a, b) whose distance, computed with the
    same floating-point operations as ``scipy.ndimage.distance_transform_edt``, falls short of
    ``depth_mm``. Those offsets are, for each ``a`` along the coarser axis, an interval of ``b``
    (the distance grows with ``|b|``): a running minimum along the finer axis per ``a``.
    """
    sp = spacing_kji(ijk_to_ras)
    plane = [a for a in range(3) if a != axis]
    coarse, fine = sorted(plane, key=lambda a: (-sp[a], a))
    s_c, s_f = float(sp[coarse]), float(sp[fine])
    half = 0.5 * float(np.delete(sp, axis).max())

    def short(a: int, b: int) -> bool:
        dc, df = np.float64(a) * s_c, np.float64(b) * s_f
        return bool(np.sqrt(dc * dc + df * df) - half < depth_mm)

    as_u8 = inside.astype(np.uint8)
    out = np.ones(inside.shape, bool)
    a = 0
    while short(a, 0):
        b = 0
        while short(a, b + 1):
            b += 1
        eroded = ndimage.minimum_filter1d(as_u8, 2 * b + 1, axis=fine, mode="constant", cval=0)
        for shift in {a, -a}:
            out &= _shifted(eroded.view(bool), shift, coarse)
        a += 1
    return out & inside


def _shifted(mask: npt.NDArray[np.bool_], by: int, axis: int) -> npt.NDArray[np.bool_]:
    """``out[x] = mask[x + by]`` along ``axis``; False beyond the array."""
    if by == 0:
        return mask
    out = np.zeros_like(mask)
    n = mask.shape[axis]
    if abs(by) >= n:
        return out
    src = [slice(None)] * 3
    dst = [slice(None)] * 3
    src[axis] = slice(by, None) if by > 0 else slice(None, n + by)
    dst[axis] = slice(None, n - by) if by > 0 else slice(-by, None)
    out[tuple(dst)] = mask[tuple(src)]
    return out


def component_at(mask: npt.NDArray[np.bool_], at: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """The face-connected component of ``mask`` holding voxel ``at`` (k, j, i), else ``mask``;
    labelled in the mask's bounding box (its components all lie in it)."""
    sl = bbox_slices(mask)
    if sl is None or not all(s.start <= a < s.stop for s, a in zip(sl, at, strict=True)):
        return mask
    lab, _ = ndimage.label(mask[sl])
    keep = lab[tuple(a - s.start for s, a in zip(sl, at, strict=True))]
    if not keep:
        return mask
    out = np.zeros_like(mask)
    out[sl] = lab == keep
    return out


def centres_of_mass(
    mask: npt.NDArray[np.bool_], lab: npt.NDArray, index: list[int], origin: tuple[int, ...]
) -> list[tuple[float, ...]]:
    """``ndimage.center_of_mass(mask, lab, index)`` of a sub-box at ``origin`` (k, j, i) in the
    whole box's indices, bit for bit: the same exact sums of integer indices, the same division."""
    count = ndimage.sum_labels(mask, lab, index)
    per_axis = []
    for axis, start in enumerate(origin):
        shape = [1, 1, 1]
        shape[axis] = mask.shape[axis]
        idx = (np.arange(mask.shape[axis]) + start).reshape(shape).astype(float)
        per_axis.append(ndimage.sum_labels(mask * idx, lab, index) / count)
    return [tuple(v) for v in np.array(per_axis).T]


__all__ = ["bbox_slices", "centres_of_mass", "component_at", "in_plane_core", "nonzero"]
