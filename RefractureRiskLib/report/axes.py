"""Plot furniture for the page: tick positions and labels on a horizontal axis, the grey colour
scale of a map and its colour bar.
"""

from __future__ import annotations

import math

import numpy as np

from RefractureRiskLib.report.canvas import Box, Canvas, TextStyle

#: Tick marks and their labels as on a matplotlib axis: 3.5 pt long, labels 3.5 pt below.
TICK_PT, TICK_PAD_PT, FRAME_PT = 3.5, 3.5, 0.8
TICK_STYLE = TextStyle(6)


def nice_ticks(lo: float, hi: float, max_intervals: int) -> tuple[list[float], float]:
    """Round tick values in [lo, hi] (steps 1, 2, 2.5, 5 x 10^k) and the step between them."""
    span = hi - lo
    if not span > 0:
        return [lo], 1.0
    scale = 10.0 ** math.floor(math.log10(span / max(max_intervals, 1)))
    for step in (s * scale for s in (1, 2, 2.5, 5, 10, 20, 25, 50, 100)):
        first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
        if last - first <= max_intervals:
            break
    ticks = [k * step for k in range(first, last + 1) if lo - 1e-9 <= k * step <= hi + 1e-9]
    return ticks, step


def tick_label(value: float, step: float) -> str:
    """A tick's number with as many decimals as the step needs, and a typographic minus."""
    decimals = next((d for d in range(7) if abs(step * 10**d - round(step * 10**d)) < 1e-6), 6)
    text = f"{value:.{decimals}f}"
    if float(text) == 0:
        text = text.lstrip("-")  # no "-0.0"
    return text.replace("-", "\u2212")


def x_axis(canvas: Canvas, box: Box, lo: float, hi: float, part: str) -> float:
    """Ticks and their labels under ``box`` for data from ``lo`` (left) to ``hi`` (right);
    returns the y (px) under the labels."""
    x0, _y0, x1, y1 = box
    label_px = canvas.pt(TICK_STYLE.size)
    ticks, step = nice_ticks(lo, hi, min(9, max(1, int((x1 - x0) / (3 * label_px)))))
    tick_len, pad = canvas.pt(TICK_PT), canvas.pt(TICK_PAD_PT)
    bottom = y1
    for value in ticks:
        x = x0 + (value - lo) / (hi - lo) * (x1 - x0)
        canvas.line([(x, y1), (x, y1 + tick_len)], "black", FRAME_PT)
        drawn = canvas.text(
            x, y1 + tick_len + pad * 0.5, tick_label(value, step), TICK_STYLE, "center", part=part
        )
        bottom = max(bottom, drawn.box[3])
    return bottom


def grey(values: np.ndarray, vmax: float) -> np.ndarray:
    """Values 0..``vmax`` as 8-bit grey levels (256 steps, as matplotlib's "gray" colour map)."""
    scaled = np.nan_to_num(np.asarray(values, dtype=np.float32) / np.float32(vmax), nan=0.0)
    return np.clip(scaled * 256.0, 0, 255).astype(np.uint8)


def colour_bar(canvas: Canvas, box: Box, vmax: float, part: str) -> float:
    """A horizontal grey scale from 0 to ``vmax`` in ``box`` with ticks; returns its bottom."""
    x0, y0, x1, y1 = (round(v) for v in box)
    ramp = grey(np.linspace(0.0, vmax, max(x1 - x0, 1)), vmax)
    canvas.paste(np.repeat(np.repeat(ramp[None, :, None], y1 - y0, 0), 3, 2), x0, y0)
    canvas.rect((x0, y0, x1, y1), edge="black", edge_pt=FRAME_PT)
    return x_axis(canvas, (x0, y0, x1, y1), 0.0, vmax, part)
