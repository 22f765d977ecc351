"""Separable Gaussian smoothing in numpy, the same sums as ``scipy.ndimage.gaussian_filter``.

The separation needs three small Gaussian filters (the water-fat phase offset, the PDFF selector's
neighbourhood, the field map's block smoothing). Importing ``scipy.ndimage`` for them cost 0.15-0.3
s of a ~0.7 s cold ``fatwater`` command (SciPy 1.17's array-API layer at import), more than the
separation itself on an ISMRM case. This module computes the same thing: kernel ``exp(-x^2 / 2
sigma^2)`` normalised to sum 1 over ``int(truncate sigma + 0.5)`` voxels each side, one pass per
axis with ``sigma > 0`` in axis order, sums in scipy's order (centre weight, then each symmetric
pair from the farthest in), each pass rounded to the input's dtype as scipy's output array is;
``mode="reflect"`` (half-sample symmetric, scipy's default) or ``"constant"`` (zeros outside).
Sums are float64 for float64 input (bit for bit scipy's) and float32 for float32 input (scipy:
float64; the difference is float32 rounding). A float32 pass along an axis of at most
:data:`_MATMUL_MAX_LENGTH` voxels is matrix products with the banded kernel matrix (taps outside
the axis folded back or dropped), :data:`_TILE` output rows at a time on the columns they reach:
BLAS does the multiply-adds faster than numpy does the ~3 passes per tap (40 x 256 x 256,
in-plane: sigma 3 0.061 -> 0.016 s, sigma 1.5 0.034 -> 0.017 s, one thread, with the whole band;
tiles halve that again), in another order: still within float32 rounding.
``Testing/test_fatwater_smooth.py`` checks it against scipy.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt

_PAD_MODES = {"reflect": "symmetric", "constant": "constant"}
#: Voxels per slab when the first axis is not smoothed (larger arrays go to threads by slabs).
_SLAB_VOXELS = 1 << 18
#: float32 passes along axes up to this long are matrix products (see :func:`_band_matrix`).
_MATMUL_MAX_LENGTH = 512


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> npt.NDArray[np.float64]:
    """Normalised 1D Gaussian weights: ``2 r + 1`` of them, ``r = int(truncate sigma + 0.5)``."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * x * x)
    return phi / phi.sum()


def self_weights(n: int, sigma: float, mode: str = "reflect", truncate: float = 4.0) -> npt.NDArray:
    """``[n]`` weight that a pass of :func:`gaussian_filter` along an axis of ``n`` voxels gives
    each voxel's own value: the diagonal of the pass's matrix. The kernel's centre weight, plus
    (``mode="reflect"``) the taps whose reflection at the ends lands back on the voxel: within
    the kernel radius of an end, and everywhere on an axis shorter than the kernel (reflected
    again and again: scipy's and ``np.pad``'s half-sample symmetric extension of period
    ``2 n``). The product of the axes' weights is the voxel's own share in a separable filter."""
    if mode not in _PAD_MODES:
        raise ValueError(f"mode {mode!r}: only 'reflect' and 'constant' are supported")
    weights = gaussian_kernel(sigma, truncate) if sigma > 1e-15 else np.ones(1)
    radius = len(weights) // 2
    if mode == "constant":  # taps outside the axis read zeros: only the centre tap is its own
        return np.full(n, weights[radius])
    pos = np.arange(n)[:, None]
    src = (pos + np.arange(-radius, radius + 1)[None, :]) % max(1, 2 * n)
    src = np.where(src >= n, 2 * n - 1 - src, src)
    return np.where(src == pos, weights[None, :], 0.0).sum(axis=1)


#: Elements per piece of :func:`_smooth_axis` (its ~3 passes per tap then run in cache).
_PIECE = 1 << 15


