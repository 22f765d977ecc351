"""Per-level statistics (against pyradiomics and numpy), summaries, muscle PDFF and tables."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from RefractureRiskLib.core import InputError, LevelRoi, RoiFlag, RoiMethod, RoiSet, Study, Volume
from RefractureRiskLib.core.levels import level_label
from RefractureRiskLib.io.images import volume_to_sitk
from RefractureRiskLib.stats import (
    STATISTICS,
    Statistic,
    label_statistics,
    paraspinal_muscle_pdff,
    read_statistics,
    register_statistic,
    roi_statistics,
    statistics_definitions,
    statistics_wide,
    summarize_patient,
    summarize_statistics,
    write_statistics,
)
from RefractureRiskLib.stats import registry as registry_module

SHAPE = (12, 40, 36)  # [k, j, i]


def _rotation(deg_x: float, deg_z: float) -> np.ndarray:
    ax, az = np.radians([deg_x, deg_z])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ rx


def _grid(array: np.ndarray) -> Volume:
    """An oblique, anisotropic grid (0.9 x 1.1 x 3 mm)."""
    return Volume.from_geometry(array, (0.9, 1.1, 3.0), (12.0, -40.5, 100.0), _rotation(12, -7))


def _blob_labels(levels: list[str], seed: int = 0) -> np.ndarray:
    """Irregular (random ellipsoid-ish) ROIs, one per level, stacked along j."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    labels = np.zeros(SHAPE, np.int16)
    for n, level in enumerate(levels):
        cj = 4 + 4 * n
        rk, rj, ri = rng.uniform(2.5, 4.5), rng.uniform(1.2, 1.9), rng.uniform(4, 9)
        inside = ((k - 6) / rk) ** 2 + ((j - cj) / rj) ** 2 + ((i - 18) / ri) ** 2 <= 1
        inside &= rng.random(SHAPE) > 0.1  # holes: not a convex shape
        labels[inside] = level_label(level)
    return labels


def _study(pdff: np.ndarray, r2s: np.ndarray) -> Study:
    return Study({"pdff": _grid(pdff), "r2s": _grid(r2s)})


def _roiset(labels: np.ndarray, levels: list[LevelRoi]) -> RoiSet:
    return RoiSet(_grid(labels), tuple(levels), RoiMethod.AUTOMATIC, reader="test")


