"""Region growing of the field map (:mod:`RefractureRiskLib.maps.fatwater.growing`): its
candidates are the circular local minima, and its choice is the candidate with the lowest cost
plus distance penalty from the prediction (checked against the definitions written out plainly,
on costs with ties and plateaus, where a shortcut would go wrong)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from RefractureRiskLib.maps.fatwater.growing import _Growth, grow, local_minima

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


def _growth(seed: int) -> tuple[_Growth, list[int]]:
    shape = (2, 6, 25)
    costs = _costs(seed, rows=int(np.prod(shape)))
    active = np.ones(int(np.prod(shape)), bool)
    grid = np.linspace(-150.0, 150.0, costs.shape[1], endpoint=False)
    energy = np.linspace(1.0, 2.0, costs.shape[0]).astype(np.float32)
    g = _Growth(costs, energy, active, shape, grid, 300.0, 90.0, 1.0)
    return g, list(range(costs.shape[0]))


def test_choose_takes_the_lowest_score_among_finite_candidates() -> None:
    g, blocks = _growth(4)
    for flat, pred in zip(blocks, np.linspace(-140.0, 140.0, len(blocks)), strict=True):
        g.choose(flat, float(pred))
        row = g.slot_rows[flat]
        scores = [
            c + g.mu * (((f - pred + g.period / 2) % g.period - g.period / 2) / g.swap) ** 2
            for f, c in zip(g.cand_hz_rows[row], g.cand_cost_rows[row], strict=True)
        ]
        best = int(np.argmin(scores)) if min(scores) < math.inf else 0
        assert g.field[flat] == g.cand_hz_rows[row][best]


def test_predict_is_the_weighted_circular_mean_of_assigned_neighbours() -> None:
    g, blocks = _growth(5)
    for flat in blocks[::3]:
        g.choose(flat, None)
    for flat in blocks[1::3]:
        window = g.pidx_rows[flat] + g.near_flat
        z = complex(np.dot(g.pz[window], g.near_w))
        assert g.predict(flat) == math.atan2(z.imag, z.real) / g.k


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
    grid = np.linspace(-150.0, 150.0, costs.shape[1], endpoint=False)
    energy = np.ones(costs.shape[0], np.float32)  # certainty = margin: many ties
    g = _Growth(costs, energy, active, shape, grid, 300.0, 90.0, 1.0)
    cert = g.certainty_rows
    assert len(set(cert)) < len(cert) / 4
    assert g.block_at_rank == sorted(range(costs.shape[0]), key=lambda b: (-cert[b], b))
