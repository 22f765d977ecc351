"""Region growing of the field map (:mod:`RefractureRiskLib.maps.fatwater.growing`): its
candidates are the circular local minima, and the grown field is the one region growing
written out plainly gives (a heap of ``(-certainty, block)``, each block the candidate with the
lowest cost plus distance penalty from the weighted circular mean of its assigned neighbours, a
new region's seed predicted from every assigned block), checked on costs with ties and
plateaus, where a shortcut would go wrong, and on blocks in separate islands."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest

from RefractureRiskLib.maps.fatwater.growing import _Growth, _offsets, grow, local_minima

# constant rows have no second candidate: their margin is computed as inf - inf (then replaced)
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered in subtract")


def _costs(seed: int, rows: int = 300, n: int = 24) -> np.ndarray:
    """Costs quantised to a few levels: many equal neighbours (plateaus) and constant rows."""
    rng = np.random.default_rng(seed)
    costs = (rng.integers(0, 5, size=(rows, n)) / 4.0).astype(np.float32)
    costs[::37] = 0.5  # constant rows: no local minimum at all
    return costs


def test_local_minima_are_the_circular_minima() -> None:
    for seed in range(3):
        costs = _costs(seed)
        left, right = np.roll(costs, 1, axis=1), np.roll(costs, -1, axis=1)
        masked = np.where((costs <= left) & (costs < right), costs, np.inf)
        want = np.argsort(masked, axis=1)[:, :4]
        idx, values = local_minima(costs)
        np.testing.assert_array_equal(idx, want)
        np.testing.assert_array_equal(values, np.take_along_axis(masked, want, axis=1))
        assert np.isinf(values[::37]).all()  # constant rows offer no finite candidate


def _plain_grow(costs, energy, active, shape, grid, period, swap, mu=1.0, sigma_blocks=6.0):
    """The region growing of :func:`grow` written out block by block (no ranks, no padding)."""
    idx, cand = local_minima(costs)
    cand_hz = grid[idx]
    margin = np.where(np.isfinite(cand[:, 1]), cand[:, 1] - cand[:, 0], 1.0)
    share = energy / max(float(energy.max()), 1e-30)
    cert = np.clip(margin, 0.0, 1.0) * share + 1e-9 * share
    blocks = np.flatnonzero(active)
    row_of = {int(b): r for r, b in enumerate(blocks)}
    k = 2 * np.pi / period
    near = _offsets(2)
    near_w = np.exp(-(near**2).sum(axis=1) / 2.0).astype(np.complex128)
    field, weight = np.zeros(active.size), np.zeros(active.size)
    phasor = np.zeros(active.size, np.complex128)  # certainty * phasor once assigned
    assigned = np.zeros(active.size, bool)

    def choose(b: int, pred: float | None) -> None:
        r = row_of[b]
        best = 0
        if pred is not None:
            scores = [
                float(c) + mu * (((float(f) - pred + period / 2) % period - period / 2) / swap) ** 2
                for f, c in zip(cand_hz[r], cand[r], strict=True)
            ]
            if min(scores) < math.inf:
                best = int(np.argmin(scores))  # the first of equal scores
        field[b], weight[b], assigned[b] = cand_hz[r][best], cert[r], True
        phasor[b] = (float(cert[r]) + 1e-12) * np.exp(1j * k * field[b])

    def predict(b: int) -> float:
        at = np.array(np.unravel_index(b, shape)) + near
        inside = ((at >= 0) & (at < shape)).all(axis=1)
        values = np.zeros(len(near), np.complex128)
        values[inside] = phasor[np.ravel_multi_index(at[inside].T, shape)]
        z = complex(np.dot(values, near_w))
        return math.atan2(z.imag, z.real) / k

    def predict_far(b: int) -> float | None:
        done = np.flatnonzero(assigned)
        if not done.size:
            return None
        coords = np.stack(np.unravel_index(np.arange(active.size), shape), axis=1).astype(float)
        d2 = ((coords[done] - coords[b]) ** 2).sum(axis=1)
        w = weight[done] * (np.exp(-d2 / (2 * sigma_blocks**2)) + 1e-12)
        return float(np.angle((w * np.exp(1j * k * field[done])).sum()) / k)

    def touching(b: int) -> list[int]:
        at = np.array(np.unravel_index(b, shape)) + _offsets(1)
        at = at[((at >= 0) & (at < shape)).all(axis=1)]
        return [int(n) for n in np.ravel_multi_index(at.T, shape) if active[n]]

    for seed in blocks[np.argsort(-cert)]:
        if assigned[seed]:
            continue
        choose(int(seed), predict_far(int(seed)))
        queued = set(touching(int(seed))) - set(np.flatnonzero(assigned))
        heap = [(-float(cert[row_of[n]]), n) for n in queued]
        heapq.heapify(heap)
        while heap:
            _, b = heapq.heappop(heap)
            choose(b, predict(b))
            for n in touching(b):
                if not assigned[n] and n not in queued:
                    queued.add(n)
                    heapq.heappush(heap, (-float(cert[row_of[n]]), n))
    return field.reshape(shape), weight.reshape(shape)


@pytest.mark.parametrize(
    ("seed", "shape", "gap"), [(4, (2, 6, 25), 2), (5, (1, 9, 30), 3), (6, (3, 5, 14), 0)]
)
def test_grow_equals_the_plain_region_growing(seed: int, shape, gap: int) -> None:
    """Same field and weights, bit for bit, as the plain version: blocks without signal here
    and there, and (``gap``) columns without signal that split the blocks into islands, each
    grown from its own seed."""
    n = int(np.prod(shape))
    costs = _costs(seed, rows=n)
    rng = np.random.default_rng(seed)
    active = rng.random(n) > 0.15
    if gap:
        i = np.unravel_index(np.arange(n), shape)[2]
        active &= (i < shape[2] // 2) | (i >= shape[2] // 2 + gap)
    grid = np.linspace(-150.0, 150.0, costs.shape[1], endpoint=False)
    energy = rng.uniform(0.2, 2.0, int(active.sum())).astype(np.float32)
    field, weight = grow(costs[active], energy, active, shape, grid, 300.0, 90.0)
    want_field, want_weight = _plain_grow(costs[active], energy, active, shape, grid, 300.0, 90.0)
    np.testing.assert_array_equal(field, want_field)
    np.testing.assert_array_equal(weight, want_weight)
    assert np.isin(field.reshape(-1)[active], grid).all()


def test_grow_assigns_every_active_block_a_candidate() -> None:
    shape = (2, 6, 25)
    costs = _costs(6, rows=int(np.prod(shape)))
    active = np.ones(costs.shape[0], bool)
    active[::5] = False
    grid = np.linspace(-150.0, 150.0, costs.shape[1], endpoint=False)
    energy = np.linspace(1.0, 2.0, int(active.sum())).astype(np.float32)
    field, weight = grow(costs[active], energy, active, shape, grid, 300.0, 90.0)
    assert field.shape == shape and (weight.reshape(-1)[~active] == 0).all()
    assert (weight.reshape(-1)[active] > 0).all()
    assert np.isin(field.reshape(-1)[active], grid).all()


def test_queue_ranks_follow_certainty_then_block() -> None:
    """The queue pops ranks: most certain first, equal certainties by flat index (the order
    of the ``(-certainty, flat)`` tuples it held before)."""
    shape = (2, 6, 25)
    costs = _costs(7, rows=int(np.prod(shape)))
    active = np.ones(costs.shape[0], bool)
    active[3::7] = False
    grid = np.linspace(-150.0, 150.0, costs.shape[1], endpoint=False)
    energy = np.ones(int(active.sum()), np.float32)  # certainty = margin: many ties
    g = _Growth(costs[active], energy, active, shape, grid, 300.0, 90.0, 1.0)
    cert = g.certainty.tolist()
    assert len(set(cert)) < len(cert) / 4
    flat = np.flatnonzero(active).tolist()
    want = sorted(range(len(flat)), key=lambda r: (-cert[r], flat[r]))
    assert g.row_at_rank == want


@pytest.mark.parametrize("island_index", [4, 16])
def test_a_new_region_follows_the_field_grown_before(island_index: int) -> None:
    """Two islands: the first has one deep minimum; the second's blocks two equal ones (a
    tissue alone: true field and swap), so its seed can only follow the first island's field
    (its prediction from every assigned block), whichever of the two minima is listed first."""
    shape = (1, 4, 12)
    grid = np.linspace(-150.0, 150.0, 24, endpoint=False)
    active = np.ones(int(np.prod(shape)), bool)
    active.reshape(shape)[:, :, 5:8] = False  # a gap: islands i < 5 and i >= 8
    costs = np.ones((int(active.sum()), grid.size), np.float32)
    first = np.unravel_index(np.flatnonzero(active), shape)[2] < 5
    other = 20 - island_index  # the second minimum of the second island
    costs[first, island_index] = 0.0
    costs[~first, island_index] = costs[~first, other] = 0.0
    energy = np.ones(costs.shape[0], np.float32)
    energy[first] = 0.5  # the first island's blocks are the more certain (margin 1 vs 0)
    field, _ = grow(costs, energy, active, shape, grid, 300.0, 90.0)
    assert (field.reshape(-1)[active] == grid[island_index]).all()
    want, _ = _plain_grow(costs, energy, active, shape, grid, 300.0, 90.0)
    np.testing.assert_array_equal(field, want)