def _random_maps(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pdff = rng.normal(45, 12, SHAPE).astype(np.float32)
    r2s = rng.gamma(6, 10, SHAPE).astype(np.float32)
    return pdff, r2s


# -- against pyradiomics ---------------------------------------------------------------------
PYRADIOMICS_FEATURES = {
    "Mean": "mean",
    "Median": "median",
    "10Percentile": "p10",
    "90Percentile": "p90",
    "Minimum": "min",
    "Maximum": "max",
    "Variance": "variance",
    "StandardDeviation": "sd",
}


def _pyradiomics_extractor():
    radiomics = pytest.importorskip(
        "radiomics",
        reason="pyradiomics not installed (pip install numpy wheel; "
        "pip install --no-build-isolation pyradiomics==3.0.1)",
    )
    from radiomics import featureextractor

    radiomics.setVerbosity(logging.ERROR)
    extractor = featureextractor.RadiomicsFeatureExtractor(
        force2D=False, resampledPixelSpacing=None, additionalInfo=True
    )
    extractor.disableAllFeatures()
    extractor.enableFeaturesByName(firstorder=list(PYRADIOMICS_FEATURES))
    return extractor


@pytest.mark.parametrize("with_nan", [False, True])
def test_statistics_match_pyradiomics_first_order(with_nan: bool) -> None:
    extractor = _pyradiomics_extractor()
    levels = ["T12", "L1", "L2", "L3", "L4", "L5"]
    labels = _blob_labels(levels)
    pdff, r2s = _random_maps()
    if with_nan:  # NaN voxels (e.g. outside the fitted region) are left out
        pdff[labels == level_label("L2")] = np.where(
            np.arange((labels == level_label("L2")).sum()) % 7 == 0,
            np.nan,
            pdff[labels == level_label("L2")],
        )
    study = _study(pdff, r2s)
    roiset = _roiset(labels, [LevelRoi(lv, level_label(lv)) for lv in levels])
    table = roi_statistics(roiset, study)
    assert (table["n_nonfinite"].sum() > 0) == with_nan
    compared = 0
    for kind in ("pdff", "r2s"):
        values = study.maps[kind].array
        finite = np.isfinite(values)
        # pyradiomics cannot take NaN in the image at all; the equivalent reference for our
        # "NaN voxels are left out" rule is pyradiomics on the mask without those voxels.
        image = volume_to_sitk(study.maps[kind].with_array(np.where(finite, values, 0)))
        mask_image = volume_to_sitk(roiset.labelmap.with_array(np.where(finite, labels, 0)))
        for level in levels:
            ref = extractor.execute(image, mask_image, label=level_label(level))
            row = table[(table["level"] == level) & (table["map"] == kind)].iloc[0]
            for feature, key in PYRADIOMICS_FEATURES.items():
                expected = float(ref[f"original_firstorder_{feature}"])
                assert row[key] == pytest.approx(expected, rel=1e-6, abs=1e-12), (
                    kind,
                    level,
                    key,
                )
                compared += 1
            in_roi = labels == level_label(level)
            assert row["n_voxels"] == ref["diagnostics_Mask-original_VoxelNum"]
            assert row["n_nonfinite"] == np.count_nonzero(in_roi & ~finite)
            assert row["n_voxels"] + row["n_nonfinite"] == np.count_nonzero(in_roi)
    assert compared == 2 * len(levels) * len(PYRADIOMICS_FEATURES)


# -- against numpy (the statistics pyradiomics lacks, and edge sizes) -------------------------
def test_all_statistics_match_numpy_definitions() -> None:
    rng = np.random.default_rng(3)
    labels = np.zeros((5, 6, 7), np.int64)
    flat = labels.reshape(-1)
    sizes = {3: 1, 7: 2, 9: 3, 11: 4, 20: 57}  # tiny ROIs exercise the interpolation ends
    start = 0
    for label, size in sizes.items():
        flat[start : start + size] = label
        start += size
    rng.shuffle(flat)
    values = rng.normal(10, 3, labels.shape)
    table = label_statistics({"x": values}, labels, [*sizes, 99], voxel_volume_ml=0.002)
    for label in sizes:
        v = values[labels == label]
        row = table[table["label"] == label].iloc[0]
        expected = {
            "n_voxels": v.size,
            "volume_ml": v.size * 0.002,
            "mean": v.mean(),
            "sd": v.std(ddof=0),
            "variance": v.var(ddof=0),
            "median": np.median(v),
            "min": v.min(),
            "max": v.max(),
            **{f"p{q:02d}": np.percentile(v, q) for q in (5, 10, 25, 75, 90, 95)},
        }
        assert set(expected) == set(STATISTICS)
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=1e-12, abs=1e-12), (label, key)
    empty = table[table["label"] == 99].iloc[0]
    assert empty["n_voxels"] == 0 and empty["volume_ml"] == 0
    assert np.isnan(empty[["mean", "sd", "median", "p05", "min", "max"]].astype(float)).all()
    assert table["unit"].eq("au").all()
    assert label_statistics({"x": values}, labels, [], voxel_volume_ml=0.002).empty


def test_volume_uses_oblique_voxel_size() -> None:
    labels = np.zeros(SHAPE, np.int16)
    labels[3:6, 10:14, 5:15] = level_label("L3")
    study = _study(*_random_maps())
    table = roi_statistics(_roiset(labels, [LevelRoi("L3", level_label("L3"))]), study)
    assert set(table["n_voxels"]) == {3 * 4 * 10}
    assert table["volume_ml"].iloc[0] == pytest.approx(120 * 0.9 * 1.1 * 3.0 / 1000, rel=1e-12)
    assert list(table["unit"]) == ["pct", "per_s"]


def test_registry_entries_are_complete_and_extensible() -> None:
    for key, stat in STATISTICS.items():
        assert stat.key == key and stat.name and stat.formula and stat.unit
    assert STATISTICS["variance"].wide_column("r2s", "per_s") == "r2s_variance_per_s2"
    assert STATISTICS["volume_ml"].wide_column("pdff", "pct") == "pdff_volume_ml"
    with pytest.raises(ValueError, match="already registered"):
        register_statistic(STATISTICS["mean"])
    legend = statistics_definitions("per_s")
    assert [d["key"] for d in legend] == list(STATISTICS)
    assert {d["key"]: d["unit"] for d in legend}["variance"] == "per_s2"

    # Adding one entry is all it takes for a new column to appear.
    iqr = Statistic(
        key="iqr",
        name="Interquartile range",
        unit="map",
        formula="P(75) - P(25)",
        compute=lambda g: g.percentile(75) - g.percentile(25),
    )
    register_statistic(iqr)
    try:
        labels = _blob_labels(["L1"])
        pdff, r2s = _random_maps()
        table = roi_statistics(_roiset(labels, [LevelRoi("L1", 4)]), _study(pdff, r2s))
        v = pdff[labels == 4].astype(float)
        expected = np.percentile(v, 75) - np.percentile(v, 25)
        assert table.loc[table["map"] == "pdff", "iqr"].iloc[0] == pytest.approx(expected)
        assert "pdff_iqr_pct" in statistics_wide(table).columns
    finally:
        del registry_module._REGISTRY["iqr"]


