"""DICOM discovery: walk a folder, read headers only, and describe every image frame.

Files are found recursively (nested folders, with or without extension, DICOMDIR or not); each is
read with ``stop_before_pixels`` so scanning costs header bytes only. Every file that is skipped
(not DICOM, corrupt, truncated, a DICOMDIR, a non-image object) is kept with the reason, so the
caller can tell the user what was ignored and why.

Coordinates here are DICOM patient coordinates (LPS, millimetres), as stored in the headers;
conversion to RAS happens when a :class:`~RefractureRiskLib.core.volume.Volume` is built.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.study import PatientInfo
from RefractureRiskLib.io.dicom_fastheader import read_fast_header
from RefractureRiskLib.io.dicom_frames import (
    FrameRef,
    SkipFileError,
    classic_frame,
    enhanced_frames,
    to_float,
    to_int,
)

if TYPE_CHECKING:  # pydicom is imported only for files the fast header reader leaves to it
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

#: Transfer syntaxes whose pixel data can be read directly from the file (little-endian, native).
NATIVE_LITTLE_ENDIAN = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
EXPLICIT_BIG_ENDIAN = "1.2.840.10008.1.2.2"


@dataclass(frozen=True)
class SeriesHeader:
    """Series- and study-level facts shared by the frames of one file (no PHI kept)."""

    study_uid: str
    series_uid: str
    series_number: int | None
    series_description: str
    study_description: str
    modality: str
    sop_class_uid: str
    manufacturer: str
    model: str
    field_strength_t: float | None
    frame_of_reference_uid: str | None
    patient_key: str  # a short hash of the patient identifiers: compares patients, reveals nothing
    patient: PatientInfo


@dataclass(frozen=True)
class ScannedFile:
    """A DICOM image file that was read: its series facts and its frames."""

    path: Path
    header: SeriesHeader
    frames: tuple[FrameRef, ...]


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not used, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class FolderScan:
    """Result of :func:`scan_files`: image files read, files skipped, and how many were seen."""

    root: Path
    files: tuple[ScannedFile, ...]
    skipped: tuple[SkippedFile, ...]
    n_seen: int


# -- walking --------------------------------------------------------------------------------------


def iter_candidate_files(root: Path) -> Iterator[Path]:
    """All regular files under ``root`` (or ``root`` itself), in a stable order; hidden skipped."""
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            yield Path(dirpath) / name


def scan_files(root: str | Path, progress: Callable[[str], None] | None = None) -> FolderScan:
    """Read the header of every file under ``root``; never raises for a bad file (it is skipped).

    ``progress(message)`` (the library's convention) hears "scanned k of n files" about every
    fiftieth of the files and after the last. Raises :class:`InputError` only when ``root``
    does not exist.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(root, "folder not found")
    files: list[ScannedFile] = []
    skipped: list[SkippedFile] = []
    paths = list(iter_candidate_files(root))
    every = -(-len(paths) // 50)  # at most 50 reports, however many files
    for n, path in enumerate(paths, 1):
        result = scan_one_file(path)
        if isinstance(result, SkippedFile):
            skipped.append(result)
        else:
            files.append(result)
        if progress is not None and (n % every == 0 or n == len(paths)):
            progress(f"scanned {n} of {len(paths)} files")
    return FolderScan(root, tuple(files), tuple(skipped), len(paths))


def scan_one_file(path: Path) -> ScannedFile | SkippedFile:
    """Header-only read of one file: a :class:`ScannedFile` or the reason it is skipped."""
    try:
        size = path.stat().st_size
    except OSError as err:
        return SkippedFile(path, f"cannot be read ({err.strerror})")
    if size == 0:
        return SkippedFile(path, "empty file (0 bytes)")
    fast = read_fast_header(path)
    if fast is not None:
        ds_fast, pixel_offset, pixel_head = fast
        try:
            return _describe_file(path, ds_fast, size, pixel_offset, pixel_head)
        except SkipFileError as skip:
            return SkippedFile(path, str(skip))
        except Exception:  # any oddity: let pydicom read it and say what is wrong
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on every odd value; we give reasons
        return _scan_with_pydicom(path, size)


def _scan_with_pydicom(path: Path, size: int) -> ScannedFile | SkippedFile:
    from pydicom.errors import InvalidDicomError

    try:
        with open(path, "rb") as fp:
            ds = _read_header(fp)
            if ds is None:
                return SkippedFile(path, "not a DICOM file (no DICM preamble or DICOM header)")
            pixel_offset = fp.tell()
            pixel_head = fp.read(12)
    except InvalidDicomError as err:
        return SkippedFile(path, f"not a readable DICOM file ({_first_line(err)})")
    except Exception as err:  # pydicom raises many types for damaged headers
        return SkippedFile(path, f"corrupt or truncated DICOM header ({_first_line(err)})")
    try:
        return _describe_pydicom(path, ds, size, pixel_offset, pixel_head)
    except SkipFileError as skip:
        return SkippedFile(path, str(skip))
    except Exception as err:  # damaged values of any kind (pydicom converts lazily)
        return SkippedFile(path, f"unreadable DICOM attributes ({_first_line(err)})")


def _describe_pydicom(
    path: Path, ds: Dataset, size: int, pixel_offset: int, pixel_head: bytes
) -> ScannedFile | SkippedFile:
    if "DirectoryRecordSequence" in ds:
        return SkippedFile(path, "DICOMDIR index (the folder is scanned directly instead)")
    if "PixelData" not in ds and len(pixel_head) < 8:
        sop_name = str(getattr(ds.get("SOPClassUID"), "name", ""))
        if "SOPClassUID" not in ds:
            return SkippedFile(
                path,
                f"truncated or incomplete DICOM file: the data set ends after {pixel_offset} "
                f"bytes without SOP Class UID or Pixel Data",
            )
        if ("Rows" in ds and "Columns" in ds) or "Image Storage" in sop_name:
            return SkippedFile(
                path,
                f"truncated file or image without pixel data: no Pixel Data element after "
                f"{pixel_offset} bytes ({_no_pixel_reason(ds)})",
            )
        return SkippedFile(path, _no_pixel_reason(ds))
    return _describe_file(path, ds, size, pixel_offset, pixel_head)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:160] if text else type(err).__name__


def _read_header(fp) -> Dataset | None:
    """Parse up to the pixel data; files without preamble are accepted if they start like DICOM."""
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_partial

    if _starts_with_group_0000(fp):
        raise InvalidDicomError("zero bytes where the data set should begin")
    try:
        return read_partial(fp, header_end)
    except InvalidDicomError:
        fp.seek(0)
        head = fp.read(8)
        fp.seek(0)
        # A raw data set without preamble starts with a group 0x0002 or 0x0008 element.
        if len(head) == 8 and head[1:2] == b"\x00" and head[0] in (0x02, 0x08):
            return read_partial(fp, header_end, force=True)
        return None


def _starts_with_group_0000(fp) -> bool:
    """A data set (after the DICM prefix and the file meta group) that begins with group 0x0000:
    zeros where the data set should be. pydicom would read them as command elements, 8 bytes at
    a time to the end of the file, before any stop condition is asked."""
    head = fp.read(144)
    fp.seek(0)
    if head[128:132] != b"DICM":
        return False  # pydicom refuses it at once (or reads a group 0x0002/0x0008 data set)
    start = 132
    if head[132:134] == b"\x02\x00" and head[136:138] == b"UL":
        start = 144 + int.from_bytes(head[140:144], "little")
    fp.seek(start)
    tag = fp.read(4)
    fp.seek(0)
    return len(tag) == 4 and tag[:2] == b"\x00\x00"


def header_end(tag: int, _vr: object, _length: int) -> bool:
    """Where pydicom's header read stops (``read_partial``'s ``stop_when``): the pixel data
    (as ``dcmread(stop_before_pixels=True)``), or an element of group 0x0000, which no file's
    data set holds and which a zero-filled tail reads as, 8 bytes at a time (minutes for a few
    hundred MB); the file is then described as ending there."""
    return tag in (0x7FE00010, 0x7FE00008, 0x7FE00009) or tag >> 16 == 0


def _no_pixel_reason(ds: Dataset) -> str:
    sop = str(ds.get("SOPClassUID", ""))
    name = getattr(ds.get("SOPClassUID"), "name", sop) if sop else "unknown SOP class"
    return f"DICOM object without pixel data ({name})"


# -- describing a file ----------------------------------------------------------------------------

_EXPLICIT_LONG_VRS = (b"OB", b"OW", b"OF", b"OD", b"OL", b"UN", b"OV")


def _pixel_value_length(ts: str, head: bytes) -> tuple[int, int] | None:
    """(header length, value length) of the Pixel Data element at ``head``, or None."""
    big = ts == EXPLICIT_BIG_ENDIAN
    tag = b"\x7f\xe0\x00\x10" if big else b"\xe0\x7f\x10\x00"
    if len(head) < 8 or head[:4] != tag:
        return None
    order = "big" if big else "little"
    if ts == "1.2.840.10008.1.2":  # implicit VR little endian
        return 8, int.from_bytes(head[4:8], "little")
    if head[4:6] in _EXPLICIT_LONG_VRS and len(head) >= 12:
        return 12, int.from_bytes(head[8:12], order)
    return None


def _describe_file(
    path: Path, ds: Dataset, size: int, pixel_offset: int, head: bytes
) -> ScannedFile:
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if not ts:
        ts = "1.2.840.10008.1.2"  # no meta: pydicom reads it as implicit VR little endian
    rows, cols = ds.get("Rows"), ds.get("Columns")
    if rows is None or cols is None:
        raise SkipFileError(_no_pixel_reason(ds) + "; no Rows/Columns")
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    bits_alloc = int(ds.get("BitsAllocated", 16))
    spp = int(ds.get("SamplesPerPixel", 1))
    problem = _pixel_description_problem(path, ds, n_frames)
    expected = max(int(rows), 0) * max(int(cols), 0) * n_frames * max(spp, 0) * bits_alloc // 8
    offset: int | None = None
    lengths = _pixel_value_length(ts, head)
    if lengths is None:
        raise SkipFileError("corrupt or truncated file: no Pixel Data element after the header")
    header_len, value_len = lengths
    if value_len != 0xFFFFFFFF:
        available = size - pixel_offset - header_len
        if problem is None and (available < expected or value_len < expected):
            raise SkipFileError(
                f"truncated or corrupt pixel data: {min(available, value_len)} bytes present, "
                f"{expected} expected for {rows}x{cols}x{n_frames} frame(s) of {bits_alloc} bits"
            )
        if problem is None and value_len >= 2 * expected:
            # At least twice the data the header describes: e.g. BitsAllocated 8 over 16-bit
            # pixels, or Rows halved. (Some writers pad a little: MR_small_padded.dcm, +128.)
            problem = (
                f"{path}: (0028,0100) BitsAllocated {bits_alloc} does not fit the pixel data: "
                f"(7FE0,0010) PixelData holds {value_len} bytes, Rows x Columns x frames x "
                f"SamplesPerPixel x BitsAllocated/8 = {rows}x{cols}x{n_frames}x{spp}x"
                f"{bits_alloc}/8 = {expected}"
            )
        if ts in NATIVE_LITTLE_ENDIAN:
            offset = pixel_offset + header_len
    elif size - pixel_offset < 16:
        raise SkipFileError("truncated file: compressed pixel data is missing")
    header = _series_header(ds)
    if n_frames > 1 or "PerFrameFunctionalGroupsSequence" in ds:
        frames = tuple(enhanced_frames(path, ds, ts, offset, n_frames))
    else:
        frames = (classic_frame(path, ds, ts, offset),)
    if not frames:  # e.g. NumberOfFrames 0 or negative: nothing to place
        raise SkipFileError(f"(0028,0008) NumberOfFrames is {n_frames}; expected at least 1")
    if problem is not None:
        frames = tuple(replace(f, pixel_problem=problem) for f in frames)
    return ScannedFile(path, header, frames)


#: Pixel cell sizes this loader reads (bits); 1-bit (bitmap) and 64-bit data are not maps.
ALLOWED_BITS_ALLOCATED = (8, 16, 32)


def _pixel_description_problem(path: Path, ds: Dataset, n_frames: int) -> str | None:
    """Why Rows/Columns/SamplesPerPixel/BitsAllocated/BitsStored cannot describe the pixels."""
    rows, cols = int(ds.get("Rows")), int(ds.get("Columns"))
    spp = int(ds.get("SamplesPerPixel", 1))
    bits_alloc = int(ds.get("BitsAllocated", 16))
    bits_stored = int(ds.get("BitsStored", bits_alloc))
    if rows < 1:
        return f"{path}: (0028,0010) Rows is {rows}; an image needs at least one row"
    if cols < 1:
        return f"{path}: (0028,0011) Columns is {cols}; an image needs at least one column"
    if n_frames < 1:
        return f"{path}: (0028,0008) NumberOfFrames is {n_frames}; expected at least 1"
    if spp < 1:
        return f"{path}: (0028,0002) SamplesPerPixel is {spp}; expected 1 (grey-scale map)"
    if bits_alloc not in ALLOWED_BITS_ALLOCATED:
        return (
            f"{path}: (0028,0100) BitsAllocated is {bits_alloc}; expected one of "
            f"{ALLOWED_BITS_ALLOCATED}"
        )
    if not 1 <= bits_stored <= bits_alloc:
        return (
            f"{path}: (0028,0101) BitsStored {bits_stored} does not fit (0028,0100) "
            f"BitsAllocated {bits_alloc} (1 <= BitsStored <= BitsAllocated)"
        )
    return None


_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$", re.IGNORECASE)
_AGE_FACTOR = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}


