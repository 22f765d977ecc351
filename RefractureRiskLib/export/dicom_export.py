"""ROIs as DICOM Segmentation and measurements as a DICOM Structured Report (TID 1500).

Both reference the source PDFF series: classic MR images (one file per slice) or the PDFF frames
of one Enhanced MR Image file (Philips mDIXON Quant), which may also hold other frames (water and
fat in a "mixed" file): each SEG frame then references exactly the PDFF source frame at its plane
position (frames are matched to the label map's slices by their per-frame plane position, never by
frame order), and each SR measurement group names those source frames. Built with highdicom.

Codes: segments are "Bone marrow" (SCT 14016003) of category "Tissue" (SCT 85756007) with the
vertebra (e.g. SCT 66794005 "L1 vertebra") as anatomic region; measurements are
"Fat fraction" (DCM 129100, unit UCUM %) and "R2*" (DCM 126395, unit UCUM /s), derivation
Mean/Median/Standard Deviation (SCT). ``deidentify=True`` replaces the patient's name, ID and
birth date, empties accession number and study ID, and removes the study description and other
identifying type 3 attributes in the exported objects (the source files are not changed).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from RefractureRiskLib import __version__
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.roiset import RoiMethod, RoiSet
from RefractureRiskLib.export.source_frames import (
    classic_slice_index,
    enhanced_planes,
    functional_item,
    is_multiframe,
    keep_only_source_frames,
    referenced_frame_numbers,
    source_frame_items,
    with_shared_geometry,
)

MANUFACTURER = "RefractureRisk"
VERTEBRA_CODES = {
    "T10": codes.SCT.T10Vertebra,
    "T11": codes.SCT.T11Vertebra,
    "T12": codes.SCT.T12Vertebra,
    "L1": codes.SCT.L1Vertebra,
    "L2": codes.SCT.L2Vertebra,
    "L3": codes.SCT.L3Vertebra,
    "L4": codes.SCT.L4Vertebra,
    "L5": codes.SCT.L5Vertebra,
    "S1": codes.SCT.Sacrum,
}
MAP_CODES = {
    "pdff": (codes.DCM.FatFraction, codes.UCUM.Percent),
    "r2s": (codes.DCM.R2Star, codes.UCUM.PerSecond),
}
DERIVATIONS = {
    "mean": codes.SCT.Mean,
    "median": codes.SCT.Median,
    "sd": codes.SCT.StandardDeviation,
}
DEIDENTIFIED = {
    "PatientName": "ANONYMOUS",
    "PatientID": "ANON",
    "PatientBirthDate": "",
    # Type 2 study identifiers (kept, emptied): PS3.15 basic profile "Z".
    "AccessionNumber": "",
    "StudyID": "",
    "ReferringPhysicianName": "",
}
#: De-identification Method (0012,0063), LO: several values of at most 64 characters.
DEIDENTIFICATION_METHOD = [
    "RefractureRisk: name, ID, birth date replaced",
    "accession number, study ID emptied",
    "identifying type 3 attributes removed",
    "UIDs and dates retained",
]
#: Type 3 attributes copied from the source that can identify the patient: removed (PS3.15 "X").
DEIDENTIFY_REMOVE = (
    "StudyDescription",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "OtherPatientIDs",
    "OtherPatientNames",
    "InstitutionName",
    "InstitutionAddress",
    "PhysiciansOfRecord",
    "OperatorsName",
    "PerformingPhysicianName",
)


def read_source_series(files: Sequence[str | Path]) -> list[pydicom.Dataset]:
    """Read the source PDFF series: classic MR (one slice per file) or ONE enhanced file.

    An enhanced (multi-frame) source must be a single file; which of its frames are PDFF is
    given to :func:`export_seg` (``source_frame_numbers``).
    """
    if not files:
        raise InputError("source series", "no DICOM files given for the PDFF series")
    datasets = []
    for f in files:
        try:
            datasets.append(pydicom.dcmread(str(f)))
        except Exception as err:  # pydicom raises several types for unreadable files
            raise InputError(f, f"cannot read source DICOM ({type(err).__name__})") from None
    multi = [f for ds, f in zip(datasets, files, strict=True) if is_multiframe(ds)]
    if multi and len(files) > 1:
        raise InputError(
            multi[0],
            f"the PDFF images span {len(files)} files, {len(multi)} of them multi-frame; SEG "
            "export supports one enhanced file or classic single-frame files only",
        )
    for ds, f in zip(datasets, files, strict=True):
        for attr in ("PatientBirthDate", "PatientSex"):
            if attr not in ds:
                raise InputError(f, f"source image lacks {attr} (highdicom needs it for SEG/SR)")
    return datasets


def _deidentify(ds: pydicom.Dataset) -> None:
    """Replace or remove the patient- and study-identifying attributes of an exported object.

    highdicom shares data elements with the source datasets: assigning in place would rewrite
    the caller's source images too, so each element is deleted and added anew.
    """
    for key, value in DEIDENTIFIED.items():
        if key in ds:
            delattr(ds, key)
        setattr(ds, key, value)
    for key in DEIDENTIFY_REMOVE:
        if key in ds:
            delattr(ds, key)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD


def _save(ds: pydicom.Dataset, out_path: str | Path, deidentify: bool) -> Path:
    """Write an exported object (de-identified first when asked); returns the path."""
    if deidentify:
        _deidentify(ds)
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


def _algorithm(roiset: RoiSet) -> tuple[str, hd.AlgorithmIdentificationSequence | None]:
    if roiset.method == RoiMethod.AUTOMATIC:
        algo = hd.AlgorithmIdentificationSequence(
            name="RefractureRisk automatic vertebral ROI",
            version=__version__,
            family=codes.DCM.ImageProcessing,
        )
        return hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC.value, algo
    return hd.seg.SegmentAlgorithmTypeValues.MANUAL.value, None


def export_seg(
    roiset: RoiSet,
    source: Sequence[pydicom.Dataset],
    out_path: str | Path,
    *,
    deidentify: bool = False,
    series_number: int = 900,
    source_frame_numbers: Sequence[int] | None = None,
) -> tuple[Path, hd.seg.Segmentation]:
    """Write the ROIs as a binary DICOM SEG referencing ``source`` (the PDFF series).

    ``source`` is classic images (one slice each) or one enhanced multi-frame image; then
    ``source_frame_numbers`` (1-based) are its PDFF frames (default: every frame), matched to
    the ROI grid's slices by plane position, and each SEG frame references its PDFF frame.
    """
    order, frames, planes = _source_planes(roiset, source, source_frame_numbers)
    plane_positions = _plane_positions(source[0], planes) if planes is not None else None
    if frames.shape[1:] != (int(order[0].Rows), int(order[0].Columns)):
        raise InputError("source series", f"image size {frames.shape[1:]} differs from ROI grid")
    pixel, descriptions = _segments(roiset, frames)
    if not descriptions:
        raise InputError("ROI set", "has no levels to export")
    seg = hd.seg.Segmentation(
        source_images=order,
        pixel_array=pixel,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="RefractureRiskLib",
        software_versions=__version__,
        device_serial_number="0",
        series_description=f"Vertebral marrow ROIs ({roiset.method.value}, {roiset.reader})",
        plane_positions=plane_positions,
    )
    if planes is not None:
        keep_only_source_frames(seg, [f for _, f in planes])
    return _save(seg, out_path, deidentify), seg


def _segment_source_frames(seg: pydicom.Dataset, segment_number: int) -> list[int]:
    """Source frame numbers referenced by the SEG frames of one segment (sorted)."""
    frames: set[int] = set()
    for item, refs in zip(
        seg.PerFrameFunctionalGroupsSequence, source_frame_items(seg), strict=True
    ):
        if int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber) == segment_number:
            for ref in refs:
                frames.update(referenced_frame_numbers(ref))
    if not frames:
        raise InputError(f"SEG segment {segment_number}", "references no source frame")
    return sorted(frames)


def export_sr(
    seg: hd.seg.Segmentation,
    roiset: RoiSet,
    stats: pd.DataFrame,
    source: Sequence[pydicom.Dataset],
    out_path: str | Path,
    *,
    deidentify: bool = False,
    series_number: int = 901,
) -> Path:
    """Write a TID 1500 measurement report with per-level PDFF/R2* statistics of each segment.

    Each measurement group references its SEG segment and the source: the PDFF series
    (classic) or, for an enhanced source, the PDFF frames the segment was drawn on.
    """
    context = _observation_context()
    enhanced = len(source) == 1 and is_multiframe(source[0])
    groups = []
    for number, lv in enumerate(roiset.levels, start=1):
        measurements = _level_measurements(stats[stats["level"] == lv.level])
        referenced = _referenced_segment(seg, number, source, enhanced)
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=generate_uid(), identifier=f"{lv.level} vertebral marrow ROI"
                ),
                referenced_segment=referenced,
                finding_type=codes.SCT.BoneMarrow,
                finding_sites=[hd.sr.FindingSite(VERTEBRA_CODES[lv.level])],
                measurements=measurements or None,
            )
        )
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=codes.LN.MRIUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    with warnings.catch_warnings():
        # A de-identified SEG's one-component name "ANONYMOUS" is intended; highdicom warns.
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person")
        sr = hd.sr.Comprehensive3DSR(
            evidence=[*source, seg],
            content=report,
            series_instance_uid=generate_uid(),
            series_number=series_number,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            series_description="Vertebral marrow PDFF/R2* measurements",
            is_complete=True,
        )
    return _save(sr, out_path, deidentify)


def _level_measurements(rows: pd.DataFrame) -> list[hd.sr.Measurement]:
    """One level's statistics rows as TID 300 measurements (mean, SD, ... of each map)."""
    measurements = []
    for _, row in rows.iterrows():
        if row["map"] not in MAP_CODES or not np.isfinite(row["mean"]):
            continue
        name, unit = MAP_CODES[row["map"]]
        for key, derivation in DERIVATIONS.items():
            measurements.append(
                hd.sr.Measurement(
                    name=name, value=float(row[key]), unit=unit, derivation=derivation
                )
            )
    return measurements


