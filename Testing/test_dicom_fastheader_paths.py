"""The fast header reader's shortcuts (issue 13: one unpack per element head, one-value binary
and text elements converted without the general list path) give what the general path gives."""

from __future__ import annotations

import struct

import pytest

from RefractureRiskLib.io.dicom_fastheader import EXPLICIT_VR_LITTLE_ENDIAN, _convert, _parse_file


@pytest.mark.parametrize(
    ("vr", "raw", "want"),
    [
        (b"US", struct.pack("<H", 16), 16),
        (b"US", struct.pack("<3H", 1, 2, 3), [1, 2, 3]),
        (b"US", b"", None),
        (b"US", b"\x05", None),  # shorter than one value
        (b"SS", struct.pack("<h", -7), -7),
        (b"FL", struct.pack("<f", 0.1), struct.unpack("<f", struct.pack("<f", 0.1))[0]),
        (b"FD", struct.pack("<2d", 1.5, -2.0), [1.5, -2.0]),
        (b"UL", struct.pack("<I", 70000) + b"\x01", 70000),  # a stray byte: one value
        (b"DS", b"0.78125 ", 0.78125),
        (b"DS", b"0.7\\0.8", [0.7, 0.8]),
        (b"DS", b"  ", ""),
        (b"DS", b"\\2.5", 2.5),  # an empty part is skipped
        (b"IS", b"12\x00", 12),
        (b"IS", b"3.0", 3),
        (b"IS", b"", ""),
        (b"UI", b"1.2.840.10008.1.2.1\x00", EXPLICIT_VR_LITTLE_ENDIAN),
        (b"CS", b"DERIVED\\PRIMARY ", ["DERIVED", "PRIMARY"]),
        (b"CS", b" ", ""),
        (b"LO", b" lumbar IDEAL ", "lumbar IDEAL"),
        (b"LT", b" a\\b ", " a\\b"),  # text VRs are not split
        (b"OB", b"\x00\x01", b"\x00\x01"),
    ],
)
def test_values(vr: bytes, raw: bytes, want) -> None:
    got = _convert(vr, raw)
    assert got == want and type(got) is type(want)


def test_a_malformed_number_still_raises() -> None:
    with pytest.raises(ValueError):
        _convert(b"DS", b"1.2.3")


def _element(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2s2xI", group, element, vr, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def _file(*elements: bytes) -> bytes:
    ts = EXPLICIT_VR_LITTLE_ENDIAN.encode() + b"\x00"
    meta = _element(0x0002, 0x0010, b"UI", ts)
    head = b"\x00" * 128 + b"DICM" + struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(meta))
    pixels = _element(0x7FE0, 0x0010, b"OW", b"\x00\x00")
    return head + meta + b"".join(elements) + pixels


def test_element_heads_short_long_and_odd_vrs() -> None:
    elements, ts = _parse_file(
        _file(
            _element(0x0008, 0x0060, b"CS", b"MR"),
            _element(0x0008, 0x1030, b"ZZ", b"odd"),  # unknown upper-case VR: 2-byte length
            _element(0x0009, 0x0010, b"UN", b"1234"),
            _element(0x0028, 0x0010, b"US", struct.pack("<H", 260)),
        )
    )
    assert ts == EXPLICIT_VR_LITTLE_ENDIAN
    assert elements[0x00080060] == (b"CS", b"MR")
    assert elements[0x00081030] == (b"ZZ", b"odd")
    assert elements[0x00090010] == (b"UN", b"1234")
    assert elements[0x00280010] == (b"US", struct.pack("<H", 260))
    assert 0x7FE00010 in elements  # the pixel data's position
    from RefractureRiskLib.io import dicom_fastheader

    with pytest.raises(dicom_fastheader._UnsupportedError):  # not explicit VR: pydicom's
        _parse_file(_file(_element(0x0008, 0x0060, b"c\x01", b"MR")))
