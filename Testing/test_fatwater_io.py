"""Echo inputs (ISMRM .mat, multi-echo DICOM) and the ``fatwater`` command, on phantom echoes."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from RefractureRiskLib.cli import main
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.io.echo_dicom import phase_to_radians, read_echo_dicom
from RefractureRiskLib.io.echo_mat import read_echo_mat
from RefractureRiskLib.io.images import read_image
from RefractureRiskLib.maps.fatwater.precession import choose_precession
from RefractureRiskLib.phantom.echoes import pattern_echoes


@pytest.fixture(scope="module")
def phantom():
    return pattern_echoes((0, 40, 100), (50.0,), snr=200.0, max_field_hz=80.0, patch_px=8, seed=5)


def _write_mat(path: Path, ph, clockwise: int = 1, n_echoes: int | None = None) -> Path:
    sig = ph.echoes.signal  # [k, j, i, n] -> [x, y, z, coil, n]
    images = sig.transpose(2, 1, 0, 3)[:, :, :, None, :]
    te = np.asarray(ph.echoes.te_s)
    if n_echoes is not None:
        images, te = images[..., :n_echoes], te[:n_echoes]
    if clockwise != 1:
        images = np.conj(images)
    params = {
        "TE": te[None, :],
        "images": images,
        "PrecessionIsClockwise": np.uint8(clockwise),
        "FieldStrength": np.uint8(1) * 1.5,
        "mask": np.ones(images.shape[:3], np.uint8),
    }
    sio.savemat(path, {"imDataParams": params})
    return path


def test_mat_reader_reads_fields_by_name_and_conjugates(tmp_path, phantom):
    a = read_echo_mat(_write_mat(tmp_path / "a.mat", phantom, clockwise=1))
    b = read_echo_mat(_write_mat(tmp_path / "b.mat", phantom, clockwise=0))
    np.testing.assert_allclose(a.signal, phantom.echoes.signal, rtol=1e-6)
    np.testing.assert_allclose(b.signal, phantom.echoes.signal, rtol=1e-6)
    assert a.provenance["conjugated"] is False and b.provenance["conjugated"] is True
    assert a.te_s == pytest.approx(phantom.echoes.te_s)
    assert a.field_strength_t == 1.5 and a.mask is not None and a.mask.all()


def test_mat_reader_refuses_one_echo_and_v73_without_h5py(tmp_path, phantom):
    with pytest.raises(InputError, match=r"one\.mat: only one echo"):
        read_echo_mat(_write_mat(tmp_path / "one.mat", phantom, n_echoes=1))
    fake = tmp_path / "v73.mat"
    fake.write_bytes(b"MATLAB 7.3 MAT-file".ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(InputError, match=r"v7\.3"):  # h5py missing, or h5py cannot read it
        read_echo_mat(fake)
    with pytest.raises(InputError, match="imDataParams"):
        sio.savemat(tmp_path / "other.mat", {"x": np.ones(3)})
        read_echo_mat(tmp_path / "other.mat")


def _write_dicom_echoes(
    folder: Path,
    ph,
    mode: str = "magphase",
    drop: str | None = None,
    n_echoes: int | None = None,
    shift_echo: int | None = None,
) -> Path:
    """Classic MR files, one series per (echo, component), Siemens-style 12-bit phase."""
    folder.mkdir(parents=True, exist_ok=True)
    sig = ph.echoes.signal
    n = sig.shape[3] if n_echoes is None else n_echoes
    study, frame_uid = generate_uid(), generate_uid()
    scale = 4000.0 / np.abs(sig).max()
    for e in range(n):
        if mode == "magphase":
            comps = {
                "M": np.round(np.abs(sig[..., e]) * scale),
                "P": np.round(np.angle(sig[..., e]) / np.pi * 2048 + 2048).clip(0, 4095),
            }
        else:
            comps = {
                "R": np.round(sig[..., e].real * scale / 2 + 2048),
                "I": np.round(sig[..., e].imag * scale / 2 + 2048),
            }
        for comp, data in comps.items():
            if comp == drop:
                continue
            series = generate_uid()
            for k in range(sig.shape[0]):
                ds = Dataset()
                meta = FileMetaDataset()
                meta.MediaStorageSOPClassUID = MRImageStorage
                meta.MediaStorageSOPInstanceUID = generate_uid()
                meta.TransferSyntaxUID = ExplicitVRLittleEndian
                ds.file_meta = meta
                ds.SOPClassUID = MRImageStorage
                ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
                ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
                ds.FrameOfReferenceUID = frame_uid
                ds.Modality, ds.Manufacturer = "MR", "SIEMENS"
                ds.PatientName, ds.PatientID = "Phantom^Echo", "ECHO1"
                ds.StudyDate = datetime.date.today().strftime("%Y%m%d")
                ds.SeriesNumber, ds.InstanceNumber = 10 + 2 * e + (comp in "PI"), k + 1
                ds.ImageType = ["ORIGINAL", "PRIMARY", comp, "ND"]
                ds.EchoNumbers, ds.EchoTime = e + 1, ph.echoes.te_s[e] * 1e3
                ds.MagneticFieldStrength = ph.echoes.field_strength_t
                z = 5.0 * k + (3.0 if shift_echo == e else 0.0)
                ds.ImagePositionPatient = [0.0, 0.0, z]
                ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
                ds.PixelSpacing, ds.SliceThickness = [2.0, 2.0], 5.0
                ds.Rows, ds.Columns = data.shape[1], data.shape[2]
                ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
                ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
                ds.RescaleSlope, ds.RescaleIntercept = 1, (-2048 if comp in "RI" else 0)
                ds.PixelData = data[k].astype(np.uint16).tobytes()
                ds.save_as(folder / f"e{e}_{comp}_{k}.dcm", enforce_file_format=True)
    return folder


def test_dicom_magnitude_phase_and_real_imaginary(tmp_path, phantom):
    for mode in ("magphase", "realimag"):
        raw = read_echo_dicom(_write_dicom_echoes(tmp_path / mode, phantom, mode))
        echoes = choose_precession(raw, "auto")
        assert echoes.shape == phantom.echoes.shape
        assert echoes.te_s == pytest.approx(phantom.echoes.te_s)
        assert echoes.provenance["conjugated"] is False
        ratio = echoes.signal[phantom.tissue] / phantom.echoes.signal[phantom.tissue]
        # the same complex data up to a global scale (12-bit quantisation aside)
        assert np.median(np.abs(np.angle(ratio))) < 0.01
        assert echoes.ijk_to_ras[2, 3] == pytest.approx(0.0)
        assert np.linalg.norm(echoes.ijk_to_ras[:3, 2]) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"drop": "P"}, "phase missing"),
        ({"n_echoes": 1}, "1 echo"),
        ({"shift_echo": 2}, "unequal geometry"),
    ],
)
def test_dicom_bad_echo_sets_are_refused_in_one_line(tmp_path, phantom, kwargs, reason):
    folder = _write_dicom_echoes(tmp_path / "bad", phantom, **kwargs)
    with pytest.raises(InputError, match=reason) as info:
        read_echo_dicom(folder)
    assert "\n" not in str(info.value)
    assert "bad" in str(info.value)


def test_phase_scaling_rules():
    rad = np.array([-3.0, 3.0])
    assert phase_to_radians(rad, "x")[1] == "radians as stored"
    assert phase_to_radians(rad * 1000, "x")[0] == pytest.approx(rad)
    assert phase_to_radians(np.array([-180.0, 90.0]), "x")[0][0] == pytest.approx(-np.pi)
    assert phase_to_radians(np.array([0.0, 4095.0]), "x")[0][0] == pytest.approx(-np.pi)
    with pytest.raises(InputError, match="no known phase scaling"):
        phase_to_radians(np.array([-9000.0, 9000.0]), "x")


def test_fatwater_command_writes_all_maps_atomically(tmp_path, phantom, capsys):
    mat = _write_mat(tmp_path / "p.mat", phantom)
    out = tmp_path / "out"
    assert main(["fatwater", str(mat), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    for name in ("pdff", "r2s", "water", "fat", "fieldmap"):
        assert f"{name}.nrrd" in names
    assert {"overview.png", "provenance.json"} <= names
    pdff = read_image(out / "pdff.nrrd")
    # .mat axes kept: i = x (first file axis), j = y, k = slice
    assert pdff.shape == phantom.echoes.shape
    assert np.abs(pdff.array - phantom.pdff_pct)[phantom.tissue].mean() < 2.0
    # a second run into the same folder is refused without --overwrite, and nothing changes
    before = (out / "pdff.nrrd").stat().st_mtime_ns
    assert main(["fatwater", str(mat), "--out", str(out)]) == 2
    assert "already holds" in capsys.readouterr().err
    assert (out / "pdff.nrrd").stat().st_mtime_ns == before
    assert main(["fatwater", str(mat), "--out", str(out), "--overwrite"]) == 0


def test_fatwater_command_bad_input_is_one_line(tmp_path, phantom, capsys):
    mat = _write_mat(tmp_path / "one.mat", phantom, n_echoes=1)
    assert main(["fatwater", str(mat), "--out", str(tmp_path / "o")]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert len(errors) == 1 and "one.mat" in errors[0] and "only one echo" in errors[0]
    assert not (tmp_path / "o").exists()


def test_real_two_echo_fieldmap_dicom_is_refused(shared_data):
    folder = shared_data / "dicom" / "dcm_qa_fmap" / "In" / "Siemens" / "2_gre_field_magph"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    with pytest.raises(InputError, match="2 echo"):
        read_echo_dicom(folder)


def test_precession_auto_detects_conjugated_phase(phantom):
    from dataclasses import replace

    from RefractureRiskLib.maps.fatwater.precession import choose_precession

    flipped = replace(phantom.echoes, signal=np.conj(phantom.echoes.signal))
    fixed = choose_precession(flipped, "auto")
    assert fixed.provenance["conjugated"] is True
    np.testing.assert_allclose(fixed.signal, phantom.echoes.signal)
    kept = choose_precession(phantom.echoes, "auto")
    assert kept.provenance["conjugated"] is False
    assert choose_precession(phantom.echoes, "counterclockwise").provenance["conjugated"] is True