def _referenced_segment(
    seg: hd.seg.Segmentation, number: int, source: Sequence[pydicom.Dataset], enhanced: bool
) -> hd.sr.ReferencedSegment:
    """SEG segment ``number`` with its source: the PDFF frames of an enhanced file, or the
    classic PDFF series."""
    if enhanced:
        return hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=number,
            source_images=[
                hd.sr.SourceImageForSegmentation(
                    source[0].SOPClassUID,
                    source[0].SOPInstanceUID,
                    referenced_frame_numbers=_segment_source_frames(seg, number),
                )
            ],
        )
    return hd.sr.ReferencedSegment(
        sop_class_uid=seg.SOPClassUID,
        sop_instance_uid=seg.SOPInstanceUID,
        segment_number=number,
        source_series=hd.sr.SourceSeriesForSegmentation(source[0].SeriesInstanceUID),
    )


def _source_planes(
    roiset: RoiSet, source: Sequence[pydicom.Dataset], source_frame_numbers: Sequence[int] | None
) -> tuple[list[pydicom.Dataset], np.ndarray, list[tuple[int, int]] | None]:
    """(source images in SEG order, label-map slices matching them, (slice, frame) pairs of an
    enhanced source or None for classic images)."""
    if len(source) == 1 and is_multiframe(source[0]):
        planes = enhanced_planes(roiset, source[0], source_frame_numbers)
        order = [with_shared_geometry(source[0], [f for _, f in planes])]
        frames = np.stack([roiset.labelmap.array[k] for k, _ in planes])
        return order, frames, planes
    if source_frame_numbers is not None:
        raise InputError("source series", "frame numbers given but the source is not multi-frame")
    order = sorted(source, key=lambda ds: classic_slice_index(roiset, ds))
    frames = np.stack([roiset.labelmap.array[classic_slice_index(roiset, ds)] for ds in order])
    return order, frames, None


