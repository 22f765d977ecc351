"""Cement (signal void, high R2*) is judged inside the body, not at its rim: the rim shares its
voxels with the dark cortex and the tissue around the body (partial volume), and a maps-only
export's tissue measure sees no signal at every edge. And cement is a compact deposit: a thin
sheet of void (an end plate's cortex) or scattered specks (noise) inside the body are not."""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.roi.cement import (
    CEMENT_DEPTH_MM,
    CEMENT_R2S_CORROBORATION,
    INFERRED_VOID_ALONE,
    void_fraction,
)


def _body(shape=(24, 40, 40), half=(8.0, 15.0, 15.0)):
    k, j, i = np.indices(shape, dtype=float)
    c = (np.array(shape) - 1) / 2.0
    return ((k - c[0]) / half[0]) ** 2 + ((j - c[1]) / half[1]) ** 2 + (
        (i - c[2]) / half[2]
    ) ** 2 <= 1.0


MAT = np.diag([1.0, 1.0, 1.5, 1.0])  # 1 mm in-plane, 1.5 mm slices


def test_voids_along_the_rim_are_no_cement():
    body = _body()
    from scipy import ndimage

    rim = body & ~ndimage.binary_erosion(body, iterations=2)  # a 2-voxel shell: partial volume
    assert rim.sum() / body.sum() > 0.2
    assert void_fraction(body, rim, None, MAT) == 0.0
    # without the grid's geometry every void voxel counts (a drawn ROI's measure)
    assert void_fraction(body, rim) > 0.2


def test_a_void_blob_inside_the_body_is_cement():
    body = _body()
    k, j, i = np.indices(body.shape)
    blob = (k - 11.5) ** 2 + (j - 19.5) ** 2 + (i - 19.5) ** 2 <= 5.0**2
    share = void_fraction(body, blob & body, None, MAT)
    assert share == np.count_nonzero(blob & body) / np.count_nonzero(body)
    assert share >= 0.05


def test_high_r2s_inside_counts_as_cement_where_noise_fills_the_void():
    body = _body()
    k, j, i = np.indices(body.shape)
    blob = (k - 11.5) ** 2 + (j - 19.5) ** 2 + (i - 19.5) ** 2 <= 5.0**2
    r2 = np.full(body.shape, 60.0)
    r2[blob] = 800.0  # the fit of noise in the cement
    r2[body & ~_body(half=(8.0 - CEMENT_DEPTH_MM / 1.5, 12.0, 12.0))] = 400.0  # cortex at the rim
    none = np.zeros(body.shape, bool)
    share = void_fraction(body, none, r2, MAT)
    assert share == np.count_nonzero(blob & body) / np.count_nonzero(body)


def test_a_thin_void_sheet_or_specks_inside_the_body_are_no_cement():
    body = _body()
    k, j, i = np.indices(body.shape)
    sheet = body & (np.abs(k - 11.5) < 1.0)  # two slices (3 mm) across the body: an end plate
    assert np.count_nonzero(sheet) / np.count_nonzero(body) > 0.05
    assert void_fraction(body, sheet, None, MAT) == 0.0
    rng = np.random.default_rng(0)
    specks = body & (rng.random(body.shape) < 0.1)  # noise: single voxels
    assert void_fraction(body, specks, None, MAT) < 0.01
    # the same share as one compact blob is cement
    blob = (k - 11.5) ** 2 + (j - 19.5) ** 2 + (i - 19.5) ** 2 <= 5.0**2
    assert void_fraction(body, blob & body, None, MAT) >= 0.05


def test_an_inferred_void_needs_r2s_to_back_it_up():
    """Maps-only exports read "no signal" from noisy maps: a small void share whose R2* is the
    body's own is noisy marrow, not cement; high R2* there, or the vendor's zero mask, is."""
    body = _body()
    k, j, i = np.indices(body.shape)
    blob = body & ((k - 11.5) ** 2 + (j - 19.5) ** 2 + (i - 19.5) ** 2 <= 5.0**2)
    share = np.count_nonzero(blob) / np.count_nonzero(body)
    assert 0.05 <= share < INFERRED_VOID_ALONE
    r2 = np.full(body.shape, 170.0)  # 3 T marrow, the same inside the "void"
    assert void_fraction(body, blob, r2, MAT) == share  # measured void (water + fat): cement
    assert void_fraction(body, blob, r2, MAT, void_inferred=True) == 0.0
    backed = r2.copy()
    backed[blob] = CEMENT_R2S_CORROBORATION * 170.0 + 1.0
    assert void_fraction(body, blob, backed, MAT, void_inferred=True) == share
    masked = r2.copy()
    masked[blob] = 0.0
    assert void_fraction(body, blob, masked, MAT, void_inferred=True) == share
    # a void this large is cement whatever its R2*
    big = body & ((k - 11.5) ** 2 + (j - 19.5) ** 2 + (i - 19.5) ** 2 <= 8.0**2)
    assert np.count_nonzero(big) / np.count_nonzero(body) >= INFERRED_VOID_ALONE
    assert void_fraction(body, big, r2, MAT, void_inferred=True) > 0.0
