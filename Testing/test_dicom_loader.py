"""load_study round trips through the vendor DICOM writer, unit handling, study selection,
resampling, compressed transfer syntaxes, NIfTI/NRRD maps with explicit units, and ``inspect``."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLosslessSV1, RLELossless

from RefractureRiskLib.cli import main
from RefractureRiskLib.core import InputError, PatientInfo, Study, StudyProvenance, Volume
from RefractureRiskLib.io.dicom_load import load_study
from RefractureRiskLib.io.dicom_series import scan_dicom
from RefractureRiskLib.io.images import write_image
from RefractureRiskLib.io.study_files import load_map_files
from RefractureRiskLib.maps.units import (
    detect_pdff_unit,
    pdff_percent,
    t2star_ms_to_r2s_per_s,
    unit_from_header,
)
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study
from Testing.conftest import SHARED_DATA

SHAPE = (6, 20, 24)  # [k, j, i]: small, so each write/load takes a few hundredths of a second


def _rotation(deg_about_z: float, deg_about_x: float) -> np.ndarray:
    a, b = np.radians(deg_about_z), np.radians(deg_about_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def sagittal_affine() -> np.ndarray:
    """Sagittal grid like the phantom's: k along L-R, j S->I, i A->P (RAS, mm)."""
    return np.array(
        [[0, 0, 3.0, -9.0], [-1.25, 0, 0, 15.0], [0, -1.25, 0, 40.0], [0, 0, 0, 1]], float
    )


def oblique_axial_affine() -> np.ndarray:
    mat = np.eye(4)
    mat[:3, :3] = _rotation(12.0, 7.0) @ np.diag([0.9, 1.1, 4.0])
    mat[:3, 3] = (-11.5, 22.25, -130.0)
    return mat


def make_study(
    affine: np.ndarray | None = None,
    seed: int = 0,
    pdff_max: float = 100.0,
    shape: tuple[int, int, int] = SHAPE,
) -> Study:
    """A small Study with known maps: PDFF 0..pdff_max %, R2* 20..200 1/s, magnitudes."""
    rng = np.random.default_rng(seed)
    pdff = rng.uniform(0, pdff_max, shape)
    pdff.flat[0], pdff.flat[1] = 0.0, pdff_max
    r2s = rng.uniform(20, 200, shape)
    water = rng.uniform(50, 1000, shape)
    aff = sagittal_affine() if affine is None else affine
    maps = {
        "pdff": pdff,
        "r2s": r2s,
        "water": water,
        "fat": water * pdff / 100.0,
        "in_phase": water * 1.1,
        "out_phase": water * 0.4,
    }
    return Study(
        {k: Volume(v, aff) for k, v in maps.items()},
        StudyProvenance(field_strength_t=3.0),
        PatientInfo(age_years=71, sex="F"),
    )


def expected(written, kind: str, truth: np.ndarray) -> np.ndarray:
    """What a correct loader returns: the writer's stored integers decoded to library units."""
    enc = written.by_kind(kind).encoding
    return enc.to_library(enc.to_stored(truth)[0])


VENDOR_CASES = [
    ("GE", {}),
    ("GE", {"pdff_storage": "fraction"}),
    ("GE", {"pdff_storage": "percent"}),
    ("GE", {"pdff_storage": "permille"}),
    ("Siemens", {}),
    ("Siemens", {"pdff_storage": "percent_rescaled"}),
    ("Philips", {}),
    ("Philips", {"pdff_storage": "fraction"}),
    ("Philips", {"philips_enhanced": True}),
    ("Philips", {"philips_mixed_series": True}),
    ("Philips", {"philips_mixed_series": True, "r2s_as_t2star": True}),
    ("Philips", {"philips_enhanced": True, "philips_mixed_series": True}),
    ("Philips", {"philips_enhanced": True, "r2s_as_t2star": True}),
]