def _plane_positions(
    enhanced: pydicom.Dataset, planes: list[tuple[int, int]]
) -> list[hd.PlanePositionSequence]:
    return [
        hd.PlanePositionSequence(
            hd.CoordinateSystemNames.PATIENT,
            functional_item(enhanced, f, "PlanePositionSequence").ImagePositionPatient,
        )
        for _, f in planes
    ]


def _segments(
    roiset: RoiSet, frames: np.ndarray
) -> tuple[np.ndarray, list[hd.seg.SegmentDescription]]:
    """The SEG pixel array (segment number per voxel) and one description per level."""
    algo_type, algo = _algorithm(roiset)
    descriptions = []
    pixel = np.zeros(frames.shape, np.uint16)
    for number, lv in enumerate(roiset.levels, start=1):
        pixel[frames == lv.label] = number
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=f"{lv.level} marrow ROI",
                segmented_property_category=codes.SCT.Tissue,
                segmented_property_type=codes.SCT.BoneMarrow,
                algorithm_type=algo_type,
                algorithm_identification=algo,
                tracking_uid=generate_uid(),
                tracking_id=f"{lv.level} vertebral marrow ROI",
                anatomic_regions=[VERTEBRA_CODES[lv.level]],
            )
        )
    return pixel, descriptions


def _observation_context() -> hd.sr.ObservationContext:
    """The SR's observer: this software, as a device."""
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(),
            name="RefractureRisk",
            manufacturer_name=MANUFACTURER,
            model_name=f"RefractureRiskLib {__version__}",
        ),
    )
    return hd.sr.ObservationContext(observer_device_context=observer)
