"""Block costs on a window of the field grid only: the finer pyramid levels of :mod:`.fieldmap`.

A finer level refines each block within half a swap distance of its parent's field, so it needs
the block's normalised cost at ``2 h + 1`` grid values around that field (23 of 55 on the 3D
lumbar phantom), not at all of them. Blocks whose windows start at the same grid value share the
table's columns: they are grouped, and each group's features go through one matrix product with
those columns. The same sums as the product with the whole table read at the window (each cost
is its block's features times one column; measured bit for bit on the phantom and the ISMRM
cases with this OpenBLAS), on ~40% of the columns, and without the ``[B, n_psi]`` cost array.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.maps.fatwater.chunks import run_chunks


def window_costs(
    features: npt.NDArray[np.float32],
    table: npt.NDArray[np.float32],
    n_r: int,
    key: npt.NDArray[np.intp],
    key_cols: npt.NDArray[np.intp],
    chunk: int,
    blocks: npt.NDArray[np.intp] | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Normalised costs ``[B, W]`` (residual / energy, minimised over the ``n_r`` R2* values)
    of the blocks ``features[blocks]`` (``[B, F]``; ``blocks`` None: all rows, else their row
    indices: no copy of the blocks' features as a whole) at the grid columns
    ``key_cols[key[b]]`` (``[K, W]`` grid indices) of the projection ``table[F, n_psi * n_r]``
    (R2* fastest), and the blocks' energy ``[B]``. Each group of equal ``key``, in pieces of
    at most ``chunk`` blocks, is a task of the thread pool (:mod:`.chunks`)."""
    n = math.isqrt(features.shape[-1])
    if blocks is None:
        blocks = np.arange(features.shape[0])
    energy = features[blocks, :n].sum(axis=1)
    f = table.shape[0]
    by_column = table.reshape(f, -1, n_r)
    order = np.argsort(key, kind="stable")
    pieces = _pieces(key[order], chunk)
    local = np.empty((blocks.size, key_cols.shape[1]), np.float32)

    def work(sl: slice) -> None:
        for a, b in pieces[sl]:
            group = order[a:b]
            columns = by_column[:, key_cols[key[group[0]]], :].reshape(f, -1)
            # one block alone is multiplied as two rows: numpy would take a vector product
            # (BLAS gemv), which adds in another order than the matrix product
            rows = features[blocks[group] if b - a > 1 else blocks[np.repeat(group, 2)]]
            cube = (rows @ columns)[: b - a].reshape(b - a, -1, n_r)
            proj = cube[:, :, 0].copy()
            for r in range(1, n_r):
                np.maximum(proj, cube[:, :, r], out=proj)
            local[group] = 1.0 - proj / np.maximum(energy[group, None], 1e-30)

    run_chunks(work, len(pieces), 1)
    return local, energy


def _pieces(sorted_key: npt.NDArray, chunk: int) -> list[tuple[int, int]]:
    """``(start, stop)`` runs of equal ``sorted_key``, cut into pieces of at most ``chunk``
    (a remainder of one joins the piece before it)."""
    cuts = [0, *(np.flatnonzero(sorted_key[1:] != sorted_key[:-1]) + 1).tolist(), sorted_key.size]
    pieces = []
    for a, b in pairwise(cuts):
        starts = list(range(a, b, chunk))
        if len(starts) > 1 and b - starts[-1] == 1:
            starts.pop()
        pieces += [(lo, hi) for lo, hi in pairwise([*starts, b])]
    return pieces


def best_in_window(
    values: npt.NDArray[np.float32],
    local: npt.NDArray[np.float32],
    edge: npt.NDArray[np.float32],
    near_hz: npt.NDArray[np.float64],
    scale: np.float32,
    chunk: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """One ICM sweep's choice per block: the window's field ``values[B, W]`` (Hz) minimising
    ``local + (scale (values - near_hz))^2``, and its confidence ``clip(edge - local there, 0,
    1) + 1e-3``. Blocks in chunks on threads: the ``[chunk, W]`` scores stay in cache (the same
    float32 operations as on the whole ``[B, W]`` array, ~22 MB on the lumbar phantom)."""
    field = np.empty(values.shape[0], np.float32)
    conf = np.empty(values.shape[0], np.float32)

    def work(sl: slice) -> None:
        score = np.subtract(values[sl], near_hz[sl, None].astype(np.float32))
        score *= scale
        score *= score
        score += local[sl]
        idx = np.argmin(score, axis=1)
        rows = np.arange(idx.size)
        field[sl] = values[sl][rows, idx]
        conf[sl] = np.clip(edge[sl] - local[sl][rows, idx], 0.0, 1.0) + 1e-3

    run_chunks(work, values.shape[0], chunk)
    return field, conf