@pytest.mark.parametrize(("vendor", "options"), VENDOR_CASES)
def test_every_vendor_style_and_scaling_loads_to_the_true_maps(tmp_path, vendor, options):
    study = make_study()
    written = write_dicom_study(study, tmp_path / "dicom", vendor=vendor, seed=3, **options)
    loaded = load_study(tmp_path / "dicom")
    assert set(loaded.maps) == set(study.maps)
    for kind, truth_vol in study.maps.items():
        got = loaded.maps[kind]
        truth = np.asarray(truth_vol.array)
        np.testing.assert_allclose(got.ijk_to_ras, truth_vol.ijk_to_ras, atol=1e-4)
        # Exactly the stored values decoded (float32 precision) ...
        np.testing.assert_allclose(got.array, expected(written, kind, truth), rtol=2e-6, atol=2e-5)
        # ... and within the storage quantisation of the truth.
        enc = written.by_kind(kind).encoding
        if not enc.reciprocal_ms:
            assert np.max(np.abs(got.array - truth)) <= enc.library_step * 1.0001 + 1e-5
    prov = loaded.provenance
    assert prov.vendor == vendor
    assert prov.field_strength_t == pytest.approx(3.0)
    assert prov.study_uid == written.study_instance_uid
    assert prov.frame_of_reference_uid == written.frame_of_reference_uid
    if not options.get("philips_enhanced"):  # the writer puts no echo time in enhanced files
        assert prov.echo_times_ms, "echo times recorded"
    for kind in study.maps:
        sp = prov.series[kind]
        assert sp.series_uid == written.by_kind(kind).series_instance_uid
        assert sp.classified_by and sp.scaling
        assert not sp.resampled
    assert loaded.patient.sex == "F"
    assert loaded.patient.age_years == pytest.approx(71, abs=1)


def test_scaling_provenance_names_each_conversion(tmp_path):
    study = make_study()
    write_dicom_study(study, tmp_path / "s", vendor="Siemens")
    prov = load_study(tmp_path / "s").provenance
    text = " | ".join(prov.series["pdff"].scaling)
    assert "permille" in text and "percent" in text and "value range" in text
    write_dicom_study(study, tmp_path / "p", vendor="Philips", r2s_as_t2star=True)
    prov = load_study(tmp_path / "p").provenance
    assert "real-world value unit '%'" in " ".join(prov.series["pdff"].scaling)
    r2s_text = " ".join(prov.series["r2s"].scaling)
    assert "T2* (ms) -> R2* (1/s)" in r2s_text
    assert "T2_STAR" in prov.series["r2s"].classified_by


def test_philips_mixed_series_is_split_by_frame_type_and_listed(tmp_path):
    write_dicom_study(
        make_study(),
        tmp_path / "d",
        vendor="Philips",
        philips_enhanced=True,
        philips_mixed_series=True,
    )
    report = scan_dicom(tmp_path / "d")
    (st,) = report.studies
    mixed = [s for s in st.series if s.header.series_description == "mDIXON-Quant_BH"]
    assert sorted(s.kind for s in mixed) == ["fat", "pdff", "water"]
    assert len({s.series_uid for s in mixed}) == 1
    assert all(s.geometry is not None and s.geometry.shape == SHAPE for s in mixed)


def physically_resampled(truth: Volume, loaded: Volume) -> np.ndarray:
    """``truth`` values at ``loaded``'s voxel centres; the grids must share voxel centres
    (same lattice, possibly with axes flipped or swapped), else the test fails."""
    mapping = truth.ras_to_ijk @ loaded.ijk_to_ras
    np.testing.assert_allclose(mapping, np.round(mapping), atol=1e-4)
    nk, nj, ni = loaded.shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    ijk1 = np.stack([i, j, k, np.ones_like(i)], axis=-1) @ np.round(mapping).T
    ti, tj, tk = (ijk1[..., n].astype(int) for n in range(3))
    return np.asarray(truth.array)[tk, tj, ti]


