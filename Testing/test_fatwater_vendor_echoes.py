"""The echo DICOM reader on real vendor files (``../shared/data/dicom/dcm_qa_fmap``).

These are B0 field-map acquisitions, not fat-water protocols: Siemens stores the magnitude of
two echoes and a phase-difference image; GE stores its computed field map (Hz) and magnitude in
one series at one echo time; Philips stores magnitude and field-map (Hz) frames in one enhanced
file. None has the three echoes with phase that the separation needs, so ``read_echo_dicom``
must refuse each in one line saying why; the reader's steps (grouping by echo, per-frame
rescale, phase scaling, geometry) are checked against the files' own headers read with pydicom.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.io.dicom_scan import scan_files
from RefractureRiskLib.io.echo_dicom import (
    collect_echo_frames,
    field_map_reason,
    frame_component,
    phase_to_radians,
    read_component,
    read_echo_dicom,
)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@pytest.fixture(scope="module")
def siemens_magphase(fmap_root, tmp_path_factory) -> Path:
    """Siemens magnitude (echoes 1 and 2) and phase difference (echo 2) in one folder."""
    out = tmp_path_factory.mktemp("siemens")
    for series in ("2_gre_field_magph", "3_gre_field_magph"):
        (out / series).mkdir()
        for p in (fmap_root / "Siemens" / series).iterdir():
            os.symlink(p, out / series / p.name)
    return out


def _expected_grid(positions_lps, orientation, pixel_spacing) -> np.ndarray:
    """ijk -> RAS from the headers: i along a row, j down a column, k by position."""
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row, col)
    pos = np.asarray(positions_lps, float)
    dist = np.sort(pos @ normal)
    grid = np.eye(4)
    grid[:3, 0] = LPS_TO_RAS @ row * float(pixel_spacing[1])
    grid[:3, 1] = LPS_TO_RAS @ col * float(pixel_spacing[0])
    grid[:3, 2] = LPS_TO_RAS @ normal * float(np.median(np.diff(dist)))
    grid[:3, 3] = LPS_TO_RAS @ pos[np.argmin(pos @ normal)]
    return grid


def _sorted_headers(files: list[Path]) -> list[pydicom.Dataset]:
    ds = [pydicom.dcmread(f) for f in files]
    normal = np.cross(
        np.asarray(ds[0].ImageOrientationPatient[:3], float),
        np.asarray(ds[0].ImageOrientationPatient[3:], float),
    )
    return sorted(ds, key=lambda d: float(np.asarray(d.ImagePositionPatient, float) @ normal))


def test_siemens_echoes_grouped_read_and_placed_as_in_the_headers(siemens_magphase):
    found = collect_echo_frames(siemens_magphase)
    assert found.vendor == "SIEMENS" and found.field_strengths_t == {3.0}
    # InstanceNumber 1-36 repeats for both echoes: grouping must come from EchoNumbers
    assert {k: sorted(c) for k, c in found.by_echo.items()} == {
        1: ["magnitude"],
        2: ["magnitude", "phase"],
    }
    grids = []
    for echo, comps in found.by_echo.items():
        frames = comps["magnitude"]
        assert len(frames) == 36
        headers = _sorted_headers(sorted({fr.path for fr in frames}))
        assert {int(h.EchoNumbers) for h in headers} == {echo}
        # echo times as in each file's header
        for fr in frames:
            assert fr.echo_time_ms == pytest.approx(float(pydicom.dcmread(fr.path).EchoTime))
        values, grid, rule = read_component(frames, f"echo {echo}", "magnitude", found.vendor)
        assert rule is None
        stored = np.stack(
            [
                h.pixel_array * float(h.get("RescaleSlope", 1))
                + float(h.get("RescaleIntercept", 0))
                for h in headers
            ]
        )
        np.testing.assert_array_equal(values, stored)  # magnitude = the stored magnitude
        expected = _expected_grid(
            [h.ImagePositionPatient for h in headers],
            headers[0].ImageOrientationPatient,
            headers[0].PixelSpacing,
        )
        np.testing.assert_allclose(grid.ijk_to_ras, expected, atol=1e-4)
        assert grid.slice_spacing_mm == pytest.approx(3.6, abs=0.01)  # gap, not thickness 3
        grids.append(grid.ijk_to_ras)
    np.testing.assert_allclose(grids[0], grids[1])
    with pytest.raises(InputError, match=r"2 echo\(es\) found.*needs at least 3") as info:
        read_echo_dicom(siemens_magphase)
    assert "\n" not in str(info.value) and str(siemens_magphase) in str(info.value)


def test_siemens_phase_scaled_to_radians_and_gives_a_smooth_field_map(siemens_magphase):
    found = collect_echo_frames(siemens_magphase)
    echo2 = found.by_echo[2]
    phase, grid, rule = read_component(echo2["phase"], "echo 2 phase", "phase", found.vendor)
    mag, mag_grid, _ = read_component(echo2["magnitude"], "echo 2", "magnitude", found.vendor)
    assert rule == "12-bit signed (Siemens) * pi/4096"
    assert phase.min() >= -np.pi and phase.max() <= np.pi
    assert phase.max() - phase.min() > 6.0  # the full circle is used (noise outside the head)
    headers = _sorted_headers(sorted({fr.path for fr in echo2["phase"]}))
    modality = np.stack(
        [pydicom.pixels.apply_modality_lut(h.pixel_array, h).astype(float) for h in headers]
    )
    np.testing.assert_allclose(phase, modality * np.pi / 4096, atol=1e-6)
    np.testing.assert_allclose(grid.ijk_to_ras, mag_grid.ijk_to_ras)
    # field map from the two echoes: phase difference / (2 pi dTE), dTE from the headers
    te = {k: c["magnitude"][0].echo_time_ms for k, c in found.by_echo.items()}
    d_te_s = (te[2] - te[1]) * 1e-3
    assert d_te_s == pytest.approx(2.46e-3, abs=1e-5)
    field_hz = phase / (2 * np.pi * d_te_s)
    head = mag > 0.15 * np.percentile(mag, 99)
    assert 0.1 < head.mean() < 0.6
    step = np.abs(np.diff(field_hz, axis=2))
    inside = head[:, :, 1:] & head[:, :, :-1]
    outside = ~head[:, :, 1:] & ~head[:, :, :-1]
    # inside the head (where magnitude and phase must line up) the map is smooth, outside noise
    assert np.median(step[inside]) < 5.0 < 30.0 < np.median(step[outside])
    lo, hi = np.percentile(field_hz[head], [1, 99])
    assert -150.0 < lo < hi < 150.0 and hi - lo > 20.0  # a plausible 3 T head field


def test_siemens_phase_within_3142_is_not_taken_for_ge_milliradians(siemens_magphase):
    """The head's phase alone stays within +-3142: by its range it would be GE milliradians."""
    found = collect_echo_frames(siemens_magphase)
    echo2 = found.by_echo[2]
    phase, _, _ = read_component(echo2["phase"], "p", "phase", found.vendor)
    mag, _, _ = read_component(echo2["magnitude"], "m", "magnitude", found.vendor)
    stored = (phase * 4096 / np.pi)[mag > 0.15 * np.percentile(mag, 99)]
    assert np.abs(stored).max() < 3142
    rad, rule = phase_to_radians(stored, "x", "SIEMENS")
    assert rule.startswith("12-bit signed")
    np.testing.assert_allclose(rad, stored * np.pi / 4096, rtol=1e-6)
    assert phase_to_radians(stored, "x")[1].startswith("milliradians")  # the range alone


