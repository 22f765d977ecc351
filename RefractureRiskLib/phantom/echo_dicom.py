"""The phantom's complex echoes as raw multi-echo DICOM: one magnitude and one phase series per
echo, classic MR Image Storage, Siemens-style 12-bit phase (stored ``2048 + 2048 phase / pi``).

What a site without a quantitative fat-water package exports; ``io/echo_dicom.py`` reads it
back on the same grid (RAS volumes written as LPS DICOM, geometry as in :mod:`.dicom_datasets`).
UIDs follow from ``seed``, so a set written twice is identical.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, MRImageStorage

from RefractureRiskLib.core.echoes import EchoSet
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.phantom.dicom_datasets import (
    DeterministicUids,
    decimal_string,
    grid_geometry,
)

#: Largest stored magnitude (12 bits).
MAX_MAGNITUDE = 4000.0


def _dataset(uids: DeterministicUids, series: str, k: int, geometry, echoes: EchoSet) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = uids("instance", series, k)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = uids("study")
    ds.SeriesInstanceUID = uids("series", series)
    ds.FrameOfReferenceUID = uids("frame")
    ds.Modality, ds.Manufacturer = "MR", "SIEMENS"
    ds.PatientName, ds.PatientID = "Phantom^Echoes", "PHANTOM-ECHOES"
    ds.PatientBirthDate, ds.PatientSex = "19500101", "F"
    ds.StudyDate = ds.SeriesDate = dt.date(2024, 1, 1).strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = "120000"
    ds.AccessionNumber, ds.StudyID, ds.ReferringPhysicianName = "", "1", ""
    ds.MagneticFieldStrength = decimal_string(echoes.field_strength_t)
    ds.ImageOrientationPatient = [decimal_string(x) for x in geometry.image_orientation_patient]
    ds.ImagePositionPatient = [decimal_string(x) for x in geometry.positions_lps[k]]
    ds.PixelSpacing = [decimal_string(x) for x in geometry.pixel_spacing_mm]
    ds.SliceThickness = decimal_string(geometry.slice_spacing_mm)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.InstanceNumber = k + 1
    return ds


def write_echo_dicom(echoes: EchoSet, folder: str | Path, seed: int = 0) -> Path:
    """Write ``echoes`` (phase convention of :class:`EchoSet`) under ``folder``; returns it."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    sig = echoes.signal
    nk, nj, ni, n = sig.shape
    geometry = grid_geometry(Volume(np.zeros((nk, nj, ni), np.float32), echoes.ijk_to_ras))
    uids = DeterministicUids("phantom echoes", seed, sig.shape)
    scale = MAX_MAGNITUDE / max(float(np.abs(sig).max()), 1e-30)
    for e in range(n):
        stored = {
            "M": np.round(np.abs(sig[..., e]) * scale),
            "P": np.round(np.angle(sig[..., e]) / np.pi * 2048 + 2048).clip(0, 4095),
        }
        for comp, data in stored.items():
            series = f"echo {e + 1} {comp}"
            for k in range(nk):
                ds = _dataset(uids, series, k, geometry, echoes)
                ds.SeriesNumber = 10 + 2 * e + (comp == "P")
                ds.SeriesDescription = f"gre_6echo_{'phase' if comp == 'P' else 'mag'}"
                ds.ImageType = ["ORIGINAL", "PRIMARY", comp, "ND"]
                ds.EchoNumbers = e + 1
                ds.EchoTime = decimal_string(echoes.te_s[e] * 1e3)
                ds.Rows, ds.Columns = nj, ni
                ds.PixelData = data[k].astype(np.uint16).tobytes()
                ds.save_as(root / f"e{e + 1}_{comp}_{k + 1:03d}.dcm", enforce_file_format=True)
    return root