@pytest.mark.parametrize("affine", [oblique_axial_affine(), np.diag([-0.8, 0.8, 2.5, 1.0])])
def test_geometry_is_exact_for_oblique_and_left_handed_grids(tmp_path, affine):
    """A left-handed grid comes back with k along the DICOM slice normal (row x column): the
    same voxels in space, with the slice axis reversed."""
    study = make_study(affine)
    write_dicom_study(study, tmp_path / "d", vendor="GE")
    loaded = load_study(tmp_path / "d")
    assert np.linalg.det(loaded.pdff.ijk_to_ras[:3, :3]) > 0  # k along row x column
    for kind in study.maps:
        got = loaded.maps[kind]
        np.testing.assert_allclose(got.spacing_mm, study.maps[kind].spacing_mm, atol=1e-5)
        truth = physically_resampled(study.maps[kind], got)
        step = 0.05 if kind in ("pdff", "r2s") else 0.2
        np.testing.assert_allclose(got.array, truth, atol=step + 1e-4)


def test_slices_are_ordered_by_position_not_instance_number(tmp_path):
    study = make_study()
    written = write_dicom_study(study, tmp_path / "d", vendor="GE")
    files = written.by_kind("pdff").files
    for n, path in enumerate(files):  # reverse InstanceNumber and shuffle file names
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = len(files) - n
        path.unlink()
        ds.save_as(path.with_name(f"x{(n * 7) % len(files)}_{n}"))
    loaded = load_study(tmp_path / "d")
    np.testing.assert_allclose(loaded.pdff.array, study.pdff.array, atol=0.05 + 1e-5)
    np.testing.assert_allclose(loaded.pdff.ijk_to_ras, study.pdff.ijk_to_ras, atol=1e-4)