def test_roi_statistics_rows_flags_and_bad_input() -> None:
    levels = ["T12", "L1", "L2"]
    labels = _blob_labels(levels)
    roiset = _roiset(
        labels,
        [
            LevelRoi("T12", level_label("T12")),
            LevelRoi("L1", level_label("L1"), frozenset({RoiFlag.FRACTURED, RoiFlag.INDEX})),
            LevelRoi("L2", level_label("L2"), frozenset({RoiFlag.LESION}), include_override=True),
        ],
    )
    study = _study(*_random_maps())
    table = roi_statistics(roiset, study)
    assert list(table["level"]) == ["T12", "T12", "L1", "L1", "L2", "L2"]
    assert list(table["map"]) == ["pdff", "r2s"] * 3
    by_level = table.drop_duplicates("level").set_index("level")
    assert by_level.at["L1", "flags"] == "fractured;index"
    assert not by_level.at["L1", "included"]
    assert by_level.at["L2", "included"] and by_level.at["T12", "included"]

    assert list(roi_statistics(roiset, study, maps=["r2s"])["map"].unique()) == ["r2s"]
    with pytest.raises(InputError, match="water"):
        roi_statistics(roiset, study, maps=["water"])
    moved = RoiSet(
        Volume(labels, _grid(labels).ijk_to_ras + np.diag([0, 0, 0, 0]) + _shift(5.0)),
        roiset.levels,
        RoiMethod.AUTOMATIC,
    )
    with pytest.raises(InputError, match="not on the study grid"):
        roi_statistics(moved, study)
    with pytest.raises(InputError, match="integers"):
        label_statistics({"x": np.zeros(SHAPE)}, np.zeros(SHAPE), [1], 1.0)


def _shift(mm: float) -> np.ndarray:
    m = np.zeros((4, 4))
    m[0, 3] = mm
    return m


def test_wide_table_has_unit_suffixed_columns() -> None:
    levels = ["L1", "L2"]
    labels = _blob_labels(levels)
    table = roi_statistics(
        _roiset(labels, [LevelRoi(lv, level_label(lv)) for lv in levels]),
        _study(*_random_maps()),
    )
    wide = statistics_wide(table)
    assert list(wide["level"]) == levels
    for column in ("pdff_mean_pct", "r2s_mean_per_s", "pdff_variance_pct2", "r2s_p95_per_s"):
        assert column in wide.columns
    long_l2 = table[(table["level"] == "L2") & (table["map"] == "r2s")].iloc[0]
    assert wide.set_index("level").at["L2", "r2s_median_per_s"] == long_l2["median"]


# -- summaries -----------------------------------------------------------------------------------
LEVEL_PDFF = {"T11": 38.0, "T12": 41.0, "L1": 44.0, "L2": 47.0, "L3": 50.0, "L4": 53.0, "L5": 56.0}
LEVEL_R2S = {"T11": 70.0, "T12": 66.0, "L1": 62.0, "L2": 58.0, "L3": 54.0, "L4": 50.0, "L5": 46.0}


def _constant_study(levels_present: list[str]) -> tuple[np.ndarray, Study]:
    """Each level's ROI holds its own constant PDFF and R2*, so every level mean is known."""
    labels = _blob_labels(levels_present, seed=5)
    pdff = np.full(SHAPE, 5.0, np.float32)
    r2s = np.full(SHAPE, 20.0, np.float32)
    for lv in levels_present:
        pdff[labels == level_label(lv)] = LEVEL_PDFF[lv]
        r2s[labels == level_label(lv)] = LEVEL_R2S[lv]
    return labels, _study(pdff, r2s)


def _levels(spec: dict[str, tuple[set[RoiFlag], bool | None]], present: list[str]):
    out = []
    for lv in present:
        flags, override = spec.get(lv, (set(), None))
        out.append(LevelRoi(lv, level_label(lv), frozenset(flags), override))
    return out


