"""The finer pyramid levels' costs computed on each block's window of the field grid only
(:func:`RefractureRiskLib.maps.fatwater.window.window_costs`) against the whole cost table
read at the window (:func:`RefractureRiskLib.maps.fatwater.fieldmap._level_costs`)."""

from __future__ import annotations

import numpy as np
import pytest

from RefractureRiskLib.maps.fatwater.fieldmap import _level_costs
from RefractureRiskLib.maps.fatwater.model import gram_features, projection_table
from RefractureRiskLib.maps.fatwater.spectrum import DEFAULT_SPECTRUM
from RefractureRiskLib.maps.fatwater.window import _pieces, window_costs


@pytest.mark.parametrize("periodic", [True, False])
def test_window_costs_equal_the_whole_table_at_the_window(periodic) -> None:
    rng = np.random.default_rng(3)
    te = 1.2e-3 + 2e-3 * np.arange(6)
    grid = np.arange(-27, 28) * (500.0 / 55)
    table = projection_table(te, DEFAULT_SPECTRUM.phasor(te, 1.5), grid, [0.0, 60.0, 200.0])
    signal = rng.normal(size=(3000, 6)) + 1j * rng.normal(size=(3000, 6))
    features = np.ascontiguousarray(gram_features(signal.astype(np.complex64)))
    # groups of every size, one block alone among them, cut by a small chunk
    parts = [np.full(1, 70), np.full(2, 0), np.full(5, 54), rng.integers(-3, 60, 2992)]
    centre = np.concatenate(parts)
    offsets = np.arange(-11, 12)
    starts, key = np.unique(centre, return_inverse=True)
    key_cols = starts[:, None] + offsets[None, :]
    key_cols = key_cols % grid.size if periodic else np.clip(key_cols, 0, grid.size - 1)
    local, energy = window_costs(features, table, 3, key, key_cols, chunk=64)
    costs, energy_all = _level_costs(features, table, 3, 16384)
    expected = np.take_along_axis(costs, key_cols[key], axis=1)
    assert local.dtype == np.float32 and local.shape == (3000, offsets.size)
    np.testing.assert_array_equal(energy, energy_all)
    np.testing.assert_allclose(local, expected, rtol=0, atol=1e-6)
    assert (local <= 1.0).all() and local.min() < 0.5
    # the same blocks given as rows of a larger feature array (no copy of them as a whole)
    extra = np.concatenate([np.zeros((7, features.shape[1]), np.float32), features])
    again, energy_again = window_costs(
        extra, table, 3, key, key_cols, chunk=64, blocks=np.arange(7, 3007)
    )
    np.testing.assert_array_equal(again, local)
    np.testing.assert_array_equal(energy_again, energy)


def test_pieces_cover_each_run_without_single_block_remainders() -> None:
    key = np.array([0] * 5 + [1] + [2] * 9)
    pieces = _pieces(key, 4)
    assert pieces == [(0, 5), (5, 6), (6, 10), (10, 15)]
    covered = np.concatenate([np.arange(a, b) for a, b in pieces])
    np.testing.assert_array_equal(covered, np.arange(key.size))
    for a, b in pieces:
        assert (key[a:b] == key[a]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_wrap_takes_the_remainder_only_where_it_changes_something(dtype) -> None:
    """wrap_hz skips numpy's slow float remainder inside [-period/2, period/2): the values
    (and signs of zero) of ``(d + period/2) % period - period/2`` everywhere."""
    from RefractureRiskLib.maps.fatwater.fieldmap import wrap_hz

    rng = np.random.default_rng(11)
    values = (rng.normal(size=20000) * 400).astype(dtype)
    values[:6] = [-250.0, 250.0, 0.0, -0.0, 1e-30, -750.0]
    half, period = dtype(250.0), dtype(500.0)
    expected = (values + half) % period - half
    got = wrap_hz(values, 500.0)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))
    assert (np.abs(got) <= 250.0).all() and (got != values).any()
    assert wrap_hz(260.0, 500.0) == -240.0
    with np.errstate(invalid="ignore"):  # numpy warns on inf % period, as before
        assert np.isnan(wrap_hz(np.array([np.inf, np.nan]), 500.0)).all()


@pytest.mark.parametrize(
    ("small", "shape"),
    [
        ((20, 16, 16), (40, 32, 32)),
        ((3, 7, 5), (5, 13, 9)),
        ((1, 4, 4), (1, 8, 8)),
        ((2, 3, 1), (4, 6, 1)),
    ],
)
def test_expand_equals_repeating_each_axis(small, shape) -> None:
    from RefractureRiskLib.maps.fatwater.fieldmap import _expand

    values = np.random.default_rng(2).normal(size=small).astype(np.float32)
    expected = values
    for axis in range(3):
        if expected.shape[axis] != shape[axis]:
            expected = np.repeat(expected, 2, axis=axis)
    expected = expected[: shape[0], : shape[1], : shape[2]]
    got = _expand(values, shape)
    assert got.flags.c_contiguous and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
