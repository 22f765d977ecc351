"""The factors' bars: each term's change in log-odds relative to the model's reference value,
one row per factor (as the factor list beside it), a hatched span for a term shown as a range.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from RefractureRiskLib.model.scoring import Contribution
from RefractureRiskLib.report.axes import FRAME_PT, x_axis
from RefractureRiskLib.report.canvas import Box, Canvas, TextStyle, rgb
from RefractureRiskLib.report.text import NEUTRAL, direction_colour

#: Bar thickness as a fraction of the row: a term's effect, a range over a missing input.
BAR, RANGE_BAR = 0.6, 0.8
#: Data margin either side, as a fraction of the span (as matplotlib's autoscale).
MARGIN = 0.05


def _span(contribs: Sequence[Contribution]) -> tuple[float, float]:
    """The axis's limits: every bar and zero, with a margin."""
    ends = [0.0]
    for c in contribs:
        if c.log_odds_range is not None:
            ends += [float(v) for v in c.log_odds_range]
        elif not c.no_effect:
            ends.append(float(c.log_odds))
    lo, hi = min(ends), max(ends)
    if not hi > lo:
        return -0.5, 0.5
    return lo - MARGIN * (hi - lo), hi + MARGIN * (hi - lo)


def _hatched(width: int, height: int) -> np.ndarray:
    """A white box with grey diagonal hatching ("////") and a grey edge."""
    patch = np.full((height, width, 3), 255, np.uint8)
    yy, xx = np.indices((height, width))
    grey = np.array(rgb(NEUTRAL), np.uint8)
    patch[(xx + yy) % 9 < 2] = grey
    patch[[0, 1, -2, -1], :] = grey
    patch[:, [0, 1, -2, -1]] = grey
    return patch


def draw_bars(canvas: Canvas, box: Box, contribs: Sequence[Contribution]) -> None:
    """One bar per contribution in ``box`` (px), rows top to bottom; zero line, frame, ticks and
    the axis title under it."""
    x0, y0, x1, y1 = box
    lo, hi = _span(contribs)

    def x_of(value: float) -> float:
        return x0 + (value - lo) / (hi - lo) * (x1 - x0)

    pitch = (y1 - y0) / max(len(contribs), 1)
    for i, c in enumerate(contribs):
        middle = y0 + (i + 0.5) * pitch
        if c.log_odds_range is not None:
            left, right = sorted(x_of(float(v)) for v in c.log_odds_range)
            half = RANGE_BAR * pitch / 2
            width, height = max(round(right - left), 4), max(round(2 * half), 4)
            canvas.paste(_hatched(width, height), left, middle - half)
        elif not c.no_effect:
            left, right = sorted((x_of(0.0), x_of(float(c.log_odds))))
            half = BAR * pitch / 2
            canvas.rect((left, middle - half, right, middle + half), fill=direction_colour(c))
    canvas.line([(x_of(0.0), y0), (x_of(0.0), y1)], "black", 0.6)
    canvas.rect(box, edge="black", edge_pt=FRAME_PT)
    bottom = x_axis(canvas, box, lo, hi, part="bars")
    title = "log-odds (> 0 raises risk)"
    canvas.text((x0 + x1) / 2, bottom + canvas.pt(1), title, TextStyle(6.5), "center", part="bars")
