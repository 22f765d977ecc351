"""Swap-free field map: region growing on blocks, then refinement down a block pyramid.

Why this works. A voxel's cost over the off-resonance ``psi`` has (at least) two deep minima:
the true field and a "swapped" one about one fat frequency away (water read as fat or the other
way round). The swap moves in *opposite* directions for water and for fat, so a block holding
both tissues has a single deep minimum: its summed cost (features add up, :mod:`.model`)
separates water from fat where single voxels cannot. The pyramid sums 2x2x2 blocks level by
level. At the base level (4-voxel blocks, or 2-voxel ones when the swap distance is small) the
field is set by region growing from the most certain blocks (:mod:`.growing`). Each finer level
then refines it: a block chooses within half a swap distance of its parent's (smoothed) field,
minimising its normalised cost plus ``mu * ((psi - predicted) / swap distance)^2``, the
prediction being the certainty-weighted circular mean of its neighbours' choices and its parent's
(iterated conditional modes, a few sweeps). The result is a smooth field map at the finest block
level (2x2x2 voxels), from which each voxel then searches only a window narrower than the swap
distance (:mod:`.fit`).

Uniform echo spacing ``dTE`` makes the cost exactly periodic in ``psi`` with period ``1/dTE``
(a field offset of one period adds the same phase to every echo up to a constant). Fields are
then handled on that circle: the grid covers one period, distances are wrapped, means are taken
of phasors, and the map is the field modulo ``1/dTE`` (wraps are invisible to the water and fat
images). The swap distance that matters is then the fat frequency's wrapped distance. For
non-uniform echoes the same code runs on a circle much larger than the searched range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.maps.fatwater.chunks import run_chunks
from RefractureRiskLib.maps.fatwater.growing import grow
from RefractureRiskLib.maps.fatwater.model import gram_features, projection_table
from RefractureRiskLib.maps.fatwater.smooth import gaussian_filter
from RefractureRiskLib.maps.fatwater.window import best_in_window, window_costs


@dataclass(frozen=True)
class FieldMapOptions:
    """Tuning of the pyramid search (defaults validated on the phantom and ISMRM cases).

    ``field_range_hz``: for non-uniform echoes the grid spans +-this (None: 2.5 swap distances,
    at least 500 Hz); uniform echoes search one period.
    ``step_hz``: grid step of the block search (None: swap distance / 24: the blocks only need
    to land inside the voxels' search window, a third of the swap distance wide; halving the
    step changed no ISMRM or phantom figure and cost 1 s on the 3D lumbar phantom) and of the
    voxel fit (None there: swap distance / 48). ``r2s_grid_per_s``: R2* values the cost is
    minimised over while the field is searched. ``mu``: weight of the smoothness penalty relative
    to the normalised cost (0-1). ``sweeps``: ICM sweeps per level. ``base_level``: the pyramid
    level (blocks of ``2**base_level`` voxels per axis) where region growing (:mod:`.growing`)
    sets the field before the finer levels refine it. None: 2 (4-voxel blocks) when the swap
    distance is at least 150 Hz, else 1: the field must vary across a block much less than the
    swap distance (ISMRM case 15: 95 Hz wrapped swap distance, steep field).
    """

    field_range_hz: float | None = None
    step_hz: float | None = None
    r2s_grid_per_s: tuple[float, ...] = (0.0, 60.0, 200.0)
    mu: float = 0.3
    sweeps: int = 3
    base_level: int | None = None
    chunk: int = 16384


def wrap_hz(delta_hz: npt.ArrayLike, period_hz: float) -> npt.NDArray[np.float64]:
    """``delta_hz`` wrapped into ``[-period/2, period/2)``."""
    d = np.asarray(delta_hz)
    if not np.issubdtype(d.dtype, np.floating):
        d = d.astype(float)
    half, period = d.dtype.type(period_hz / 2), d.dtype.type(period_hz)
    shifted = d + half
    # ``shifted % period`` is ``shifted`` itself within [0, period): numpy's float remainder
    # (~10x slower than an addition) only where it changes something; the same values
    outside = (shifted < 0) | (shifted >= period)
    if outside.ndim == 0:
        return shifted % period - half
    if outside.any():
        shifted[outside] %= period
    return shifted - half


def echo_period_hz(te_s: npt.ArrayLike) -> float | None:
    """``1/dTE`` for uniformly spaced echoes (to 0.1%), else None."""
    dte = np.diff(np.asarray(te_s, float))
    return float(1.0 / dte[0]) if np.allclose(dte, dte[0], rtol=1e-3) else None


def effective_swap_hz(swap_hz: float, period_hz: float | None) -> float:
    """Distance (Hz) from the true field to its water-fat swap, wrapped when periodic."""
    if period_hz is None:
        return abs(swap_hz)
    return float(abs(wrap_hz(swap_hz, period_hz)))


def field_grid_hz(
    swap_hz: float, period_hz: float | None, options: FieldMapOptions
) -> tuple[npt.NDArray[np.float64], float]:
    """The ``psi`` grid (Hz) of the search and the circle's period (Hz) it lives on."""
    step = options.step_hz or abs(swap_hz) / 24.0
    if period_hz is not None:
        n = max(8, round(period_hz / step))
        return (np.arange(n) - n // 2) * (period_hz / n), period_hz
    span = options.field_range_hz or max(2.5 * abs(swap_hz), 500.0)
    n = int(np.ceil(span / step))
    return np.arange(-n, n + 1) * step, 8.0 * span


def _reduce(features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Sum 2x2x2 blocks (an axis of length 1 stays 1) of ``features[k, j, i, F]``."""
    out = features
    for axis in range(3):
        n = out.shape[axis]
        if n == 1:
            continue
        if n % 2:
            pad = [(0, 0)] * out.ndim
            pad[axis] = (0, 1)
            out = np.pad(out, pad)
        shape = list(out.shape)
        shape[axis : axis + 1] = [shape[axis] // 2, 2]
        out = out.reshape(shape).sum(axis=axis + 1)
    return out


def _block_sum(feats_t: npt.NDArray[np.float32], shape: tuple[int, ...]) -> npt.NDArray:
    """``feats_t[F, kk * nj * ni]`` (features first) summed over 2 x 2 (x 2) blocks of the slab
    ``shape`` (an axis of length 1 stays 1, an odd one is padded): ``[nj', ni', F]``."""
    f = feats_t.reshape(feats_t.shape[0], *shape)
    pad = [(0, 0), (0, 0)] + [(0, m % 2 if m > 1 else 0) for m in shape[1:]]
    if any(p[1] for p in pad):
        f = np.pad(f, pad)
    f = f[:, 0] + f[:, 1] if f.shape[1] > 1 else f[:, 0]  # pairwise adds: much faster than
    if f.shape[1] > 1:  # a reshaped sum over strided axes
        f = f[:, 0::2] + f[:, 1::2]
    if f.shape[2] > 1:
        f = f[:, :, 0::2] + f[:, :, 1::2]
    return np.moveaxis(f, 0, -1)


#: Voxels per piece of a slab in :func:`block_features` (its feature rows then stay in cache).
_PIECE_VOXELS = 16384


def block_features(
    signal: npt.NDArray[np.complexfloating],
    mask: npt.NDArray[np.bool_],
    workers: int | None = None,
) -> npt.NDArray[np.float32]:
    """Gram features (:func:`.model.gram_features`) of ``signal[k, j, i, N]`` inside ``mask``,
    summed over 2x2x2 voxel blocks: the pyramid's level 1 ``[ceil(k/2), ceil(j/2), ceil(i/2),
    N^2]`` (an axis of length 1 stays 1). Computed two slices at a time on threads, each pair in
    pieces of an even number of rows (about :data:`_PIECE_VOXELS` voxels: 1.9x faster than a
    whole 256 x 256 pair, whose feature rows spill out of the cache), so the voxel-level
    features (N^2 floats per voxel) never exist whole."""
    nk, nj, ni, n = signal.shape
    step = 2 if nk > 1 else 1
    half = [1 if m == 1 else (m + 1) // 2 for m in (nk, nj, ni)]
    out = np.zeros((*half, n * n), np.float32)
    rows = nj if nj == 1 else max(2, _PIECE_VOXELS // (step * ni) // 2 * 2)

    def work(sl: slice) -> None:
        for slab in range(sl.start, sl.stop):
            ks = slice(slab * step, (slab + 1) * step)
            for j0 in range(0, nj, rows):
                js = slice(j0, j0 + rows)
                sig = np.where(mask[ks, js][..., None], signal[ks, js], 0)
                sig = sig.astype(np.complex64, copy=False)
                feats = gram_features(sig.reshape(-1, n)).T
                bj = slice(j0 // 2, None) if nj > 1 else slice(None)
                summed = _block_sum(feats, sig.shape[:3])
                out[slab, bj][: summed.shape[0]] = summed

    run_chunks(work, out.shape[0], 1, workers=workers)
    return out


def _expand(values: npt.NDArray, shape: tuple[int, ...]) -> npt.NDArray:
    """Parent-block values onto the child grid ``shape`` (each parent covers 2 per axis): one
    broadcast write (the values of three ``np.repeat``), contiguous."""
    reps = [1 if n == shape[axis] else 2 for axis, n in enumerate(values.shape)]
    full = np.empty([n * r for n, r in zip(values.shape, reps, strict=True)], values.dtype)
    pairs = [x for n, r in zip(values.shape, reps, strict=True) for x in (n, r)]
    full.reshape(pairs)[...] = values[:, None, :, None, :, None]
    if full.shape == tuple(shape):
        return full
    return np.ascontiguousarray(full[: shape[0], : shape[1], : shape[2]])


def _gauss(values: npt.NDArray, exclude_centre: bool = False) -> npt.NDArray:
    """Gaussian filter (sigma 1 block on axes longer than 1; zero outside), complex allowed;
    with ``exclude_centre`` the block's own contribution is removed."""
    sigma = [1.0 if n > 1 else 0.0 for n in values.shape]

    def filt(a):
        return gaussian_filter(a, sigma, mode="constant", truncate=2.5)

    out = filt(values.real) + (1j * filt(values.imag) if np.iscomplexobj(values) else 0)
    if exclude_centre:
        delta = np.zeros([5 if n > 1 else 1 for n in values.shape])
        delta[tuple(n // 2 for n in delta.shape)] = 1.0
        out = out - filt(delta).max() * values
    return out


def _to_phasor(field_hz: npt.NDArray, period_hz: float) -> npt.NDArray[np.complex128]:
    return np.exp(2j * np.pi * field_hz / period_hz)


def _to_field(phasor: npt.NDArray, period_hz: float) -> npt.NDArray[np.float64]:
    return np.angle(phasor) * period_hz / (2 * np.pi)


def _smooth(field: npt.NDArray, weight: npt.NDArray, period_hz: float) -> npt.NDArray:
    """Weighted circular smoothing (sigma 1 block); unweighted blocks keep their value."""
    z = _gauss(weight * _to_phasor(field, period_hz))
    return np.where(np.abs(z) > 1e-12, _to_field(z, period_hz), field)


def _level_costs(
    features: npt.NDArray[np.float32], table: npt.NDArray[np.float32], n_r: int, chunk: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Normalised cost ``[B, n_psi]`` (residual / energy, minimised over R2*) and energy ``[B]``
    of the blocks with signal (chunks on threads, :mod:`.chunks`)."""
    n = math.isqrt(features.shape[-1])
    energy = features[:, :n].sum(axis=1)
    costs = np.empty((features.shape[0], table.shape[1] // n_r), np.float32)

    def work(sl: slice) -> None:
        part = features[sl]
        cube = (part @ table).reshape(part.shape[0], -1, n_r)
        proj = cube[:, :, 0].copy()
        for b in range(1, n_r):
            np.maximum(proj, cube[:, :, b], out=proj)
        costs[sl] = 1.0 - proj / np.maximum(energy[sl, None], 1e-30)

    run_chunks(work, features.shape[0], chunk)
    return costs, energy


@dataclass(frozen=True)
class _Search:
    """The grid search shared by all levels: field grid (Hz) on its circle, swap distance,
    projection table (R2* fastest) and options."""

    grid: npt.NDArray[np.float64]
    circle: float
    period: float | None
    swap: float
    table: npt.NDArray[np.float32]
    n_r: int
    opts: FieldMapOptions

    @staticmethod
    def blocks(feats: npt.NDArray[np.float32]):
        """``(features [n_blocks, F], active mask)``: a level's blocks, those with signal."""
        flat = feats.reshape(-1, feats.shape[-1])
        energy_all = flat[:, : math.isqrt(flat.shape[1])].sum(axis=1)
        return flat, energy_all > 1e-6 * max(float(energy_all.max()), 1e-30)

    def costs(self, feats: npt.NDArray[np.float32]):
        """``(active mask, costs, energy)`` of the blocks of one level with signal."""
        flat, active = self.blocks(feats)
        costs, energy = _level_costs(flat[active], self.table, self.n_r, self.opts.chunk)
        return active, costs, energy


def _window(s: _Search, features, blocks, parent_hz: npt.NDArray[np.float64]):
    """Each block's (``features[blocks]``) costs on the grid values within swap/2 of its
    parent's field: ``(local
    costs [B, 2h+1], their fields in Hz unwrapped around the parent, window centres, mask of
    the window's outer half, energy [B])``; only those costs are computed (:mod:`.window`)."""
    step = float(s.grid[1] - s.grid[0])
    h = max(1, int(s.swap / 2 / step))
    offsets = np.arange(-h, h + 1)
    centre = np.rint(wrap_hz(parent_hz - s.grid[0], s.circle) / step).astype(np.int64)
    starts, key = np.unique(centre, return_inverse=True)
    key_cols = starts[:, None] + offsets[None, :]
    if s.period is not None:
        key_cols %= s.grid.size
    else:
        np.clip(key_cols, 0, s.grid.size - 1, out=key_cols)
    local, energy = window_costs(features, s.table, s.n_r, key, key_cols, s.opts.chunk, blocks)
    base_hz = s.grid[0] + centre * step
    values = np.empty(local.shape, np.float32)  # float32 fields written directly
    np.add(base_hz[:, None], offsets[None, :] * step, out=values, casting="same_kind")
    return local, values, base_hz, np.abs(offsets) > h / 2, energy


def _refine_level(s: _Search, feats, field, weight):
    """One finer level: ICM sweeps within the parent's basin (never further than swap/2 from
    it), each block pulled towards its neighbours' and its parent's field."""
    shape = feats.shape[:3]
    parent = _expand(_smooth(field, weight, s.circle), shape)
    flat, active = s.blocks(feats)  # the active blocks' features are not copied as a whole
    local, values, base_hz, edge_cols, energy = _window(
        s, flat, np.flatnonzero(active), parent.reshape(-1)[active]
    )
    pred = parent.reshape(-1).copy()
    chosen = pred.copy()
    conf = np.zeros(pred.size)
    w_energy = np.zeros(pred.size)
    w_energy[active] = energy / energy.max()
    scale = np.float32(np.sqrt(s.opts.mu) / s.swap)
    parent_z = _to_phasor(parent, s.circle)
    # confidence: the cost rise from the best choice to the window's outer half
    edge = local[:, edge_cols].min(axis=1)
    for _ in range(max(1, s.opts.sweeps)):
        near = base_hz + wrap_hz(pred[active] - base_hz, s.circle)
        best, conf[active] = best_in_window(values, local, edge, near, scale, s.opts.chunk)
        chosen[active] = wrap_hz(best.astype(float), s.circle)
        w = (w_energy * conf).reshape(shape)
        num = _gauss(w * _to_phasor(chosen.reshape(shape), s.circle), exclude_centre=True)
        own = 0.5 * w + 1e-12
        pred = _to_field(num + own * parent_z, s.circle).reshape(-1)
    return chosen.reshape(shape), (w_energy * conf).reshape(shape)


def estimate_field_map(
    features: npt.NDArray[np.float32],
    shape: tuple[int, int, int],
    te_s: npt.ArrayLike,
    fat_phasor: npt.ArrayLike,
    swap_hz: float,
    options: FieldMapOptions | None = None,
    log=None,
) -> tuple[npt.NDArray[np.float32], float | None]:
    """Smooth field map (Hz) on the voxel grid ``shape`` from the 2x2x2 block features
    (:func:`block_features`, level 1 of the pyramid), and the echo period (Hz) it is wrapped to
    (None for non-uniform echoes). ``swap_hz`` is the
    fat main-peak frequency. The map is the finest block level's choice, smoothed and expanded;
    voxels refine it within a window (:mod:`.fit`).
    """
    opts = options or FieldMapOptions()
    period = echo_period_hz(te_s)
    grid, circle = field_grid_hz(swap_hz, period, opts)
    rates = np.asarray(opts.r2s_grid_per_s, float)
    table = projection_table(te_s, fat_phasor, grid, rates)
    swap = effective_swap_hz(swap_hz, period)
    s = _Search(grid, circle, period, swap, table, rates.size, opts)
    pyramid = [None, features]  # level 0 (voxels) is not needed: voxels refine in .fit
    while max(pyramid[-1].shape[:3]) > 1:
        pyramid.append(_reduce(pyramid[-1]))
    if log:
        log(
            f"field map: {len(pyramid)} levels, {grid.size} field values "
            f"({f'period {period:.0f} Hz' if period else 'non-uniform echoes'}), "
            f"swap distance {swap:.0f} Hz"
        )
    # base level: region growing from the most certain blocks
    base = opts.base_level if opts.base_level is not None else (2 if swap >= 150 else 1)
    base = max(1, min(base, len(pyramid) - 1))
    active, costs, energy = s.costs(pyramid[base])
    field, weight = grow(costs, energy, active, pyramid[base].shape[:3], grid, circle, swap)
    del costs
    if log:
        log(f"field map: region growing over {int(active.sum())} blocks of level {base} done")
    for level in range(base - 1, 0, -1):  # costs only within each block's window
        field, weight = _refine_level(s, pyramid[level], field, weight)
        if log:
            shown = "x".join(map(str, field.shape[::-1]))
            log(f"field map: level {level} ({shown} blocks) done")
    # float32 before expanding (the same values: the cast commutes with the copies)
    smooth = _expand(_smooth(field, weight, circle).astype(np.float32), shape)
    return smooth, period
