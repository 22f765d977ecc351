"""Synthetic IDEAL-IQ spine phantom: geometry, truth values, options and determinism.

The checks measure the generated images independently of the generator's own bookkeeping
where they can: body volumes from label counts, heights from label extents along the body
axis, the "core" from a Euclidean distance transform of the label map.
"""

from __future__ import annotations

import itertools
import math
import pickle

import numpy as np
import pytest
from scipy import ndimage

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS, level_label
from RefractureRiskLib.phantom import PhantomSpec, PhantomStudy, Tissue, generate_phantom

CORE_DEPTH_MM = 3.0
EXCLUDED = (Tissue.VEIN, Tissue.LESION, Tissue.CEMENT)


def core_mask(ph: PhantomStudy, level: str) -> np.ndarray:
    """Voxels >= 3 mm inside the labelled body (with a voxel of margin for partial volume),
    away from vein, lesion and cement (dilated by one voxel)."""
    labels = ph.truth.body_labels
    spacing = labels.spacing_mm[::-1]  # (k, j, i)
    margin = CORE_DEPTH_MM + 1.5 * float(spacing.max())
    return depth_in_body(ph, level) >= margin


def depth_in_body(ph: PhantomStudy, level: str, exclude: bool = True) -> np.ndarray:
    """Distance (mm) of each voxel centre to the nearest voxel outside the level's label,
    0 outside and (``exclude``) on vein/lesion/cement voxels and their neighbours."""
    labels = ph.truth.body_labels
    body = labels.array == level_label(level)
    box = tuple(
        slice(max(s.start - 2, 0), s.stop + 2) for s in ndimage.find_objects(body.astype(int))[0]
    )
    depth = np.zeros(body.shape)
    # pad so that a body cut by the edge of the field of view ends there
    padded = np.pad(body[box], 1)
    edt = ndimage.distance_transform_edt(padded, sampling=labels.spacing_mm[::-1])
    depth[box] = edt[1:-1, 1:-1, 1:-1]
    if exclude:
        excluded = np.isin(ph.truth.tissue.array[box], [int(t) for t in EXCLUDED])
        depth[box][ndimage.binary_dilation(excluded, iterations=1)] = 0.0
    return depth


def label_extent_along_mm(ph: PhantomStudy, level: str, axis_ras: tuple) -> float:
    """Extent (mm) of a level's label along a RAS direction, voxel centres +- half a voxel."""
    labels = ph.truth.body_labels
    k, j, i = np.nonzero(labels.array == level_label(level))
    ras = labels.ijk_to_ras_points(np.c_[i, j, k])
    proj = ras @ np.asarray(axis_ras)
    step = float(np.abs(labels.ijk_to_ras[:3, :3].T @ np.asarray(axis_ras)).max())
    return float(proj.max() - proj.min()) + step


@pytest.fixture(scope="module")
def default() -> PhantomStudy:
    return generate_phantom(PhantomSpec(seed=1))


@pytest.fixture(scope="module")
def thin() -> PhantomStudy:
    return generate_phantom(PhantomSpec(seed=1, slice_thickness_mm=1.0))


@pytest.fixture(scope="module")
def noisy() -> PhantomStudy:
    return generate_phantom(PhantomSpec(seed=1, snr=25.0, bias_field=0.25))


@pytest.fixture(scope="module")
def options() -> PhantomStudy:
    return generate_phantom(
        PhantomSpec(seed=1, fractured={"L1": 0.3, "T12": 0.15}, cemented=("L1",), lesion_level="L3")
    )


# -- grid and outputs ------------------------------------------------------------------------------


def test_default_study_shape_maps_and_provenance(default: PhantomStudy) -> None:
    study = default.study
    assert set(study.maps) == {"water", "fat", "in_phase", "out_phase", "pdff", "r2s"}
    nk, nj, ni = study.grid.shape
    assert 200 <= nj <= 300 and 200 <= ni <= 300 and 20 <= nk <= 40
    for vol in (*study.maps.values(), default.truth.body_labels, default.truth.tissue):
        assert vol.same_grid(study.grid)
    assert default.truth.body_labels.array.dtype == np.int16
    prov = study.provenance
    assert prov.vendor == "synthetic" and prov.field_strength_t == 1.5
    assert len(prov.echo_times_ms) == 6 and all(t > 0 for t in prov.echo_times_ms)
    # every level T10..S1 is in the table and in the label map
    table = default.truth.level_table()
    assert list(table["level"]) == list(VERTEBRAL_LEVELS)
    assert set(np.unique(default.truth.body_labels.array)) == {0, *range(1, 10)}
    pdff = study.pdff.array
    assert pdff.min() >= 0 and pdff.max() <= 100


