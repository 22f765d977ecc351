"""Region growing of the field map over blocks, from the most certain blocks outwards.

Each block with signal offers a few candidate fields: the deepest local minima of its
normalised cost over the field grid (on the echo-period circle). A block holding both water and
fat has one clearly deepest minimum; a block of one tissue has two near-equal ones (the true field
and its water-fat swap). Growing starts at the most certain block (largest margin between its two
best minima, times its signal share) and repeatedly assigns, among the blocks touching the
assigned region, the most certain one: it takes the candidate that minimises its cost plus
``mu * (distance to the prediction / swap distance)^2``, the prediction being the circular
mean of the assigned blocks within two blocks, weighted by their certainty and distance (so a
block next to a gap of noise is predicted from the tissue beyond the gap, not from the noise).
When the region can grow no further (tissue islands), the most certain remaining block seeds a
new region, predicted from every assigned block with Gaussian distance weights, so separate
islands still agree on a smooth field.
Yu et al. (MRM 2005;54:1032) and Berglund et al. (MRM 2010;63:1659) grow regions in this spirit.
"""

from __future__ import annotations

import cmath
import heapq
import math

import numpy as np
import numpy.typing as npt


def local_minima(
    costs: npt.NDArray[np.float32], n_candidates: int = 4
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """Grid indices and costs of the ``n_candidates`` deepest circular local minima of each row
    of ``costs[B, n]`` (missing candidates have cost ``inf``)."""
    # not above the left neighbour and below the right one, circularly (np.roll's values,
    # without its two shifted copies)
    is_min = np.empty(costs.shape, bool)
    np.less_equal(costs[:, 1:], costs[:, :-1], out=is_min[:, 1:])
    np.less_equal(costs[:, :1], costs[:, -1:], out=is_min[:, :1])
    is_min[:, :-1] &= costs[:, :-1] < costs[:, 1:]
    is_min[:, -1:] &= costs[:, -1:] < costs[:, :1]
    masked = np.where(is_min, costs, np.inf)
    k = min(n_candidates, costs.shape[1])
    idx = np.argsort(masked, axis=1)[:, :k]
    return idx, np.take_along_axis(masked, idx, axis=1)


def _offsets(radius: int) -> npt.NDArray[np.int64]:
    """``(dk, dj, di)`` of the neighbours within ``radius`` blocks (the block itself excluded)."""
    r = range(-radius, radius + 1)
    return np.array([(a, b, c) for a in r for b in r for c in r if (a, b, c) != (0, 0, 0)])


class _Growth:
    """State of one region growing run over the blocks of ``shape`` (see :func:`grow`).

    Active blocks are addressed by their row in ``costs`` (rows follow the flat index);
    neighbour look-ups use a grid padded by two blocks, so offsets never leave it.
    """

    PAD = 2

    def __init__(self, costs, energy, active, shape, grid_hz, period_hz, swap_hz, mu) -> None:
        self.shape, self.period, self.swap, self.mu = shape, period_hz, swap_hz, mu
        self.flat = np.flatnonzero(active)  # row -> flat block index
        cand_idx, cand_cost = local_minima(costs)
        c = cand_cost
        margin = np.where(np.isfinite(c[:, 1]), c[:, 1] - c[:, 0], 1.0)
        share = energy / max(float(energy.max()), 1e-30)
        self.certainty = np.clip(margin, 0.0, 1.0) * share + 1e-9 * share
        self.k = 2 * np.pi / period_hz
        pad = self.PAD
        padded = tuple(n + 2 * pad for n in shape)

        def flat_offsets(offs):
            return (offs[:, 0] * padded[1] + offs[:, 1]) * padded[2] + offs[:, 2]

        near = _offsets(2)  # prediction window: Gaussian distance weights, sigma 1 block
        # complex weights: np.dot casts real ones to complex on every call (same products)
        self.near_w = np.exp(-(near**2).sum(axis=1) / 2.0).astype(np.complex128)
        kk, jj, ii = np.unravel_index(self.flat, shape)
        self.coords = np.stack([kk, jj, ii], axis=1).astype(float)
        pidx = ((kk + pad) * padded[1] + jj + pad) * padded[2] + ii + pad
        size = int(np.prod(padded))
        self.pz = np.zeros(size, np.complex128)  # certainty * phasor of assigned blocks
        # the queue holds ranks: rows ordered by certainty, most certain first, then by flat
        # index (the order of the (-certainty, flat) tuples it once held; ints compare faster)
        by_rank = np.lexsort((self.flat, -self.certainty))
        rank = np.full(size, -1, np.int64)  # padded flat index -> rank (-1: no signal)
        rank[pidx[by_rank]] = np.arange(by_rank.size)
        # scalar look-ups of the growing loop: Python lists and a bytearray (numpy scalars
        # cost ~100 ns each, a few million times): each row's prediction window (padded flat
        # indices) as its own array, its neighbours with signal (of the 26) by their ranks
        self.row_at_rank = by_rank.tolist()
        self.rank = rank[pidx].tolist()  # by row
        self.open = bytearray(b"\x01") * by_rank.size  # by rank: not assigned, not queued
        self.pidx = pidx.tolist()
        self.windows = list(pidx[:, None] + flat_offsets(near)[None, :])
        touching = rank[pidx[:, None] + flat_offsets(_offsets(1))[None, :]]
        has_signal = touching >= 0
        ranks, ends = touching[has_signal].tolist(), np.cumsum(has_signal.sum(axis=1)).tolist()
        self.touching = [ranks[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
        self.cand_hz = grid_hz[cand_idx].tolist()
        self.cand_cost = cand_cost.astype(float).tolist()
        self.cert = self.certainty.astype(float).tolist()
        self.field = [0.0] * self.flat.size  # by row, set when assigned

    def assigned_rows(self) -> npt.NDArray[np.intp]:
        """Rows assigned so far (between regions, when no block is queued: the closed ones)."""
        closed = np.frombuffer(self.open, np.uint8)[self.rank] == 0
        return np.flatnonzero(closed)

    def predict_far(self, row: int, sigma_blocks: float) -> float | None:
        """Prediction for a new region's seed from every assigned block (Gaussian distance)."""
        done = self.assigned_rows()
        if not done.size:
            return None
        d2 = ((self.coords[done] - self.coords[row]) ** 2).sum(axis=1)
        w = self.certainty[done] * (np.exp(-d2 / (2 * sigma_blocks**2)) + 1e-12)
        z = (w * np.exp(1j * self.k * np.asarray(self.field)[done])).sum()
        return float(np.angle(z) / self.k)

    def grow_region(self, seed: int, seed_hz: float | None) -> None:
        """Assign ``seed`` (the candidate nearest to ``seed_hz``, its deepest if None) and every
        open block it reaches: the most certain queued block takes the candidate that minimises
        its cost plus ``mu * (distance to the prediction / swap distance)^2`` (the first of
        equals), the prediction being the circular mean (Hz) of the assigned blocks within two
        blocks; its neighbours (26) with signal not yet queued are queued.

        One loop, every look-up bound once, scalar Python on each block's few candidates:
        thousands of blocks, each a few numbers, where numpy's per-call overhead (or a method
        call per block: ~1.7x the loop's time) would dominate."""
        pz, windows, near_w, k, jk = self.pz, self.windows, self.near_w, self.k, 1j * self.k
        cand_hz, cand_cost, cert, field = self.cand_hz, self.cand_cost, self.cert, self.field
        pidx, touching, is_open = self.pidx, self.touching, self.open
        row_at_rank, period, swap, mu = self.row_at_rank, self.period, self.swap, self.mu
        heappop, heappush, phase, exp = heapq.heappop, heapq.heappush, cmath.phase, cmath.exp
        half, inf = period / 2, math.inf
        is_open[self.rank[seed]] = 0
        heap = [self.rank[seed]]
        while heap:
            row = row_at_rank[heappop(heap)]
            hz = cand_hz[row]
            best, best_score = hz[0], inf
            if row != seed:
                pred = phase(pz[windows[row]].dot(near_w)) / k
            elif seed_hz is None:  # no score is below -inf: the deepest candidate stays
                pred, best_score = 0.0, -inf
            else:
                pred = seed_hz
            for f, c_cost in zip(hz, cand_cost[row], strict=True):
                if c_cost == inf:  # costs ascend: the rest are missing candidates, whose
                    break  # inf score never beats the best (which starts at inf)
                d = (f - pred + half) % period - half
                score = c_cost + mu * (d / swap) ** 2
                if score < best_score:
                    best, best_score = f, score
            field[row] = best
            pz[pidx[row]] = (cert[row] + 1e-12) * exp(jk * best)
            for r in touching[row]:
                if is_open[r]:
                    is_open[r] = 0
                    heappush(heap, r)


def grow(
    costs: npt.NDArray[np.float32],
    energy: npt.NDArray[np.float32],
    active: npt.NDArray[np.bool_],
    shape: tuple[int, int, int],
    grid_hz: npt.NDArray[np.float64],
    period_hz: float,
    swap_hz: float,
    mu: float = 1.0,
    seed_sigma_blocks: float = 6.0,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Field (Hz) and weight per block on ``shape`` (weights 0 where no signal).

    ``costs[B, n]`` and ``energy[B]`` belong to the blocks where ``active`` (flat, C order) is
    true.
    """
    g = _Growth(costs, energy, active, shape, grid_hz, period_hz, swap_hz, mu)
    seeds = np.argsort(-g.certainty).tolist()  # rows, most certain first
    next_seed = 0
    while True:
        while next_seed < len(seeds) and not g.open[g.rank[seeds[next_seed]]]:
            next_seed += 1  # assigned (no block is queued between regions)
        if next_seed >= len(seeds):
            break
        seed = seeds[next_seed]
        g.grow_region(seed, g.predict_far(seed, seed_sigma_blocks))
    n_blocks = int(np.prod(shape))
    field, weight = np.zeros(n_blocks), np.zeros(n_blocks)
    field[g.flat] = g.field
    weight[g.flat] = g.certainty  # every active block is assigned, with its certainty
    return field.reshape(shape), weight.reshape(shape)