@pytest.mark.parametrize("series", ["2_3db0maps", "3_3db0maps", "6_CV_Neuro"])
def test_ge_b0_map_series_are_refused_with_the_reason(fmap_root, series):
    folder = fmap_root / "GE" / series
    frames = [fr for f in scan_files(folder).files for fr in f.frames]
    sample = pydicom.dcmread(frames[0].path)
    for fr in frames:
        assert fr.echo_time_ms == pytest.approx(float(sample.EchoTime))
        assert field_map_reason(fr) is not None
        assert frame_component(fr) is None  # (0043,102F) = 0 would call the Hz map magnitude
    # the series holds the Hz map and the magnitude at the same positions: two images per slice
    positions = {tuple(np.round(fr.position_lps, 3)) for fr in frames}
    assert len(positions) * 2 == len(frames)
    with pytest.raises(InputError, match="GE B0-map series") as info:
        read_echo_dicom(folder)
    msg = str(info.value)
    assert "\n" not in msg and str(folder) in msg
    assert str(sample[0x0019, 0x109C].value).strip() in msg  # the sequence name from the file
    assert f"{len(frames)} frame(s) left out" in msg


def test_philips_enhanced_magnitude_frames_and_field_map_refusal(fmap_root):
    folder = fmap_root / "Philips" / "fmap"
    (path,) = sorted(folder.iterdir())
    ds = pydicom.dcmread(path)
    per_frame = ds.PerFrameFunctionalGroupsSequence
    kinds = [pf.MRImageFrameTypeSequence[0].FrameType[3] for pf in per_frame]
    magnitude = [i for i, k in enumerate(kinds) if k == "M"]
    found = collect_echo_frames(folder)
    assert found.vendor.startswith("Philips") and found.field_strengths_t == {3.0}
    assert len(found.by_echo) == 1
    ((key, comps),) = found.by_echo.items()
    assert sorted(comps) == ["magnitude"]
    frames = comps["magnitude"]
    assert sorted(fr.frame_index for fr in frames) == magnitude
    n_field = len(per_frame) - len(magnitude)
    assert found.skipped == (
        f"{n_field} frame(s) left out: FrameType FIELD_MAP (scanner-computed B0 field map)",
    )
    for fr in frames:  # echo time per frame, from the frame's MR Echo sequence
        te = per_frame[fr.frame_index].MREchoSequence[0].EffectiveEchoTime
        assert fr.echo_time_ms == pytest.approx(float(te))
    values, grid, _ = read_component(frames, "philips magnitude", "magnitude", found.vendor)
    pixels = ds.pixel_array
    pos = [per_frame[i].PlanePositionSequence[0].ImagePositionPatient for i in magnitude]
    ori = per_frame[magnitude[0]].PlaneOrientationSequence[0].ImageOrientationPatient
    normal = np.cross(np.asarray(ori[:3], float), np.asarray(ori[3:], float))
    order = [magnitude[i] for i in np.argsort(np.asarray(pos, float) @ normal)]
    stored = []
    for i in order:  # each frame's own rescale (the field-map frames have another one)
        pvt = per_frame[i].PixelValueTransformationSequence[0]
        stored.append(pixels[i] * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept))
    np.testing.assert_allclose(values, np.stack(stored), rtol=1e-6)
    spacing = per_frame[magnitude[0]].PixelMeasuresSequence[0].PixelSpacing
    np.testing.assert_allclose(grid.ijk_to_ras, _expected_grid(pos, ori, spacing), atol=1e-3)
    with pytest.raises(InputError, match=r"1 echo\(es\) found.*FIELD_MAP.*at least 3") as info:
        read_echo_dicom(folder)
    assert "\n" not in str(info.value) and key == pytest.approx(1.52)
