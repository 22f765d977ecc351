"""The per-level table of the page: columns as wide as their widest cell, rows as high as their
most wrapped cell, so no cell's text runs over its borders; rows of levels left out of the
summaries shaded.
"""

from __future__ import annotations

from collections.abc import Sequence

from RefractureRiskLib.report.canvas import Box, Canvas, TextStyle
from RefractureRiskLib.report.text import LevelTable, wrap_text

CELL_STYLE = TextStyle(6.3)
#: Room either side of a cell's widest text, as a fraction of that text's width.
CELL_PAD = 0.1
#: Wrapping width (characters) of a cell; the header's two lines are fixed.
CELL_WIDTH = 22
HEADER_LINES = 2
SHADED = "#eeeeee"


def table_lines(table: LevelTable) -> list[int]:
    """Lines of text of each row, the header first: what each row's height is measured in."""
    cells = [[wrap_text(str(v), CELL_WIDTH) for v in row] for row in table.rows]
    return [HEADER_LINES] + [max(c.count("\n") + 1 for c in row) for row in cells]


def draw_table(canvas: Canvas, table: LevelTable, box: Box, shaded: Sequence[bool]) -> Box:
    """``table`` centred across ``box`` (px) and filling its height; ``shaded``: per data row.

    Returns the box the table takes.
    """
    grid = [list(table.columns)]
    grid += [[wrap_text(str(v), CELL_WIDTH) for v in row] for row in table.rows]
    lines = table_lines(table)
    x0, y0, x1, y1 = box
    widths = [
        max(canvas.measure(row[j], CELL_STYLE)[0] for row in grid) * (1 + 2 * CELL_PAD)
        for j in range(len(grid[0]))
    ]
    left = (x0 + x1) / 2 - sum(widths) / 2
    xs = [left]
    for w in widths:
        xs.append(xs[-1] + w)
    ys = [y0]
    for n in lines:
        ys.append(ys[-1] + (y1 - y0) * n / sum(lines))
    for r, row in enumerate(grid):
        if r > 0 and shaded[r - 1]:
            canvas.rect((xs[0], ys[r], xs[-1], ys[r + 1]), fill=SHADED)
        for j, text in enumerate(row):
            cell = (xs[j], ys[r], xs[j + 1], ys[r + 1])
            centre = ((cell[0] + cell[2]) / 2, (cell[1] + cell[3]) / 2)
            canvas.text(*centre, text, CELL_STYLE, "center", "center", part="table", frame=cell)
    for y in ys:
        canvas.line([(xs[0], y), (xs[-1], y)], "black", 1.0)
    for x in xs:
        canvas.line([(x, ys[0]), (x, ys[-1])], "black", 1.0)
    return (xs[0], ys[0], xs[-1], ys[-1])
