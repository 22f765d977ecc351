"""A small, fast reader for the headers of Explicit VR Little Endian DICOM files.

Scanning a PACS export means reading hundreds of headers; pydicom's general reader costs about
2 ms per file here, most of it in value conversion. This reader walks the elements with
``struct``, keeps the raw bytes of every element (sequences are parsed into items) and converts a
value only when asked, with the same Python types pydicom returns for the attributes the scanner
uses (str / list of str, float / list for DS, int for IS, numbers for binary VRs, lists of items
for SQ).

It handles only the common case: a file with the 128-byte preamble and ``DICM``, a File Meta
group with its group length, Explicit VR Little Endian (single- or multi-frame). For anything
else (other transfer syntaxes, undefined-length UN, truncated or odd files)
:func:`read_fast_header` returns None and the caller uses pydicom, which also produces the
precise error message for broken files.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"

_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_TEXT_VRS = frozenset({b"LT", b"ST", b"UT"})
_BINARY = {
    b"US": "H",
    b"SS": "h",
    b"UL": "I",
    b"SL": "i",
    b"FL": "f",
    b"FD": "d",
    b"UV": "Q",
    b"SV": "q",
}
_BYTES_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN", b"AT"})
#: One value of a binary VR, unpacked without building a format string.
_ONE_BINARY = {vr: struct.Struct(f"<{fmt}") for vr, fmt in _BINARY.items()}
#: The standard VRs with a 2-byte length (any other two upper-case letters are read as one too).
_SHORT_VRS = frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN"}
    | {b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)
#: Tag (group, element), VR and 2-byte length of an element, in one unpack.
_ELEMENT_HEAD = struct.Struct("<HH2sH")

_PIXEL_DATA = 0x7FE00010
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQ_END = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_HEAD_CHUNK = 1 << 16


class _UnsupportedError(Exception):
    """The file needs the general reader."""


class _NeedMoreError(Exception):
    """The header runs past the bytes read so far."""


#: Tags of the keywords the scanner reads (checked against pydicom's dictionary by a test), so
#: that scanning a plain study never imports pydicom (about 0.5 s of a cold ``analyze``).
KNOWN_TAGS: dict[str, int] = {
    "AcquisitionDate": 0x00080022,
    "AcquisitionNumber": 0x00200012,
    "AcquisitionTime": 0x00080032,
    "BitsAllocated": 0x00280100,
    "BitsStored": 0x00280101,
    "CodeMeaning": 0x00080104,
    "CodeValue": 0x00080100,
    "Columns": 0x00280011,
    "ContentDate": 0x00080023,
    "ContentTime": 0x00080033,
    "DirectoryRecordSequence": 0x00041220,
    "EchoNumbers": 0x00180086,
    "EchoTime": 0x00180081,
    "EffectiveEchoTime": 0x00189082,
    "FrameOfReferenceUID": 0x00200052,
    "FrameType": 0x00089007,
    "GantryDetectorTilt": 0x00181120,
    "HighBit": 0x00280102,
    "ImageOrientationPatient": 0x00200037,
    "ImagePositionPatient": 0x00200032,
    "ImageType": 0x00080008,
    "ImagesInAcquisition": 0x00201002,
    "InstanceNumber": 0x00200013,
    "MREchoSequence": 0x00189114,
    "MRImageFrameTypeSequence": 0x00189226,
    "MagneticFieldStrength": 0x00180087,
    "Manufacturer": 0x00080070,
    "ManufacturerModelName": 0x00081090,
    "MeasurementUnitsCodeSequence": 0x004008EA,
    "MediaStorageSOPClassUID": 0x00020002,
    "MediaStorageSOPInstanceUID": 0x00020003,
    "Modality": 0x00080060,
    "NumberOfFrames": 0x00280008,
    "PatientAge": 0x00101010,
    "PatientBirthDate": 0x00100030,
    "PatientID": 0x00100020,
    "PatientName": 0x00100010,
    "PatientSex": 0x00100040,
    "PerFrameFunctionalGroupsSequence": 0x52009230,
    "PhotometricInterpretation": 0x00280004,
    "PixelData": 0x7FE00010,
    "PixelMeasuresSequence": 0x00289110,
    "PixelRepresentation": 0x00280103,
    "PixelSpacing": 0x00280030,
    "PixelValueTransformationSequence": 0x00289145,
    "PlaneOrientationSequence": 0x00209116,
    "PlanePositionSequence": 0x00209113,
    "RealWorldValueIntercept": 0x00409224,
    "RealWorldValueMappingSequence": 0x00409096,
    "RealWorldValueSlope": 0x00409225,
    "RescaleIntercept": 0x00281052,
    "RescaleSlope": 0x00281053,
    "RescaleType": 0x00281054,
    "Rows": 0x00280010,
    "SOPClassUID": 0x00080016,
    "SOPInstanceUID": 0x00080018,
    "SamplesPerPixel": 0x00280002,
    "SeriesDate": 0x00080021,
    "SeriesDescription": 0x0008103E,
    "SeriesInstanceUID": 0x0020000E,
    "SeriesNumber": 0x00200011,
    "SeriesTime": 0x00080031,
    "SharedFunctionalGroupsSequence": 0x52009229,
    "SliceLocation": 0x00201041,
    "SliceThickness": 0x00180050,
    "SpacingBetweenSlices": 0x00180088,
    "StudyDate": 0x00080020,
    "StudyDescription": 0x00081030,
    "StudyInstanceUID": 0x0020000D,
    "StudyTime": 0x00080030,
    "TransferSyntaxUID": 0x00020010,
}


@lru_cache(maxsize=512)
def _tag(key: str) -> int:
    tag = KNOWN_TAGS.get(key)
    if tag is None:  # any other keyword: pydicom's dictionary
        from pydicom.datadict import tag_for_keyword

        tag = tag_for_keyword(key)
    if tag is None:
        raise KeyError(key)
    return int(tag)


class FastDataset:
    """Read-only view of parsed elements with pydicom-like ``get``, ``in`` and ``file_meta``."""

    __slots__ = ("_elements", "file_meta")

    def __init__(self, elements: dict[int, tuple[bytes, object]], file_meta=None) -> None:
        self._elements = elements
        self.file_meta = file_meta

    @staticmethod
    def _key(key) -> int:
        if isinstance(key, str):
            return _tag(key)
        if isinstance(key, tuple):
            return (key[0] << 16) | key[1]
        return int(key)

    def __contains__(self, key) -> bool:
        try:
            return self._key(key) in self._elements
        except KeyError:
            return False

    def get(self, key, default=None):
        """Value of ``key`` (keyword, (group, element) or int tag), converted; else default."""
        tag = KNOWN_TAGS.get(key) if isinstance(key, str) else None  # the scanner's keywords
        try:
            found = self._elements.get(self._key(key) if tag is None else tag)
        except KeyError:
            return default
        if found is None:
            return default
        vr, raw = found
        return _convert(vr, raw)

    def __iter__(self) -> Iterator[int]:
        return iter(self._elements)


def _convert(vr: bytes, raw):
    if vr == b"SQ":
        return [FastDataset(item) for item in raw]
    one = _ONE_BINARY.get(vr)
    if one is not None and len(raw) == one.size:
        return one.unpack(raw)[0]
    fmt = _BINARY.get(vr)
    if fmt is not None:
        size = struct.calcsize(fmt)
        values = struct.unpack(f"<{len(raw) // size}{fmt}", raw[: len(raw) // size * size])
        if not values:
            return None
        return values[0] if len(values) == 1 else list(values)
    if vr in _BYTES_VRS:
        return raw
    text = raw.decode("latin-1").rstrip(" \x00")
    if vr in _TEXT_VRS:
        return text
    if "\\" not in text:  # one value: what the general path below gives for it
        part = text.strip(" \x00")
        if vr == b"DS":
            return float(part) if part else ""
        if vr == b"IS":
            return int(float(part)) if part else ""
        return part
    parts = [p.strip(" \x00") for p in text.split("\\")]
    if vr == b"DS":
        values = [float(p) for p in parts if p]
    elif vr == b"IS":
        values = [int(float(p)) for p in parts if p]
    elif vr == b"UI":
        values = parts  # plain str: pydicom's UID validation costs more than the parse
    else:
        values = parts
    if not values:
        return ""
    return values[0] if len(values) == 1 else values


def _parse(data: bytes, p: int, end: int, keep: bool, top: bool) -> tuple[dict, int]:
    """Elements from ``p`` until ``end``, an item delimiter, or (top level) the pixel data."""
    out: dict[int, tuple[bytes, object]] = {}
    unpack = struct.unpack_from
    head = _ELEMENT_HEAD.unpack_from
    n = len(data)
    while p < end:
        if p + 8 > n:
            raise _NeedMoreError
        group, element, vr, length = head(data, p)  # the length as a 2-byte VR's
        tag = (group << 16) | element
        if tag == _ITEM_END:
            return out, p + 8
        if top and tag == _PIXEL_DATA:
            if p + 12 > n:
                raise _NeedMoreError  # the caller needs the element's header too
            out[_PIXEL_DATA] = (b"", p)
            return out, p
        if vr in _LONG_VRS:
            if p + 12 > n:
                raise _NeedMoreError
            length = unpack("<I", data, p + 8)[0]
            hp = p + 12
        elif vr in _SHORT_VRS or (vr.isalpha() and vr.isupper()):
            hp = p + 8
        else:
            raise _UnsupportedError  # not explicit VR
        if vr == b"SQ":
            items, p = _parse_sequence(data, hp, length, keep)
            if keep:
                out[tag] = (b"SQ", items)
            continue
        if length == _UNDEFINED:
            raise _UnsupportedError
        if hp + length > n:
            raise _NeedMoreError
        if keep:
            out[tag] = (vr, data[hp : hp + length])
        p = hp + length
    if top and end >= n:
        raise _NeedMoreError  # no pixel data in the bytes read so far
    return out, p


def _parse_sequence(data: bytes, p: int, length: int, keep: bool) -> tuple[list, int]:
    end = None if length == _UNDEFINED else p + length
    items: list[dict] = []
    unpack = struct.unpack_from
    while end is None or p < end:
        if p + 8 > len(data):
            raise _NeedMoreError
        group, element = unpack("<HH", data, p)
        tag = (group << 16) | element
        if tag == _SEQ_END:
            return items, p + 8
        if tag != _ITEM:
            raise _UnsupportedError
        item_len = unpack("<I", data, p + 4)[0]
        start = p + 8
        if item_len == _UNDEFINED:
            item, p = _parse(data, start, len(data), keep, top=False)
        else:
            if start + item_len > len(data):
                raise _NeedMoreError
            item, _ = _parse(data, start, start + item_len, keep, top=False)
            p = start + item_len
        if keep:
            items.append(item)
    return items, p


def _parse_file(data: bytes):
    if len(data) < 144 or data[128:132] != b"DICM":
        raise _UnsupportedError
    group, element = struct.unpack_from("<HH", data, 132)
    if (group, element) != (0x0002, 0x0000) or data[136:138] != b"UL":
        raise _UnsupportedError
    meta_len = struct.unpack_from("<I", data, 140)[0]
    meta_end = 144 + meta_len
    meta, _ = _parse(data, 144, meta_end, True, top=False)
    ts_raw = meta.get(0x00020010)
    if ts_raw is None:
        raise _UnsupportedError
    ts = _convert(*ts_raw)
    if ts != EXPLICIT_VR_LITTLE_ENDIAN:
        raise _UnsupportedError
    elements, _ = _parse(data, meta_end, len(data), True, top=True)
    return elements, ts


def read_fast_header(path: Path) -> tuple[FastDataset, int, bytes] | None:
    """(dataset, byte offset of the Pixel Data tag, the 12 bytes there) or None.

    None means "use pydicom": the file is not a plain Explicit VR Little Endian
    file, or is damaged in a way the general reader should describe.
    """
    try:
        with open(path, "rb") as fp:
            chunk = _HEAD_CHUNK
            while True:  # read more only while the header runs past what was read
                fp.seek(0)
                data = fp.read(chunk)
                try:
                    elements, ts = _parse_file(data)
                    break
                except _NeedMoreError:
                    if len(data) < chunk:  # whole file read: no pixel data in it
                        return None
                    chunk *= 4
    except (_UnsupportedError, struct.error, OSError, UnicodeDecodeError, ValueError):
        return None
    pixel = elements.pop(_PIXEL_DATA, None)
    if pixel is None:
        return None
    offset = int(pixel[1])  # type: ignore[arg-type]
    meta = SimpleNamespace(TransferSyntaxUID=ts)
    return FastDataset(elements, meta), offset, data[offset : offset + 12]
