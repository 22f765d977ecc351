"""The complex multi-echo signal model and its variable-projection cost.

For one voxel with echo times ``t_n`` (s)::

    s(t_n) = (W + F c(t_n)) exp(-R2* t_n) exp(i 2 pi psi t_n) + noise

with complex water ``W`` and fat ``F`` (signal units), one ``R2*`` (1/s) for both, the off-resonance
``psi`` (Hz, the field map) and the fat phasor ``c`` of :mod:`.spectrum`. For fixed ``(psi, R2*)``
the model is linear in ``(W, F)``, so the least-squares residual is
``||s||^2 - s^H P(psi, R2*) s`` with the projection ``P = A (A^H A)^-1 A^H`` of the 2-column basis
``A``. Because ``P(psi, R2*) = D_psi P(0, R2*) D_psi^H`` (``D_psi`` = diag of the field phasors),
``s^H P s`` is linear in the outer products ``conj(s_m) s_n``: with the ``N^2`` real "Gram
features" of each voxel (:func:`gram_features`) and a table of ``N^2`` real weights per
``(psi, R2*)`` pair (:func:`projection_table`), the projected energy of every voxel at every grid
point is one matrix product. Features add up over voxels, so the cost of a block of voxels sharing
one ``(psi, R2*)`` is the product of the block's summed features: the multi-resolution field-map
search (:mod:`.fieldmap`) rests on that.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def basis(
    te_s: npt.ArrayLike, fat_phasor: npt.ArrayLike, r2s_per_s: float = 0.0, field_hz: float = 0.0
) -> npt.NDArray[np.complex128]:
    """The ``N x 2`` model matrix (water column, fat column) at one ``(psi, R2*)``."""
    t = np.asarray(te_s, float)
    decay = np.exp((-float(r2s_per_s) + 2j * np.pi * float(field_hz)) * t)
    return np.stack([decay, decay * np.asarray(fat_phasor)], axis=1)


def _triu(n: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    return np.triu_indices(n, k=1)


def gram_features(signal: npt.NDArray[np.complexfloating]) -> npt.NDArray[np.float32]:
    """``[V, N^2]`` real features of ``signal[V, N]``: ``|s_m|^2``, then ``Re`` and ``Im`` of
    ``conj(s_m) s_n`` for ``m < n``. Column sum of the first ``N`` is the signal energy.

    Computed echo by echo on contiguous rows (real arithmetic, no fancy-index copies) and
    returned as the transpose of an ``[N^2, V]`` array (Fortran order), which the matrix
    products with the projection tables also run faster on."""
    s = np.asarray(signal)
    n = s.shape[-1]
    pairs = n * (n - 1) // 2
    st = s.T
    sr = np.ascontiguousarray(st.real, np.float32)
    si = np.ascontiguousarray(st.imag, np.float32)
    out = np.empty((n + 2 * pairs, s.shape[0]), np.float32)
    np.multiply(sr, sr, out=out[:n])
    out[:n] += si * si
    col = n
    for m in range(n - 1):
        for q in range(m + 1, n):
            re, im = out[col], out[col + pairs]
            np.multiply(sr[m], sr[q], out=re)
            re += si[m] * si[q]
            np.multiply(sr[m], si[q], out=im)
            im -= si[m] * sr[q]
            col += 1
    return out.T


def projection_table(
    te_s: npt.ArrayLike,
    fat_phasor: npt.ArrayLike,
    field_hz: npt.ArrayLike,
    r2s_per_s: npt.ArrayLike,
) -> npt.NDArray[np.float32]:
    """``[N^2, len(field_hz) * len(r2s_per_s)]`` weights; column ``a * n_r + b`` belongs to
    ``(field_hz[a], r2s_per_s[b])``. ``gram_features(s) @ table`` is ``s^H P s`` there."""
    t = np.asarray(te_s, float)
    n = t.size
    psi = np.atleast_1d(np.asarray(field_hz, float))
    rates = np.atleast_1d(np.asarray(r2s_per_s, float))
    m_idx, n_idx = _triu(n)
    # P(0, r) for each rate: [n_r, N, N]
    projs = []
    for r in rates:
        a = basis(t, fat_phasor, r)
        projs.append(a @ np.linalg.pinv(a))
    p0 = np.asarray(projs)
    dt = t[n_idx] - t[m_idx]  # P_mn(psi) = exp(i 2 pi psi (t_m - t_n)) P_mn(0)
    phase = np.exp(-2j * np.pi * psi[:, None] * dt[None, :])  # [n_psi, n_pairs]
    off = phase[:, None, :] * p0[None, :, m_idx, n_idx]  # [n_psi, n_r, n_pairs]
    diag = np.broadcast_to(np.real(np.diagonal(p0, axis1=1, axis2=2)), (psi.size, rates.size, n))
    table = np.concatenate([diag, 2 * off.real, -2 * off.imag], axis=2)
    return table.reshape(psi.size * rates.size, n * n).T.astype(np.float32)


def _unit_phasor(psi: npt.NDArray[np.float64], t: float) -> npt.NDArray[np.complex64]:
    """``exp(-2j pi psi t)`` as complex64 from one cosine and one sine (float64): the same
    values as the complex exponential (whose real part is a signed zero), ~25% less time."""
    angle = (-2.0 * np.pi * psi) * t
    out = np.empty(psi.shape, np.complex64)
    out.real = np.cos(angle)
    out.imag = np.sin(angle)
    return out


def demodulate(
    signal: npt.NDArray[np.complexfloating], te_s: npt.ArrayLike, field_hz: npt.ArrayLike
) -> npt.NDArray[np.complex64]:
    """``signal[V, N] * exp(-i 2 pi field_hz[V] t_n)``: removes each voxel's off-resonance.

    With uniform echo spacing the phasors are powers of one per voxel (two complex exponentials
    per voxel instead of N)."""
    t = np.asarray(te_s, float)
    psi = np.asarray(field_hz, float)
    dt = np.diff(t)
    if t.size > 2 and np.allclose(dt, dt[0], rtol=1e-6):
        first = _unit_phasor(psi, t[0])
        stepper = _unit_phasor(psi, dt[0])
        out = np.empty((psi.size, t.size), np.complex64)
        out[:, 0] = first
        for n in range(1, t.size):
            out[:, n] = out[:, n - 1] * stepper
        out *= signal
        return out
    return (np.asarray(signal) * np.exp(-2j * np.pi * psi[:, None] * t[None, :])).astype(
        np.complex64
    )


def parabolic_offset(c_minus: npt.NDArray, c0: npt.NDArray, c_plus: npt.NDArray) -> npt.NDArray:
    """Sub-grid position (in grid steps, within +-0.5) of the minimum of a parabola through three
    equally spaced cost values; 0 where the three are not convex."""
    den = c_minus - 2 * c0 + c_plus
    with np.errstate(divide="ignore", invalid="ignore"):
        off = 0.5 * (c_minus - c_plus) / den
    return np.where(den > 0, np.clip(off, -0.5, 0.5), 0.0)
