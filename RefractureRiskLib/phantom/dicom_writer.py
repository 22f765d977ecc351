"""Write a synthetic :class:`Study` as vendor-styled MR DICOM (GE IDEAL-IQ, Siemens, Philips).

One series per map kind (or Philips W/F/FF mixed in one series), uint16 pixels with the vendor's
scalings (see :mod:`RefractureRiskLib.phantom.dicom_styles`), classic MR Image Storage or, for
Philips, Enhanced MR Image Storage with per-frame functional groups. Everything is deterministic
from ``seed``: UIDs, dates and patient ID are derived from it, so a study written twice is
identical. Patient attributes are obviously fake (``SYNTHETIC^PHANTOM``, ``SYN-<seed>``).

Geometry: ``Volume.ijk_to_ras`` is RAS; DICOM is LPS, ``lps = diag(-1, -1, 1) @ ras``. The i axis
(array columns) is the DICOM row direction, the j axis (array rows) the column direction, so
ImageOrientationPatient = (LPS direction of i, LPS direction of j), PixelSpacing = (spacing along
j, spacing along i) — row spacing first — and slice k is at ImagePositionPatient = LPS position of
voxel (0, 0, k). InstanceNumber (classic) and InStackPositionNumber (enhanced) increase with k.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.study import MAP_KINDS, Study
from RefractureRiskLib.core.volume import LPS_TO_RAS, Volume
from RefractureRiskLib.phantom.dicom_styles import (
    PDFF_STORAGES,
    PHILIPS_FRAME_TYPE,
    PHILIPS_PRIVATE_TYPE,
    StoredEncoding,
    VendorStyle,
    magnitude_encoding,
    pdff_encoding,
    r2s_encoding,
    vendor_style,
)

#: Kinds stored together when ``philips_mixed_series`` is set (Philips mDIXON Quant habit).
PHILIPS_MIXED_KINDS: tuple[str, ...] = ("water", "fat", "pdff")

_MAGNITUDE_KINDS = ("water", "fat", "in_phase", "out_phase")


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


@dataclass(frozen=True)
class WrittenSeries:
    """One written series (or, for a Philips mixed series, one kind's part of it).

    ``files``: classic — one file per slice in k order; enhanced — the one multi-frame file.
    ``frame_numbers``: enhanced — 1-based frame numbers of this kind in k order; classic — ().
    ``encoding``: how library values were stored (rescale, real-world value mapping).
    ``n_clipped``: voxels the vendor-like clipping changed (PDFF outside 0-100, T2* cap).
    """

    kind: str
    series_instance_uid: str
    series_number: int
    series_description: str
    image_type: tuple[str, ...]
    files: tuple[Path, ...]
    encoding: StoredEncoding
    sop_class_uid: str
    enhanced: bool = False
    mixed: bool = False
    frame_numbers: tuple[int, ...] = ()
    n_clipped: int = 0

    @property
    def rescale_slope(self) -> float:
        """RescaleSlope written for this kind."""
        return self.encoding.rescale_slope

    @property
    def rescale_intercept(self) -> float:
        """RescaleIntercept written for this kind."""
        return self.encoding.rescale_intercept


@dataclass(frozen=True)
class WrittenStudy:
    """What :func:`write_dicom_study` wrote: shared UIDs and one entry per series (part)."""

    out_dir: Path
    vendor: str
    study_instance_uid: str
    frame_of_reference_uid: str
    patient_id: str
    series: tuple[WrittenSeries, ...] = field(default=())

    def by_kind(self, kind: str) -> WrittenSeries:
        """The series (part) holding ``kind``; KeyError when not written."""
        for s in self.series:
            if s.kind == kind:
                return s
        raise KeyError(f"no series of kind {kind!r} written (have {[s.kind for s in self.series]})")

    def summary_rows(self) -> list[dict[str, object]]:
        """One plain dict per series (part) for printing a table (no pandas needed)."""
        rows: list[dict[str, object]] = []
        for s in self.series:
            enc = s.encoding
            rows.append(
                {
                    "series_number": s.series_number,
                    "kind": s.kind,
                    "series_description": s.series_description,
                    "image_type": "\\".join(s.image_type),
                    "n_files": len(s.files),
                    "n_frames": len(s.frame_numbers) or len(s.files),
                    "enhanced": s.enhanced,
                    "mixed": s.mixed,
                    "stored_meaning": enc.meaning,
                    "rescale_slope": enc.rescale_slope,
                    "rescale_intercept": enc.rescale_intercept,
                    "rwvm_units": enc.rwvm_units or "",
                    "n_clipped": s.n_clipped,
                }
            )
        return rows

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file written, without duplicates, in writing order."""
        seen: dict[Path, None] = {}
        for s in self.series:
            for f in s.files:
                seen.setdefault(f, None)
        return tuple(seen)


# ---------------------------------------------------------------------------------------------
# Small helpers


def _ds(value: float) -> str:
    """A decimal string of at most 16 characters (DICOM DS) as close to ``value`` as possible."""
    return format_number_as_ds(float(value))


class _Uids:
    """Deterministic UIDs: the same seed and options give the same UIDs."""

    def __init__(self, *entropy: object) -> None:
        self._entropy = [str(e) for e in entropy]

    def __call__(self, *role: object) -> str:
        return generate_uid(entropy_srcs=[*self._entropy, *(str(r) for r in role)])


@dataclass(frozen=True)
class _Part:
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
class _Context:
    style: VendorStyle
    study: Study
    uids: _Uids
    seed: int
    geometry: GridGeometry
    study_date: str
    study_time: str
    field_strength_t: float
    echo_times_ms: tuple[float, ...]
    repetition_time_ms: float


def _echo_times(study: Study, field_t: float) -> tuple[float, ...]:
    if study.provenance.echo_times_ms:
        return tuple(float(t) for t in study.provenance.echo_times_ms)
    # Six echoes, about 1.15 ms apart at 1.5 T and 0.8 ms at 3 T (IDEAL-IQ/q-Dixon-like).
    step = 1.15 if field_t < 2.0 else 0.8
    return tuple(round(step * (n + 1), 3) for n in range(6))


def _part_echo_time(kind: str, field_t: float, echo_times: tuple[float, ...]) -> float:
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


def _common(ctx: _Context, sop_class: str, sop_instance: str) -> Dataset:
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
    ds.MagneticFieldStrength = _ds(ctx.field_strength_t)
    return ds


def _patient_sex(study: Study) -> str:
    sex = (study.patient.sex or "").upper()
    return sex if sex in ("F", "M") else "O"


def _birth_date(ctx: _Context) -> str:
    age = ctx.study.patient.age_years
    years = int(age) if age is not None else 60 + ctx.seed % 25
    study_day = dt.datetime.strptime(ctx.study_date, "%Y%m%d").date()
    return study_day.replace(year=study_day.year - years, day=1).strftime("%Y%m%d")


def _series_attrs(ds: Dataset, ctx: _Context, series_uid: str, number: int, desc: str) -> None:
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.SeriesDescription = desc
    ds.ProtocolName = f"{ctx.style.sequence_name} SPINE"


def _mr_acquisition(ds: Dataset, ctx: _Context, echo_time_ms: float) -> None:
    """Classic MR Image module acquisition attributes."""
    style = ctx.style
    ds.ScanningSequence = style.scanning_sequence
    ds.SequenceVariant = style.sequence_variant
    ds.ScanOptions = ""
    ds.MRAcquisitionType = style.mr_acquisition_type
    ds.SequenceName = style.sequence_name
    ds.AngioFlag = "N"
    ds.SliceThickness = _ds(ctx.geometry.slice_spacing_mm)
    ds.SpacingBetweenSlices = _ds(ctx.geometry.slice_spacing_mm)
    ds.RepetitionTime = _ds(ctx.repetition_time_ms)
    ds.EchoTime = _ds(echo_time_ms)
    ds.EchoTrainLength = len(ctx.echo_times_ms)
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = _ds(42.577478 * ctx.field_strength_t)
    ds.ImagedNucleus = "1H"
    ds.FlipAngle = "4"
    ds.PatientOrientation = ""


def _pixel_module(ds: Dataset, rows: int, cols: int) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0


def _rwvm_item(enc: StoredEncoding, stored: npt.NDArray[np.uint16], label: str) -> Dataset:
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


def _window(enc: StoredEncoding, stored: npt.NDArray[np.uint16]) -> tuple[str, str]:
    lo = float(stored.min()) * enc.rescale_slope + enc.rescale_intercept
    hi = float(stored.max()) * enc.rescale_slope + enc.rescale_intercept
    width = max(hi - lo, enc.rescale_slope)
    return _ds((lo + hi) / 2.0), _ds(width)


def _private_tags(ds: Dataset, ctx: _Context, part: _Part) -> None:
    if ctx.style.name == "GE":
        block = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
        block.add_new(0x9C, "LO", ctx.style.sequence_name)  # (0019,109C) pulse sequence name
        block.add_new(0x9E, "LO", "3D IDEAL IQ")  # (0019,109E) internal pulse sequence name
    elif ctx.style.name == "Philips":
        block = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
        block.add_new(0x11, "CS", part.private_type)  # (2005,1011) image type


def _classic_slice(
    ctx: _Context,
    part: _Part,
    k: int,
    instance_number: int,
    series_uid: str,
    series_number: int,
    series_desc: str,
) -> Dataset:
    sop_uid = ctx.uids("instance", series_uid, part.kind, k)
    ds = _common(ctx, MRImageStorage, sop_uid)
    _series_attrs(ds, ctx, series_uid, series_number, series_desc)
    ds.ImageType = list(part.image_type)
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = instance_number
    geo = ctx.geometry
    ds.ImagePositionPatient = [_ds(x) for x in geo.positions_lps[k]]
    ds.ImageOrientationPatient = [_ds(x) for x in geo.image_orientation_patient]
    ds.PixelSpacing = [_ds(x) for x in geo.pixel_spacing_mm]
    normal = np.cross(
        geo.image_orientation_patient[:3], geo.image_orientation_patient[3:]
    )  # slice location along the normal, as scanners write it
    ds.SliceLocation = _ds(float(geo.positions_lps[k] @ normal))
    _mr_acquisition(ds, ctx, part.echo_time_ms)
    pixels = np.ascontiguousarray(part.stored[k])
    _pixel_module(ds, *pixels.shape)
    enc = part.encoding
    ds.RescaleIntercept = _ds(enc.rescale_intercept)
    ds.RescaleSlope = _ds(enc.rescale_slope)
    ds.RescaleType = enc.rescale_type
    if enc.has_rwvm:
        ds.RealWorldValueMappingSequence = DicomSequence(
            [_rwvm_item(enc, part.stored, part.private_type)]
        )
    ds.WindowCenter, ds.WindowWidth = _window(enc, part.stored)
    ds.DerivationDescription = f"synthetic {part.kind} map (RefractureRisk phantom)"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    _private_tags(ds, ctx, part)
    ds.PixelData = pixels.astype("<u2").tobytes()
    return ds


# -- enhanced ---------------------------------------------------------------------------------


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _enhanced_file(
    ctx: _Context, parts: Sequence[_Part], series_uid: str, series_number: int, desc: str
) -> tuple[Dataset, list[tuple[int, ...]]]:
    """One Enhanced MR Image with every part's slices as frames; frame numbers per part."""
    sop_uid = ctx.uids("enhanced_instance", series_uid)
    ds = _common(ctx, EnhancedMRImageStorage, sop_uid)
    _series_attrs(ds, ctx, series_uid, series_number, desc)
    mixed = len(parts) > 1
    ftypes = [p.frame_type for p in parts]
    if mixed:
        ds.ImageType = ["DERIVED", "PRIMARY", "DIXON", "MIXED"]
    else:
        ds.ImageType = list(ftypes[0])
    ds.InstanceNumber = 1
    ds.AcquisitionNumber = 1
    ds.ContentQualification = "RESEARCH"
    ds.ResonantNucleus = "1H"
    ds.KSpaceFiltering = "NONE"
    ds.ApplicableSafetyStandardAgency = "IEC"
    ds.ImageComments = "synthetic phantom, not a patient"
    _enhanced_frame_type_values(ds)
    ds.AcquisitionContextSequence = DicomSequence([])
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.AcquisitionDateTime = ctx.study_date + ctx.study_time
    ds.AcquisitionDuration = 60.0
    for keyword in ("AcquisitionDate", "AcquisitionTime"):  # classic-only attributes
        delattr(ds, keyword)

    geo = ctx.geometry
    nk, rows, cols = parts[0].stored.shape
    _pixel_module(ds, rows, cols)

    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [_ds(x) for x in geo.pixel_spacing_mm]
    measures.SliceThickness = _ds(geo.slice_spacing_mm)
    measures.SpacingBetweenSlices = _ds(geo.slice_spacing_mm)
    shared.PixelMeasuresSequence = DicomSequence([measures])
    orientation = Dataset()
    orientation.ImageOrientationPatient = [_ds(x) for x in geo.image_orientation_patient]
    shared.PlaneOrientationSequence = DicomSequence([orientation])
    anatomy = Dataset()
    anatomy.AnatomicRegionSequence = DicomSequence([_code("122496007", "SCT", "Lumbar spine")])
    anatomy.FrameLaterality = "U"
    shared.FrameAnatomySequence = DicomSequence([anatomy])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])

    dim_uid = ctx.uids("dimension_organization", series_uid)
    org = Dataset()
    org.DimensionOrganizationUID = dim_uid
    ds.DimensionOrganizationSequence = DicomSequence([org])
    if not mixed:  # one stack of parallel, contiguous slices
        ds.DimensionOrganizationType = "3D"
    dims = []
    for pointer, label in ((0x00209056, "Stack ID"), (0x00209057, "In-Stack Position Number")):
        d = Dataset()
        d.DimensionOrganizationUID = dim_uid
        d.DimensionIndexPointer = pointer
        d.FunctionalGroupPointer = 0x00209111  # FrameContentSequence
        d.DimensionDescriptionLabel = label
        dims.append(d)
    ds.DimensionIndexSequence = DicomSequence(dims)

    per_frame: list[Dataset] = []
    frames: list[npt.NDArray[np.uint16]] = []
    frame_numbers: list[tuple[int, ...]] = []
    for stack, part in enumerate(parts, start=1):
        numbers = []
        for k in range(nk):
            item = Dataset()
            content = Dataset()
            content.StackID = str(stack)
            content.InStackPositionNumber = k + 1
            content.DimensionIndexValues = [stack, k + 1]
            content.FrameAcquisitionDateTime = ctx.study_date + ctx.study_time
            content.FrameReferenceDateTime = ctx.study_date + ctx.study_time
            content.FrameAcquisitionDuration = 60.0
            item.FrameContentSequence = DicomSequence([content])
            position = Dataset()
            position.ImagePositionPatient = [_ds(x) for x in geo.positions_lps[k]]
            item.PlanePositionSequence = DicomSequence([position])
            transform = Dataset()
            transform.RescaleIntercept = _ds(part.encoding.rescale_intercept)
            transform.RescaleSlope = _ds(part.encoding.rescale_slope)
            transform.RescaleType = part.encoding.rescale_type
            item.PixelValueTransformationSequence = DicomSequence([transform])
            frame_type = Dataset()
            frame_type.FrameType = list(part.frame_type)
            _enhanced_frame_type_values(frame_type)
            item.MRImageFrameTypeSequence = DicomSequence([frame_type])
            voi = Dataset()
            voi.WindowCenter, voi.WindowWidth = _window(part.encoding, part.stored)
            item.FrameVOILUTSequence = DicomSequence([voi])
            if part.encoding.has_rwvm:
                item.RealWorldValueMappingSequence = DicomSequence(
                    [_rwvm_item(part.encoding, part.stored, part.private_type)]
                )
            block = item.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
            block.add_new(0x11, "CS", part.private_type)
            per_frame.append(item)
            frames.append(part.stored[k])
            numbers.append(len(frames))
        frame_numbers.append(tuple(numbers))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.NumberOfFrames = len(frames)
    ds.PixelData = np.ascontiguousarray(np.stack(frames)).astype("<u2").tobytes()
    return ds, frame_numbers


