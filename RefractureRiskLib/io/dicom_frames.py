"""One DICOM file's image frames as the header describes them: where each 2D image lies (LPS
mm), its pixel spacing, rescale and real-world value mapping, ImageType and vendor hints.

Classic files hold one frame; an enhanced (multi-frame) file holds many, each described by its
per-frame functional groups, falling back to the shared ones. Read from a pydicom data set or the
fast header reader's (:mod:`.dicom_fastheader`), which answer ``get`` alike. Used by
:mod:`.dicom_scan`; nothing here reads pixel data.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence as AbcSequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

# Tags used by classification (vendor private tags are read by number, not by name).
GE_PULSE_SEQUENCE = (0x0019, 0x109C)
GE_INTERNAL_SEQUENCE = (0x0019, 0x109E)
GE_IMAGE_TYPE = (0x0043, 0x102F)
PHILIPS_IMAGE_TYPE_MR = (0x2005, 0x1011)
PHILIPS_PRIVATE_FRAME_ITEMS = (0x2005, 0x140F)


@dataclass(frozen=True)
class FrameRef:
    """One 2D image: a single-frame file or one frame of a multi-frame (enhanced) file.

    Geometry is LPS (DICOM patient coordinates, mm). ``pixel_offset`` is the byte offset of the
    Pixel Data element's tag when the transfer syntax is native little-endian (so the pixels can
    be read without parsing the file again), otherwise None. ``slope``/``intercept`` are the
    modality rescale of this frame (per-frame in enhanced files); ``rwv`` is the real-world value
    mapping ``(slope, intercept, units code, units meaning)`` when present.
    """

    path: Path
    frame_index: int | None
    n_frames_in_file: int
    sop_instance_uid: str
    instance_number: int | None
    transfer_syntax: str
    pixel_offset: int | None
    rows: int
    cols: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    samples_per_pixel: int
    position_lps: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    pixel_spacing_mm: tuple[float, float] | None  # (between rows, between columns)
    slice_thickness_mm: float | None
    spacing_between_slices_mm: float | None
    gantry_tilt_deg: float | None
    slope: float
    intercept: float
    rescale_type: str | None
    rwv: tuple[float, float, str, str] | None
    image_type: tuple[str, ...]
    echo_number: int | None
    echo_time_ms: float | None
    private_hints: tuple[tuple[str, str], ...]  # (tag name, value) for classification
    #: Why the file's pixel description does not fit its pixel data (the file and the tag
    #: named), or None. Such a frame is listed, and refused when a stack is built from it.
    pixel_problem: str | None = None


class SkipFileError(Exception):
    """Internal: the file is DICOM but not an image this loader uses."""


def to_float(value, default: float | None = None) -> float | None:
    try:
        return float(value) if value is not None and value != "" else default
    except (TypeError, ValueError):
        return default


def to_int(value) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def to_tokens(value) -> tuple[str, ...]:
    if value is None:
        return ()
    parts = value.split("\\") if isinstance(value, str) else list(value)
    return tuple(str(p).strip().upper() for p in parts if str(p).strip())


def to_vector(value, n: int) -> tuple[float, ...] | None:
    try:
        vals = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return vals if len(vals) == n else None


def private_hints(ds: Dataset) -> tuple[tuple[str, str], ...]:
    hints = []
    for name, tag in (
        ("GE (0019,109C) pulse sequence", GE_PULSE_SEQUENCE),
        ("GE (0019,109E) internal sequence", GE_INTERNAL_SEQUENCE),
        ("GE (0043,102F) image type", GE_IMAGE_TYPE),
        ("Philips (2005,1011) image type", PHILIPS_IMAGE_TYPE_MR),
    ):
        elem = ds.get(tag)
        value = getattr(elem, "value", elem)  # pydicom gives an element, the fast reader a value
        if value not in (None, b"", ""):
            if isinstance(value, bytes):
                value = value.decode("latin-1", "replace").strip("\x00 ")
            hints.append((name, str(value).strip()))
    return tuple(hints)


def _rwv(item: Dataset | None) -> tuple[float, float, str, str] | None:
    seq = item.get("RealWorldValueMappingSequence") if item is not None else None
    if not seq:
        return None
    rw = seq[0]
    slope = to_float(rw.get("RealWorldValueSlope"))
    if slope is None:
        return None
    code, meaning = "", ""
    units = rw.get("MeasurementUnitsCodeSequence")
    if units:
        code = str(units[0].get("CodeValue", "") or "")
        meaning = str(units[0].get("CodeMeaning", "") or "")
    return slope, to_float(rw.get("RealWorldValueIntercept"), 0.0) or 0.0, code, meaning


def _common_frame_fields(path: Path, ds: Dataset, ts: str, offset: int | None) -> dict:
    return {
        "path": path,
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "") or path.name),
        "instance_number": to_int(ds.get("InstanceNumber")),
        "transfer_syntax": ts,
        "pixel_offset": offset,
        "rows": int(ds.get("Rows")),
        "cols": int(ds.get("Columns")),
        "bits_allocated": int(ds.get("BitsAllocated", 16)),
        "bits_stored": int(ds.get("BitsStored", ds.get("BitsAllocated", 16))),
        "pixel_representation": int(ds.get("PixelRepresentation", 0)),
        "samples_per_pixel": int(ds.get("SamplesPerPixel", 1)),
        "gantry_tilt_deg": to_float(ds.get("GantryDetectorTilt")),
    }


def classic_frame(path: Path, ds: Dataset, ts: str, offset: int | None) -> FrameRef:
    spacing = to_vector(ds.get("PixelSpacing"), 2)
    return FrameRef(
        frame_index=None,
        n_frames_in_file=1,
        position_lps=to_vector(ds.get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
        orientation=to_vector(ds.get("ImageOrientationPatient"), 6),  # type: ignore[arg-type]
        pixel_spacing_mm=spacing,  # type: ignore[arg-type]
        slice_thickness_mm=to_float(ds.get("SliceThickness")),
        spacing_between_slices_mm=to_float(ds.get("SpacingBetweenSlices")),
        slope=to_float(ds.get("RescaleSlope"), 1.0) or 1.0,
        intercept=to_float(ds.get("RescaleIntercept"), 0.0) or 0.0,
        rescale_type=str(ds.get("RescaleType", "") or "") or None,
        rwv=_rwv(ds),
        image_type=to_tokens(ds.get("ImageType")),
        echo_number=to_int(_first(ds.get("EchoNumbers"))),
        echo_time_ms=to_float(ds.get("EchoTime")),
        private_hints=private_hints(ds),
        **_common_frame_fields(path, ds, ts, offset),
    )


def _first(value):
    if value is None or isinstance(value, str | int | float):
        return value
    try:
        return next(iter(value))
    except (TypeError, StopIteration):
        return value


def _group(ds: Dataset, per_frame: Dataset | None, seq: str) -> Dataset | None:
    """Item of functional group ``seq`` for one frame: per-frame first, then shared."""
    for container in (per_frame, _shared(ds)):
        if container is not None and seq in container:
            items = container.get(seq)
            if items:
                return items[0]
    return None


def _shared(ds: Dataset) -> Dataset | None:
    seq = ds.get("SharedFunctionalGroupsSequence")
    return seq[0] if seq else None


#: More frames than any MR volume holds (a corrupt count is not walked frame by frame).
MAX_FRAMES = 100_000


def enhanced_frames(
    path: Path, ds: Dataset, ts: str, offset: int | None, n_frames: int
) -> Iterable[FrameRef]:
    """The frames of an enhanced (multi-frame) file, from its per-frame functional groups."""
    per_frame_seq = ds.get("PerFrameFunctionalGroupsSequence") or []
    _check_frame_count(len(per_frame_seq), n_frames)
    common = _common_frame_fields(path, ds, ts, offset)
    frame_bytes = common["rows"] * common["cols"] * common["samples_per_pixel"]
    frame_bytes *= common["bits_allocated"] // 8
    file_type = to_tokens(ds.get("ImageType"))
    file_hints = private_hints(ds)
    for i in range(n_frames):
        pf = per_frame_seq[i] if per_frame_seq else None
        ftype = _group(ds, pf, "MRImageFrameTypeSequence")
        echo = _group(ds, pf, "MREchoSequence")
        frame_type = to_tokens(ftype.get("FrameType")) if ftype is not None else ()
        yield FrameRef(
            frame_index=i,
            n_frames_in_file=n_frames,
            **_frame_geometry(ds, pf),
            **_frame_values(ds, pf),
            image_type=frame_type or file_type,
            echo_number=None,
            echo_time_ms=to_float(echo.get("EffectiveEchoTime"))
            if echo
            else to_float(ds.get("EchoTime")),
            private_hints=_frame_hints(pf) or file_hints,
            **{**common, "pixel_offset": None if offset is None else offset + i * frame_bytes},
        )


def _check_frame_count(n_items: int, n_frames: int) -> None:
    """Refuse a frame count the per-frame items (``n_items`` of them) do not bear out."""
    if n_items and n_items != n_frames:
        raise SkipFileError(
            f"corrupt enhanced file: {n_items} per-frame items for NumberOfFrames {n_frames}"
        )
    if not n_items and n_frames > 1:
        # frames without their own position cannot be stacked, and a corrupt count (up to
        # 2^31) must not be walked frame by frame
        raise SkipFileError(
            f"corrupt enhanced file: NumberOfFrames {n_frames} without per-frame functional "
            "groups (frame positions unknown)"
        )
    if n_frames > MAX_FRAMES:
        raise SkipFileError(f"NumberOfFrames {n_frames} (at most {MAX_FRAMES} accepted)")


def _frame_geometry(ds: Dataset, pf: Dataset | None) -> dict:
    """Position, orientation, pixel spacing and slice thickness/spacing of one frame."""
    pos = _group(ds, pf, "PlanePositionSequence")
    ori = _group(ds, pf, "PlaneOrientationSequence")
    meas = _group(ds, pf, "PixelMeasuresSequence")
    return {
        "position_lps": to_vector(pos.get("ImagePositionPatient"), 3) if pos else None,
        "orientation": to_vector(ori.get("ImageOrientationPatient"), 6) if ori else None,
        "pixel_spacing_mm": to_vector(meas.get("PixelSpacing"), 2) if meas else None,
        "slice_thickness_mm": to_float(meas.get("SliceThickness")) if meas else None,
        "spacing_between_slices_mm": to_float(
            (meas.get("SpacingBetweenSlices") if meas else None) or ds.get("SpacingBetweenSlices")
        ),
    }


def _frame_values(ds: Dataset, pf: Dataset | None) -> dict:
    """Rescale and real-world value mapping of one frame (per-frame, shared, then the file's)."""
    pvt = _group(ds, pf, "PixelValueTransformationSequence")
    if pvt:
        slope = to_float(pvt.get("RescaleSlope"), 1.0)
        intercept = to_float(pvt.get("RescaleIntercept"), 0.0)
    else:
        slope = to_float(ds.get("RescaleSlope"), 1.0)
        intercept = to_float(ds.get("RescaleIntercept"), 0.0)
    rwv_item = pf if pf is not None and "RealWorldValueMappingSequence" in pf else _shared(ds)
    return {
        "slope": slope or 1.0,
        "intercept": intercept or 0.0,
        "rescale_type": str((pvt or ds).get("RescaleType", "") or "") or None,
        "rwv": _rwv(rwv_item),
    }


def _frame_hints(pf: Dataset | None) -> tuple[tuple[str, str], ...]:
    """Vendor hints of one frame's Philips private item, if it has any (else empty)."""
    priv = pf.get(PHILIPS_PRIVATE_FRAME_ITEMS) if pf is not None else None
    priv_items = getattr(priv, "value", priv)  # pydicom: element; fast reader: items
    if isinstance(priv_items, AbcSequence) and priv_items and hasattr(priv_items[0], "get"):
        return private_hints(priv_items[0])
    return ()