def jpeg_lossless_sv1(image: np.ndarray, precision: int = 16) -> bytes:
    """Minimal JPEG lossless (ITU T.81 process 14, predictor 1) encoder for one grey frame."""
    rows, cols = image.shape
    x = image.astype(np.int64)
    out = bytearray(b"\xff\xd8")
    out += b"\xff\xc3" + (11).to_bytes(2, "big") + bytes([precision])
    out += rows.to_bytes(2, "big") + cols.to_bytes(2, "big") + bytes([1, 1, 0x11, 0])
    bits = [0] * 16
    bits[4] = 17  # categories 0..16, all with 5-bit codes: symbol s has code s
    out += b"\xff\xc4" + (3 + 16 + 17).to_bytes(2, "big") + bytes([0x00]) + bytes(bits)
    out += bytes(range(17))
    out += b"\xff\xda" + (8).to_bytes(2, "big") + bytes([1, 1, 0x00, 1, 0, 0])
    acc, nbits, data = 0, 0, bytearray()

    def put(value: int, n: int) -> None:
        nonlocal acc, nbits
        acc = (acc << n) | (value & ((1 << n) - 1))
        nbits += n
        while nbits >= 8:
            byte = (acc >> (nbits - 8)) & 0xFF
            data.append(byte)
            if byte == 0xFF:
                data.append(0)
            nbits -= 8
        acc &= (1 << nbits) - 1

    mod = 1 << 16
    for r in range(rows):
        for c in range(cols):
            if r == 0 and c == 0:
                pred = 1 << (precision - 1)
            elif r == 0:
                pred = x[r, c - 1]
            elif c == 0:
                pred = x[r - 1, c]
            else:
                pred = x[r, c - 1]
            d = int(x[r, c] - pred) % mod
            if d >= mod // 2:
                d -= mod
            if d == -(mod // 2):
                put(16, 5)
                continue
            s = abs(d).bit_length()
            put(s, 5)
            if s:
                put(d if d >= 0 else d + (1 << s) - 1, s)
    if nbits:
        put((1 << (8 - nbits)) - 1, 8 - nbits)
    return bytes(out + data + b"\xff\xd9")


def _compress(path, syntax) -> None:
    ds = pydicom.dcmread(path)
    if syntax == JPEGLosslessSV1:
        ds.PixelData = encapsulate([jpeg_lossless_sv1(ds.pixel_array)])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.file_meta.TransferSyntaxUID = syntax
    else:
        ds.compress(syntax)
    ds.save_as(path)


def test_compressed_transfer_syntaxes_decode_to_the_same_values(tmp_path):
    """RLE, JPEG lossless (process 14 SV1, encoded here) and JPEG-LS (when pyjpegls is there
    to encode) decode through pydicom's plugins to exactly the uncompressed values."""
    study = make_study()
    written = write_dicom_study(study, tmp_path / "d", vendor="GE")
    plain = load_study(tmp_path / "d")
    syntaxes = [RLELossless, JPEGLosslessSV1]
    try:
        import jpeg_ls  # noqa: F401  (pyjpegls: pydicom's JPEG-LS encoder)

        syntaxes.append(pydicom.uid.JPEGLSLossless)
    except ImportError:
        pass
    files = written.by_kind("pdff").files + written.by_kind("r2s").files
    for n, path in enumerate(files):
        _compress(path, syntaxes[n % len(syntaxes)])
    report = scan_dicom(tmp_path / "d")
    pdff = next(s for s in report.studies[0].series if s.kind == "pdff")
    assert {f.transfer_syntax for f in pdff.frames} == {str(s) for s in syntaxes}
    assert all(f.pixel_offset is None for f in pdff.frames)
    again = load_study(tmp_path / "d")
    for kind in plain.maps:
        np.testing.assert_array_equal(again.maps[kind].array, plain.maps[kind].array)


def test_several_studies_are_listed_and_the_chosen_one_is_loaded(tmp_path):
    a = write_dicom_study(make_study(seed=1), tmp_path / "root" / "a", vendor="GE", seed=1)
    b = write_dicom_study(make_study(seed=2), tmp_path / "root" / "b", vendor="Siemens", seed=2)
    with pytest.raises(InputError) as err:
        load_study(tmp_path / "root")
    msg = str(err.value)
    assert "2 studies in this folder" in msg
    assert a.study_instance_uid in msg and b.study_instance_uid in msg
    by_uid = load_study(tmp_path / "root", study=b.study_instance_uid)
    assert by_uid.provenance.vendor == "Siemens"
    index = [s.study_uid for s in scan_dicom(tmp_path / "root").studies].index(a.study_instance_uid)
    by_index = load_study(tmp_path / "root", study=index)
    assert by_index.provenance.study_uid == a.study_instance_uid
    np.testing.assert_allclose(by_index.pdff.array, make_study(seed=1).pdff.array, atol=0.051)


def test_map_on_another_grid_is_resampled_onto_the_pdff_grid_and_flagged(tmp_path):
    aff = sagittal_affine()
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for n in SHAPE), indexing="ij")
    ramp = 40 + 2.0 * i + 3.0 * j + 1.5 * k  # linear in space: linear resampling is exact
    pdff_study = Study({"pdff": Volume(k * 0 + 50.0, aff)}, StudyProvenance(field_strength_t=1.5))
    coarse = aff.copy()
    coarse[:3, :3] = aff[:3, :3] @ np.diag([2.0, 2.0, 1.0])  # half resolution in-plane
    coarse_shape = (SHAPE[0], SHAPE[1] // 2 + 1, SHAPE[2] // 2 + 1)
    kk, jj, ii = np.meshgrid(*(np.arange(n, dtype=float) for n in coarse_shape), indexing="ij")
    r2s_coarse = 40 + 2.0 * (2 * ii) + 3.0 * (2 * jj) + 1.5 * kk
    r2s_study = Study({"r2s": Volume(r2s_coarse, coarse)}, StudyProvenance(field_strength_t=1.5))
    write_dicom_study(pdff_study, tmp_path / "d" / "a", vendor="GE", kinds=["pdff"], seed=5)
    write_dicom_study(r2s_study, tmp_path / "d" / "b", vendor="GE", kinds=["r2s"], seed=5)
    loaded = load_study(tmp_path / "d")
    assert loaded.r2s.same_grid(loaded.pdff)
    sp = loaded.provenance.series["r2s"]
    assert sp.resampled and any("resampled" in s for s in sp.scaling)
    assert not loaded.provenance.series["pdff"].resampled
    inside = np.isfinite(loaded.r2s.array)
    assert inside.sum() > 0.8 * inside.size
    np.testing.assert_allclose(loaded.r2s.array[inside], ramp[inside], atol=0.06)


@pytest.fixture(scope="module")
def phantom_study():
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom

    spec = PhantomSpec(
        seed=4,
        matrix_size=(48, 40),
        n_slices=6,
        in_plane_spacing_mm=4.0,
        slice_thickness_mm=4.0,
        field_strength_t=3.0,
        fractured={"L1": 0.3},
        snr=60,
    )
    return generate_phantom(spec)


@pytest.mark.parametrize(
    ("vendor", "options"),
    [
        ("GE", {}),
        ("Siemens", {}),
        ("Philips", {"philips_enhanced": True, "philips_mixed_series": True}),
        ("Philips", {"r2s_as_t2star": True}),
    ],
)
def test_phantom_study_round_trip(tmp_path, phantom_study, vendor, options):
    """The phantom's true maps come back (within the storage quantisation) on its grid."""
    written = write_dicom_study(phantom_study.study, tmp_path / "d", vendor=vendor, **options)
    loaded = load_study(tmp_path / "d")
    assert loaded.provenance.field_strength_t == pytest.approx(3.0)
    for kind, vol in phantom_study.study.maps.items():
        assert loaded.maps[kind].same_grid(vol)
        truth = np.asarray(vol.array, dtype=np.float64)
        np.testing.assert_allclose(
            loaded.maps[kind].array, expected(written, kind, truth), rtol=2e-6, atol=2e-5
        )
        enc = written.by_kind(kind).encoding
        if not enc.reciprocal_ms:
            low = -np.inf if enc.clip_low is None else enc.clip_low
            high = np.inf if enc.clip_high is None else enc.clip_high
            unclipped = (truth >= low) & (truth <= high)
            err = np.abs(loaded.maps[kind].array - truth)[unclipped]
            assert err.max() <= enc.library_step * 1.0001 + 1e-4


# -- units ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "unit"), [(0.01, "fraction"), (1.0, "percent"), (10.0, "permille")]
)
def test_pdff_unit_is_detected_from_the_range(scale, unit):
    values = np.linspace(0, 95, 500) * scale
    assert detect_pdff_unit(values).unit == unit
    pct, text = pdff_percent(values)
    np.testing.assert_allclose(pct, np.linspace(0, 95, 500), rtol=1e-5, atol=1e-4)
    assert unit in text