def _enhanced_frame_type_values(ds: Dataset) -> None:
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.AcquisitionContrast = "UNKNOWN"


# ---------------------------------------------------------------------------------------------
# Public entry point


def _parts(
    study: Study,
    style: VendorStyle,
    kinds: Sequence[str],
    pdff_storage: str,
    r2s_as_t2star: bool,
    field_t: float,
    echo_times: tuple[float, ...],
) -> list[_Part]:
    parts = []
    for kind in kinds:
        values = np.asarray(study.maps[kind].array, dtype=np.float64)
        if kind == "pdff":
            enc = pdff_encoding(style.name, pdff_storage)
        elif kind == "r2s":
            enc = r2s_encoding(style.name, r2s_as_t2star)
        else:
            enc = magnitude_encoding(values, style.name)
        try:
            stored, n_clipped = enc.to_stored(values)
        except ValueError as err:
            raise InputError(f"study map {kind!r}", str(err)) from None
        label = "t2s" if kind == "r2s" and r2s_as_t2star else kind
        parts.append(
            _Part(
                kind=kind,
                stored=stored,
                encoding=enc,
                image_type=style.image_type[label],
                frame_type=PHILIPS_FRAME_TYPE.get(label, style.image_type[label]),
                private_type=PHILIPS_PRIVATE_TYPE.get(label, label.upper()),
                description=style.series_description[label],
                echo_time_ms=_part_echo_time(kind, field_t, echo_times),
                n_clipped=n_clipped,
            )
        )
    return parts


