"""roi/distance.boundary_distance_mm: the same distances as scipy's transform computed the plain
way, one feature transform per mask, and a repeat of the last mask answered from memory (issue
13: a body's safe core and its cement test measure the same mask)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage

from RefractureRiskLib.roi import distance
from RefractureRiskLib.roi.distance import boundary_distance_mm
from RefractureRiskLib.roi.marrow import spacing_kji


def _plain(inside: np.ndarray, ijk_to_ras: np.ndarray) -> np.ndarray:
    """The formula on the whole padded box, distances and indices from scipy in one call."""
    sp = spacing_kji(ijk_to_ras)
    padded = np.pad(inside, 1, constant_values=False)
    dist, idx = ndimage.distance_transform_edt(padded, sampling=sp, return_indices=True)
    core = (slice(1, -1),) * 3
    grid = np.indices(inside.shape) + 1
    disp = (idx[(slice(None), *core)] - grid).astype(np.float32) * sp[:, None, None, None]
    norm = np.maximum(np.sqrt((disp**2).sum(axis=0)), 1e-6)
    local = dist[core] - 0.5 * (np.abs(disp) * sp[:, None, None, None]).sum(axis=0) / norm
    local[~inside] = 0.0
    return local


def _matrix(spacing_ijk: tuple[float, float, float], shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    m = np.diag([*spacing_ijk, 1.0])
    m[:3, 3] = shift
    return m


def _blob(rng: np.random.Generator, shape=(12, 22, 26)) -> np.ndarray:
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 2.0)
    mask = noise > 0.05
    mask[:, :, :3] = False  # room around part of it: the bounding-box crop matters
    return mask


@pytest.mark.parametrize("spacing", [(0.78125, 0.78125, 3.5), (1.0, 1.0, 1.0), (0.7, 1.3, 2.2)])
def test_distances_are_the_plain_formulas_bit_for_bit(spacing) -> None:
    rng = np.random.default_rng(int(10 * sum(spacing)))
    for _ in range(4):
        mask = _blob(rng)
        mat = _matrix(spacing)
        got = boundary_distance_mm(mask, mat)
        assert got.dtype == np.float64
        assert np.array_equal(got, _plain(mask, mat))


def test_a_repeated_mask_is_answered_from_memory_as_a_copy(monkeypatch) -> None:
    rng = np.random.default_rng(5)
    mask = _blob(rng)
    first = boundary_distance_mm(mask, _matrix((0.8, 0.8, 3.0)))
    transforms = []
    real = ndimage.distance_transform_edt

    def counted(*args, **kwargs):
        transforms.append(1)
        return real(*args, **kwargs)

    # counts the module's transforms only (not the plain formula's)
    monkeypatch.setattr(distance, "ndimage", SimpleNamespace(distance_transform_edt=counted))
    first[mask] = -1.0  # the caller's copy: changing it changes nothing remembered
    again = boundary_distance_mm(mask.copy(), _matrix((0.8, 0.8, 3.0), shift=(40.0, -3.0, 9.0)))
    assert transforms == []  # same mask, same voxel sizes, another box: no new transform
    assert np.array_equal(again, _plain(mask, _matrix((0.8, 0.8, 3.0))))
    other_sizes = boundary_distance_mm(mask, _matrix((0.8, 0.8, 2.0)))
    assert transforms == [1]
    assert np.array_equal(other_sizes, _plain(mask, _matrix((0.8, 0.8, 2.0))))
    other_mask = mask.copy()
    other_mask[mask.nonzero()[0][0], mask.nonzero()[1][0], mask.nonzero()[2][0]] = False
    assert np.array_equal(
        boundary_distance_mm(other_mask, _matrix((0.8, 0.8, 2.0))),
        _plain(other_mask, _matrix((0.8, 0.8, 2.0))),
    )
    assert transforms == [1, 1]


def test_in_plane_distances_are_per_plane_transforms() -> None:
    rng = np.random.default_rng(11)
    mask = _blob(rng, (10, 18, 20))
    mat = _matrix((0.9, 0.9, 4.0))
    sp = spacing_kji(mat)
    for axis in range(3):
        plane_sp = np.delete(sp, axis)
        padded = np.moveaxis(np.pad(mask, 1), axis, 0)
        dist = np.stack([ndimage.distance_transform_edt(p, sampling=plane_sp) for p in padded])
        want = np.moveaxis(dist, 0, axis)[(slice(1, -1),) * 3] - 0.5 * float(plane_sp.max())
        want[~mask] = 0.0
        assert np.array_equal(boundary_distance_mm(mask, mat, in_plane_of=axis), want)


def test_an_empty_mask_is_all_zero() -> None:
    assert not boundary_distance_mm(np.zeros((4, 5, 6), bool), np.eye(4)).any()
