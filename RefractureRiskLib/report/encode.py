"""The page encoded once: PNG bytes of its raster, and a PDF page that carries the PNG's
compressed data unchanged (so PDF, PNG and HTML show the same pixels).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

#: Resolution of the one raster of the page (PNG, HTML image and PDF page): 150 dpi keeps 7-pt
#: text legible in print.
REPORT_DPI = 150


#: zlib level of the PNG: 1 encodes the page about three times faster than 6 for a file about a
#: fifth larger (the page is mostly white; rows are stored unfiltered).
PNG_COMPRESS_LEVEL = 1


def _chunk(kind: bytes, body: bytes) -> list[bytes]:
    """A PNG chunk as its parts (joined once by the caller: no copy of ``body`` here)."""
    crc = zlib.crc32(body, zlib.crc32(kind)) & 0xFFFFFFFF
    return [struct.pack(">I", len(body)), kind, body, struct.pack(">I", crc)]


def png_from_pixels(pixels: np.ndarray, level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """PNG bytes of an RGB uint8 page raster (rows top to bottom; lossless, 8-bit RGB, one IDAT
    chunk, filter type 0 on every row: what :func:`pdf_from_png` carries unchanged)."""
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError("png_from_pixels takes an (rows, columns, 3) uint8 RGB array")
    height, width, _ = pixels.shape
    rows = np.zeros((height, 1 + 3 * width), np.uint8)  # each row: filter byte 0, then RGB
    rows[:, 1:] = pixels.reshape(height, 3 * width)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    # the rows compressed from their buffer and the chunks joined once: each extra copy of a
    # stored (level 0) page costs ~0.5 ms of the fatwater command
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            *_chunk(b"IHDR", header),
            *_chunk(b"IDAT", zlib.compress(memoryview(rows), level)),
            *_chunk(b"IEND", b""),
        ]
    )


def pdf_from_png(png: bytes, dpi: float = REPORT_DPI) -> bytes:
    """A one-page PDF showing an 8-bit RGB PNG at its physical size (``dpi``), losslessly.

    The PNG's compressed data (zlib over rows with PNG filters) is what a PDF image with
    ``/FlateDecode`` and ``/Predictor 15`` holds, so it is copied, not decoded and re-encoded.
    """
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if (depth, colour, interlace) != (8, 2, 0):
        raise ValueError("pdf_from_png takes 8-bit RGB PNGs without interlacing")
    data = b"".join(idat)
    w_pt, h_pt = width * 72 / dpi, height * 72 / dpi
    draw = f"q {w_pt:.2f} 0 0 {h_pt:.2f} 0 0 cm /Im1 Do Q".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w_pt:.2f} {h_pt:.2f}] "
        f"/Resources << /XObject << /Im1 4 0 R >> >> /Contents 5 0 R >>".encode(),
        f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} "
        f"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode "
        f"/DecodeParms << /Predictor 15 /Colors 3 /BitsPerComponent 8 /Columns {width} >> "
        f"/Length {len(data)} >>\nstream\n".encode()
        + data
        + b"\nendstream",
        f"<< /Length {len(draw)} >>\nstream\n".encode() + draw + b"\nendstream",
        b"<< /Title (RefractureRisk report) /Producer (RefractureRisk) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)