def _patient_info(ds: Dataset) -> PatientInfo:
    age: float | None = None
    match = _AGE.match(str(ds.get("PatientAge", "") or ""))
    if match:
        age = int(match.group(1)) * _AGE_FACTOR[match.group(2).upper()]
    else:
        birth, when = str(ds.get("PatientBirthDate", "")), str(ds.get("StudyDate", ""))
        if len(birth) >= 8 and len(when) >= 8 and birth[:8].isdigit() and when[:8].isdigit():
            by, bm, bd = int(birth[:4]), int(birth[4:6]), int(birth[6:8])
            sy, sm, sd = int(when[:4]), int(when[4:6]), int(when[6:8])
            age = sy - by - ((sm, sd) < (bm, bd))
    if age is not None and not 0 < age < 130:
        age = None  # e.g. GE service scans store '000Y'
    sex = str(ds.get("PatientSex", "") or "").strip().upper()
    return PatientInfo(age_years=age, sex=sex if sex in ("F", "M") else None)


def _series_header(ds: Dataset) -> SeriesHeader:
    ident = "|".join(
        str(ds.get(k, "")) for k in ("PatientID", "PatientName", "PatientBirthDate")
    ).encode("utf-8", "replace")
    return SeriesHeader(
        study_uid=str(ds.get("StudyInstanceUID", "") or "unknown-study"),
        series_uid=str(ds.get("SeriesInstanceUID", "") or "unknown-series"),
        series_number=to_int(ds.get("SeriesNumber")),
        series_description=str(ds.get("SeriesDescription", "") or "").strip(),
        study_description=str(ds.get("StudyDescription", "") or "").strip(),
        modality=str(ds.get("Modality", "") or "").strip().upper(),
        sop_class_uid=str(ds.get("SOPClassUID", "") or ""),
        manufacturer=str(ds.get("Manufacturer", "") or "").strip(),
        model=str(ds.get("ManufacturerModelName", "") or "").strip(),
        field_strength_t=to_float(ds.get("MagneticFieldStrength")),
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or "") or None,
        patient_key=hashlib.sha256(ident).hexdigest()[:12],
        patient=_patient_info(ds),
    )
