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

import heapq

import numpy as np
import numpy.typing as npt


def local_minima(
    costs: npt.NDArray[np.float32], n_candidates: int = 4
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """Grid indices and costs of the ``n_candidates`` deepest circular local minima of each row
    of ``costs[B, n]`` (missing candidates have cost ``inf``)."""
    left = np.roll(costs, 1, axis=1)
    right = np.roll(costs, -1, axis=1)
    is_min = (costs <= left) & (costs < right)
    masked = np.where(is_min, costs, np.inf)
    k = min(n_candidates, costs.shape[1])
    idx = np.argsort(masked, axis=1)[:, :k]
    return idx, np.take_along_axis(masked, idx, axis=1)


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
    n_blocks = int(np.prod(shape))
    cand_idx, cand_cost = local_minima(costs)
    cand_hz = grid_hz[cand_idx]
    margin = np.where(np.isfinite(cand_cost[:, 1]), cand_cost[:, 1] - cand_cost[:, 0], 1.0)
    share = energy / max(float(energy.max()), 1e-30)
    certainty = np.clip(margin, 0.0, 1.0) * share + 1e-9 * share
    slot = np.full(n_blocks, -1, np.int64)  # flat block -> row in costs
    slot[np.flatnonzero(active)] = np.arange(costs.shape[0])
    field = np.zeros(n_blocks)
    weight = np.zeros(n_blocks)
    assigned = np.zeros(n_blocks, bool)
    nk, nj, ni = shape
    offsets = [
        (dk, dj, di)
        for dk in (-1, 0, 1)
        for dj in (-1, 0, 1)
        for di in (-1, 0, 1)
        if (dk, dj, di) != (0, 0, 0)
    ]
    two_pi_over_p = 2 * np.pi / period_hz

    def choose(flat: int, pred_hz: float | None) -> None:
        row = slot[flat]
        if pred_hz is None:
            best = 0
        else:
            d = (cand_hz[row] - pred_hz + period_hz / 2) % period_hz - period_hz / 2
            best = int(np.argmin(cand_cost[row] + mu * (d / swap_hz) ** 2))
        field[flat] = cand_hz[row, best]
        weight[flat] = certainty[row]
        assigned[flat] = True
        open_p[pidx[flat]] = False
        pz[padded_index(flat)] = (certainty[row] + 1e-12) * np.exp(1j * two_pi_over_p * field[flat])

    # prediction window: offsets within 2 blocks, Gaussian distance weights (sigma 1 block)
    near = np.array(
        [
            (dk, dj, di)
            for dk in range(-2, 3)
            for dj in range(-2, 3)
            for di in range(-2, 3)
            if (dk, dj, di) != (0, 0, 0)
        ]
    )
    near_w = np.exp(-(near**2).sum(axis=1) / 2.0)
    pad = 2
    padded_shape = (nk + 2 * pad, nj + 2 * pad, ni + 2 * pad)
    near_flat = (near[:, 0] * padded_shape[1] + near[:, 1]) * padded_shape[2] + near[:, 2]
    pz = np.zeros(padded_shape, np.complex128).reshape(-1)  # weight * phasor of assigned blocks

    kk, jj, ii = np.unravel_index(np.arange(n_blocks), shape)
    pidx = ((kk + pad) * padded_shape[1] + jj + pad) * padded_shape[2] + ii + pad
    unpad = np.full(pz.size, -1, np.int64)
    unpad[pidx] = np.arange(n_blocks)
    open_p = np.zeros(pz.size, bool)  # active, not assigned, not queued
    open_p[pidx[np.flatnonzero(active)]] = True
    touch = np.array([(dk * padded_shape[1] + dj) * padded_shape[2] + di for dk, dj, di in offsets])

    def padded_index(flat: int) -> int:
        return int(pidx[flat])

    def predict(flat: int) -> float:
        z = (pz[padded_index(flat) + near_flat] * near_w).sum()
        return float(np.angle(z) / two_pi_over_p)

    def push_neighbours(flat: int, heap: list) -> None:
        idx = pidx[flat] + touch
        new = idx[open_p[idx]]
        open_p[new] = False
        for nb, cert in zip(unpad[new].tolist(), certainty[slot[unpad[new]]].tolist(), strict=True):
            heapq.heappush(heap, (-cert, nb))

    order = np.flatnonzero(active)[np.argsort(-certainty)]
    next_seed = 0
    coords = np.stack(np.unravel_index(np.arange(n_blocks), shape), axis=1).astype(float)
    while True:
        while next_seed < order.size and assigned[order[next_seed]]:
            next_seed += 1
        if next_seed >= order.size:
            break
        seed = int(order[next_seed])
        done = np.flatnonzero(assigned)
        if done.size:
            d2 = ((coords[done] - coords[seed]) ** 2).sum(axis=1)
            w = weight[done] * np.exp(-d2 / (2 * seed_sigma_blocks**2)) + 1e-12 * weight[done]
            z = (w * np.exp(1j * two_pi_over_p * field[done])).sum()
            choose(seed, float(np.angle(z) / two_pi_over_p))
        else:
            choose(seed, None)
        heap: list = []
        push_neighbours(seed, heap)
        while heap:
            _, flat = heapq.heappop(heap)
            choose(flat, predict(flat))
            push_neighbours(flat, heap)
    return field.reshape(shape), weight.reshape(shape)
