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

import copy
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
from RefractureRiskLib.core.volume import LPS_TO_RAS

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
    multi = [f for ds, f in zip(datasets, files, strict=True) if _is_multiframe(ds)]
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


def _is_multiframe(ds: pydicom.Dataset) -> bool:
    return (
        "PerFrameFunctionalGroupsSequence" in ds or int(getattr(ds, "NumberOfFrames", 1) or 1) > 1
    )


def _slice_index(roiset: RoiSet, ds: pydicom.Dataset) -> int:
    ras = LPS_TO_RAS[:3, :3] @ np.asarray(ds.ImagePositionPatient, float)
    ijk = roiset.labelmap.ras_to_ijk_points(ras)[0]
    k = round(ijk[2])
    if abs(ijk[2] - k) > 0.05 or not 0 <= k < roiset.labelmap.shape[0]:
        raise InputError(
            f"source SOP {ds.SOPInstanceUID}",
            f"slice position is not on the ROI grid (k = {ijk[2]:.3f})",
        )
    if abs(ijk[0]) > 0.05 or abs(ijk[1]) > 0.05:
        raise InputError(f"source SOP {ds.SOPInstanceUID}", "in-plane origin differs from ROI grid")
    return k


#: Largest distance (in voxels) between a source frame's pixel centres and the ROI grid's.
GRID_TOL_VOXELS = 0.05


def _where(ds: pydicom.Dataset, frame_number: int | None = None) -> str:
    """The source file (or SOP instance) and frame, for messages."""
    filename = getattr(ds, "filename", None)
    name = str(filename) if isinstance(filename, str) else f"source SOP {ds.SOPInstanceUID}"
    return name if frame_number is None else f"{name} frame {frame_number}"


