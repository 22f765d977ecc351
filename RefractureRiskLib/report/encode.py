"""The page rasterised once (Agg, attached to the one figure) and encoded once: PNG bytes, and
a PDF page that carries the PNG's compressed data unchanged (so PDF, PNG and HTML show the same
pixels).
"""

from __future__ import annotations

import io
import struct

import numpy as np
from matplotlib.figure import Figure

#: Resolution of the one raster of the page (PNG, HTML image and PDF page): 150 dpi keeps 7-pt
#: text legible in print.
REPORT_DPI = 150


def rasterize(fig: Figure, dpi: float = REPORT_DPI) -> np.ndarray:
    """The page drawn once with Agg: an RGB uint8 array (rows top to bottom) at ``dpi``.

    The Agg canvas is attached to this figure only: no global backend is chosen or needed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def png_from_pixels(pixels: np.ndarray) -> bytes:
    """PNG bytes of an RGB page raster (lossless)."""
    from PIL import Image  # Pillow comes with matplotlib

    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="png", compress_level=6)
    return buf.getvalue()


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