def _smooth_axis(
    values: npt.NDArray, axis: int, weights: npt.NDArray[np.float64], pad_mode: str
) -> npt.NDArray:
    """One correlation pass along ``axis``, summed in ``values``' dtype (float32 or float64).
    In-place sums into two buffers: a temporary per tap made this pass three times slower
    (page faults of fresh arrays). A large array goes in pieces along another axis (each
    element's sum is the same: the pass runs along ``axis`` only), ~:data:`_PIECE` elements
    each, so the passes over a piece stay in cache (the field map's float64 smoothing of 20 x
    128 x 128 blocks: ~2x faster)."""
    other = 1 if axis == 0 else 0
    rows = max(1, _PIECE // max(1, values.size // max(1, values.shape[other])))
    if values.ndim < 2 or values.shape[other] <= rows:
        return _smooth_piece(values, axis, weights, pad_mode)
    out = np.empty(values.shape, values.dtype)  # float: _filter_block casts first
    lead = (slice(None),) * other
    for start in range(0, values.shape[other], rows):
        piece = (*lead, slice(start, start + rows))
        out[piece] = _smooth_piece(values[piece], axis, weights, pad_mode)
    return out


def _smooth_piece(
    values: npt.NDArray, axis: int, weights: npt.NDArray[np.float64], pad_mode: str
) -> npt.NDArray:
    radius = len(weights) // 2
    n = values.shape[axis]
    widths = [(0, 0)] * values.ndim
    widths[axis] = (radius, radius)
    padded = np.pad(values, widths, mode=pad_mode)
    weights = weights.astype(values.dtype)

    def part(offset: int) -> npt.NDArray:
        index = [slice(None)] * values.ndim
        index[axis] = slice(radius + offset, radius + offset + n)
        return padded[tuple(index)]

    out = np.multiply(part(0), weights[radius])
    pair = np.empty_like(out)
    for j in range(radius, 0, -1):  # scipy's order: the farthest pair first
        np.add(part(-j), part(j), out=pair)
        pair *= weights[radius + j]
        out += pair
    return out


@lru_cache(maxsize=16)
def _band_matrix(n: int, sigma: float, truncate: float, pad_mode: str) -> npt.NDArray:
    """``[n, n]`` float32 matrix ``G`` with ``G @ x`` the filter along an axis of length ``n``:
    the kernel's taps on the band, those falling outside folded back (``symmetric``) or dropped
    (``constant``). Needs a kernel radius below ``n`` (one reflection)."""
    weights = gaussian_kernel(sigma, truncate)
    radius = len(weights) // 2
    rows = np.repeat(np.arange(n), weights.size)
    cols = rows + np.tile(np.arange(-radius, radius + 1), n)
    taps = np.tile(weights, n)
    if pad_mode == "symmetric":
        cols = np.where(cols < 0, -cols - 1, np.where(cols >= n, 2 * n - 1 - cols, cols))
    else:
        keep = (cols >= 0) & (cols < n)
        rows, cols, taps = rows[keep], cols[keep], taps[keep]
    band = np.zeros((n, n))
    np.add.at(band, (rows, cols), taps)
    return band.astype(np.float32)


#: Output rows per product of :func:`_matmul_axis` (the band's columns they need, no more).
_TILE = 32


def _matmul_axis(values: npt.NDArray, axis: int, band: npt.NDArray) -> npt.NDArray:
    """The pass of :func:`_band_matrix` along ``axis`` as (batched) matrix products, one per
    :data:`_TILE` output rows on the band's columns those rows reach (``tile + 2 radius`` of
    ``n``): the band's zeros are not multiplied (256 voxels, sigma 3: ~2x faster a pass). The
    same sums as the product with the whole band, the skipped terms being zeros: bit for bit
    on the separation's in-plane passes (4 x 256 x 256 slabs) with this OpenBLAS, in general
    within float32 rounding (``Testing/test_fatwater_smooth.py``)."""
    n = band.shape[0]
    out = np.empty(values.shape, np.result_type(values, band))
    last = axis == values.ndim - 1
    lead = (slice(None),) * axis
    for t0 in range(0, n, _TILE):
        t1 = min(n, t0 + _TILE)
        reached = np.flatnonzero(band[t0:t1].any(axis=0))
        s0, s1 = int(reached[0]), int(reached[-1]) + 1
        part = band[t0:t1, s0:s1]
        if last:
            out[..., t0:t1] = values[..., s0:s1] @ part.T
        else:
            src = np.moveaxis(values[(*lead, slice(s0, s1))], axis, -2)
            np.moveaxis(out, axis, -2)[..., t0:t1, :] = np.matmul(part, src)
    return out


def _filter_block(
    values: npt.NDArray, sigmas: list[float], pad_mode: str, truncate: float, dtype: np.dtype
) -> npt.NDArray:
    # every pass writes a new array: the input is copied only to make it contiguous
    out = np.ascontiguousarray(values, dtype)
    for axis, s in enumerate(sigmas):
        n = out.shape[axis]
        if s <= 1e-15 or n == 0:
            continue
        if dtype == np.float32 and int(truncate * s + 0.5) < n <= _MATMUL_MAX_LENGTH:
            out = _matmul_axis(out, axis, _band_matrix(n, s, truncate, pad_mode))
        else:
            out = _smooth_axis(out, axis, gaussian_kernel(s, truncate), pad_mode)
        out = out.astype(dtype, copy=False)
    return out.copy() if np.may_share_memory(out, values) else out


def gaussian_filter(
    values: npt.NDArray,
    sigma: float | Sequence[float],
    mode: str = "reflect",
    truncate: float = 4.0,
) -> npt.NDArray:
    """Gaussian filter of a real array, per-axis ``sigma`` (0 = not smoothed on that axis).

    Same result as ``scipy.ndimage.gaussian_filter(values, sigma, mode=mode,
    truncate=truncate)`` for ``mode`` "reflect" or "constant" (cval 0) and real input: bit
    for bit for float64 input; float32 input is summed in float32 (scipy sums in float64; axes
    up to :data:`_MATMUL_MAX_LENGTH` long by a matrix product), which differs by float32
    rounding (~1e-7 of the values' range) and took 5-10 times less CPU on the separation's
    2.6 M-voxel volumes. The output has the input's dtype (float64 for integer input). When the
    first axis is not smoothed (the separation's in-plane filters), slabs of a few slices run
    on the thread pool of :mod:`.chunks` (numpy's loops release the GIL; the slabs also stay
    in cache)."""
    if mode not in _PAD_MODES:
        raise ValueError(f"mode {mode!r}: only 'reflect' and 'constant' are supported")
    arr = np.asarray(values)
    if np.iscomplexobj(arr):
        raise TypeError("gaussian_filter: real input only (filter .real and .imag)")
    dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    sigmas = [float(sigma)] * arr.ndim if np.isscalar(sigma) else [float(s) for s in sigma]
    if len(sigmas) != arr.ndim:
        raise ValueError(f"{len(sigmas)} sigmas for a {arr.ndim}D array")
    pad_mode = _PAD_MODES[mode]
    if arr.ndim < 2 or sigmas[0] > 1e-15 or arr.size < _SLAB_VOXELS:
        return _filter_block(arr, sigmas, pad_mode, truncate, dtype)
    from RefractureRiskLib.maps.fatwater.chunks import run_chunks

    out = np.empty(arr.shape, dtype)

    def work(sl: slice) -> None:
        out[sl] = _filter_block(arr[sl], sigmas, pad_mode, truncate, dtype)

    per_slice = max(1, arr[0].size)
    run_chunks(work, arr.shape[0], max(1, _SLAB_VOXELS // per_slice))
    return out