ALL = ["T11", "T12", "L1", "L2", "L3", "L4", "L5"]


def test_summary_global_and_adjacent_with_index_and_fracture() -> None:
    labels, study = _constant_study(ALL)
    spec = {"L2": ({RoiFlag.INDEX, RoiFlag.CEMENTED}, None), "L4": ({RoiFlag.FRACTURED}, None)}
    s = summarize_patient(_roiset(labels, _levels(spec, ALL)), study)
    assert s.pdff_global_L1L4_pct == pytest.approx(np.mean([44.0, 50.0]))
    assert s.r2s_global_L1L4_per_s == pytest.approx(np.mean([62.0, 54.0]))
    assert s.levels_used["pdff_global_L1L4_pct"] == ("L1", "L3")
    assert s.index_levels == ("L2",)
    assert s.pdff_adjacent_pct == pytest.approx(np.mean([44.0, 50.0]))
    assert s.r2s_adjacent_per_s == pytest.approx(np.mean([62.0, 54.0]))
    assert dict(s.excluded) == {"L2": "flagged: cemented, index", "L4": "flagged: fractured"}


def test_summary_one_eligible_lumbar_level_gives_nan_with_reason() -> None:
    present = ["T12", "L1", "L2", "L3"]
    labels, study = _constant_study(present)
    spec = {"L1": ({RoiFlag.FRACTURED}, None), "L2": ({RoiFlag.LESION}, None)}
    s = summarize_patient(_roiset(labels, _levels(spec, present)), study)
    assert np.isnan(s.pdff_global_L1L4_pct) and np.isnan(s.r2s_global_L1L4_per_s)
    note = next(n for n in s.notes if n.startswith("PDFF global"))
    assert "1 eligible level(s) (L3)" in note and "at least 2" in note
    assert "L4 has no ROI" in note and "L1 excluded" in note
    assert np.isnan(s.pdff_adjacent_pct)
    assert any("no index level" in n for n in s.notes)


def test_summary_index_at_l1_uses_t12_and_l2() -> None:
    labels, study = _constant_study(ALL)
    s = summarize_patient(_roiset(labels, _levels({"L1": ({RoiFlag.INDEX}, None)}, ALL)), study)
    assert s.levels_used["pdff_adjacent_pct"] == ("T12", "L2")
    assert s.pdff_adjacent_pct == pytest.approx(np.mean([41.0, 47.0]))
    assert s.r2s_adjacent_per_s == pytest.approx(np.mean([66.0, 58.0]))
    assert s.levels_used["pdff_global_L1L4_pct"] == ("L2", "L3", "L4")


def test_summary_two_index_levels_and_explicit_index_without_roi() -> None:
    labels, study = _constant_study(ALL)
    spec = {"L1": ({RoiFlag.INDEX}, None), "L2": ({RoiFlag.INDEX}, None)}
    s = summarize_patient(_roiset(labels, _levels(spec, ALL)), study)
    assert s.levels_used["r2s_adjacent_per_s"] == ("T12", "L3")

    present = ["L1", "L2", "L3", "L5"]  # L4 treated and not measured
    labels, study = _constant_study(present)
    s = summarize_patient(_roiset(labels, _levels({}, present)), study, index_levels=["l4"])
    assert s.index_levels == ("L4",)
    assert s.levels_used["pdff_adjacent_pct"] == ("L3", "L5")
    assert s.pdff_adjacent_pct == pytest.approx(np.mean([50.0, 56.0]))


def test_summary_honours_user_reinclusion_and_exclusion() -> None:
    labels, study = _constant_study(ALL)
    spec = {
        "L1": ({RoiFlag.INDEX}, None),
        "L2": ({RoiFlag.FRACTURED}, True),  # re-included by the user
        "T12": (set(), False),  # excluded by the user
    }
    s = summarize_patient(_roiset(labels, _levels(spec, ALL)), study)
    assert s.levels_used["pdff_adjacent_pct"] == ("L2",)
    assert s.pdff_adjacent_pct == pytest.approx(47.0)
    assert "L2" in s.levels_used["pdff_global_L1L4_pct"]
    assert any("L2 re-included by the user despite flags: fractured" in n for n in s.notes)
    assert dict(s.excluded)["T12"] == "excluded by the user"


