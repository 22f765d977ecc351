"""The report's fonts: DejaVu Sans (regular, bold) and DejaVu Sans Mono as Pillow fonts, one
object per (face, pixel size).

The TrueType files are the ones shipped inside the matplotlib package (``mpl-data/fonts/ttf``),
found with :func:`importlib.util.find_spec` so matplotlib itself is never imported. Without them
(matplotlib not installed, or a distribution that strips its fonts) the page falls back to
Pillow's own scalable default font (Pillow >= 10.1): the report is still written, in another
typeface and without a bold weight, and :func:`font_source` says which fonts were used.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from PIL import ImageFont

FACES = {
    "regular": "DejaVuSans.ttf",
    "bold": "DejaVuSans-Bold.ttf",
    "mono": "DejaVuSansMono.ttf",
}


@functools.cache
def font_dir() -> Path | None:
    """The folder holding the DejaVu TrueType files, or None when it cannot be found."""
    try:
        spec = importlib.util.find_spec("matplotlib")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"
    return folder if all((folder / name).is_file() for name in FACES.values()) else None


def font_source() -> str:
    """Where the page's fonts come from (for provenance and tests)."""
    folder = font_dir()
    return f"DejaVu ({folder})" if folder else "Pillow default font (DejaVu not found)"


@functools.cache
def metrics(size_px: float, face: str = "regular") -> tuple[float, float]:
    """(ascent of "l", descent of "p") in pixels: a line's height, as matplotlib measures it."""
    chosen = font(size_px, face)
    return -chosen.getbbox("l", anchor="ls")[1], chosen.getbbox("p", anchor="ls")[3]


@functools.cache
def font(size_px: float, face: str = "regular") -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The font of ``face`` ("regular", "bold", "mono") at ``size_px`` pixels per em."""
    folder = font_dir()
    if folder is not None:
        # basic layout (FreeType with kerning): the page's texts are Latin; no shaping needed
        engine = ImageFont.Layout.BASIC
        return ImageFont.truetype(str(folder / FACES[face]), size_px, layout_engine=engine)
    return ImageFont.load_default(size=size_px)