def write_dicom_study(
    study: Study,
    out_dir: Path,
    *,
    vendor: str = "GE",
    pdff_storage: str = "default",
    philips_enhanced: bool = False,
    philips_mixed_series: bool = False,
    r2s_as_t2star: bool = False,
    kinds: Sequence[str] | None = None,
    seed: int = 0,
) -> WrittenStudy:
    """Write ``study``'s maps as vendor-styled MR DICOM series under ``out_dir``.

    Args:
        study: maps on one grid (PDFF in %, R2* in 1/s, magnitudes in a.u.).
        out_dir: new or empty folder (InputError otherwise); series go to
            ``S<series number>/`` with neutral file names (loaders must classify by ImageType
            and SeriesDescription, not by path).
        vendor: "GE" (IDEAL-IQ), "Siemens" (q-Dixon) or "Philips" (mDIXON Quant).
        pdff_storage: "default" (vendor's usual: GE "percent_rescaled", Siemens "permille",
            Philips "rwvm") or one of ``PDFF_STORAGES``; see :mod:`.dicom_styles`.
        philips_enhanced: Philips only — one Enhanced MR Image Storage file per series.
        philips_mixed_series: Philips only — water, fat and PDFF in ONE series (classic:
            images told apart by ImageType; enhanced: frames by FrameType and StackID).
        r2s_as_t2star: Philips only — store T2* in ms (T2* = 1000 / R2*) instead of R2*.
        kinds: map kinds to write (default: every kind of ``MAP_KINDS`` the study has).
        seed: makes UIDs, dates and the patient ID deterministic.

    Returns:
        A :class:`WrittenStudy` listing every series with its UIDs, files and value encoding.
    """
    style = vendor_style(vendor)
    if pdff_storage != "default" and pdff_storage not in PDFF_STORAGES:
        raise InputError("pdff_storage", f"{pdff_storage!r}; expected 'default' or {PDFF_STORAGES}")
    philips_only = {
        "philips_enhanced": philips_enhanced,
        "philips_mixed_series": philips_mixed_series,
        "r2s_as_t2star": r2s_as_t2star,
    }
    for name, flag in philips_only.items():
        if flag and style.name != "Philips":
            raise InputError(name, f"is a Philips option; vendor is {style.name}")
    if pdff_storage == "rwvm" and style.name != "Philips":
        raise InputError("pdff_storage", "'rwvm' is the Philips style; use vendor='Philips'")
    if kinds is None:
        kinds = [k for k in MAP_KINDS if k in study.maps]
    missing = [k for k in kinds if k not in study.maps]
    unknown = [k for k in kinds if k not in MAP_KINDS]
    if missing or unknown:
        raise InputError(
            "kinds", f"cannot write {missing or unknown}; study has {list(study.maps)}"
        )
    if not kinds:
        raise InputError("kinds", "no map kinds to write")

    field_t = study.provenance.field_strength_t or 1.5
    echo_times = _echo_times(study, field_t)
    study_day = dt.date(2025, 1, 6) + dt.timedelta(days=seed % 365)
    options = (pdff_storage, philips_enhanced, philips_mixed_series, r2s_as_t2star)
    ctx = _Context(
        style=style,
        study=study,
        uids=_Uids("refracture-risk-phantom", seed, style.name, *options),
        seed=seed,
        geometry=grid_geometry(study.grid),
        study_date=study_day.strftime("%Y%m%d"),
        study_time=f"{9 + seed % 8:02d}{seed % 60:02d}00",
        field_strength_t=field_t,
        echo_times_ms=echo_times,
        repetition_time_ms=round(echo_times[-1] + 2.5, 3),
    )
    parts = _parts(study, style, kinds, pdff_storage, r2s_as_t2star, field_t, echo_times)

    groups: list[list[_Part]]
    if philips_mixed_series:
        mixed = [p for p in parts if p.kind in PHILIPS_MIXED_KINDS]
        groups = ([mixed] if mixed else []) + [[p] for p in parts if p not in mixed]
    else:
        groups = [[p] for p in parts]

    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        # Stale files from an earlier study would be read as part of this one.
        raise InputError(out_dir, "output folder exists and is not empty; give a new folder")
    written: list[WrittenSeries] = []
    for index, group in enumerate(groups):
        number = (index + 1) * 100 + 1 if style.name == "Philips" else index + 3
        is_mixed = len(group) > 1
        desc = style.series_description["mixed"] if is_mixed else group[0].description
        series_uid = ctx.uids("series", number, *(p.kind for p in group))
        folder = out_dir / f"S{number:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        if philips_enhanced:
            ds, frame_numbers = _enhanced_file(ctx, group, series_uid, number, desc)
            path = folder / "I0001.dcm"
            ds.save_as(path, enforce_file_format=True)
            for part, numbers in zip(group, frame_numbers, strict=True):
                written.append(
                    _written(part, series_uid, number, desc, (path,), EnhancedMRImageStorage)
                )
                written[-1] = _with_frames(written[-1], numbers, is_mixed)
            continue
        instance = 0
        for part in group:
            paths = []
            for k in range(part.stored.shape[0]):
                instance += 1
                ds = _classic_slice(ctx, part, k, instance, series_uid, number, desc)
                path = folder / f"I{instance:04d}.dcm"
                ds.save_as(path, enforce_file_format=True)
                paths.append(path)
            written.append(
                _written(part, series_uid, number, desc, tuple(paths), MRImageStorage, is_mixed)
            )
    return WrittenStudy(
        out_dir=out_dir,
        vendor=style.name,
        study_instance_uid=ctx.uids("study"),
        frame_of_reference_uid=ctx.uids("frame_of_reference"),
        patient_id=f"SYN-{seed}",
        series=tuple(written),
    )


def _written(
    part: _Part,
    series_uid: str,
    number: int,
    desc: str,
    files: tuple[Path, ...],
    sop_class: str,
    mixed: bool = False,
) -> WrittenSeries:
    return WrittenSeries(
        kind=part.kind,
        series_instance_uid=series_uid,
        series_number=number,
        series_description=desc,
        image_type=part.frame_type if sop_class == EnhancedMRImageStorage else part.image_type,
        files=files,
        encoding=part.encoding,
        sop_class_uid=str(sop_class),
        enhanced=sop_class == EnhancedMRImageStorage,
        mixed=mixed,
        n_clipped=part.n_clipped,
    )


def _with_frames(series: WrittenSeries, numbers: tuple[int, ...], mixed: bool) -> WrittenSeries:
    return replace(series, frame_numbers=numbers, mixed=mixed)
