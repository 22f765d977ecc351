"""The numpy percentile and median (:mod:`RefractureRiskLib.maps.fatwater.quantile`) against
numpy's, and the numpy Gaussian filter of the separation
(:mod:`RefractureRiskLib.maps.fatwater.smooth`) against ``scipy.ndimage.gaussian_filter``, which it
replaced to keep scipy out of a cold ``fatwater`` command: same values (it adds in scipy's order:
bit for bit for float64; float32 input is summed in float32, so within float32 rounding), same
dtype, for the sigmas, modes and truncations the separation uses and for axes shorter than the
kernel."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from RefractureRiskLib.maps.fatwater.quantile import median, percentile
from RefractureRiskLib.maps.fatwater.smooth import gaussian_filter, gaussian_kernel

CASES = [
    ((0.0, 1.5, 1.5), "reflect", 4.0),  # the PDFF selector's neighbourhood
    ((0.0, 2.3, 2.3), "reflect", 4.0),  # the water-fat phase offset (sigma from the caller)
    ((1.0, 1.0, 1.0), "constant", 2.5),  # the field map's block smoothing
    ((0.0, 1.0, 1.0), "constant", 2.5),
    (0.7, "reflect", 4.0),
]


@pytest.mark.parametrize(
    "shape", [(4, 131, 256), (1, 9, 9), (3, 2, 5), (5, 1, 7), (2, 40, 3), (7, 200, 256)]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("sigma", "mode", "truncate"), CASES)
def test_equals_scipy(shape, dtype, sigma, mode, truncate) -> None:
    values = np.random.default_rng(sum(shape)).normal(size=shape).astype(dtype)
    ours = gaussian_filter(values, sigma, mode=mode, truncate=truncate)
    ref = ndimage.gaussian_filter(values, sigma, mode=mode, truncate=truncate)
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    if dtype == np.float64:  # summed in float64 in scipy's order: the same bits
        assert np.array_equal(ours, ref)
    else:  # summed in float32: float32 rounding of values ~N(0, 1)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6)
    if mode == "constant" or min(shape) > 1:  # the filter did something
        assert not np.array_equal(ours, values)


def test_point_response_is_the_normalised_kernel() -> None:
    """A unit impulse spreads into the kernel itself (sums to 1, peak at the centre)."""
    delta = np.zeros((1, 9, 9))
    delta[0, 4, 4] = 1.0
    out = gaussian_filter(delta, (0.0, 1.5, 1.5), mode="constant")
    k = gaussian_kernel(1.5)
    assert k.size == 2 * int(4.0 * 1.5 + 0.5) + 1 and abs(k.sum() - 1.0) < 1e-15
    np.testing.assert_allclose(out[0, 4], k[2:11] * k[6], atol=1e-15)
    assert out.argmax() == delta.argmax()


def test_refuses_what_it_does_not_do() -> None:
    with pytest.raises(ValueError, match="mode"):
        gaussian_filter(np.zeros((3, 3)), 1.0, mode="wrap")
    with pytest.raises(TypeError, match="real"):
        gaussian_filter(np.zeros((3, 3), complex), 1.0)
    with pytest.raises(ValueError, match="sigmas"):
        gaussian_filter(np.zeros((3, 3)), (1.0, 1.0, 1.0))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 1001, 55683])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_percentile_equals_numpy(n: int, dtype) -> None:
    values = (np.random.default_rng(n).gamma(2.0, size=n) * 1000).astype(dtype)
    for q in (0.0, 1.0, 50.0, 99.0, 99.5, 100.0):
        ref = np.percentile(values, q)
        got = percentile(values, q)
        assert got == float(ref), (q, got, ref)
        assert np.asarray(ref).dtype.type(got) == ref  # no precision lost in the float
    with pytest.raises(ValueError, match="empty"):
        percentile(np.zeros(0), 50.0)
    assert np.isnan(percentile(np.array([1.0, np.nan, 2.0]), 50.0))


@pytest.mark.parametrize(
    "kind", ["gamma", "ties", "constant", "nan_few", "nan_many", "sorted", "reversed", "negative"]
)
def test_high_percentiles_of_large_arrays_equal_numpy(kind: str) -> None:
    """Near the top of a large array only the values above a sampled threshold are
    partitioned (the signal mask's 99th percentile): numpy's values, and with NaN (sorted
    last) the values of the whole array partitioned, as before."""
    rng = np.random.default_rng(5)
    n = 300_007
    values = (rng.gamma(2.0, size=n) * 1000).astype(np.float32)
    if kind == "ties":
        values = np.round(values / 500.0).astype(np.float32)
    elif kind == "constant":
        values[:] = 7.0
    elif kind == "nan_few":
        values[rng.choice(n, 50, replace=False)] = np.nan
    elif kind == "nan_many":
        values[rng.choice(n, n // 20, replace=False)] = np.nan
    elif kind == "sorted":
        values.sort()
    elif kind == "reversed":
        values = np.sort(values)[::-1].copy()
    elif kind == "negative":
        values = -values
    for q in (90.0, 95.0, 99.0, 99.5, 99.99, 100.0):
        got = percentile(values, q)
        # the whole array partitioned (NaN last, as before the shortcut)
        pos = q / 100.0 * (n - 1)
        lo, hi = int(pos), min(int(pos) + 1, n - 1)
        part = np.partition(values, [lo, hi] if hi > lo else lo)
        assert percentile(values[::-1].copy(), q) == got or np.isnan(got)  # order-free
        if np.isnan(part[lo]) or np.isnan(part[hi]):
            assert np.isnan(got), (kind, q, got)
        elif not np.isnan(values).any():
            assert got == float(np.percentile(values, q)), (kind, q, got)
        else:
            t = pos - lo
            diff = part[hi] - part[lo]
            expected = part[hi] - diff * (1 - t) if t >= 0.5 else part[lo] + diff * t
            assert got == float(expected), (kind, q, got, expected)


@pytest.mark.parametrize("n", [1, 2, 3, 8, 1001, 55684])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_equals_numpy(n: int, dtype) -> None:
    values = np.random.default_rng(n).lognormal(size=n).astype(dtype)
    assert median(values) == float(np.median(values))
    assert median(values.reshape(1, -1)) == float(np.median(values))
    with pytest.raises(ValueError, match="empty"):
        median(np.zeros(0))


_BAND_CASES = [
    ((4, 256, 256), 3.0, "symmetric"),  # the separation's in-plane passes
    ((4, 131, 256), 1.5, "symmetric"),
    ((40, 33, 20), 1.0, "constant"),
    ((20, 7, 5), 3.0, "symmetric"),
    ((256, 5, 7), 3.0, "symmetric"),
]


@pytest.mark.parametrize(
    ("shape", "sigma", "pad_mode", "axis"),
    [
        (shape, sigma, pad, axis)
        for shape, sigma, pad in _BAND_CASES
        for axis in range(3)
        # a kernel longer than the axis has no matrix product (filtered another way)
        if int(4.0 * sigma + 0.5) < shape[axis]
    ],
)
def test_band_products_in_tiles_equal_the_whole_band(shape, sigma, pad_mode, axis) -> None:
    """The float32 pass multiplies each tile of output rows by only the band's columns it
    reaches: the same sums as the product with the whole band (the skipped terms are zeros),
    within float32 rounding (BLAS may group a shorter sum differently)."""
    from RefractureRiskLib.maps.fatwater import smooth

    values = np.random.default_rng(sum(shape) + axis).normal(size=shape).astype(np.float32)
    n = shape[axis]
    band = smooth._band_matrix(n, sigma, 4.0, pad_mode)
    whole = np.moveaxis(np.matmul(band, np.moveaxis(values, axis, -2)), -2, axis)
    tiled = smooth._matmul_axis(values, axis, band)
    assert tiled.dtype == np.float32 and tiled.shape == values.shape
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-6)
    assert not np.array_equal(tiled, values)


@pytest.mark.parametrize("sigma", [(0.0, 0.0, 0.0), (0.0, 1.5, 1.5), (1.0, 1.0, 1.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_filter_returns_a_new_array_and_leaves_the_input(sigma, dtype) -> None:
    values = np.random.default_rng(1).normal(size=(3, 40, 30)).astype(dtype)
    before = values.copy()
    for view in (values, values[:, ::2], values.transpose(0, 2, 1)):
        out = gaussian_filter(view, sigma)
        assert not np.may_share_memory(out, values)
        np.testing.assert_array_equal(values, before)
        ref = ndimage.gaussian_filter(view, sigma)
        np.testing.assert_allclose(out, ref, rtol=0, atol=2e-6)
