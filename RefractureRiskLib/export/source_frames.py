"""Where a label map's slices are in the source DICOM: classic slices or enhanced frames matched
to the study grid (within :data:`GRID_TOL_VOXELS`), the SEG's frame references reduced to the
PDFF frames of a mixed enhanced file, and enhanced geometry made explicit per frame for highdicom.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import pydicom

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.roiset import RoiSet
from RefractureRiskLib.core.volume import LPS_TO_RAS


def is_multiframe(ds: pydicom.Dataset) -> bool:
    return (
        "PerFrameFunctionalGroupsSequence" in ds or int(getattr(ds, "NumberOfFrames", 1) or 1) > 1
    )


def classic_slice_index(roiset: RoiSet, ds: pydicom.Dataset) -> int:
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


def functional_item(ds: pydicom.Dataset, frame_number: int, keyword: str) -> pydicom.Dataset:
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
            functional_item(ds, frame_number, "PlanePositionSequence").ImagePositionPatient, float
        )
        cosines = np.asarray(
            functional_item(ds, frame_number, "PlaneOrientationSequence").ImageOrientationPatient,
            float,
        )
        spacing = np.asarray(
            functional_item(ds, frame_number, "PixelMeasuresSequence").PixelSpacing, float
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


def source_frame_items(seg: pydicom.Dataset) -> list[list[pydicom.Dataset]]:
    """Per SEG frame, the Source Image Sequence items of its Derivation Image Sequence."""
    out = []
    for item in seg.PerFrameFunctionalGroupsSequence:
        derivations = item.get("DerivationImageSequence") or []
        out.append([src for d in derivations for src in d.get("SourceImageSequence", [])])
    return out


def referenced_frame_numbers(ref: pydicom.Dataset) -> list[int]:
    value = ref.get("ReferencedFrameNumber")
    if value is None:
        return []
    return [int(v) for v in (value if isinstance(value, pydicom.multival.MultiValue) else [value])]


def keep_only_source_frames(seg: pydicom.Dataset, frame_numbers: Sequence[int]) -> None:
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
                if set(referenced_frame_numbers(src))
                and set(referenced_frame_numbers(src)) <= wanted
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


def with_shared_geometry(ds: pydicom.Dataset, frame_numbers: Sequence[int]) -> pydicom.Dataset:
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
        values = [functional_item(ds, f, keyword) for f in frame_numbers]
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


def enhanced_planes(
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
