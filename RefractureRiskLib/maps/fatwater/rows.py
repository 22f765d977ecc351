"""A chunk of voxels held as echo rows: its Gram features once, then turned to any field.

The voxel fit (:mod:`.fit`) needs the Gram features (:func:`.model.gram_features`) of the
signal demodulated at two fields per voxel, then the demodulated signal itself at a third.
Demodulating ``y_n = s_n exp(-i 2 pi psi t_n)`` leaves ``|y_n|^2`` as it is and turns each
``conj(s_m) s_q`` by ``exp(-i 2 pi psi (t_q - t_m))``, a phasor that depends only on the lag
``t_q - t_m``. So the chunk's features are computed once from the raw echoes (pairs grouped by
lag) and *rotated* per field: one phasor per lag and voxel (5 for 6 uniformly spaced echoes)
and a complex product per pair: no demodulated copy of the echoes, no second pass of products.
Everything is kept as ``[rows, V]`` float32 arrays (echoes or features first: contiguous rows,
the layout the matrix products and reductions run fastest on).

The rotated features equal those of the demodulated signal up to float32 rounding
(``Testing/test_fatwater_chunks.py`` holds them to the direct computation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class EchoPairs:
    """Echo times and the echo pairs ``m < q`` ordered by lag ``t_q - t_m``.

    ``first[j]``, ``second[j]``: the pair of feature row ``N + j`` (real part) and
    ``N + P + j`` (imaginary part); ``lag_rows``: per distinct lag its first and last + 1 pair
    row; ``perm``: feature rows of :func:`.model.gram_features`'s order, in this order (apply it
    to a projection table's rows)."""

    te_s: npt.NDArray[np.float64]
    first: npt.NDArray[np.intp]
    second: npt.NDArray[np.intp]
    lags_s: npt.NDArray[np.float64]
    lag_rows: tuple[tuple[int, int], ...]
    perm: npt.NDArray[np.intp]

    @property
    def n(self) -> int:
        return int(self.te_s.size)


def echo_pairs(te_s: npt.ArrayLike) -> EchoPairs:
    """The pair order of a chunk's features for the echo times ``te_s`` (s)."""
    t = np.asarray(te_s, float)
    n = t.size
    m_idx, q_idx = np.triu_indices(n, k=1)
    dt = np.round((t[q_idx] - t[m_idx]) * 1e9) / 1e9  # lags equal to the nanosecond
    order = np.argsort(dt, kind="stable")
    lags, starts = np.unique(dt[order], return_index=True)
    stops = [*starts[1:], order.size]
    pairs = order.size
    perm = np.concatenate([np.arange(n), n + order, n + pairs + order])
    rows = tuple((int(a), int(b)) for a, b in zip(starts, stops, strict=True))
    return EchoPairs(t, m_idx[order], q_idx[order], lags, rows, perm)


def _unit_rows(psi: npt.NDArray, times_s: npt.NDArray) -> tuple[npt.NDArray, npt.NDArray]:
    """``exp(-i 2 pi psi t)`` for each ``t`` of ``times_s`` as (cos, sin) float32 rows
    ``[len(times_s), V]``. The angle is formed in float64 and rounded to float32 (1e-6 rad at
    the largest angles here) before the cosine and sine: numpy's float32 ones are vectorised,
    ~25x faster than float64's (~1 ns against ~15 ns a value), to ~1e-6 of float64's values."""
    angle = (-2.0 * np.pi * np.asarray(psi, float))[None, :] * np.asarray(times_s)[:, None]
    angle32 = angle.astype(np.float32)
    return np.cos(angle32), np.sin(angle32)


class ChunkRows:
    """Echo rows ``real[N, V]``, ``imag[N, V]`` of ``signal[V, N]`` and its Gram features
    ``gram[N^2, V]`` in the pair order of ``pairs`` (:func:`echo_pairs`)."""

    def __init__(self, signal: npt.NDArray[np.complexfloating], pairs: EchoPairs) -> None:
        st = np.asarray(signal).T
        self.pairs = pairs
        self.real = np.ascontiguousarray(st.real, np.float32)
        self.imag = np.ascontiguousarray(st.imag, np.float32)
        sr, si, n = self.real, self.imag, pairs.n
        npairs = pairs.first.size
        g = np.empty((n + 2 * npairs, sr.shape[1]), np.float32)
        np.multiply(sr, sr, out=g[:n])
        g[:n] += si * si
        for j, (m, q) in enumerate(zip(pairs.first, pairs.second, strict=True)):
            re, im = g[n + j], g[n + npairs + j]
            np.multiply(sr[m], sr[q], out=re)
            re += si[m] * si[q]
            np.multiply(sr[m], si[q], out=im)
            im -= si[m] * sr[q]
        self.gram = g

    def energy(self) -> npt.NDArray[np.float32]:
        """``sum_n |s_n|^2`` per voxel (the same for the demodulated signal)."""
        return self.gram[: self.pairs.n].sum(axis=0)

    def features_at(self, psi_hz: npt.NDArray) -> npt.NDArray[np.float32]:
        """``[F, V]`` Gram features of the signal demodulated at ``psi_hz[V]``."""
        n, g = self.pairs.n, self.gram
        npairs = self.pairs.first.size
        cos, sin = _unit_rows(psi_hz, self.pairs.lags_s)
        out = np.empty_like(g)
        out[:n] = g[:n]
        tmp = np.empty((max(b - a for a, b in self.pairs.lag_rows), g.shape[1]), np.float32)
        for k, (a, b) in enumerate(self.pairs.lag_rows):
            gre, gim = g[n + a : n + b], g[n + npairs + a : n + npairs + b]
            ore, oim = out[n + a : n + b], out[n + npairs + a : n + npairs + b]
            t = tmp[: b - a]
            np.multiply(gre, cos[k], out=ore)
            np.multiply(gim, sin[k], out=t)
            ore -= t
            np.multiply(gre, sin[k], out=oim)
            np.multiply(gim, cos[k], out=t)
            oim += t
        return out

    def demodulated(
        self, psi_hz: npt.NDArray, scale: npt.NDArray | None = None
    ) -> npt.NDArray[np.float32]:
        """``[2N, V]``: real rows, then imaginary rows, of ``scale[N, V] * s_n exp(-i 2 pi psi
        t_n)`` (``scale`` None: 1)."""
        t = self.pairs.te_s
        cos, sin = _unit_rows(psi_hz, t)
        if scale is not None:
            cos *= scale
            sin *= scale
        n, sr, si = t.size, self.real, self.imag
        out = np.empty((2 * n, sr.shape[1]), np.float32)
        np.multiply(sr, cos, out=out[:n])
        out[:n] -= si * sin
        np.multiply(sr, sin, out=out[n:])
        out[n:] += si * cos
        return out
