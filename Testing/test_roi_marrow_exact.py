"""The marrow module's faster paths give exactly what the plain numpy expressions give (issue 13:
the noise level's median was ~17 ms of a cold ``analyze``)."""

from __future__ import annotations

import numpy as np
import pytest

from RefractureRiskLib.roi.marrow import median_float32, noise_sigma


def _same(a, b) -> bool:
    return type(a) is type(b) and np.asarray(a).tobytes() == np.asarray(b).tobytes()


def _arrays(rng: np.random.Generator):
    for n in (1, 2, 3, 4, 5, 17, 256, 1001, 4096, 20_000):
        yield rng.random(n).astype(np.float32)
        yield (np.abs(rng.normal(size=n)) * 1e3).astype(np.float32)
        yield rng.integers(0, 4, n).astype(np.float32)  # many ties
        zeros = np.abs(rng.normal(size=n)).astype(np.float32)
        zeros[rng.random(n) < 0.6] = 0.0
        yield zeros
        yield (rng.random(n) * 1e-39).astype(np.float32)  # subnormal
        yield np.full(n, 7.25, np.float32)


def test_the_median_is_numpys_bit_for_bit():
    rng = np.random.default_rng(13)
    checked = 0
    for a in _arrays(rng):
        assert _same(median_float32(a), np.median(a)), a
        checked += 1
    assert checked == 60


def test_shapes_views_and_values_outside_the_fast_path_match_numpy():
    rng = np.random.default_rng(7)
    image = np.abs(rng.normal(size=(6, 40, 30))).astype(np.float32)
    cases = [image, image[::2, 3:, ::3], image.astype(np.float64), image.astype(">f4")]
    for bad in (np.nan, np.inf, -1.5, -0.0):
        c = image.copy()
        c[2, 5, 7] = bad
        cases.append(c)
    for a in cases:
        assert _same(median_float32(a), np.median(a)), a.dtype
    with_nan = cases[4]
    assert np.isnan(median_float32(with_nan))


def test_noise_sigma_is_the_plain_median_formula():
    rng = np.random.default_rng(3)
    signal = np.abs(rng.normal(100.0, 5.0, size=(32, 64, 60))).astype(np.float32)
    signal[:, :10] = 0.0  # air
    arr = signal[::2]
    plain = float(1.4826 * np.median(np.abs(np.diff(arr, axis=1))) / np.sqrt(2.0))
    assert noise_sigma(signal) == plain
    assert noise_sigma(np.zeros((4, 8, 8), np.float32)) == 0.0


@pytest.mark.parametrize("n", [2, 3, 1000, 1001])
def test_two_middle_values_in_different_buckets(n: int):
    # the two middle order statistics far apart: each found in its own bucket
    a = np.concatenate([np.zeros(n // 2, np.float32), np.full(n - n // 2, 3e5, np.float32)])
    np.random.default_rng(n).shuffle(a)
    assert _same(median_float32(a), np.median(a))
