"""A page drawn with Pillow, and the record of every text on it.

Coordinates are pixels from the top-left corner; :meth:`Canvas.fx` and :meth:`Canvas.fy` turn
fractions of the page (y from the bottom, as the layout is written) into pixels, and
:meth:`Canvas.pt` points into pixels. Every text drawn is recorded as a :class:`DrawnText`: its
string, the box its glyphs and lines take on the page, the box it must stay inside (a table cell,
a panel, a column) and the part of the page it belongs to. ``Testing/test_report_layout.py``
checks that record: nothing off the page, over another text or past its box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageColor, ImageDraw

from RefractureRiskLib.report.fonts import font, metrics

#: (x0, y0, x1, y1) in pixels, y downwards.
Box = tuple[float, float, float, float]
Colour = str | tuple[float, ...]


def rgb(colour: Colour) -> tuple[int, int, int]:
    """A colour as 8-bit RGB: a name or "#rrggbb", or a tuple of floats in 0-1."""
    if isinstance(colour, str):
        return ImageColor.getrgb(colour)[:3]
    return tuple(round(255 * float(c)) for c in colour[:3])  # type: ignore[return-value]


@dataclass(frozen=True)
class DrawnText:
    """One text on the page: what it says, the box it takes (its glyphs and lines, with their
    halo or backdrop), what it must stay inside, and which part of the page it belongs to."""

    text: str
    box: Box
    frame: Box | None
    part: str


@dataclass(frozen=True)
class TextStyle:
    """How a text is set: size in points, weight, colour, line spacing, white-on-black halo."""

    size: float
    bold: bool = False
    colour: Colour = "black"
    linespacing: float = 1.2
    halo_pt: float = 0.0


class Canvas:
    """An RGB page of ``width`` x ``height`` pixels at ``dpi``, white, and its text record."""

    def __init__(self, width: int, height: int, dpi: float) -> None:
        self.image = Image.new("RGB", (width, height), "white")
        self.draw = ImageDraw.Draw(self.image)
        self.dpi = dpi
        self.texts: list[DrawnText] = []
        #: Named boxes of the page (the factor column, the bars, each panel's image, the table).
        self.regions: dict[str, Box] = {}

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def pt(self, points: float) -> float:
        return points * self.dpi / 72.0

    def fx(self, fraction: float) -> float:
        return fraction * self.width

    def fy(self, fraction: float) -> float:
        """Pixels from the top of a height given as a fraction of the page from the bottom."""
        return (1.0 - fraction) * self.height

    def rect(
        self, box: Box, fill: Colour | None = None, edge: Colour | None = None, edge_pt: float = 0
    ) -> None:
        x0, y0, x1, y1 = (round(v) for v in box)
        width = max(1, round(self.pt(edge_pt))) if edge is not None else 0
        self.draw.rectangle(
            (x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)),
            fill=rgb(fill) if fill is not None else None,
            outline=rgb(edge) if edge is not None else None,
            width=width,
        )

    def line(self, points: Sequence[tuple[float, float]], colour: Colour, width_pt: float) -> None:
        self.draw.line(
            [(round(x), round(y)) for x, y in points],
            fill=rgb(colour),
            width=max(1, round(self.pt(width_pt))),
        )

    def paste(self, pixels: np.ndarray, x0: float, y0: float) -> None:
        """An RGB uint8 array pasted with its top-left corner at (x0, y0)."""
        self.image.paste(Image.fromarray(pixels, "RGB"), (round(x0), round(y0)))

    def measure(self, text: str, style: TextStyle) -> tuple[float, float]:
        """(width, height) in pixels of ``text`` set in ``style``."""
        _lines, box = self._layout(text, style, 0.0, 0.0, "left", "top")
        return box[2] - box[0], box[3] - box[1]

    def _layout(
        self, text: str, style: TextStyle, x: float, y: float, ha: str, va: str
    ) -> tuple[list[tuple[str, float, float]], Box]:
        """Each line with its left x and baseline y, and the box of all lines' glyphs."""
        weight = "bold" if style.bold else "regular"
        face = font(self.pt(style.size), weight)
        ascent, descent = metrics(self.pt(style.size), weight)
        pitch = style.linespacing * (ascent + descent)
        lines = text.split("\n")
        block = (len(lines) - 1) * pitch + ascent + descent
        top = {"top": y, "center": y - block / 2, "bottom": y - block}.get(va, y - ascent)
        placed, boxes = [], []
        for i, line in enumerate(lines):
            # the glyphs' box from the pen's start on the baseline; aligned by its right end
            ink = face.getbbox(line, anchor="ls") if line.strip() else (0, 0, 0, 0)
            width = ink[2]
            left = {"left": x, "center": x - width / 2, "right": x - width}[ha]
            base = top + ascent + i * pitch
            boxes.append(
                (
                    left + min(0, ink[0]),
                    base + min(-ascent, ink[1]),
                    left + max(width, ink[2]),
                    base + max(descent, ink[3]),
                )
            )
            placed.append((line, left, base))
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        return placed, (x0, y0, max(b[2] for b in boxes), max(b[3] for b in boxes))

    def _backdrop(
        self,
        draw: ImageDraw.ImageDraw,
        box: Box,
        backdrop: tuple[Colour, Colour | None, float, float],
    ) -> float:
        """A filled box (with an edge when its colour is given) ``pad`` pt around ``box``;
        returns how far it reaches beyond ``box`` (px)."""
        fill, edge, edge_pt, pad_pt = backdrop
        pad = self.pt(pad_pt)
        x0, y0, x1, y1 = (
            round(box[0] - pad),
            round(box[1] - pad),
            round(box[2] + pad),
            round(box[3] + pad),
        )
        draw.rectangle((x0, y0, x1, y1), fill=rgb(fill))
        if edge is None:
            return pad
        width = max(1, round(self.pt(edge_pt)))
        grow = width // 2
        draw.rectangle((x0 - grow, y0 - grow, x1 + grow, y1 + grow), outline=rgb(edge), width=width)
        return pad + width / 2

    def text(
        self,
        x: float,
        y: float,
        text: str,
        style: TextStyle,
        ha: str = "left",
        va: str = "top",
        *,
        part: str = "page",
        frame: Box | None = None,
        clip: Box | None = None,
        backdrop: tuple[Colour, Colour | None, float, float] | None = None,
    ) -> DrawnText:
        """Draw ``text`` anchored at (x, y) px and record it.

        ``va``: "top", "center", "bottom" or "baseline" (of the first line); ``frame``: the box it
        must stay inside (recorded for the layout checks); ``clip``: drawing is cut at this box
        (a panel); ``backdrop``: (fill, edge colour, edge width pt, padding pt) of a box behind it.
        """
        placed, box = self._layout(text, style, x, y, ha, va)
        target, dx, dy = self.image, 0, 0
        if clip is not None:
            cx0, cy0, cx1, cy1 = (round(v) for v in clip)
            target, dx, dy = self.image.crop((cx0, cy0, cx1, cy1)), cx0, cy0
        draw = ImageDraw.Draw(target) if target is not self.image else self.draw
        grow = float(round(self.pt(style.halo_pt)))  # recorded as seen: with halo or backdrop
        if backdrop is not None:
            grow = self._backdrop(
                draw, (box[0] - dx, box[1] - dy, box[2] - dx, box[3] - dy), backdrop
            )
        face = font(self.pt(style.size), "bold" if style.bold else "regular")
        halo = round(self.pt(style.halo_pt))
        for line, left, base in placed:
            draw.text(
                (left - dx, base - dy),
                line,
                font=face,
                fill=rgb(style.colour),
                anchor="ls",
                stroke_width=halo,
                stroke_fill=(0, 0, 0) if halo else None,
            )
        if clip is not None:
            self.image.paste(target, (dx, dy))
        box = (box[0] - grow, box[1] - grow, box[2] + grow, box[3] + grow)
        drawn = DrawnText(text, box, frame, part)
        self.texts.append(drawn)
        return drawn
