"""The report page is drawn once and encoded once; the PNG, the HTML's image and the PDF page are
that one raster; writing a report loads no matplotlib, and no library module chooses a global
matplotlib backend or uses pyplot."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import sys
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
    calls = []
    build, encode = onepage.build_page, onepage.png_from_pixels

    def counting_build(*args, **kwargs):
        calls.append("draw")
        return build(*args, **kwargs)

    def counting_encode(*args, **kwargs):
        calls.append("encode")
        return encode(*args, **kwargs)

    monkeypatch.setattr(onepage, "build_page", counting_build)
    monkeypatch.setattr(onepage, "png_from_pixels", counting_encode)
    study, rois, stats, summary, risk = report_inputs
    files = onepage.render_report(tmp_path, study, rois, stats, summary, risk, {"software": "x"})
    assert calls == ["draw", "encode"], calls

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


_WRITE_A_REPORT = """
import sys, tempfile
from RefractureRiskLib.commands.demo import DEMO_CLINICAL
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
from RefractureRiskLib.pipeline import AnalysisOptions, analyze_study

study = generate_phantom(PhantomSpec(seed=1, fractured={"L1": 0.3}, snr=80.0)).study
out = tempfile.mkdtemp()
result = analyze_study(study, DEMO_CLINICAL, out, AnalysisOptions(index_levels=("L1",)))
assert result.files["report_png"].stat().st_size > 50_000
print(sorted(m for m in sys.modules if m.split(".")[0] == "matplotlib"))
"""


def test_writing_a_report_loads_no_matplotlib() -> None:
    """The analysis with its report (PNG, PDF, HTML) runs in a new process without importing
    matplotlib at all: its fonts are found on disk, its page drawn with Pillow."""
    out = subprocess.run(
        [sys.executable, "-c", _WRITE_A_REPORT],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        timeout=300,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_the_page_uses_dejavu_and_still_draws_without_it(monkeypatch) -> None:
    """The fonts are matplotlib's DejaVu files (here, where matplotlib is installed); without them
    the page is drawn in Pillow's default font, still recording every text."""
    from RefractureRiskLib.report import canvas, fonts

    assert fonts.font_dir() is not None and "DejaVu" in fonts.font_source()
    assert "DejaVu Sans" in " ".join(fonts.font(20.0).getname())
    monkeypatch.setattr(fonts, "font_dir", lambda: None)
    fonts.font.cache_clear()
    fonts.metrics.cache_clear()
    try:
        page = canvas.Canvas(200, 100, 150)
        drawn = page.text(10, 10, "L1 excl.", canvas.TextStyle(8, bold=True))
        assert "DejaVu" not in " ".join(fonts.font(20.0).getname())
        assert drawn.box[2] > drawn.box[0] + 20 and drawn.box[3] > drawn.box[1] + 5
        assert (np.asarray(page.image) < 128).any()  # something was drawn
    finally:
        fonts.font.cache_clear()
        fonts.metrics.cache_clear()
