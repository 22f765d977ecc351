"""The water-fat phase offset of the phase-constrained PDFF leaves each voxel's own value out of
its smoothed neighbourhood (``maps.fatwater.separate.water_fat_phase_offset``).
The weight it subtracts is pinned against independent computations with scipy: the response of
``scipy.ndimage.gaussian_filter`` to a unit impulse at the voxel, and the leave-one-out sum
itself (the neighbourhood filtered with the voxel's value set to 0). It used to be the impulse
response in a 9 x 9 image, 0.0185 at sigma 3 instead of the kernel's 0.0177 (the 25-tap
kernel folded back onto itself), the same at every voxel; near the image edges the true weight is
larger (0.034 at an edge, 0.067 at a corner)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from RefractureRiskLib.maps.fatwater.separate import _own_weights, water_fat_phase_offset
from RefractureRiskLib.maps.fatwater.smooth import self_weights


def _impulse_response_at(shape, index, sigma, mode: str, truncate: float) -> float:
    delta = np.zeros(shape)
    delta[index] = 1.0
    return ndimage.gaussian_filter(delta, sigma, mode=mode, truncate=truncate)[index]


def test_interior_weight_is_the_kernel_centre_squared() -> None:
    """Far from the edges, sigma 3: scipy's 1D impulse response peak squared, 0.01768."""
    line = np.zeros(101)
    line[50] = 1.0
    centre_1d = ndimage.gaussian_filter1d(line, 3.0)[50]
    weights = self_weights(101, 3.0)
    assert weights[50] == pytest.approx(centre_1d, rel=1e-12)
    assert weights[50] ** 2 == pytest.approx(0.017685, abs=5e-7)
    assert weights[50] ** 2 != pytest.approx(0.018479, abs=5e-4)  # the old 9 x 9 impulse value


@pytest.mark.parametrize(
    ("n", "sigma", "mode", "truncate"),
    [
        (40, 3.0, "reflect", 4.0),  # edges within the kernel radius 12
        (7, 3.0, "reflect", 4.0),  # axis shorter than the kernel: reflected more than once
        (1, 3.0, "reflect", 4.0),
        (30, 1.5, "reflect", 4.0),
        (30, 1.0, "constant", 2.5),
        (9, 0.0, "reflect", 4.0),  # not smoothed: the value itself
    ],
)
def test_self_weights_are_scipys_impulse_response(n, sigma, mode, truncate) -> None:
    ours = self_weights(n, sigma, mode=mode, truncate=truncate)
    ref = [_impulse_response_at((n,), (i,), sigma, mode, truncate) for i in range(n)]
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)


def test_own_weights_in_plane_match_the_2d_impulse_response() -> None:
    shape = (2, 17, 30)
    mask = np.zeros(shape, bool)
    mask[0, 0, 0] = mask[0, 0, 15] = mask[1, 8, 15] = mask[1, 16, 29] = mask[1, 3, 2] = True
    ours = _own_weights(mask, 3.0)
    ref = [
        _impulse_response_at(shape, tuple(v), (0.0, 3.0, 3.0), "reflect", 4.0)
        for v in np.argwhere(mask)
    ]
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    assert ours.max() > 3 * ours.min()  # the corner counts its reflections


def test_phase_offset_leaves_the_voxel_out() -> None:
    """Each voxel's offset is the angle of its neighbours' smoothed ``F conj(W)``: scipy's filter
    of the plane with that voxel's value set to 0, read at the voxel (edges and interior)."""
    rng = np.random.default_rng(7)
    shape = (2, 20, 26)
    mask = rng.random(shape) < 0.7
    mask[:, 0, :] = True  # an edge row and the corners inside the mask
    n = int(mask.sum())
    water = (rng.normal(size=n) + 1j * rng.normal(size=n)).astype(np.complex64)
    fat = (rng.normal(size=n) + 1j * rng.normal(size=n) + 0.5).astype(np.complex64)
    ours = water_fat_phase_offset(mask, water, fat, 3.0)
    z = np.zeros(shape, complex)
    z[mask] = (fat * np.conj(water)).astype(np.complex64)
    voxels = np.argwhere(mask)
    picks = [0, 1, 12, n // 2, n - 1, *rng.choice(n, 20, replace=False)]
    for p in picks:
        v = tuple(voxels[p])
        left_out = z.copy()
        left_out[v] = 0.0
        s = (0.0, 3.0, 3.0)
        im, re = (ndimage.gaussian_filter(part, s)[v] for part in (left_out.imag, left_out.real))
        ref = np.arctan2(im, re)
        assert abs(np.angle(np.exp(1j * (ours[p] - ref)))) < 2e-4, (v, ours[p], ref)
