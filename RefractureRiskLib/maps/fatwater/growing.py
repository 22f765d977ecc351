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

    Blocks are addressed by their flat index; neighbour look-ups use a copy of the grid padded
    by two blocks, so offsets never leave the array.
    """

    PAD = 2

    def __init__(self, costs, energy, active, shape, grid_hz, period_hz, swap_hz, mu) -> None:
        self.shape, self.period, self.swap, self.mu = shape, period_hz, swap_hz, mu
        n_blocks = int(np.prod(shape))
        cand_idx, self.cand_cost = local_minima(costs)
        self.cand_hz = grid_hz[cand_idx]
        c = self.cand_cost
        margin = np.where(np.isfinite(c[:, 1]), c[:, 1] - c[:, 0], 1.0)
        share = energy / max(float(energy.max()), 1e-30)
        self.certainty = np.clip(margin, 0.0, 1.0) * share + 1e-9 * share
        self.slot = np.full(n_blocks, -1, np.int64)  # flat block -> row in costs
        self.slot[np.flatnonzero(active)] = np.arange(costs.shape[0])
        self.field = np.zeros(n_blocks)
        self.weight = np.zeros(n_blocks)
        self.assigned = np.zeros(n_blocks, bool)
        self.k = 2 * np.pi / period_hz
        pad = self.PAD
        padded = tuple(n + 2 * pad for n in shape)

        def flat_offsets(offs):
            return (offs[:, 0] * padded[1] + offs[:, 1]) * padded[2] + offs[:, 2]

        near = _offsets(2)  # prediction window: Gaussian distance weights, sigma 1 block
        self.near_flat = flat_offsets(near)
        # complex weights: np.dot casts real ones to complex on every call (same products)
        self.near_w = np.exp(-(near**2).sum(axis=1) / 2.0).astype(np.complex128)
        self.touch = flat_offsets(_offsets(1))  # the 26 neighbours the region grows into
        kk, jj, ii = np.unravel_index(np.arange(n_blocks), shape)
        self.pidx = ((kk + pad) * padded[1] + jj + pad) * padded[2] + ii + pad
        # each active block's prediction window (padded flat indices), by its row in costs:
        # one row look-up per prediction instead of an index sum (~1 us of its ~2.4 us; 124
        # indices, ~1 kB, per block)
        self.window = self.pidx[np.flatnonzero(active)][:, None] + self.near_flat[None, :]
        size = int(np.prod(padded))
        self.pz = np.zeros(size, np.complex128)  # certainty * phasor of assigned blocks
        # the queue holds ranks: the active blocks ordered by certainty, most certain first,
        # then by flat index (the order of the (-certainty, flat) tuples it held before;
        # comparing ints is cheaper)
        act = np.flatnonzero(active)
        by_rank = act[np.lexsort((act, -self.certainty))]
        rank = np.full(size, -1, np.int64)
        rank[self.pidx[by_rank]] = np.arange(by_rank.size)
        is_open = np.zeros(size, np.uint8)  # active, not assigned, not queued
        is_open[self.pidx[np.flatnonzero(active)]] = 1
        # scalar look-ups of the growing loop: Python lists and a bytearray (numpy scalars
        # cost ~100 ns each, a few million times)
        self.open = bytearray(is_open.tobytes())
        self.rank_rows = rank.tolist()  # padded flat index -> rank
        self.block_at_rank = by_rank.tolist()
        self.pidx_rows = self.pidx.tolist()
        self.slot_rows = self.slot.tolist()
        self.touch_rows = self.touch.tolist()
        self.coords = np.stack([kk, jj, ii], axis=1).astype(float)
        self.cand_hz_rows = self.cand_hz.tolist()
        self.cand_cost_rows = self.cand_cost.astype(float).tolist()
        self.certainty_rows = self.certainty.astype(float).tolist()

    def choose(self, flat: int, pred_hz: float | None) -> None:
        """Assign the candidate nearest (in cost + penalty) to the prediction.

        Scalar Python on the block's few candidates: tens of thousands of blocks, each a few
        numbers, where numpy's per-call overhead would dominate."""
        row = self.slot_rows[flat]
        hz = self.cand_hz_rows[row]
        field = hz[0]
        if pred_hz is not None:
            period, half, swap, mu = self.period, self.period / 2, self.swap, self.mu
            best_score = math.inf
            for f, c_cost in zip(hz, self.cand_cost_rows[row], strict=True):
                if c_cost == math.inf:  # costs ascend: the rest are missing candidates, whose
                    break  # inf score never beats the best (which starts at inf)
                d = (f - pred_hz + half) % period - half
                score = c_cost + mu * (d / swap) ** 2
                if score < best_score:
                    field, best_score = f, score
        cert = self.certainty_rows[row]
        self.field[flat] = field
        self.weight[flat] = cert
        self.assigned[flat] = True
        p = self.pidx_rows[flat]
        self.open[p] = 0
        self.pz[p] = (cert + 1e-12) * cmath.exp(1j * self.k * field)

    def predict(self, flat: int) -> float:
        """Circular mean (Hz) of the assigned blocks within two blocks."""
        z = self.pz[self.window[self.slot_rows[flat]]].dot(self.near_w)
        return cmath.phase(z) / self.k

    def predict_far(self, flat: int, sigma_blocks: float) -> float | None:
        """Prediction for a new region's seed from every assigned block (Gaussian distance)."""
        done = np.flatnonzero(self.assigned)
        if not done.size:
            return None
        d2 = ((self.coords[done] - self.coords[flat]) ** 2).sum(axis=1)
        w = self.weight[done] * (np.exp(-d2 / (2 * sigma_blocks**2)) + 1e-12)
        z = (w * np.exp(1j * self.k * self.field[done])).sum()
        return float(np.angle(z) / self.k)

    def push_neighbours(self, flat: int, heap: list) -> None:
        """Queue the open blocks among the 26 neighbours of ``flat`` by their rank (the heap
        pops the most certain first; :attr:`block_at_rank` names the block)."""
        is_open, rank = self.open, self.rank_rows
        p = self.pidx_rows[flat]
        for off in self.touch_rows:
            q = p + off
            if is_open[q]:
                is_open[q] = 0
                heapq.heappush(heap, rank[q])


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
    choose, predict, push, block_at_rank = g.choose, g.predict, g.push_neighbours, g.block_at_rank
    order = np.flatnonzero(active)[np.argsort(-g.certainty)]
    next_seed = 0
    while True:
        while next_seed < order.size and g.assigned[order[next_seed]]:
            next_seed += 1
        if next_seed >= order.size:
            break
        seed = int(order[next_seed])
        g.choose(seed, g.predict_far(seed, seed_sigma_blocks))
        heap: list = []
        g.push_neighbours(seed, heap)
        while heap:  # block by block, in certainty order (method look-ups bound once)
            flat = block_at_rank[heapq.heappop(heap)]
            choose(flat, predict(flat))
            push(flat, heap)
    return g.field.reshape(shape), g.weight.reshape(shape)