def test_summary_all_excluded() -> None:
    labels, study = _constant_study(ALL)
    spec = {lv: ({RoiFlag.ARTEFACT}, None) for lv in ALL}
    spec["L3"] = ({RoiFlag.INDEX}, None)
    s = summarize_patient(_roiset(labels, _levels(spec, ALL)), study)
    values = [
        s.pdff_global_L1L4_pct,
        s.r2s_global_L1L4_per_s,
        s.pdff_adjacent_pct,
        s.r2s_adjacent_per_s,
    ]
    assert np.isnan(values).all()
    assert len(s.excluded) == len(ALL)
    assert any("no eligible level adjacent to L3" in n and "L2 excluded" in n for n in s.notes)
    record = s.as_record()
    assert (
        np.isnan(record["pdff_adjacent_pct"]) and "L3 (flagged: index)" in record["excluded_levels"]
    )


def test_summary_skips_level_without_valid_voxels() -> None:
    labels, study = _constant_study(ALL)
    r2s = study.r2s.array.copy()
    r2s[labels == level_label("L3")] = np.nan
    study = Study({"pdff": study.pdff, "r2s": study.r2s.with_array(r2s)})
    s = summarize_patient(_roiset(labels, _levels({}, ALL)), study)
    assert s.levels_used["pdff_global_L1L4_pct"] == ("L1", "L2", "L3", "L4")
    assert s.levels_used["r2s_global_L1L4_per_s"] == ("L1", "L2", "L4")
    assert s.r2s_global_L1L4_per_s == pytest.approx(np.mean([62.0, 58.0, 50.0]))


def test_summary_from_written_tables_equals_direct(tmp_path) -> None:
    labels, study = _constant_study(ALL)
    spec = {"L2": ({RoiFlag.INDEX}, None), "L3": ({RoiFlag.FRACTURED}, True)}
    table = roi_statistics(_roiset(labels, _levels(spec, ALL)), study)
    direct = summarize_statistics(table)
    for name in ("stats.csv", "stats.parquet"):
        back = read_statistics(write_statistics(table, tmp_path / name))
        pd.testing.assert_frame_equal(back, table, check_dtype=False)
        assert summarize_statistics(back) == direct


def test_summary_rejects_bad_tables() -> None:
    with pytest.raises(InputError, match="missing column"):
        summarize_statistics(pd.DataFrame({"level": ["L1"]}))
    labels, study = _constant_study(["L1"])
    table = roi_statistics(_roiset(labels, _levels({}, ["L1"])), study)
    with pytest.raises(InputError, match="index_levels"):
        summarize_statistics(table, index_levels=["L9"])
    bad = table.assign(level="X1")
    with pytest.raises(InputError, match="level"):
        summarize_statistics(bad)
    with pytest.raises(InputError, match="several rows for level L1"):
        summarize_statistics(pd.concat([table, table]))


def test_table_suffix_and_missing_file(tmp_path) -> None:
    with pytest.raises(InputError, match="suffix"):
        write_statistics(pd.DataFrame({"a": [1]}), tmp_path / "x.xlsx")
    with pytest.raises(InputError, match="not found"):
        read_statistics(tmp_path / "absent.csv")


# -- paraspinal muscle ---------------------------------------------------------------------------
def test_paraspinal_muscle_pdff() -> None:
    mask = np.zeros(SHAPE, np.int16)
    mask[2:10, 25:35, 2:10] = 1
    mask[2:10, 25:35, 26:34] = 2
    pdff = np.full(SHAPE, 60.0, np.float32)
    pdff[mask == 1] = 12.0
    pdff[mask == 2] = 18.0
    grid = _grid(pdff)
    result = paraspinal_muscle_pdff(grid, _grid(mask))
    assert result.left_pdff_pct == pytest.approx(12.0)
    assert result.right_pdff_pct == pytest.approx(18.0)
    assert result.mean_pdff_pct == pytest.approx(15.0)
    assert result.left_volume_ml == pytest.approx(8 * 10 * 8 * 0.9 * 1.1 * 3.0 / 1000)

    small = mask.copy()
    small[small == 2] = 0
    small[5, 30, 30] = 2
    thin = paraspinal_muscle_pdff(grid, small)
    assert np.isnan(thin.right_pdff_pct) and np.isnan(thin.mean_pdff_pct)
    assert any("right muscle mask" in n for n in thin.notes)
    with pytest.raises(InputError, match="not on the PDFF grid"):
        paraspinal_muscle_pdff(grid, Volume(mask, np.eye(4)))
