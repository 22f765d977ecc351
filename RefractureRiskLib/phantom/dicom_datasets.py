"""The DICOM datasets of the phantom writer: geometry, shared modules, classic slices and
enhanced multi-frame files, with the vendors' tags (:mod:`.dicom_styles`).

Geometry and conventions are those of :mod:`.dicom_writer` (RAS volumes written as LPS DICOM).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.core.volume import LPS_TO_RAS, Volume
from RefractureRiskLib.phantom.dicom_styles import (
    StoredEncoding,
    VendorStyle,
)


@dataclass(frozen=True)
class GridGeometry:
    """DICOM geometry of a Volume's grid (LPS, mm).

    ``image_orientation_patient``: row direction (along i) then column direction (along j);
    ``pixel_spacing_mm``: (row spacing = along j, column spacing = along i);
    ``positions_lps``: ImagePositionPatient of slice k (voxel (0, 0, k)), shape (nk, 3);
    ``slice_spacing_mm``: distance between neighbouring slice planes along the slice normal.
    """

    image_orientation_patient: tuple[float, ...]
    pixel_spacing_mm: tuple[float, float]
    positions_lps: npt.NDArray[np.float64]
    slice_spacing_mm: float


def grid_geometry(volume: Volume) -> GridGeometry:
    """Per-slice DICOM geometry of ``volume`` (RAS ijk_to_ras -> LPS DICOM attributes)."""
    lps = LPS_TO_RAS @ volume.ijk_to_ras
    spacing = volume.spacing_mm
    row_dir = lps[:3, 0] / spacing[0]
    col_dir = lps[:3, 1] / spacing[1]
    if abs(float(row_dir @ col_dir)) > 1e-6:
        raise InputError("volume geometry", "i and j axes are not orthogonal; DICOM needs them so")
    nk = volume.shape[0]
    positions = lps[:3, 3][np.newaxis, :] + np.arange(nk)[:, np.newaxis] * lps[:3, 2][np.newaxis]
    normal = np.cross(row_dir, col_dir)
    slice_spacing = abs(float(lps[:3, 2] @ normal))
    return GridGeometry(
        image_orientation_patient=tuple(float(x) for x in (*row_dir, *col_dir)),
        pixel_spacing_mm=(float(spacing[1]), float(spacing[0])),
        positions_lps=positions,
        slice_spacing_mm=slice_spacing,
    )


# ---------------------------------------------------------------------------------------------
# Small helpers


def decimal_string(value: float) -> str:
    """A decimal string of at most 16 characters (DICOM DS) as close to ``value`` as possible."""
    return format_number_as_ds(float(value))


class DeterministicUids:
    """Deterministic UIDs: the same seed and options give the same UIDs."""

    def __init__(self, *entropy: object) -> None:
        self._entropy = [str(e) for e in entropy]

    def __call__(self, *role: object) -> str:
        return generate_uid(entropy_srcs=[*self._entropy, *(str(r) for r in role)])


@dataclass(frozen=True)
class SeriesPart:
    """One kind to be written: its volume, stored pixels and DICOM labels."""

    kind: str
    stored: npt.NDArray[np.uint16]
    encoding: StoredEncoding
    image_type: tuple[str, ...]
    frame_type: tuple[str, ...]
    private_type: str
    description: str
    echo_time_ms: float
    n_clipped: int


@dataclass(frozen=True)
class WriteContext:
    style: VendorStyle
    study: Study
    uids: DeterministicUids
    seed: int
    geometry: GridGeometry
    study_date: str
    study_time: str
    field_strength_t: float
    echo_times_ms: tuple[float, ...]
    repetition_time_ms: float


def study_echo_times_ms(study: Study, field_t: float) -> tuple[float, ...]:
    if study.provenance.echo_times_ms:
        return tuple(float(t) for t in study.provenance.echo_times_ms)
    # Six echoes, about 1.15 ms apart at 1.5 T and 0.8 ms at 3 T (IDEAL-IQ/q-Dixon-like).
    step = 1.15 if field_t < 2.0 else 0.8
    return tuple(round(step * (n + 1), 3) for n in range(6))


def part_echo_time_ms(kind: str, field_t: float, echo_times: tuple[float, ...]) -> float:
    # Fat and water are out of phase every 1 / (2 * 3.4 ppm * 42.58 MHz/T * B0) seconds.
    half_cycle_ms = 1000.0 / (2.0 * 3.4 * 42.577 * field_t)
    if kind == "out_phase":
        return round(half_cycle_ms, 3)
    if kind == "in_phase":
        return round(2.0 * half_cycle_ms, 3)
    return echo_times[0]


# ---------------------------------------------------------------------------------------------
# Dataset building


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "REFRACTURE_SYN"
    return meta


def common_dataset(ctx: WriteContext, sop_class: str, sop_instance: str) -> Dataset:
    """Patient, study, series-independent equipment and frame-of-reference attributes."""
    style = ctx.style
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_instance)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyDate = ctx.study_date
    ds.SeriesDate = ctx.study_date
    ds.ContentDate = ctx.study_date
    ds.AcquisitionDate = ctx.study_date
    ds.StudyTime = ctx.study_time
    ds.SeriesTime = ctx.study_time
    ds.ContentTime = ctx.study_time
    ds.AcquisitionTime = ctx.study_time
    ds.AccessionNumber = f"SYN{ctx.seed:07d}"[-16:]
    ds.Modality = "MR"
    ds.Manufacturer = style.manufacturer
    ds.InstitutionName = "SYNTHETIC PHANTOM (NOT A PATIENT)"
    ds.ReferringPhysicianName = ""
    ds.StationName = "SYNTHETIC"
    ds.StudyDescription = "SYNTHETIC SPINE FAT-WATER PHANTOM"
    ds.ManufacturerModelName = style.model
    ds.DeviceSerialNumber = "SYN0000"
    ds.SoftwareVersions = style.software_versions
    ds.PatientName = "SYNTHETIC^PHANTOM"
    ds.PatientID = f"SYN-{ctx.seed}"
    ds.PatientBirthDate = _birth_date(ctx)
    ds.PatientSex = _patient_sex(ctx.study)
    ds.PatientIdentityRemoved = "NO"  # never was identified: synthetic
    ds.BodyPartExamined = "LSPINE"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = ctx.uids("study")
    ds.StudyID = f"{ctx.seed % 10**8}"
    ds.FrameOfReferenceUID = ctx.uids("frame_of_reference")
    ds.PositionReferenceIndicator = ""
    ds.MagneticFieldStrength = decimal_string(ctx.field_strength_t)
    return ds


def _patient_sex(study: Study) -> str:
    sex = (study.patient.sex or "").upper()
    return sex if sex in ("F", "M") else "O"


def _birth_date(ctx: WriteContext) -> str:
    age = ctx.study.patient.age_years
    years = int(age) if age is not None else 60 + ctx.seed % 25
    study_day = dt.datetime.strptime(ctx.study_date, "%Y%m%d").date()
    return study_day.replace(year=study_day.year - years, day=1).strftime("%Y%m%d")


def series_attributes(
    ds: Dataset, ctx: WriteContext, series_uid: str, number: int, desc: str
) -> None:
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.SeriesDescription = desc
    ds.ProtocolName = f"{ctx.style.sequence_name} SPINE"


def _mr_acquisition(ds: Dataset, ctx: WriteContext, echo_time_ms: float) -> None:
    """Classic MR Image module acquisition attributes."""
    style = ctx.style
    ds.ScanningSequence = style.scanning_sequence
    ds.SequenceVariant = style.sequence_variant
    ds.ScanOptions = ""
    ds.MRAcquisitionType = style.mr_acquisition_type
    ds.SequenceName = style.sequence_name
    ds.AngioFlag = "N"
    ds.SliceThickness = decimal_string(ctx.geometry.slice_spacing_mm)
    ds.SpacingBetweenSlices = decimal_string(ctx.geometry.slice_spacing_mm)
    ds.RepetitionTime = decimal_string(ctx.repetition_time_ms)
    ds.EchoTime = decimal_string(echo_time_ms)
    ds.EchoTrainLength = len(ctx.echo_times_ms)
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = decimal_string(42.577478 * ctx.field_strength_t)
    ds.ImagedNucleus = "1H"
    ds.FlipAngle = "4"
    ds.PatientOrientation = ""


def pixel_module(ds: Dataset, rows: int, cols: int) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0


def rwvm_item(enc: StoredEncoding, stored: npt.NDArray[np.uint16], label: str) -> Dataset:
    item = Dataset()
    item.add_new(0x00409216, "US", int(stored.min()))  # RealWorldValueFirstValueMapped
    item.add_new(0x00409211, "US", int(max(stored.max(), stored.min() + 1)))  # ...LastValueMapped
    item.RealWorldValueIntercept = float(enc.rwvm_intercept or 0.0)
    item.RealWorldValueSlope = float(enc.rwvm_slope)
    item.LUTExplanation = f"{label} in {enc.rwvm_units_meaning}"
    item.LUTLabel = label[:16]
    unit = Dataset()
    unit.CodeValue = enc.rwvm_units
    unit.CodingSchemeDesignator = "UCUM"
    unit.CodeMeaning = enc.rwvm_units_meaning
    item.MeasurementUnitsCodeSequence = DicomSequence([unit])
    return item


def window_values(enc: StoredEncoding, stored: npt.NDArray[np.uint16]) -> tuple[str, str]:
    lo = float(stored.min()) * enc.rescale_slope + enc.rescale_intercept
    hi = float(stored.max()) * enc.rescale_slope + enc.rescale_intercept
    width = max(hi - lo, enc.rescale_slope)
    return decimal_string((lo + hi) / 2.0), decimal_string(width)


def _private_tags(ds: Dataset, ctx: WriteContext, part: SeriesPart) -> None:
    if ctx.style.name == "GE":
        block = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
        block.add_new(0x9C, "LO", ctx.style.sequence_name)  # (0019,109C) pulse sequence name
        block.add_new(0x9E, "LO", "3D IDEAL IQ")  # (0019,109E) internal pulse sequence name
    elif ctx.style.name == "Philips":
        block = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
        block.add_new(0x11, "CS", part.private_type)  # (2005,1011) image type


def classic_slice(
    ctx: WriteContext,
    part: SeriesPart,
    k: int,
    instance_number: int,
    series_uid: str,
    series_number: int,
    series_desc: str,
) -> Dataset:
    sop_uid = ctx.uids("instance", series_uid, part.kind, k)
    ds = common_dataset(ctx, MRImageStorage, sop_uid)
    series_attributes(ds, ctx, series_uid, series_number, series_desc)
    ds.ImageType = list(part.image_type)
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = instance_number
    geo = ctx.geometry
    ds.ImagePositionPatient = [decimal_string(x) for x in geo.positions_lps[k]]
    ds.ImageOrientationPatient = [decimal_string(x) for x in geo.image_orientation_patient]
    ds.PixelSpacing = [decimal_string(x) for x in geo.pixel_spacing_mm]
    normal = np.cross(
        geo.image_orientation_patient[:3], geo.image_orientation_patient[3:]
    )  # slice location along the normal, as scanners write it
    ds.SliceLocation = decimal_string(float(geo.positions_lps[k] @ normal))
    _mr_acquisition(ds, ctx, part.echo_time_ms)
    pixels = np.ascontiguousarray(part.stored[k])
    pixel_module(ds, *pixels.shape)
    enc = part.encoding
    ds.RescaleIntercept = decimal_string(enc.rescale_intercept)
    ds.RescaleSlope = decimal_string(enc.rescale_slope)
    ds.RescaleType = enc.rescale_type
    if enc.has_rwvm:
        ds.RealWorldValueMappingSequence = DicomSequence(
            [rwvm_item(enc, part.stored, part.private_type)]
        )
    ds.WindowCenter, ds.WindowWidth = window_values(enc, part.stored)
    ds.DerivationDescription = f"synthetic {part.kind} map (RefractureRisk phantom)"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    _private_tags(ds, ctx, part)
    ds.PixelData = pixels.astype("<u2").tobytes()
    return ds


# -- enhanced ---------------------------------------------------------------------------------
