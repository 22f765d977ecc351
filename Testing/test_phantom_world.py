"""The world generator: an independent synthetic lumbar IDEAL-IQ world with truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.phantom.truth import Tissue
from RefractureRiskLib.phantom.world import (
    TEST_SEEDS,
    FractureSpec,
    WorldSpec,
    generate_world,
    random_world_spec,
    world_set,
)
from RefractureRiskLib.phantom.world.canvas import WorldTissue

# Small, quick grids for the tests (still sagittal 2D with partial volume).
QUICK = {"fov_mm": 300.0, "pixel_mm": 2.0, "slice_thickness_mm": 4.0, "n_slices": 12}


@pytest.fixture(scope="module")
def noiseless():
    return generate_world(WorldSpec(seed=5, snr=None, **QUICK))


def test_same_seed_same_study_and_different_seed_differs():
    spec = random_world_spec(np.random.default_rng(3), 3)
    spec = dataclasses.replace(spec, **QUICK, orientation="sagittal")
    a, b = generate_world(spec), generate_world(spec)
    np.testing.assert_array_equal(a.study.pdff.array, b.study.pdff.array)
    np.testing.assert_array_equal(a.truth.body_labels.array, b.truth.body_labels.array)
    c = generate_world(dataclasses.replace(spec, seed=4))
    assert not np.array_equal(a.study.pdff.array, c.study.pdff.array)


def test_random_specs_are_deterministic_per_seed():
    assert random_world_spec(np.random.default_rng(9), 9) == random_world_spec(
        np.random.default_rng(9), 9
    )


def test_dev_and_test_seeds_are_disjoint_and_test_list_frozen():
    assert len(TEST_SEEDS) == 60
    assert TEST_SEEDS[0] == 1_000_000 and TEST_SEEDS[-1] == 1_000_059
    test = world_set("test")
    dev = world_set("dev", 100)
    assert [s.seed for s in test] == list(TEST_SEEDS)
    assert [s.seed for s in dev] == list(range(100))
    assert not {s.seed for s in dev} & {s.seed for s in test}
    assert len(world_set("test", 5)) == 5
    with pytest.raises(InputError, match="name"):
        world_set("train")


def test_core_pdff_is_the_level_value_in_a_noiseless_study(noiseless):
    pdff = noiseless.study.pdff.array
    r2s = noiseless.study.r2s.array
    assert len(noiseless.truth.levels) >= 6
    for lv in noiseless.truth.levels:
        core = noiseless.truth.core_mask(lv.level)
        if lv.truncated:
            continue
        assert core.sum() > 20, lv.level
        assert abs(pdff[core].mean() - lv.marrow_pdff_pct) < 0.5, lv.level
        assert abs(r2s[core].mean() - lv.marrow_r2s_per_s) < 0.5, lv.level
        # the core lies inside the level's body label
        assert (noiseless.truth.body_labels.array[core] == lv.label).all()


def test_labels_are_anatomical_and_bodies_ordered_cranio_caudally(noiseless):
    labels = [lv.label for lv in noiseless.truth.levels]
    assert labels == sorted(labels)
    z = [lv.centre_ras[2] for lv in noiseless.truth.levels]
    assert z == sorted(z, reverse=True)
    present = set(np.unique(noiseless.truth.body_labels.array)) - {0}
    assert present == set(labels)


def test_maps_only_spec_has_only_pdff_and_r2s_and_mask_zeroes_background():
    spec = WorldSpec(seed=2, snr=15.0, maps="pdff+r2s", vendor_mask=True, **QUICK)
    ls = generate_world(spec)
    assert set(ls.study.maps) == {"pdff", "r2s"}
    air = ls.truth.tissue.array == Tissue.AIR
    assert (ls.study.pdff.array[air] == 0).mean() > 0.95
    full = generate_world(dataclasses.replace(spec, maps="all", vendor_mask=False))
    assert set(full.study.maps) == {"pdff", "r2s", "water", "fat", "in_phase", "out_phase"}


def test_levels_cut_by_the_field_of_view_are_truncated():
    spec = WorldSpec(seed=1, top_level="T12", bottom_level="L5", **{**QUICK, "fov_mm": 220.0})
    ls = generate_world(spec)
    levels = ls.truth.levels
    edge = [levels[0], levels[-1]]
    assert all(lv.truncated for lv in edge), [(lv.level, lv.truncated) for lv in levels]
    assert not any(lv.truncated for lv in levels[2:-2])


def test_narrow_slab_truncates_laterally():
    ls = generate_world(WorldSpec(seed=1, **{**QUICK, "n_slices": 2}))
    assert all(lv.truncated for lv in ls.truth.levels)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("orientation", "coronal"),
        ("snr", -3.0),
        ("slice_thickness_mm", 0.0),
        ("top_level", "L3"),
        ("maps", "pdff"),
        ("marrow_pdff_pct", 120.0),
        ("cement_levels", ("C5",)),
        ("fractures", (FractureSpec("L2", "squash"),)),
        ("transitional", "six_lumbar"),
    ],
)
def test_bad_options_are_refused_naming_the_field(field, value):
    with pytest.raises(InputError, match=field):
        WorldSpec(**{field: value})


def test_vendor_mask_needs_maps_only():
    with pytest.raises(InputError, match="vendor_mask"):
        WorldSpec(vendor_mask=True)


def test_surroundings_gas_and_fat_mixed_blobs_in_front_of_the_spine():
    # a wide slab (30 x 4.4 mm) so that the kidneys are in it
    quick = {**QUICK, "n_slices": 30}
    spec = WorldSpec(seed=11, n_bowel_loops=8, bowel_gas_frac=1.0, n_fat_blobs=3, **quick)
    ls = generate_world(spec)
    tissue = ls.truth.tissue.array
    ras_y = _ras_y(ls.truth.tissue)
    bodies = ls.truth.body_labels.array > 0
    front = ras_y[bodies].max()
    gas = tissue == WorldTissue.BOWEL_GAS
    blobs = tissue == WorldTissue.BOWEL_FAT_MIXED
    assert gas.sum() > 50 and (ras_y[gas] > front).mean() > 0.9
    assert blobs.sum() > 200 and (ras_y[blobs] > front - 10).mean() > 0.9
    pdff = ls.study.pdff.array
    assert 15 < np.median(pdff[blobs]) < 65
    for kind in (Tissue.SUBCUTANEOUS_FAT, Tissue.MUSCLE, Tissue.BLOOD, WorldTissue.KIDNEY):
        assert (tissue == kind).sum() > 100, kind


def test_fracture_and_cement_truth():
    spec = WorldSpec(seed=4, fractures=(FractureSpec("L1", "wedge", 0.4, True, 20.0),),
                     cement_levels=("L1",), **QUICK)  # fmt: skip
    ls = generate_world(spec)
    l1 = ls.truth.level("L1")
    assert l1.fractured and l1.cemented and l1.height_loss_frac == 0.4
    assert l1.height_anterior_mm < l1.height_posterior_mm
    assert abs(l1.height_mm - l1.nominal_height_mm * 0.6) < 1.5
    assert l1.oedema_pdff_drop_pct == 20.0
    cement = (ls.truth.tissue.array == Tissue.CEMENT) & (ls.truth.body_labels.array == l1.label)
    assert cement.sum() > 5
    assert ls.conditions["pathology"] == "fracture+cement"


def test_conditions_and_timing_of_a_typical_study():
    import time

    spec = WorldSpec(seed=8, snr=12.0, fov_mm=320.0, pixel_mm=1.25, n_slices=20)
    t0 = time.perf_counter()
    ls = generate_world(spec)
    elapsed = time.perf_counter() - t0
    assert ls.study.pdff.shape == (20, 256, 256)
    assert elapsed < 6.0
    c = ls.conditions
    assert c["orientation"] == "sagittal" and c["field"] == "1.5T" and c["snr"] == "10-20"
    assert c["slice"] == "4-6mm" and c["maps"] == "all" and "-" in c["coverage"]


def _ras_y(vol):
    nk, nj, ni = vol.shape
    kk, jj, ii = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    m = vol.ijk_to_ras
    return m[1, 0] * ii + m[1, 1] * jj + m[1, 2] * kk + m[1, 3]


@pytest.mark.parametrize("kind", ["sacralised_L5", "lumbarised_S1"])
def test_transitional_anatomy_keeps_anatomical_labels(kind):
    ls = generate_world(WorldSpec(seed=6, transitional=kind, **QUICK))
    names = [lv.level for lv in ls.truth.levels]
    assert "L5" in names and "S1" in names
    assert ls.truth.level("L5").label == 8 and ls.truth.level("S1").label == 9
    assert ls.conditions["transitional"] == kind
    disc = ls.truth.tissue.array == Tissue.DISC
    assert disc.any()
