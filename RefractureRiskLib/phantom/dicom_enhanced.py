"""Enhanced MR Image Storage files of the phantom writer (the Philips habit): every slice of one
or more kinds as frames with per-frame functional groups (position, rescale, frame type, real-world
value mapping), indexed by (Stack ID, In-Stack Position Number).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    EnhancedMRImageStorage,
)

from RefractureRiskLib.phantom.dicom_datasets import (
    GridGeometry,
    SeriesPart,
    WriteContext,
    common_dataset,
    decimal_string,
    pixel_module,
    rwvm_item,
    series_attributes,
    window_values,
)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def enhanced_file(
    ctx: WriteContext, parts: Sequence[SeriesPart], series_uid: str, series_number: int, desc: str
) -> tuple[Dataset, list[tuple[int, ...]]]:
    """One Enhanced MR Image with every part's slices as frames; frame numbers per part."""
    sop_uid = ctx.uids("enhanced_instance", series_uid)
    ds = common_dataset(ctx, EnhancedMRImageStorage, sop_uid)
    series_attributes(ds, ctx, series_uid, series_number, desc)
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

    nk, rows, cols = parts[0].stored.shape
    pixel_module(ds, rows, cols)
    ds.SharedFunctionalGroupsSequence = DicomSequence([_shared_groups(ctx.geometry)])
    _dimensions(ds, ctx.uids("dimension_organization", series_uid), mixed)

    per_frame: list[Dataset] = []
    frames: list[npt.NDArray[np.uint16]] = []
    frame_numbers: list[tuple[int, ...]] = []
    for stack, part in enumerate(parts, start=1):
        numbers = []
        for k in range(nk):
            per_frame.append(_frame_groups(ctx, part, stack, k))
            frames.append(part.stored[k])
            numbers.append(len(frames))
        frame_numbers.append(tuple(numbers))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.NumberOfFrames = len(frames)
    ds.PixelData = np.ascontiguousarray(np.stack(frames)).astype("<u2").tobytes()
    return ds, frame_numbers


def _shared_groups(geo: GridGeometry) -> Dataset:
    """The functional groups every frame shares: pixel measures, orientation, anatomy."""
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [decimal_string(x) for x in geo.pixel_spacing_mm]
    measures.SliceThickness = decimal_string(geo.slice_spacing_mm)
    measures.SpacingBetweenSlices = decimal_string(geo.slice_spacing_mm)
    shared.PixelMeasuresSequence = DicomSequence([measures])
    orientation = Dataset()
    orientation.ImageOrientationPatient = [decimal_string(x) for x in geo.image_orientation_patient]
    shared.PlaneOrientationSequence = DicomSequence([orientation])
    anatomy = Dataset()
    anatomy.AnatomicRegionSequence = DicomSequence([_code("122496007", "SCT", "Lumbar spine")])
    anatomy.FrameLaterality = "U"
    shared.FrameAnatomySequence = DicomSequence([anatomy])
    return shared


def _dimensions(ds: Dataset, dim_uid: str, mixed: bool) -> None:
    """Multi-frame dimension module: frames indexed by (Stack ID, In-Stack Position Number)."""
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


def _frame_groups(ctx: WriteContext, part: SeriesPart, stack: int, k: int) -> Dataset:
    """The per-frame functional groups of slice ``k`` of ``part`` (stack number ``stack``)."""
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
    position.ImagePositionPatient = [decimal_string(x) for x in ctx.geometry.positions_lps[k]]
    item.PlanePositionSequence = DicomSequence([position])
    transform = Dataset()
    transform.RescaleIntercept = decimal_string(part.encoding.rescale_intercept)
    transform.RescaleSlope = decimal_string(part.encoding.rescale_slope)
    transform.RescaleType = part.encoding.rescale_type
    item.PixelValueTransformationSequence = DicomSequence([transform])
    frame_type = Dataset()
    frame_type.FrameType = list(part.frame_type)
    _enhanced_frame_type_values(frame_type)
    item.MRImageFrameTypeSequence = DicomSequence([frame_type])
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = window_values(part.encoding, part.stored)
    item.FrameVOILUTSequence = DicomSequence([voi])
    if part.encoding.has_rwvm:
        item.RealWorldValueMappingSequence = DicomSequence(
            [rwvm_item(part.encoding, part.stored, part.private_type)]
        )
    block = item.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
    block.add_new(0x11, "CS", part.private_type)
    return item


def _enhanced_frame_type_values(ds: Dataset) -> None:
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.AcquisitionContrast = "UNKNOWN"