def test_sagittal_geometry_convention(default: PhantomStudy) -> None:
    """Columns run A->P, rows S->I, slices along L-R; spine levels go down the rows."""
    d = default.study.grid.directions_ras
    np.testing.assert_allclose(d[:, 0], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(d[:, 1], [0, 0, -1], atol=1e-12)
    assert abs(d[0, 2]) == pytest.approx(1.0)
    np.testing.assert_allclose(default.study.grid.spacing_mm, [1.25, 1.25, 3.0])
    rows = [
        np.nonzero(default.truth.body_labels.array == level_label(lv))[1].mean()
        for lv in VERTEBRAL_LEVELS
    ]
    assert np.all(np.diff(rows) > 0)  # T10 at the top, S1 at the bottom


def test_anatomy_has_every_tissue_with_plausible_values(default: PhantomStudy) -> None:
    tissue = default.truth.tissue.array
    pdff = default.study.pdff.array
    for t in (Tissue.SUBCUTANEOUS_FAT, Tissue.MUSCLE, Tissue.CSF, Tissue.DISC, Tissue.VEIN):
        assert np.count_nonzero(tissue == t) > 50, t
    # the voxel-centre class is exact where a voxel lies wholly in one tissue: use medians
    assert np.median(pdff[tissue == Tissue.SUBCUTANEOUS_FAT]) > 90
    assert 2 <= np.median(pdff[tissue == Tissue.MUSCLE]) <= 15
    assert np.median(pdff[tissue == Tissue.CSF]) < 2
    assert np.median(pdff[tissue == Tissue.DISC]) < 3
    assert np.median(pdff[tissue == Tissue.VEIN]) < 15
    water = default.study.maps["water"].array
    assert np.median(water[tissue == Tissue.AIR]) == 0
    # CSF lies posterior of the bodies: mean column (A->P) greater than that of L3
    csf_cols = np.nonzero(tissue == Tissue.CSF)[2].mean()
    l3_cols = np.nonzero(default.truth.body_labels.array == level_label("L3"))[2].mean()
    assert csf_cols > l3_cols


def test_vein_is_posterior_mid_height_inside_each_body(thin: PhantomStudy) -> None:
    labels = thin.truth.body_labels
    tissue = thin.truth.tissue.array
    for lv in thin.truth.levels:
        k, j, i = np.nonzero((tissue == Tissue.VEIN) & (labels.array == lv.label))
        assert k.size > 10, lv.level
        local = labels.ijk_to_ras_points(np.c_[i, j, k]) - np.asarray(lv.centre_ras)
        anterior = local @ np.asarray(lv.anterior_ras)
        superior = local @ np.asarray(lv.superior_ras)
        assert anterior.max() < 0 and anterior.min() > -lv.depth_mm / 2 - 1.0, lv.level
        assert np.abs(superior).max() < 0.2 * lv.height_mm, lv.level
        # low fat: blood
        assert np.median(thin.study.pdff.array[k, j, i]) < 10


def test_discs_between_bodies(thin: PhantomStudy) -> None:
    """Gaps between adjacent labelled bodies along the spine are 8-12 mm (S1 is last) and hold
    disc tissue with PDFF near 0."""
    labels = thin.truth.body_labels
    tissue, pdff = thin.truth.tissue.array, thin.study.pdff.array
    levels = thin.truth.levels
    for upper, lower in itertools.pairwise(levels):
        c_up, c_lo = np.asarray(upper.centre_ras), np.asarray(lower.centre_ras)
        axis = (c_up - c_lo) / np.linalg.norm(c_up - c_lo)
        # voxels within 4 mm of the line joining the centres
        k, j, i = np.nonzero((labels.array == upper.label) | (labels.array == lower.label))
        ras = labels.ijk_to_ras_points(np.c_[i, j, k]) - c_lo
        along = ras @ axis
        near = np.linalg.norm(ras - np.outer(along, axis), axis=1) < 4.0
        lab = labels.array[k, j, i][near]
        gap = along[near][lab == upper.label].min() - along[near][lab == lower.label].max()
        gap -= 1.0  # voxel centres: the surfaces lie about half a voxel further out
        assert 7.0 <= gap <= 12.5, (upper.level, lower.level, gap)
        # the middle of the gap is disc
        mid = thin.truth.body_labels.ras_to_ijk_points(
            c_lo + axis * (along[near][lab == lower.label].max() + gap / 2 + 0.5)
        )
        mi, mj, mk = (int(c) for c in np.round(mid[0]))
        assert tissue[mk, mj, mi] == Tissue.DISC and pdff[mk, mj, mi] < 3


def test_level_sizes_are_level_appropriate(default: PhantomStudy) -> None:
    t = default.truth.level_table().set_index("level")
    for lv in ("L1", "L2", "L3", "L4", "L5"):
        assert 40 <= t.loc[lv, "width_mm"] <= 52
        assert 28 <= t.loc[lv, "depth_mm"] <= 35
        assert 24 <= t.loc[lv, "height_mm"] <= 29
    for lv in ("T10", "T11", "T12"):
        assert t.loc[lv, "width_mm"] < t.loc["L3", "width_mm"]
        assert t.loc[lv, "height_mm"] < t.loc["L3", "height_mm"]
    pdff = t["marrow_pdff_pct"]
    assert pdff.between(30, 70).all() and pdff.max() - pdff.min() < 15
    assert t["marrow_r2s_per_s"].between(40, 80).all()


# -- volumes and heights ---------------------------------------------------------------------------


def test_body_volumes_match_specified_dimensions(thin: PhantomStudy) -> None:
    for lv in thin.truth.levels:
        cylinder_ml = math.pi * lv.width_mm * lv.depth_mm / 4 * lv.height_mm / 1000
        # the rounded rim removes a little from the plain elliptic cylinder
        assert 0.98 * cylinder_ml < lv.analytic_volume_ml < cylinder_ml, lv.level
        count_ml = np.count_nonzero(thin.truth.body_labels.array == lv.label)
        count_ml *= thin.truth.body_labels.voxel_volume_ml
        assert count_ml == pytest.approx(lv.body_volume_ml)
        assert count_ml == pytest.approx(lv.analytic_volume_ml, rel=0.02), lv.level


def test_thick_slices_keep_volume_and_average_partial_volume(
    default: PhantomStudy, thin: PhantomStudy
) -> None:
    for lv_thick, lv_thin in zip(default.truth.levels, thin.truth.levels, strict=True):
        assert lv_thick.body_volume_ml == pytest.approx(lv_thin.body_volume_ml, rel=0.03)
    # partial volume conserves signal: total fat and water (signal x volume) agree
    for kind in ("fat", "water"):
        total_thick = default.study.maps[kind].array.sum(dtype=np.float64) * 3.0
        total_thin = thin.study.maps[kind].array.sum(dtype=np.float64) * 1.0
        assert total_thick == pytest.approx(total_thin, rel=0.01)
    # and thick slices produce intermediate values at body/disc boundaries
    pdff = default.study.pdff.array
    lab = default.truth.body_labels.array
    edge = (lab == level_label("L3")) & ~ndimage.binary_erosion(lab == level_label("L3"))
    assert np.unique(np.round(pdff[edge])).size > 10


def test_body_heights_measured_along_body_axis(thin: PhantomStudy) -> None:
    for lv in thin.truth.levels:
        measured = label_extent_along_mm(thin, lv.level, lv.superior_ras)
        assert measured == pytest.approx(lv.height_mm, abs=1.6), lv.level


def test_fractured_levels_are_shorter_by_requested_amount(
    options: PhantomStudy, default: PhantomStudy
) -> None:
    for level, loss in (("L1", 0.3), ("T12", 0.15)):
        frac = options.truth.level(level)
        intact = default.truth.level(level)
        assert frac.fractured and frac.height_loss_frac == loss
        assert frac.height_mm == pytest.approx(intact.height_mm * (1 - loss))
        h_frac = label_extent_along_mm(options, level, frac.superior_ras)
        h_intact = label_extent_along_mm(default, level, intact.superior_ras)
        # measured on the images, within about one pixel at each end
        assert h_intact - h_frac == pytest.approx(loss * intact.height_mm, abs=2.6)
        # oedema lowers the marrow PDFF by 10-30 points
        drop = intact.marrow_pdff_pct - frac.marrow_pdff_pct
        assert 10 <= drop <= 30
        assert frac.oedema_pdff_drop_pct == pytest.approx(drop)
    assert not options.truth.level("L2").fractured
    assert options.truth.level("L2").marrow_pdff_pct == default.truth.level("L2").marrow_pdff_pct


def column_height_mm(ph: PhantomStudy, level: str, v_mm: float) -> float:
    """Label extent along the body axis in a thin column at anterior position ``v_mm`` on the
    mid-sagittal line (local frame of the truth), plus one voxel for the voxel centres."""
    lv = ph.truth.level(level)
    labels = ph.truth.body_labels
    k, j, i = np.nonzero(labels.array == lv.label)
    local = labels.ijk_to_ras_points(np.c_[i, j, k]) - np.asarray(lv.centre_ras)
    sup, ant = np.asarray(lv.superior_ras), np.asarray(lv.anterior_ras)
    right = np.cross(ant, sup)
    col = (np.abs(local @ right) < 2.0) & (np.abs(local @ ant - v_mm) < 1.0)
    w = local[col] @ sup
    return float(w.max() - w.min()) + float(labels.spacing_mm.min())


@pytest.mark.parametrize("shape", ["wedge", "biconcave"])
def test_wedge_and_biconcave_fractures(shape: str, default: PhantomStudy) -> None:
    ph = generate_phantom(
        PhantomSpec(
            seed=1,
            fractured={"L2": 0.4},
            fracture_shape=shape,
            in_plane_spacing_mm=1.0,
            slice_thickness_mm=1.0,
            n_slices=54,  # +-27 mm: the whole body
        )
    )
    lv, intact = ph.truth.level("L2"), default.truth.level("L2")
    assert lv.fracture_shape == shape and lv.fractured
    assert lv.height_mm == pytest.approx(0.6 * lv.nominal_height_mm)
    assert lv.nominal_height_mm == pytest.approx(intact.height_mm)
    assert lv.body_volume_ml == pytest.approx(lv.analytic_volume_ml, rel=0.02)
    # less volume than intact, more than a crush of the same depth
    assert 0.6 * intact.analytic_volume_ml < lv.analytic_volume_ml < intact.analytic_volume_ml
    v = 0.4 * lv.depth_mm
    front, middle, back = (column_height_mm(ph, "L2", x) for x in (v, 0.0, -v))
    if shape == "wedge":
        assert front < middle < back
        assert back - front == pytest.approx(0.4 * lv.nominal_height_mm * 0.8, abs=1.6)
        assert lv.height_anterior_mm < lv.height_middle_mm < lv.height_posterior_mm
    else:
        assert middle < front - 3 and middle < back - 3
        assert middle == pytest.approx(lv.height_mm, abs=1.6)
        assert lv.height_middle_mm == pytest.approx(lv.height_mm)
    check_core_means(ph, 1e-3, 1e-5)


# -- truth values ----------------------------------------------------------------------------------


def check_core_means(ph: PhantomStudy, pdff_tol: float, r2s_rel_tol: float) -> None:
    pdff, r2s = ph.study.pdff.array, ph.study.r2s.array
    for lv in ph.truth.levels:
        if lv.cemented:
            continue
        core = core_mask(ph, lv.level)
        assert core.sum() > 20, lv.level
        assert pdff[core].mean() == pytest.approx(lv.marrow_pdff_pct, abs=pdff_tol), lv.level
        assert r2s[core].mean() == pytest.approx(lv.marrow_r2s_per_s, rel=r2s_rel_tol), lv.level


def test_core_means_equal_truth_noiseless(default: PhantomStudy, thin: PhantomStudy) -> None:
    check_core_means(default, 1e-3, 1e-5)
    check_core_means(thin, 1e-3, 1e-5)


def test_truth_core_mask_holds_exact_values(default: PhantomStudy) -> None:
    """The tissue map's whole-voxel core marrow carries exactly the level's values."""
    for lv in default.truth.levels:
        core = default.truth.core_mask(lv.level)
        assert core.sum() > 100
        # it lies in the core region measured on the label map
        assert np.all(depth_in_body(default, lv.level, exclude=False)[core] >= CORE_DEPTH_MM)
        np.testing.assert_allclose(default.study.pdff.array[core], lv.marrow_pdff_pct, atol=1e-3)
        np.testing.assert_allclose(default.study.r2s.array[core], lv.marrow_r2s_per_s, rtol=1e-5)


def test_core_means_equal_truth_with_noise_and_bias(noisy: PhantomStudy) -> None:
    check_core_means(noisy, 0.8, 0.02)


def test_marrow_pdff_unbiased_at_low_snr() -> None:
    """Magnitude discrimination keeps the marrow PDFF nearly unbiased even at SNR 8."""
    ph = generate_phantom(PhantomSpec(seed=9, snr=8.0, in_plane_spacing_mm=1.5))
    errors = []
    for lv in ph.truth.levels:
        core = core_mask(ph, lv.level)
        errors.append(ph.study.pdff.array[core].mean() - lv.marrow_pdff_pct)
    assert abs(np.mean(errors)) < 1.0 and np.max(np.abs(errors)) < 2.5


def test_marrow_heterogeneity_keeps_the_core_mean() -> None:
    spec = {"seed": 4, "in_plane_spacing_mm": 1.5}
    flat = generate_phantom(PhantomSpec(**spec))
    varied = generate_phantom(PhantomSpec(**spec, marrow_heterogeneity_pct=5.0))
    for lv in varied.truth.levels:
        assert lv.marrow_pdff_pct == flat.truth.level(lv.level).marrow_pdff_pct
        core = varied.truth.core_mask(lv.level)
        values = varied.study.pdff.array[core]
        # smooth variation of about the requested SD (partial volume smooths it a little)
        assert 2.5 < values.std() < 6.5, lv.level
        # the core mean still equals the truth (the field has zero mean over the core)
        assert values.mean() == pytest.approx(lv.marrow_pdff_pct, abs=0.6), lv.level
        # neighbouring voxels are alike: the variation is smooth, not noise
        neighbours = core[:, :, 1:] & core[:, :, :-1]
        step = np.diff(varied.study.pdff.array, axis=2)[neighbours]
        assert np.std(step) < 0.6 * values.std()
    np.testing.assert_array_equal(varied.truth.body_labels.array, flat.truth.body_labels.array)
    np.testing.assert_array_equal(varied.study.r2s.array, flat.study.r2s.array)


def test_marrow_pdff_drops_towards_cortex(thin: PhantomStudy) -> None:
    """Shell of 1-2 mm depth reads lower than the core by roughly the rim drop."""
    lv = thin.truth.level("L3")
    depth = depth_in_body(thin, "L3")
    pdff = thin.study.pdff.array
    # distances are to the nearest outside voxel centre: the surface is about half a voxel in
    shell = (depth > 2.0) & (depth <= 3.0)
    assert 0.5 < lv.marrow_pdff_pct - pdff[shell].mean() < lv.rim_pdff_drop_pct
    cortex = (depth > 0) & (depth <= 1.0)
    assert pdff[cortex].mean() < lv.marrow_pdff_pct - 20
    assert lv.rim_pdff_drop_pct >= 4.0


def test_noise_level_matches_snr(noisy: PhantomStudy) -> None:
    """Noise SD per channel is marrow signal (1000) / SNR, whatever the bias field."""
    core = core_mask(noisy, "L3")
    pairs = core[:, :, 1:] & core[:, :, :-1]
    for kind in ("water", "fat"):
        diff = np.diff(noisy.study.maps[kind].array, axis=2)[pairs]
        # neighbours 1.25 mm apart: the bias and the anatomy cancel, the noise adds
        assert np.std(diff) / math.sqrt(2) == pytest.approx(1000 / 25.0, rel=0.15), kind
    # the air is Rayleigh noise, not zero
    air = noisy.study.maps["water"].array[noisy.truth.tissue.array == Tissue.AIR]
    assert air.mean() == pytest.approx(1000 / 25.0 * math.sqrt(math.pi / 2), rel=0.1)


def test_bias_field_changes_signal_not_pdff() -> None:
    spec = {"seed": 1, "in_plane_spacing_mm": 1.25, "n_slices": 12}
    flat = generate_phantom(PhantomSpec(**spec))
    biased = generate_phantom(PhantomSpec(**spec, bias_field=0.3))
    w0, w1 = flat.study.maps["water"].array, biased.study.maps["water"].array
    ratio = np.where(w0 > 100, w1 / np.maximum(w0, 1e-6), np.nan)
    deviation = np.nanmax(np.abs(ratio - 1))
    assert 0.15 < deviation <= 0.3 + 1e-4  # amplitude 0.3 is the peak over the whole grid
    # smooth: neighbouring voxels (1.25 mm apart) differ by far less than the amplitude
    step = np.nanmax(np.abs(np.diff(ratio, axis=2)))
    assert step < 0.01
    np.testing.assert_allclose(biased.study.pdff.array, flat.study.pdff.array, atol=1e-3)
    np.testing.assert_array_equal(biased.truth.body_labels.array, flat.truth.body_labels.array)


def test_field_strength_doubles_r2s() -> None:
    spec = {"seed": 4, "in_plane_spacing_mm": 2.0, "n_slices": 16}
    low = generate_phantom(PhantomSpec(**spec, field_strength_t=1.5))
    high = generate_phantom(PhantomSpec(**spec, field_strength_t=3.0))
    for a, b in zip(low.truth.levels, high.truth.levels, strict=True):
        assert b.marrow_r2s_per_s == pytest.approx(2 * a.marrow_r2s_per_s)
        assert b.marrow_pdff_pct == pytest.approx(a.marrow_pdff_pct)
    r_low = low.study.r2s.array[low.truth.tissue.array == Tissue.MARROW_CORE].mean()
    r_high = high.study.r2s.array[high.truth.tissue.array == Tissue.MARROW_CORE].mean()
    assert r_high / r_low == pytest.approx(2.0, rel=0.02)
    assert high.study.provenance.field_strength_t == 3.0
    assert high.study.provenance.echo_times_ms[0] < low.study.provenance.echo_times_ms[0]


def test_in_and_out_of_phase_follow_the_fat_fraction(default: PhantomStudy) -> None:
    ip = default.study.maps["in_phase"].array
    op = default.study.maps["out_phase"].array
    tissue = default.truth.tissue.array
    core = tissue == Tissue.MARROW_CORE
    csf = tissue == Tissue.CSF
    # mixed marrow loses signal out of phase; pure water (CSF) does not
    assert np.median(op[core] / ip[core]) < 0.6
    assert np.median(op[csf] / ip[csf]) > 0.95


def test_echoes_decay_and_alternate_with_the_fat_phase() -> None:
    spec = {"seed": 2, "in_plane_spacing_mm": 2.5, "n_slices": 8}
    ph = generate_phantom(PhantomSpec(**spec, include_echoes=True))
    plain = generate_phantom(PhantomSpec(**spec))
    tes = ph.study.provenance.echo_times_ms
    assert [k for k in ph.study.maps if k.startswith("echo_")] == [f"echo_{n}" for n in range(1, 7)]
    for kind in plain.study.maps:  # the maps themselves do not change
        np.testing.assert_array_equal(ph.study.maps[kind].array, plain.study.maps[kind].array)
    tissue = ph.truth.tissue.array
    csf = [ph.study.maps[f"echo_{n}"].array[tissue == Tissue.CSF].mean() for n in range(1, 7)]
    # water only: mono-exponential decay with the CSF R2*
    r2_csf = -np.polyfit(np.asarray(tes) * 1e-3, np.log(csf), 1)[0]
    csf_r2 = ph.study.r2s.array[tissue == Tissue.CSF].mean()
    assert r2_csf == pytest.approx(csf_r2, rel=0.05)
    # marrow (about half fat) oscillates: at 1.5 T echo 4 (7.2 ms) is nearly out of phase and
    # echo 5 (9.2 ms) in phase, so the later echo is brighter despite the decay
    assert tes[3] == pytest.approx(7.2) and tes[4] == pytest.approx(9.2)
    core = tissue == Tissue.MARROW_CORE
    e4, e5 = (ph.study.maps[f"echo_{n}"].array[core].mean() for n in (4, 5))
    assert e4 < 0.6 * e5
    assert csf[3] > csf[4]


# -- options ---------------------------------------------------------------------------------------


def test_cemented_level_is_a_signal_void(options: PhantomStudy) -> None:
    lv = options.truth.level("L1")
    assert lv.cemented
    tissue = options.truth.tissue.array
    cement = tissue == Tissue.CEMENT
    assert cement.sum() > 100
    assert np.all(options.truth.body_labels.array[cement] == lv.label)
    signal = options.study.maps["water"].array + options.study.maps["fat"].array
    marrow = signal[(tissue == Tissue.MARROW_CORE)].mean()
    assert np.median(signal[cement]) < 0.02 * marrow


def test_focal_lesion_has_low_pdff(options: PhantomStudy) -> None:
    lv = options.truth.level("L3")
    assert lv.lesion and lv.lesion_centre_ras is not None
    assert 4.0 <= lv.lesion_radius_mm <= 6.0
    ijk = np.round(options.truth.body_labels.ras_to_ijk_points(lv.lesion_centre_ras)[0])
    i, j, k = (int(c) for c in ijk)
    assert options.truth.body_labels.array[k, j, i] == lv.label
    assert options.study.pdff.array[k, j, i] < lv.marrow_pdff_pct - 20
    assert options.truth.tissue.array[k, j, i] == Tissue.LESION
    n_lesion = np.count_nonzero(options.truth.tissue.array == Tissue.LESION)
    sphere_ml = 4 / 3 * math.pi * lv.lesion_radius_mm**3 / 1000
    assert n_lesion * options.truth.body_labels.voxel_volume_ml == pytest.approx(sphere_ml, rel=0.3)
    others = [x for x in options.truth.levels if x.level != "L3"]
    assert not any(x.lesion for x in others)


def test_options_do_not_change_other_levels(options: PhantomStudy, default: PhantomStudy) -> None:
    check_core_means(options, 1e-3, 1e-5)
    for name in ("T10", "T11", "L2", "L4", "L5", "S1"):
        a, b = options.truth.level(name), default.truth.level(name)
        assert a.marrow_pdff_pct == b.marrow_pdff_pct and a.width_mm == b.width_mm


def test_explicit_marrow_values_are_used() -> None:
    ph = generate_phantom(
        PhantomSpec(
            seed=2,
            in_plane_spacing_mm=2.0,
            marrow_pdff_pct={"L2": 33.0, "l3": 61.5},
            marrow_r2s_per_s={"L2": 55.0},
            fractured={"L3": 0.2},
        )
    )
    assert ph.truth.level("L2").marrow_pdff_pct == 33.0
    assert ph.truth.level("L2").marrow_r2s_per_s == 55.0
    # a given PDFF for a fractured level is the as-built value
    assert ph.truth.level("L3").marrow_pdff_pct == 61.5
    check_core_means(ph, 1e-3, 1e-5)


# -- determinism and geometry ----------------------------------------------------------------------


def test_deterministic_for_a_seed() -> None:
    spec = {"in_plane_spacing_mm": 2.0, "n_slices": 20, "lesion_level": "L2"}
    first = generate_phantom(PhantomSpec(seed=1, **spec))
    again = generate_phantom(PhantomSpec(seed=1, **spec))
    for kind, vol in first.study.maps.items():
        np.testing.assert_array_equal(vol.array, again.study.maps[kind].array, err_msg=kind)
    np.testing.assert_array_equal(first.truth.body_labels.array, again.truth.body_labels.array)
    np.testing.assert_array_equal(first.truth.tissue.array, again.truth.tissue.array)
    assert first.truth.level_table().equals(again.truth.level_table())
    other = generate_phantom(PhantomSpec(seed=2, **spec))
    assert not np.array_equal(first.study.pdff.array, other.study.pdff.array)
    assert not np.array_equal(first.truth.body_labels.array, other.truth.body_labels.array)
    assert not first.truth.level_table().equals(other.truth.level_table())


def test_noise_is_deterministic_and_seeded() -> None:
    spec = {"in_plane_spacing_mm": 3.0, "n_slices": 8, "snr": 20.0}
    a = generate_phantom(PhantomSpec(seed=5, **spec))
    b = generate_phantom(PhantomSpec(seed=5, **spec))
    c = generate_phantom(PhantomSpec(seed=6, **spec))
    np.testing.assert_array_equal(a.study.pdff.array, b.study.pdff.array)
    np.testing.assert_array_equal(a.study.r2s.array, b.study.r2s.array)
    assert not np.array_equal(a.study.maps["water"].array, c.study.maps["water"].array)


def test_axial_and_sagittal_agree() -> None:
    common = {"seed": 3, "in_plane_spacing_mm": 2.0, "slice_supersampling": 1}
    sag = generate_phantom(PhantomSpec(**common, orientation="sagittal"))
    axi = generate_phantom(PhantomSpec(**common, orientation="axial"))
    d = axi.study.grid.directions_ras
    np.testing.assert_allclose(d[:, 2], [0, 0, 1], atol=1e-12)  # slices along S-I
    t_sag, t_axi = sag.truth.level_table(), axi.truth.level_table()
    for col in ("marrow_pdff_pct", "marrow_r2s_per_s", "height_mm", "width_mm", "depth_mm"):
        np.testing.assert_allclose(t_sag[col], t_axi[col])
    np.testing.assert_allclose(np.stack(t_sag["centre_ras"]), np.stack(t_axi["centre_ras"]))
    np.testing.assert_allclose(t_sag["body_volume_ml"], t_axi["analytic_volume_ml"], rtol=0.04)
    np.testing.assert_allclose(t_axi["body_volume_ml"], t_axi["analytic_volume_ml"], rtol=0.04)
    check_core_means(axi, 1e-3, 1e-5)
    check_core_means(sag, 1e-3, 1e-5)


@pytest.mark.parametrize(
    ("orientation", "oblique_deg", "scoliosis_deg", "lordosis_deg"),
    [("sagittal", 15.0, 12.0, 40.0), ("axial", -12.0, -10.0, -20.0)],
)
def test_oblique_and_curved_geometry_is_consistent(
    orientation: str, oblique_deg: float, scoliosis_deg: float, lordosis_deg: float
) -> None:
    ph = generate_phantom(
        PhantomSpec(
            seed=7,
            orientation=orientation,
            oblique_deg=oblique_deg,
            scoliosis_deg=scoliosis_deg,
            lordosis_deg=lordosis_deg,
            in_plane_spacing_mm=2.0,
            slice_supersampling=1,
            n_slices=40 if orientation == "sagittal" else None,
        )
    )
    labels = ph.truth.body_labels
    d = labels.directions_ras
    np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-12)
    assert not np.allclose(np.abs(d), np.eye(3)[:, [1, 2, 0]] if orientation == "sagittal" else 1)
    for lv in ph.truth.levels:
        i, j, k = (int(c) for c in np.round(labels.ras_to_ijk_points(lv.centre_ras)[0]))
        assert labels.array[k, j, i] == lv.label, lv.level
        # the labelled voxels' centroid is the body centre
        kk, jj, ii = np.nonzero(labels.array == lv.label)
        centroid = labels.ijk_to_ras_points(np.c_[ii, jj, kk]).mean(axis=0)
        np.testing.assert_allclose(centroid, lv.centre_ras, atol=1.5)
    # the curve is followed: body axes tilt with lordosis and scoliosis
    sup = np.array([lv.superior_ras for lv in ph.truth.levels])
    tilt_ap = np.degrees(np.arcsin(sup[0, 1]) - np.arcsin(sup[-1, 1]))
    tilt_lr = np.degrees(np.arcsin(sup[0, 0]) - np.arcsin(sup[-1, 0]))
    assert tilt_ap == pytest.approx(-lordosis_deg, abs=3)
    assert tilt_lr == pytest.approx(-scoliosis_deg, abs=3)
    check_core_means(ph, 1e-3, 1e-5)


def test_spec_pickles_and_hashes() -> None:
    spec = PhantomSpec(seed=3, fractured={"L1": 0.2}, marrow_pdff_pct={"L2": 40.0})
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec and hash(again) == hash(spec)
    assert again.fractured["L1"] == 0.2 and hash(spec) != hash(PhantomSpec(seed=3))
    with pytest.raises(TypeError):
        spec.fractured["L2"] = 0.1  # type: ignore[index]


@pytest.mark.parametrize(
    "bad",
    [
        {"orientation": "coronal"},
        {"field_strength_t": 7.0},
        {"slice_thickness_mm": 5.0},
        {"marrow_pdff_pct": {"L3": 120.0}},
        {"marrow_pdff_pct": {"L7": 50.0}},
        {"fractured": {"L1": 0.9}},
        {"cemented": ("X1",)},
        {"snr": 0.0},
        {"bias_field": 1.2},
        {"fracture_shape": "burst"},
        {"seed": -1},
        {"seed": 1.5},
        {"marrow_heterogeneity_pct": 20.0},
    ],
)
def test_bad_spec_is_refused(bad: dict) -> None:
    with pytest.raises(InputError) as err:
        PhantomSpec(**bad)
    assert "PhantomSpec" in str(err.value)
