"""The PNG encoder (:func:`RefractureRiskLib.report.encode.png_from_pixels`) gives the bytes of
a PNG written out plainly (signature, IHDR, one IDAT of unfiltered rows, IEND, each chunk's
CRC over its type and body), stored or deflated, and Pillow reads back the same pixels."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from RefractureRiskLib.report.encode import png_from_pixels


def _plain_png(pixels: np.ndarray, level: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, level))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("level", [0, 1, 6])
@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (64, 300, 3)])
def test_png_bytes_equal_the_plain_encoding(level: int, shape: tuple[int, int, int]) -> None:
    pixels = np.random.default_rng(sum(shape) + level).integers(0, 256, shape, dtype=np.uint8)
    png = png_from_pixels(pixels, level)
    assert png == _plain_png(pixels, level)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), pixels)


def test_a_strided_view_is_encoded_as_its_pixels() -> None:
    base = np.random.default_rng(3).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    view = base[::2, ::3]
    assert png_from_pixels(view, 0) == _plain_png(np.ascontiguousarray(view), 0)