def test_ambiguous_pdff_range_is_an_error_and_an_explicit_unit_resolves_it():
    values = np.linspace(0, 8.0, 100)  # 0-8: too big for a fraction, too small for percent
    with pytest.raises(InputError, match=r"ambiguous PDFF unit.*pdff_unit"):
        detect_pdff_unit(values)
    pct, text = pdff_percent(values, unit="permille")
    assert pct.max() == pytest.approx(0.8) and "explicitly" in text


def test_header_unit_must_agree_with_the_values():
    assert unit_from_header("%") == "percent"
    assert unit_from_header(None, "PCT") == "percent"
    assert unit_from_header("1") is None
    with pytest.raises(InputError, match="header says percent"):
        detect_pdff_unit(np.linspace(0, 900, 50), header_unit="percent", header_evidence="x")


def test_t2star_to_r2s():
    np.testing.assert_allclose(t2star_ms_to_r2s_per_s([10.0, 25.0, 0.0])[:2], [100.0, 40.0])
    assert np.isnan(t2star_ms_to_r2s_per_s([0.0])[0])


# -- NIfTI/NRRD maps -------------------------------------------------------------------------------


def test_nifti_and_nrrd_maps_with_explicit_units(tmp_path):
    study = make_study(oblique_axial_affine())
    pdff_path = write_image(study.pdff.with_array(study.pdff.array / 100.0), tmp_path / "ff.nii.gz")
    t2s = 1000.0 / np.asarray(study.r2s.array)
    r2s_path = write_image(study.r2s.with_array(t2s), tmp_path / "t2s.nrrd")
    loaded = load_map_files(
        {"pdff": pdff_path, "r2s": r2s_path},
        {"pdff": "fraction", "r2s": "t2star_ms"},
        vendor="GE",
        field_strength_t=1.5,
    )
    np.testing.assert_allclose(loaded.pdff.array, study.pdff.array, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(loaded.r2s.array, study.r2s.array, rtol=1e-5)
    assert loaded.pdff.same_grid(study.pdff, tol_mm=1e-3)
    assert "fraction -> percent" in " ".join(loaded.provenance.series["pdff"].scaling)
    with pytest.raises(InputError, match="unit of the pdff map must be given"):
        load_map_files({"pdff": pdff_path}, {})
    percent_path = write_image(study.pdff, tmp_path / "pct.nii")
    with pytest.raises(InputError, match=r"outside -10\.\.110 %"):
        load_map_files({"pdff": percent_path}, {"pdff": "fraction"})


# -- inspect --------------------------------------------------------------------------------


def test_inspect_lists_every_series_and_exits_0_with_a_usable_pdff(tmp_path, capsys):
    write_dicom_study(make_study(), tmp_path / "d", vendor="Philips", philips_mixed_series=True)
    (tmp_path / "d" / "notes.txt").write_text("not dicom")
    assert main(["inspect", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    for kind in ("pdff", "r2s", "water", "fat", "in_phase", "out_phase"):
        assert f" {kind} " in out
    assert "Usable PDFF map" in out
    assert "notes.txt: not a DICOM file" in out
    assert "SYNTHETIC^PHANTOM" not in out and "SYN-" not in out  # no patient identifiers


def test_inspect_exits_non_zero_without_pdff(tmp_path, capsys):
    write_dicom_study(make_study(), tmp_path / "d", vendor="GE", kinds=["water", "r2s"])
    assert main(["inspect", str(tmp_path / "d")]) == 1
    out = capsys.readouterr().out
    assert "No usable PDFF map" in out and "no PDFF (fat fraction) series" in out
    assert main(["inspect", str(tmp_path / "missing")]) == 2


def test_duplicate_copies_of_a_file_are_ignored_with_a_note(tmp_path):
    written = write_dicom_study(make_study(), tmp_path / "d", vendor="GE", kinds=["pdff"])
    src = written.by_kind("pdff").files[2]
    shutil.copy(src, tmp_path / "d" / "copy_of_slice")
    report = scan_dicom(tmp_path / "d")
    assert any("duplicate copy of SOP instance" in s.reason for s in report.skipped)
    assert load_study(tmp_path / "d").pdff.shape == SHAPE


def test_scan_reads_headers_only(tmp_path, monkeypatch):
    write_dicom_study(make_study(), tmp_path / "d", vendor="GE")
    write_dicom_study(make_study(), tmp_path / "e", vendor="Philips", philips_enhanced=True)
    # An implicit-VR file goes through pydicom rather than the fast reader.
    shutil.copy(get_testdata_file("MR_small_implicit.dcm"), tmp_path / "implicit")
    calls, pixel_reads = [], []
    real = pydicom.filereader.read_partial

    def spy(fp, stop_when=None, **kwargs):
        calls.append(stop_when is not None and stop_when(0x7FE00010, "OW", 0))
        return real(fp, stop_when, **kwargs)

    # dicom_scan imports read_partial when it needs it (a stop before the pixel data)
    monkeypatch.setattr(pydicom.filereader, "read_partial", spy)
    monkeypatch.setattr(
        "RefractureRiskLib.io.dicom_volume.np.fromfile", lambda *a, **k: pixel_reads.append(a)
    )
    scan_dicom(tmp_path)
    assert calls and all(calls)  # pydicom reads headers only
    assert not pixel_reads


def test_fast_header_reader_agrees_with_pydicom(tmp_path, monkeypatch):
    """The struct-based header reader gives exactly what the pydicom path gives."""
    import RefractureRiskLib.io.dicom_scan as scan_module
    from RefractureRiskLib.io.dicom_fastheader import read_fast_header

    write_dicom_study(make_study(), tmp_path / "ge", vendor="GE")
    write_dicom_study(make_study(), tmp_path / "ph", vendor="Philips", philips_mixed_series=True)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    fmap = SHARED_DATA / "dicom" / "dcm_qa_fmap" / "In"  # real files when present
    if fmap.is_dir():
        files += sorted(p for p in fmap.rglob("*") if p.is_file())[::7]
    fast = [scan_module.scan_one_file(p) for p in files]
    assert sum(read_fast_header(p) is not None for p in files) >= len(files) - 1
    monkeypatch.setattr(scan_module, "read_fast_header", lambda path: None)
    slow = [scan_module.scan_one_file(p) for p in files]
    assert fast == slow


# -- classification rules ------------------------------------------------------------------------

CLASSIFY_CASES = [
    # (image type, enhanced, private hints, description, expected kind, evidence in reason)
    (("DERIVED", "PRIMARY", "FAT_FRACTION"), False, (), "", "pdff", "ImageType token"),
    (("DERIVED", "PRIMARY", "DIXON", "FAT_FRAC"), False, (), "", "pdff", "FAT_FRAC"),
    (("ORIGINAL", "PRIMARY", "FF", "FF"), False, (), "", "pdff", "FF"),
    (("DERIVED", "PRIMARY", "DIXON", "FAT"), False, (), "", "fat", "FAT"),
    (("ORIGINAL", "PRIMARY", "W", "W"), False, (), "", "water", "token W"),
    (("DERIVED", "PRIMARY", "DIXON", "OPP_PHASE"), False, (), "", "out_phase", "OPP_PHASE"),
    (("DERIVED", "PRIMARY", "R2_STAR_MAP"), False, (), "", "r2s", "R2_STAR_MAP"),
    (("DERIVED", "PRIMARY", "T2_STAR", "T2_STAR"), True, (), "", "t2s", "FrameType token"),
    # Enhanced value 3 is the acquisition contrast: T2_STAR there is not a T2* map.
    (("ORIGINAL", "PRIMARY", "T2_STAR", "M"), True, (), "x", "magnitude", "token M"),
    (("ORIGINAL", "PRIMARY", "OTHER"), False, (), "FatFrac: IDEAL IQ", "pdff", "SeriesDesc"),
    (("ORIGINAL", "PRIMARY", "OTHER"), False, (), "WATER: IDEAL IQ", "water", "SeriesDesc"),
    (("ORIGINAL", "PRIMARY", "OTHER"), False, (), "R2* map", "r2s", "SeriesDescription"),
    (("ORIGINAL", "PRIMARY", "OTHER"), False, (), "T2 fat sat", "unknown", "no fat-water"),
    (("ORIGINAL", "PRIMARY", "OTHER"), False, (), "3-plane loc", "localizer", "Series"),
    (("ORIGINAL", "PRIMARY", "LOCALIZER"), False, (), "", "localizer", "LOCALIZER"),
    (
        ("ORIGINAL", "PRIMARY", "OTHER"),
        False,
        (("Philips (2005,1011) image type", "FF"),),
        "",
        "pdff",
        "(2005,1011)",
    ),
    (
        ("ORIGINAL", "PRIMARY", "OTHER"),
        False,
        (("GE (0019,109C) pulse sequence", "B0map"),),
        "FatFrac",
        "field_map",
        "(0019,109C)",
    ),
    (
        ("ORIGINAL", "PRIMARY", "OTHER"),
        False,
        (("GE (0043,102F) image type", "1"),),
        "IDEAL IQ",
        "phase",
        "(0043,102F)=1",
    ),
    (("ORIGINAL", "PRIMARY", "M", "ND"), False, (), "gre_field_mag", "field_map", "token M"),
    (("ORIGINAL", "PRIMARY", "M", "ND"), False, (), "FatFrac", "magnitude", "token M"),
]


@pytest.mark.parametrize(("itype", "enhanced", "hints", "desc", "kind", "why"), CLASSIFY_CASES)
def test_classification_rules(itype, enhanced, hints, desc, kind, why):
    from RefractureRiskLib.io.dicom_classify import classify_image

    result = classify_image(
        image_type=itype,
        enhanced=enhanced,
        private_hints=hints,
        series_description=desc,
        modality="MR",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
    )
    assert result.kind == kind, result.reason
    assert why in result.reason


def test_logs_carry_no_patient_identifiers(tmp_path, caplog):
    write_dicom_study(make_study(), tmp_path / "d", vendor="GE", seed=11)
    ws = write_dicom_study(make_study(), tmp_path / "e", vendor="GE", kinds=["r2s"], seed=12)
    ws.by_kind("r2s").files[1].unlink()
    with caplog.at_level("DEBUG"):
        load_study(tmp_path / "d")
        with pytest.raises(InputError):
            load_study(tmp_path)  # two studies
    text = caplog.text + str(scan_dicom(tmp_path).format_table())
    for phi in ("SYNTHETIC^PHANTOM", "SYN-11", "SYN-12", "SYNTHETIC PHANTOM (NOT A PATIENT)"):
        assert phi not in text


def test_inspect_lists_several_studies_and_checks_the_chosen_one(tmp_path, capsys):
    a = write_dicom_study(make_study(), tmp_path / "d" / "a", vendor="GE", seed=1)
    write_dicom_study(make_study(), tmp_path / "d" / "b", vendor="GE", kinds=["water"], seed=2)
    assert main(["inspect", str(tmp_path / "d")]) == 1
    out = capsys.readouterr().out
    assert "Study [0]" in out and "Study [1]" in out and "2 studies in this folder" in out
    assert main(["inspect", str(tmp_path / "d"), "--study", a.study_instance_uid]) == 0
    assert "Usable PDFF map" in capsys.readouterr().out


def test_echo_times_split_a_series_only_where_positions_repeat(tmp_path):
    """A map whose slices carry different EchoTime values stays one volume; two echoes at the
    same positions (Siemens field-map style) become two volumes."""
    ws = write_dicom_study(make_study(), tmp_path / "d", vendor="GE", kinds=["pdff", "water"])
    for n, path in enumerate(ws.by_kind("pdff").files):
        ds = pydicom.dcmread(path)
        ds.EchoTime = f"{1.1 + 0.01 * n:.2f}"
        ds.save_as(path)
    water = ws.by_kind("water").files
    for n, path in enumerate(water):  # a second echo of the water image at the same positions
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.EchoNumbers, ds.EchoTime, ds.InstanceNumber = 2, "4.6", 100 + n
        ds.save_as(path.with_name(f"echo2_{n}"))
    (st,) = scan_dicom(tmp_path / "d").studies
    pdff = [s for s in st.series if s.kind == "pdff"]
    assert len(pdff) == 1 and pdff[0].geometry.shape == SHAPE
    water_parts = [s for s in st.series if s.kind == "water"]
    assert len(water_parts) == 2 and all(s.geometry.shape == SHAPE for s in water_parts)
    parts = sorted(s.part for s in water_parts)
    assert "echo 2, TE 4.6 ms" in parts and all("TE " in p for p in parts)
    loaded = load_study(tmp_path / "d")
    assert loaded.pdff.shape == SHAPE
    assert "chosen over 1 other water volume(s)" in loaded.provenance.series["water"].classified_by
