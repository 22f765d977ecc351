"""Voxel-wise fit around a smooth field map: field, R2*, complex water and fat, and the
phase-constrained real water and fat.

Each voxel searches the field only within a window narrower than the water-fat swap distance
around the smooth map of :mod:`.fieldmap` (so it cannot swap), then R2* and the field jointly on a
fine grid with parabolic sub-grid refinement; water and fat follow by linear least squares.

Noise bias. ``|F| / (|W| + |F|)`` from a complex fit is biased near 0% and 100%: the magnitude of
a noisy near-zero component is positive on average. :func:`constrained_fit` gives the
phase-constrained solution (water and fat share one phase at the echo origin, up to a given
offset; Bydder/Hernando): ``W = w e^{i phi}``, ``F = f e^{i (phi + offset)}`` with real ``w``,
``f``, in closed form per voxel. ``f / (w + f)`` has noise symmetric around the truth, so its mean
over a region is unbiased; :func:`.separate.hybrid_pdff_pct` uses it near 0% and 100%.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.maps.fatwater.chunks import run_chunks
from RefractureRiskLib.maps.fatwater.model import parabolic_offset, projection_table
from RefractureRiskLib.maps.fatwater.rows import ChunkRows, EchoPairs, echo_pairs


@dataclass(frozen=True)
class VoxelFit:
    """Per-voxel results for ``V`` voxels (1D arrays)."""

    field_hz: npt.NDArray[np.float32]
    r2s_per_s: npt.NDArray[np.float32]
    water: npt.NDArray[np.complex64]  # complex fit, signal units
    fat: npt.NDArray[np.complex64]
    residual_rms: npt.NDArray[np.float32]  # RMS complex-fit residual per echo, signal units
    # the 2x2 normal equations at the fitted field and R2* (water column a0, fat column a1):
    # m00 = a0^H a0, m01 = a0^H a1, m11 = a1^H a1, b0 = a0^H y, b1 = a1^H y (y demodulated)
    normal: dict[str, npt.NDArray] = field(default_factory=dict)


def _first_max(proj: npt.NDArray) -> tuple[npt.NDArray[np.intp], npt.NDArray]:
    """Index and value of the first maximum of each column of ``proj[C, V]`` (as
    ``np.argmax(proj, axis=0)``): a maximum over rows and a comparison, both running along the
    contiguous rows (numpy's ``argmax`` over a short axis pays per voxel)."""
    best = proj.max(axis=0)
    rank = np.arange(proj.shape[0], 0, -1, dtype=np.uint8 if proj.shape[0] < 256 else np.uint16)
    key = np.multiply(proj == best, rank[:, None])
    return proj.shape[0] - key.max(axis=0).astype(np.intp), best


def _argmax_refined(
    proj: npt.NDArray, n_a: int, n_b: int
) -> tuple[npt.NDArray, npt.NDArray, npt.NDArray, npt.NDArray]:
    """Best ``(a, b)`` grid indices of ``proj[n_a * n_b, V]`` (row ``a * n_b + b``) and their
    parabolic offsets."""
    flat, centre = _first_max(proj)
    ia, ib = np.divmod(flat, n_b)
    values = np.ravel(proj)
    v = proj.shape[1]
    pos = flat * v + np.arange(v)

    def offset(idx, n, stride):
        inner = (idx > 0) & (idx < n - 1)
        step = np.where(inner, stride * v, 0)
        lo, hi = values[pos - step], values[pos + step]
        return np.where(inner, parabolic_offset(-lo, -centre, -hi), 0.0)

    oa = offset(ia, n_a, n_b) if n_a > 1 else np.zeros(v, np.float32)
    ob = offset(ib, n_b, 1) if n_b > 1 else np.zeros(v, np.float32)
    return ia, ib, oa, ob


def _complex_fit(rows: ChunkRows, psi: npt.NDArray, fat_phasor: npt.NDArray, r2s: npt.NDArray):
    """Complex least squares of the chunk's echoes ``rows`` demodulated at ``psi[V]``, at
    ``r2s[V]``: (W, F), RMS residual and the normal equations (``m00``, ``m01``, ``m11``, ``b0``,
    ``b1``; see :class:`VoxelFit`).

    The basis is ``a0 = exp(-R2* t)`` (water) and ``a1 = a0 c`` (fat), so every term is a sum
    over echoes of ``a0^2`` or ``a0 y`` weighted by a fixed vector (1, ``c``, ``|c|^2``): small
    matrix products on echo rows instead of batched ``linalg``. The residual norm is ``||y||^2 -
    Re(b^H x)`` (no residual vectors formed; ``||y|| = ||s||``). Single precision: the 2x2
    systems are well conditioned (water and fat columns differ at every echo)."""
    c = np.asarray(fat_phasor, np.complex64)
    n = c.size
    t32 = np.asarray(rows.pairs.te_s, np.float32)
    a0 = np.exp(-np.asarray(r2s, np.float32)[None, :] * t32[:, None])  # [N, V]
    weights_m = np.stack([np.ones(n), np.abs(c) ** 2, c.real, c.imag]).astype(np.float32)
    m = weights_m @ (a0 * a0)
    m00, m11, m01 = m[0], m[1], (m[2] + 1j * m[3]).astype(np.complex64)
    # b0 = sum a0 y, b1 = sum a0 conj(c) y: one real product on (re rows, im rows)
    zeros, ones = np.zeros(n), np.ones(n)
    weights_b = np.stack(
        [
            np.concatenate([ones, zeros]),
            np.concatenate([zeros, ones]),
            np.concatenate([c.real, c.imag]),
            np.concatenate([-c.imag, c.real]),
        ]
    ).astype(np.float32)
    b = weights_b @ rows.demodulated(psi, a0)
    b0 = (b[0] + 1j * b[1]).astype(np.complex64)
    b1 = (b[2] + 1j * b[3]).astype(np.complex64)
    det = m00 * m11 - (m01.real**2 + m01.imag**2)
    water = (m11 * b0 - m01 * b1) / det
    fat = (m00 * b1 - np.conj(m01) * b0) / det
    explained = (np.conj(b0) * water + np.conj(b1) * fat).real
    rms = np.sqrt(np.maximum(rows.energy() - explained, 0.0) / n)
    normal = {"m00": m00, "m01": m01, "m11": m11, "b0": b0, "b1": b1}
    return np.stack([water, fat], axis=1), rms, normal


def _constrained_fit(
    normal: dict[str, npt.NDArray], fat_offset_rad: npt.NDArray
) -> tuple[npt.NDArray, npt.NDArray]:
    """Real ``(w, f)`` with ``W = w e^{i phi}``, ``F = f e^{i (phi + offset)}``, ``phi`` free,
    from the normal equations of the complex fit (:class:`VoxelFit` ``normal``).

    Rotating the fat column by ``offset`` turns ``m01`` into ``m01 e^{i offset}`` and ``b1``
    into ``b1 e^{-i offset}`` (``m00``, ``m11``, ``b0`` unchanged), so the signal is not
    demodulated again. For fixed ``phi`` the solution is ``Mr^-1 Re(e^{-i phi} c)`` (``Mr =
    Re(A^H A)``, ``c = A^H y``); the best ``phi`` maximises ``b^T Mr^-1 b`` with ``b = cos(phi)
    Re c + sin(phi) Im c``: the principal eigenvector of a 2x2 matrix, in closed form.
    """
    offset = np.asarray(fat_offset_rad, np.float32)
    rc, rs = np.cos(offset), np.sin(offset)  # float32: vectorised (a complex exp is not)
    m00, m11, m01, b1c = normal["m00"], normal["m11"], normal["m01"], normal["b1"]
    mr01 = m01.real * rc - m01.imag * rs
    b0r, b0i = np.ascontiguousarray(normal["b0"].real), np.ascontiguousarray(normal["b0"].imag)
    b1r = b1c.real * rc + b1c.imag * rs
    b1i = b1c.imag * rc - b1c.real * rs
    det = m00 * m11 - mr01 * mr01

    def minv(p, q):  # Mr^-1 @ (p, q)
        return (m11 * p - mr01 * q) / det, (m00 * q - mr01 * p) / det

    u0, u1 = minv(b0r, b1r)
    v0, v1 = minv(b0i, b1i)
    k00 = b0r * u0 + b1r * u1
    k01 = b0r * v0 + b1r * v1
    k11 = b0i * v0 + b1i * v1
    theta = 0.5 * np.arctan2(2 * k01, k00 - k11)
    cos, sin = np.cos(theta), np.sin(theta)
    w, f = u0 * cos + v0 * sin, u1 * cos + v1 * sin
    sign = np.where(w + f < 0, np.float32(-1.0), np.float32(1.0))
    return w * sign, f * sign


@dataclass(frozen=True)
class _Grids:
    """Search grids and their projection tables (see :func:`fit_voxels`)."""

    coarse_step_hz: float
    coarse_off: npt.NDArray  # field offsets (Hz) of the window search
    t_coarse: npt.NDArray  # [grid points, features]: transposed tables (:func:`projection_table`)
    fine_step_hz: float
    fine_off: npt.NDArray  # field offsets (Hz) of the joint search
    fine_r: npt.NDArray  # R2* grid (1/s) of the joint search
    t_fine: npt.NDArray
    r_step: float
    pairs: EchoPairs  # the tables' rows are in this pair order (:mod:`.rows`)


def _grids(t, phasor, window_hz, step_hz, r2s_max_per_s, r2s_step_per_s) -> _Grids:
    # The window search runs on twice the step: its parabolic refinement lands within a
    # fraction of a step of the minimum, which the joint search then brackets (+-1 step).
    coarse = 2.0 * step_hz
    half = max(1.0, np.floor(window_hz / coarse))
    coarse_off = np.arange(-half, half + 1) * coarse
    fine_off = np.array([-1.0, 0.0, 1.0]) * step_hz
    # one table over the whole R2* range: measured faster than coarse-to-fine with per-voxel
    # buckets (one large matrix product beats many small ones)
    fine_r = np.arange(-20.0, r2s_max_per_s + r2s_step_per_s, r2s_step_per_s)
    pairs = echo_pairs(t)

    def table(offsets, rates):  # rows in the pair order of the chunk's features, transposed
        return np.ascontiguousarray(projection_table(t, phasor, offsets, rates)[pairs.perm].T)

    return _Grids(
        coarse,
        coarse_off,
        table(coarse_off, [30.0, 150.0]),
        step_hz,
        fine_off,
        fine_r,
        table(fine_off, fine_r),
        r2s_step_per_s,
        pairs,
    )


def _fit_chunk(sig, phasor, pred, g: _Grids):
    """Field (Hz), R2* (1/s), complex (W, F) and RMS residual of one chunk of voxels."""
    rows = ChunkRows(sig, g.pairs)  # Gram features once, turned to each field (:mod:`.rows`)
    # 1) field within the window (R2* coarse)
    proj = g.t_coarse @ rows.features_at(pred)  # [offsets x 2 R2*, V]
    ia, _, oa, _ = _argmax_refined(np.maximum(proj[0::2], proj[1::2]), g.coarse_off.size, 1)
    psi = pred + (g.coarse_off[ia] + oa * g.coarse_step_hz).astype(np.float32)
    # 2) field and R2* jointly on the fine grid
    proj = g.t_fine @ rows.features_at(psi)
    ia, ib, oa, ob = _argmax_refined(proj, g.fine_off.size, g.fine_r.size)
    psi = psi + (g.fine_off[ia] + oa * g.fine_step_hz).astype(np.float32)
    r2s = (g.fine_r[ib] + ob * g.r_step).astype(np.float32)
    x, rms, normal = _complex_fit(rows, psi, phasor, r2s)
    return psi, r2s, x, rms, normal


def fit_voxels(
    signal: npt.NDArray[np.complexfloating],
    te_s: npt.ArrayLike,
    fat_phasor: npt.ArrayLike,
    field_pred_hz: npt.ArrayLike,
    window_hz: float,
    step_hz: float,
    r2s_max_per_s: float,
    r2s_step_per_s: float = 20.0,
    chunk: int = 16384,
    progress: Callable[[str], None] | None = None,
    workers: int | None = None,
    voxels: npt.NDArray[np.intp] | None = None,
) -> VoxelFit:
    """Fit ``signal[V, N]`` (complex, echoes last) around the predicted field (Hz): the field
    within +-``window_hz`` on a ``2 * step_hz`` grid, then field and R2* (0 to
    ``r2s_max_per_s``) jointly on a ``step_hz`` x ``r2s_step_per_s`` grid, each refined between
    grid points by a parabola. Chunks run on ``workers`` threads (:mod:`.chunks`).
    ``voxels``: the rows of ``signal`` to fit (``field_pred_hz`` and the results then follow
    them), gathered chunk by chunk (no copy of the fitted echoes as a whole)."""
    t = np.asarray(te_s, float)
    phasor = np.asarray(fat_phasor)
    pred = np.asarray(field_pred_hz, np.float32)
    grids = _grids(t, phasor, window_hz, step_hz, r2s_max_per_s, r2s_step_per_s)
    v = signal.shape[0] if voxels is None else voxels.size
    out = {k: np.zeros(v, np.float32) for k in ("field_hz", "r2s_per_s", "residual_rms")}
    water = np.zeros(v, np.complex64)
    fat = np.zeros(v, np.complex64)
    normal = {k: np.zeros(v, np.float32) for k in ("m00", "m11")}
    normal |= {k: np.zeros(v, np.complex64) for k in ("m01", "b0", "b1")}

    def work(sl: slice) -> None:
        # np.take: the same rows as signal[voxels[sl]], ~2x faster (numpy's take loop)
        sig = np.asarray(signal[sl]) if voxels is None else np.take(signal, voxels[sl], axis=0)
        psi, r2s, x, rms, terms = _fit_chunk(sig, phasor, pred[sl], grids)
        out["field_hz"][sl] = psi
        out["r2s_per_s"][sl] = r2s
        out["residual_rms"][sl] = rms
        water[sl] = x[:, 0]
        fat[sl] = x[:, 1]
        for key, values in terms.items():
            normal[key][sl] = values

    run_chunks(work, v, chunk, progress, "voxel fit", workers)
    return VoxelFit(water=water, fat=fat, normal=normal, **out)


def constrained_fit(
    fit: VoxelFit, fat_offset_rad: npt.ArrayLike, chunk: int = 65536, workers: int | None = None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Phase-constrained real water and fat ``(w, f)`` (signal units) of the voxels of ``fit``
    at its field and R2*, fat rotated by ``fat_offset_rad`` relative to water."""
    offset = np.asarray(fat_offset_rad, np.float32)
    v = offset.size
    w, f = np.zeros(v, np.float32), np.zeros(v, np.float32)

    def work(sl: slice) -> None:
        w[sl], f[sl] = _constrained_fit({k: a[sl] for k, a in fit.normal.items()}, offset[sl])

    run_chunks(work, v, chunk, workers=workers)
    return w, f
