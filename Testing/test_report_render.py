"""The report page is laid out and rasterised once; the PNG, the HTML's image and the PDF page are
that one raster; no library module chooses a global matplotlib backend or uses pyplot."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from RefractureRiskLib.report import onepage

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report_inputs():
    from RefractureRiskLib.commands.demo import DEMO_CLINICAL
    from RefractureRiskLib.model.modelfile import bundled_model_path, load_model
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
    from RefractureRiskLib.pipeline import AnalysisOptions, measure, place_rois, score_patient

    phantom = generate_phantom(PhantomSpec(seed=1, fractured={"L1": 0.3}, snr=80.0))
    rois = place_rois(phantom.study, AnalysisOptions(index_levels=("L1",)))
    stats, summary = measure(phantom.study, rois, ("L1",))
    risk = score_patient(load_model(bundled_model_path()), DEMO_CLINICAL, summary, phantom.study)
    return phantom.study, rois, stats, summary, risk


def test_the_page_is_drawn_once_for_png_html_and_pdf(report_inputs, tmp_path, monkeypatch):
    draws = []
    build = onepage.build_figure

    def counting_build(*args, **kwargs):
        fig = build(*args, **kwargs)
        draw = fig.draw

        def counted(renderer):
            draws.append(type(renderer).__name__)
            return draw(renderer)

        fig.draw = counted
        return fig

    monkeypatch.setattr(onepage, "build_figure", counting_build)
    study, rois, stats, summary, risk = report_inputs
    files = onepage.render_report(tmp_path, study, rois, stats, summary, risk, {"software": "x"})
    assert draws == ["RendererAgg"], draws

    png = files.png.read_bytes()
    image = Image.open(io.BytesIO(png))
    width_in, height_in = onepage.A4_PORTRAIT_IN
    assert image.size == (round(width_in * onepage.REPORT_DPI), int(height_in * onepage.REPORT_DPI))
    # the HTML shows the same PNG bytes
    html = files.html.read_text()
    assert base64.b64encode(png).decode() in html
    # the PDF is one A4 page holding one image of the PNG's size, losslessly compressed
    pdf = files.pdf.read_bytes()
    assert pdf.startswith(b"%PDF") and b"/Count 1" in pdf
    assert f"/Width {image.size[0]}".encode() in pdf
    assert f"/Height {image.size[1]}".encode() in pdf
    assert b"/FlateDecode" in pdf and b"/DCTDecode" not in pdf
    box = re.search(rb"/MediaBox \[ ?0 0 ([\d.]+) ([\d.]+) ?\]", pdf)
    assert box is not None
    assert abs(float(box.group(1)) - width_in * 72) < 1.5
    assert abs(float(box.group(2)) - height_in * 72) < 1.5
    # ... and that image is the PNG's pixels
    in_pdf = _png_from_pdf_image(pdf, *image.size)
    np.testing.assert_array_equal(
        np.asarray(in_pdf.convert("RGB")), np.asarray(image.convert("RGB"))
    )


def _png_from_pdf_image(pdf: bytes, width: int, height: int) -> Image.Image:
    """The PDF's image XObject as a PNG: a FlateDecode stream with PNG predictors is exactly a
    PNG's IDAT data, so wrapping it in PNG chunks decodes it without a PDF library."""
    import struct
    import zlib

    head = re.search(
        rb"/Width %d /Height %d.*?/Predictor 1[0-5].*?stream\r?\n" % (width, height), pdf, re.S
    )
    assert head is not None, "no predictor-coded image of that size"
    data = pdf[head.end() : pdf.index(b"endstream", head.end())].rstrip(b"\r\n")

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    return Image.open(io.BytesIO(png))


def test_pdf_page_holds_exactly_the_raster(tmp_path) -> None:
    """The embedded image decodes to the very pixels given (no resampling, no loss), on a page
    of the raster's physical size; a PNG it cannot carry unchanged is refused."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(60, 40, 3), dtype=np.uint8)
    pdf = onepage.pdf_from_png(onepage.png_from_pixels(pixels), dpi=20)
    image = _png_from_pdf_image(pdf, 40, 60)
    np.testing.assert_array_equal(np.asarray(image.convert("RGB")), pixels)
    assert b"/MediaBox [0 0 144.00 216.00]" in pdf  # 40 x 60 px at 20 dpi = 2 x 3 in
    grey = io.BytesIO()
    Image.fromarray(pixels[..., 0]).save(grey, format="png")
    with pytest.raises(ValueError, match="RGB"):
        onepage.pdf_from_png(grey.getvalue())


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs poppler-utils (pdftoppm)")
def test_a_pdf_reader_shows_the_same_pixels(tmp_path) -> None:
    pixels = np.zeros((90, 60, 3), np.uint8)
    pixels[10:30, 5:50] = (200, 30, 30)
    (tmp_path / "p.pdf").write_bytes(onepage.pdf_from_png(onepage.png_from_pixels(pixels), dpi=30))
    subprocess.run(
        ["pdftoppm", "-png", "-r", "30", str(tmp_path / "p.pdf"), str(tmp_path / "page")],
        check=True,
        capture_output=True,
    )
    (page,) = tmp_path.glob("page*.png")
    shown = np.asarray(Image.open(page).convert("RGB")).astype(int)
    assert shown.shape == pixels.shape
    # same picture, the right way up; a reader may smooth the rectangle's edge by a pixel
    assert (shown[20, 25] == (200, 30, 30)).all() and (shown[70, 25] == 0).all()
    assert (np.abs(shown - pixels).max(axis=2) > 10).mean() < 0.05


def test_no_library_module_chooses_a_backend_or_uses_pyplot() -> None:
    offenders = []
    for path in (REPO / "RefractureRiskLib").rglob("*.py"):
        text = path.read_text()
        if re.search(
            r"matplotlib\.use\(|import matplotlib\.pyplot|from matplotlib import pyplot", text
        ):
            offenders.append(str(path.relative_to(REPO)))
    assert not offenders, offenders
