"""The body's segmentation on its bounding box (roi/crop.py, roi/body.py) against the whole box.

The automatic ROIs' accuracy figures are frozen, so the fast paths must give the straightforward
whole-box computation's result bit for bit. The references below are the code as it was before
(whole box, ``boundary_distance_mm`` thresholded, ``ndimage.center_of_mass``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from RefractureRiskLib.roi.body import (
    MAX_SEED_DISTANCE_MM,
    OPEN_MM,
    SI_REGROW_MM,
    body_from_marrow,
    clip_posterior_elements,
    focal_lesion_ml,
    refine_body,
)
from RefractureRiskLib.roi.cement import void_fraction
from RefractureRiskLib.roi.crop import bbox_slices, in_plane_core, nonzero
from RefractureRiskLib.roi.geometry import (
    axis_along,
    body_frame,
    boundary_distance_mm,
    fill_holes,
)
from RefractureRiskLib.roi.marrow import spacing_kji

SPACINGS = (0.5, 0.7, 0.75, 0.8, 0.9375, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)


def _matrix(rng, oblique: bool) -> np.ndarray:
    sp = rng.choice(SPACINGS, 3)
    mat = np.eye(4)
    mat[:3, :3] = np.diag(sp[::-1])
    if oblique:
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        mat[:3, :3] = q @ mat[:3, :3]
        mat[:3, 3] = rng.normal(size=3) * 50.0
    return mat


def _blobs(rng, shape, n: int = 3) -> np.ndarray:
    """A few rounded blobs with holes and bridges (marrow-like)."""
    mask = np.zeros(shape, bool)
    for _ in range(n):
        c = [rng.uniform(0, s) for s in shape]
        r = [rng.uniform(2, max(3, s / 2)) for s in shape]
        k, j, i = np.ogrid[: shape[0], : shape[1], : shape[2]]
        mask |= ((k - c[0]) / r[0]) ** 2 + ((j - c[1]) / r[1]) ** 2 + ((i - c[2]) / r[2]) ** 2 <= 1
    return mask & (rng.random(shape) < rng.uniform(0.85, 1.0))


def test_in_plane_core_equals_the_thresholded_distance():
    rng = np.random.default_rng(11)
    for trial in range(300):
        shape = tuple(int(n) for n in rng.integers(5, 36, 3))
        mat = _matrix(rng, trial % 3 == 0)
        inside = _blobs(rng, shape) if trial % 2 else rng.random(shape) < rng.uniform(0.4, 0.97)
        axis = int(rng.integers(0, 3))
        depth = float(rng.choice([2.0, 3.0, 4.0, 6.0, rng.uniform(0.5, 9.0)]))
        expected = boundary_distance_mm(inside, mat, in_plane_of=axis) >= depth
        assert np.array_equal(in_plane_core(inside, mat, axis, depth), expected), trial
    # a threshold met exactly: 8 voxels of 0.8 mm less half a voxel is 6 mm
    mat = np.diag([0.8, 0.8, 3.0, 1.0])
    inside = np.ones((5, 40, 40), bool)
    expected = boundary_distance_mm(inside, mat, in_plane_of=0) >= 6.0
    assert np.array_equal(in_plane_core(inside, mat, 0, 6.0), expected)


def test_nonzero_and_bbox():
    rng = np.random.default_rng(2)
    for _ in range(50):
        mask = _blobs(rng, tuple(int(n) for n in rng.integers(3, 20, 3)), 1)
        for a, b in zip(np.nonzero(mask), nonzero(mask), strict=True):
            assert np.array_equal(a, b)
        sl = bbox_slices(mask, 2)
        if sl is not None:
            assert np.count_nonzero(mask[sl]) == np.count_nonzero(mask)
    assert bbox_slices(np.zeros((3, 4, 5), bool)) is None


def _body_from_marrow_whole_box(marrow, ijk_to_ras, seed_ijk, si_ras, open_mm=OPEN_MM):
    filled = fill_holes(marrow)
    if not filled.any():
        return filled, "no marrow near the point"
    axis = axis_along(ijk_to_ras, si_ras)
    core = boundary_distance_mm(filled, ijk_to_ras, in_plane_of=axis) >= open_mm
    if not core.any():
        core = filled
    lab, _n = ndimage.label(core)
    seed = np.asarray(seed_ijk, float)[::-1]
    sp = spacing_kji(ijk_to_ras)
    k, j, i = np.nonzero(lab)
    d = np.sqrt((((np.stack([k, j, i], 1) - seed) * sp) ** 2).sum(axis=1))
    nearest = int(np.argmin(d))
    if d[nearest] > open_mm + MAX_SEED_DISTANCE_MM:
        return np.zeros_like(filled), "far"
    comp = lab == lab[k[nearest], j[nearest], i[nearest]]
    sp_plane = sp.copy()
    sp_plane[axis] = 1.0e4
    grow = ndimage.distance_transform_edt(~comp, sampling=sp_plane)
    body = filled & (grow <= open_mm + 0.5 * float(np.delete(sp, axis).max()))
    if body.any():
        steps = int(np.ceil(SI_REGROW_MM / sp[axis]))
        struct = np.zeros((3, 3, 3), bool)
        centre = [1, 1, 1]
        for d in (0, 2):
            centre[axis] = d
            struct[tuple(centre)] = True
        struct[1, 1, 1] = True
        body = ndimage.binary_dilation(body, struct, iterations=steps, mask=filled)
    lab2, _ = ndimage.label(body)
    keep = lab2[k[nearest], j[nearest], i[nearest]]
    return (lab2 == keep) if keep else body, ""


def _refine_body_whole_box(body, pdff, seed_kji, signal, void):
    if not body.any():
        return body
    core = float(np.median(pdff[body]))
    lo, hi = 0.5 * (core + 3.0), 0.5 * (core + 90.0)
    kept = body & (((pdff >= lo) & (pdff <= hi)) | void)
    kept = fill_holes(kept) & body
    lab, _ = ndimage.label(kept)
    keep = lab[seed_kji]
    if keep == 0:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        keep = int(np.argmax(sizes))
    out = lab == keep if keep else body
    if out.any():
        ring = ndimage.binary_dilation(out) & ~out
        out = out | (ring & (signal < 0.6 * float(np.median(signal[out]))))
    return out


def _focal_lesion_whole_box(body, marrow, void, frame, ijk_to_ras, pdff):
    if (body & marrow).any():
        core = float(np.median(pdff[body & marrow]))
        marrow = marrow & (pdff >= 0.5 * (core + 3.0))
    holes = fill_holes(body & marrow) & ~marrow & ~void & body
    if not holes.any():
        return 0.0
    lab, n = ndimage.label(holes)
    voxel_ml = abs(np.linalg.det(ijk_to_ras[:3, :3])) / 1000.0
    sizes = np.bincount(lab.ravel(), minlength=n + 1) * voxel_ml
    big = [c for c in range(1, n + 1) if sizes[c] >= 0.12]
    if not big:
        return 0.0
    total = 0.0
    half = np.maximum(np.asarray(frame.half_extent_mm), 1e-3)
    for c, (k, j, i) in zip(big, ndimage.center_of_mass(holes, lab, big), strict=True):
        ras = ijk_to_ras[:3, :3] @ np.array([i, j, k]) + ijk_to_ras[:3, 3]
        lr, ap, si = frame.to_local(ras[None, :])[0] / half
        if ap < -0.4 and abs(si) < 0.5 and abs(lr) < 0.5:
            continue
        total += float(sizes[c])
    return total


def _void_fraction_whole_box(body, void, r2s, ijk_to_ras):
    n = max(np.count_nonzero(body), 1)
    if not body.any():
        return 0.0
    inner = boundary_distance_mm(body, ijk_to_ras) >= 3.0
    cement = inner & void
    if (inner & ~void).any():
        r2 = np.asarray(r2s, np.float32)
        typical = float(np.median(r2[inner & ~void]))
        if np.isfinite(typical) and typical > 0:
            cement |= inner & (r2 >= 2.5 * typical)
    if cement.any():  # parts at least 2.5 mm deep somewhere (cement blobs, not sheets)
        padded = np.pad(cement, 1)  # beyond the array is not cement
        depth = ndimage.distance_transform_edt(padded, sampling=spacing_kji(ijk_to_ras))
        depth = depth[1:-1, 1:-1, 1:-1]
        lab, k = ndimage.label(cement)
        deep = np.r_[False, np.asarray(ndimage.maximum(depth, lab, np.arange(1, k + 1))) >= 2.5]
        cement = deep[lab]
    return float(np.count_nonzero(cement) / n)


def test_body_steps_in_the_bounding_box_equal_the_whole_box():
    rng = np.random.default_rng(5)
    checked = 0
    for trial in range(80):
        shape = tuple(int(n) for n in rng.integers(12, 40, 3))
        mat = _matrix(rng, trial % 4 == 0)
        mat[:3, :3] *= 2.0 if trial % 2 else 1.0  # coarse voxels: small boxes hold a body
        marrow = _blobs(rng, shape, int(rng.integers(1, 4)))
        void = (rng.random(shape) < 0.05) | _blobs(rng, shape, 1) & (rng.random() < 0.3)
        pdff = rng.uniform(0.0, 100.0, shape).astype(np.float32)
        signal = rng.uniform(0.0, 1.0, shape).astype(np.float32)
        seed = rng.uniform(0, np.array(shape[::-1]) - 1)
        si = rng.normal(size=3) if trial % 3 == 0 else (0.0, 0.0, 1.0)
        fast = body_from_marrow(marrow | void, mat, seed, si)
        slow = _body_from_marrow_whole_box(marrow | void, mat, seed, si)
        assert np.array_equal(fast[0], slow[0]), trial
        body = fast[0]
        if not body.any():
            continue
        checked += 1
        k, j, i = np.nonzero(body)
        at = (int(k[0]), int(j[0]), int(i[0]))
        for seed_kji in (at, (0, 0, 0)):  # in the body, and outside it
            refined = refine_body(body, pdff, seed_kji, signal, void)
            expected = _refine_body_whole_box(body, pdff, seed_kji, signal, void)
            assert np.array_equal(refined, expected), trial
        frame = body_frame(body, mat)
        lesion = focal_lesion_ml(body, marrow, void, frame, mat, pdff)
        assert lesion == _focal_lesion_whole_box(body, marrow, void, frame, mat, pdff), trial
        r2 = rng.uniform(10.0, 400.0, shape)
        assert void_fraction(body, void, r2, mat) == _void_fraction_whole_box(body, void, r2, mat)
    assert checked >= 30


def test_fill_holes_in_the_bounding_box_equals_scipy():
    rng = np.random.default_rng(9)
    for trial in range(100):
        shape = tuple(int(n) for n in rng.integers(3, 30, 3))
        mask = _blobs(rng, shape, int(rng.integers(0, 4))) if trial % 2 else rng.random(shape) < 0.6
        assert np.array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask)), trial


def _clip_posterior_whole_box(body, ijk_to_ras, axes_ras, seed_kji):
    """``clip_posterior_elements`` as it was: voxel lists and labels over the whole box."""
    if not body.any():
        return body
    axes = np.asarray(axes_ras, float)
    k, j, i = np.nonzero(body)
    ijk = np.stack([i, j, k], axis=1).astype(float)
    pts = ijk @ ijk_to_ras[:3, :3].T + ijk_to_ras[:3, 3]
    local = pts @ axes[:, :2]
    sp = spacing_kji(ijk_to_ras)
    cols = ijk_to_ras[:3, :3] / sp[::-1]
    lr_half_voxel = 0.5 * float(np.abs(axes[:, 0] @ cols * sp[::-1]).max())
    ap_half_voxel = 0.5 * float(np.abs(axes[:, 1] @ cols * sp[::-1]).max())
    mid = np.abs(local[:, 0] - np.median(local[:, 0])) <= max(6.0, lr_half_voxel)
    if np.count_nonzero(mid) < 10:
        return body
    wall = float(np.percentile(local[mid, 1], 2.0))
    keep = local[:, 1] >= wall - 2.0 - ap_half_voxel
    if keep.all():
        return body
    out = np.zeros_like(body)
    out[k[keep], j[keep], i[keep]] = True
    lab, _ = ndimage.label(out)
    comp = lab[seed_kji] if out[seed_kji] else 0
    if comp == 0:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        comp = int(np.argmax(sizes))
    return lab == comp if comp else body


def test_clip_posterior_elements_in_the_bounding_box_equals_the_whole_box():
    rng = np.random.default_rng(13)
    clipped = 0
    for trial in range(80):
        shape = tuple(int(n) for n in rng.integers(10, 36, 3))
        mat = _matrix(rng, trial % 3 == 0)
        body = _blobs(rng, shape, int(rng.integers(1, 5)))
        if not body.any():
            continue
        axes = body_frame(body, mat, rng.normal(size=3) if trial % 2 else None).axes_ras
        nz = np.nonzero(body)
        at = int(rng.integers(0, nz[0].size))
        for seed in (tuple(int(a[at]) for a in nz), (0, 0, 0)):  # in the body, and not
            fast = clip_posterior_elements(body, mat, axes, seed)
            assert np.array_equal(fast, _clip_posterior_whole_box(body, mat, axes, seed)), trial
            clipped += int(not np.array_equal(fast, body))
    assert clipped >= 10