def _functional_item(ds: pydicom.Dataset, frame_number: int, keyword: str) -> pydicom.Dataset:
    """The ``keyword`` functional group item of a frame (per-frame first, then shared)."""
    per_frame = ds.PerFrameFunctionalGroupsSequence[frame_number - 1]
    if keyword in per_frame:
        return per_frame[keyword].value[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and keyword in shared[0]:
        return shared[0][keyword].value[0]
    raise InputError(_where(ds, frame_number), f"has no {keyword} (geometry)")


def _frame_slice_index(roiset: RoiSet, ds: pydicom.Dataset, frame_number: int) -> int:
    """Slice ``k`` of the ROI grid that frame ``frame_number`` (1-based) of ``ds`` lies on.

    The frame's first and last pixel centres (from its PlanePositionSequence,
    PlaneOrientationSequence and PixelMeasuresSequence, LPS mm) must fall on voxel centres
    ``(i, j) = (0, 0)`` and ``(Columns - 1, Rows - 1)`` of one slice of the grid (within
    ``GRID_TOL_VOXELS``): same origin, orientation, spacing and size, any frame order.
    """
    where = _where(ds, frame_number)
    try:
        position = np.asarray(
            _functional_item(ds, frame_number, "PlanePositionSequence").ImagePositionPatient, float
        )
        cosines = np.asarray(
            _functional_item(ds, frame_number, "PlaneOrientationSequence").ImageOrientationPatient,
            float,
        )
        spacing = np.asarray(
            _functional_item(ds, frame_number, "PixelMeasuresSequence").PixelSpacing, float
        )
    except (AttributeError, TypeError, ValueError):
        raise InputError(where, "has incomplete plane position/orientation/spacing") from None
    rows, cols = int(ds.Rows), int(ds.Columns)
    # PixelSpacing is (between rows, between columns); cosines are (row direction, column dir.).
    last = position + (cols - 1) * spacing[1] * cosines[:3] + (rows - 1) * spacing[0] * cosines[3:]
    corners = (LPS_TO_RAS[:3, :3] @ np.stack([position, last]).T).T
    ijk = roiset.labelmap.ras_to_ijk_points(corners)
    k = round(float(ijk[0, 2]))
    expected = np.array([[0.0, 0.0, k], [cols - 1.0, rows - 1.0, k]])
    if not 0 <= k < roiset.labelmap.shape[0] or np.abs(ijk - expected).max() > GRID_TOL_VOXELS:
        raise InputError(
            where,
            "PDFF frame is not on a slice of the ROI grid (first/last pixel centre at ijk "
            f"{np.round(ijk, 3).tolist()}; expected [[0, 0, k], [{cols - 1}, {rows - 1}, k]])",
        )
    return k


def _source_frame_items(seg: pydicom.Dataset) -> list[list[pydicom.Dataset]]:
    """Per SEG frame, the Source Image Sequence items of its Derivation Image Sequence."""
    out = []
    for item in seg.PerFrameFunctionalGroupsSequence:
        derivations = item.get("DerivationImageSequence") or []
        out.append([src for d in derivations for src in d.get("SourceImageSequence", [])])
    return out


def _frame_numbers(ref: pydicom.Dataset) -> list[int]:
    value = ref.get("ReferencedFrameNumber")
    if value is None:
        return []
    return [int(v) for v in (value if isinstance(value, pydicom.multival.MultiValue) else [value])]


def _keep_only_source_frames(seg: pydicom.Dataset, frame_numbers: Sequence[int]) -> None:
    """Make every SEG frame reference only its PDFF source frame.

    highdicom matches SEG planes to source frames by position; in a mixed enhanced file the
    water and fat frames share the PDFF frames' positions and would be referenced too.
    """
    wanted = set(frame_numbers)
    for number, item in enumerate(seg.PerFrameFunctionalGroupsSequence, start=1):
        kept_total = 0
        for derivation in item.get("DerivationImageSequence") or []:
            kept = [
                src
                for src in derivation.SourceImageSequence
                if set(_frame_numbers(src)) and set(_frame_numbers(src)) <= wanted
            ]
            derivation.SourceImageSequence = kept
            kept_total += len(kept)
        if kept_total != 1:
            raise InputError(
                f"SEG frame {number}",
                f"matches {kept_total} PDFF source frames by position; expected exactly 1",
            )


#: Functional groups highdicom reads from the SHARED groups of a multi-frame source.
SHARED_GEOMETRY = ("PlaneOrientationSequence", "PixelMeasuresSequence")


def _with_shared_geometry(ds: pydicom.Dataset, frame_numbers: Sequence[int]) -> pydicom.Dataset:
    """``ds`` itself, or a view of it whose shared functional groups hold the orientation and
    pixel measures that the PDFF frames carry per frame (Philips writes them per frame;
    highdicom reads them from the shared groups only). Differing values are refused.

    The view shares every other data element (pixels included) with ``ds``; ``ds`` is not
    changed, and the SEG references the same SOP instance and frames.
    """
    shared = ds.get("SharedFunctionalGroupsSequence") or [pydicom.Dataset()]
    missing = [kw for kw in SHARED_GEOMETRY if kw not in shared[0]]
    if not missing:
        return ds
    item = pydicom.Dataset()
    for elem in shared[0]:
        item.add(elem)
    for keyword in missing:
        values = [_functional_item(ds, f, keyword) for f in frame_numbers]
        if keyword == "PlaneOrientationSequence":
            vectors = np.array([v.ImageOrientationPatient for v in values], float)
        else:
            vectors = np.array([v.PixelSpacing for v in values], float)
        if np.abs(vectors - vectors[0]).max() > 1e-4:
            raise InputError(
                _where(ds), f"PDFF frames differ in {keyword}; SEG export needs one value"
            )
        setattr(item, keyword, pydicom.Sequence([copy.deepcopy(values[0])]))
    view = pydicom.Dataset()
    for elem in ds:
        if elem.keyword != "SharedFunctionalGroupsSequence":
            view.add(elem)
    view.SharedFunctionalGroupsSequence = pydicom.Sequence([item])
    return view


def _enhanced_planes(
    roiset: RoiSet, ds: pydicom.Dataset, frame_numbers: Sequence[int] | None
) -> list[tuple[int, int]]:
    """(k, source frame number) of each PDFF frame, sorted by ``k``; checked for coverage."""
    where = _where(ds)
    n_frames = int(getattr(ds, "NumberOfFrames", 0) or 0)
    if "PerFrameFunctionalGroupsSequence" not in ds or n_frames < 1:
        raise InputError(where, "multi-frame image without per-frame functional groups")
    numbers = list(range(1, n_frames + 1)) if frame_numbers is None else list(frame_numbers)
    bad = [f for f in numbers if not 1 <= f <= n_frames]
    if bad or not numbers or len(set(numbers)) != len(numbers):
        raise InputError(
            where, f"PDFF frame numbers {bad or numbers} are not distinct frames 1..{n_frames}"
        )
    planes = sorted((_frame_slice_index(roiset, ds, f), f) for f in numbers)
    ks = [k for k, _ in planes]
    if len(set(ks)) != len(ks):
        k, *_ = (k for k in ks if ks.count(k) > 1)
        same = [f for kk, f in planes if kk == k]
        hint = "" if frame_numbers is not None else " (mixed file? give the PDFF frame numbers)"
        raise InputError(
            where,
            f"frames {same} lie on the same slice k = {k}; a SEG frame must reference exactly "
            f"one PDFF frame{hint}",
        )
    labelled = np.flatnonzero(roiset.labelmap.array.reshape(roiset.labelmap.shape[0], -1).any(1))
    missing = sorted(set(labelled.tolist()) - set(ks))
    if missing:
        raise InputError(where, f"no PDFF frame on ROI slices k = {missing}")
    return planes


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
    plane_positions = None
    if len(source) == 1 and _is_multiframe(source[0]):
        planes = _enhanced_planes(roiset, source[0], source_frame_numbers)
        order = [_with_shared_geometry(source[0], [f for _, f in planes])]
        frames = np.stack([roiset.labelmap.array[k] for k, _ in planes])
        plane_positions = [
            hd.PlanePositionSequence(
                hd.CoordinateSystemNames.PATIENT,
                _functional_item(source[0], f, "PlanePositionSequence").ImagePositionPatient,
            )
            for _, f in planes
        ]
    elif source_frame_numbers is not None:
        raise InputError("source series", "frame numbers given but the source is not multi-frame")
    else:
        order = sorted(source, key=lambda ds: _slice_index(roiset, ds))
        frames = np.stack([roiset.labelmap.array[_slice_index(roiset, ds)] for ds in order])
    if frames.shape[1:] != (int(order[0].Rows), int(order[0].Columns)):
        raise InputError("source series", f"image size {frames.shape[1:]} differs from ROI grid")
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
    if plane_positions is not None:
        _keep_only_source_frames(seg, [f for _, f in planes])
    return _save(seg, out_path, deidentify), seg


def _segment_source_frames(seg: pydicom.Dataset, segment_number: int) -> list[int]:
    """Source frame numbers referenced by the SEG frames of one segment (sorted)."""
    frames: set[int] = set()
    for item, refs in zip(
        seg.PerFrameFunctionalGroupsSequence, _source_frame_items(seg), strict=True
    ):
        if int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber) == segment_number:
            for ref in refs:
                frames.update(_frame_numbers(ref))
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
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(),
            name="RefractureRisk",
            manufacturer_name=MANUFACTURER,
            model_name=f"RefractureRiskLib {__version__}",
        ),
    )
    context = hd.sr.ObservationContext(observer_device_context=observer)
    pdff_series = source[0].SeriesInstanceUID
    enhanced = len(source) == 1 and _is_multiframe(source[0])
    groups = []
    for number, lv in enumerate(roiset.levels, start=1):
        rows = stats[stats["level"] == lv.level]
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
        if enhanced:
            referenced = hd.sr.ReferencedSegment(
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
        else:
            referenced = hd.sr.ReferencedSegment(
                sop_class_uid=seg.SOPClassUID,
                sop_instance_uid=seg.SOPInstanceUID,
                segment_number=number,
                source_series=hd.sr.SourceSeriesForSegmentation(pdff_series),
            )
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
