"""The report's sagittal panels: a grey map through the ROIs with ROI outlines, level labels,
orientation letters, a scale bar and a colour bar, and the legend that explains them.

Level labels are black on white boxes framed in the level's colour, so every one is readable on
grey, black and white background alike; a level without ROI voxels in the plane (e.g. a cemented
body whose ROI is empty) is still named, at its body centre, so no level of the table is missing
from the images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from RefractureRiskLib.core.levels import LEVEL_COLORS
from RefractureRiskLib.core.roiset import RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.report.axes import FRAME_PT, colour_bar, grey
from RefractureRiskLib.report.canvas import Box, Canvas, TextStyle, rgb
from RefractureRiskLib.report.reformat import SagittalPlane, sagittal_plane
from RefractureRiskLib.report.text import UNCERTAIN_CONFIDENCE, LevelNotes
from RefractureRiskLib.roi.crop import nonzero

LABEL_STYLE = TextStyle(6, bold=True, linespacing=1.0)
LETTER_STYLE = TextStyle(8, bold=True, colour="white", halo_pt=1.0)
#: The scale bar's length: a size smaller than the letters, so it clears the "I" on narrow panels.
SCALE_STYLE = TextStyle(7, bold=True, colour="white", halo_pt=1.0)
TITLE_STYLE = TextStyle(8)
LEGEND_STYLE = TextStyle(6)
#: Fill opacity of an ROI used in the summaries and of one left out.
ALPHA_USED, ALPHA_LEFT_OUT = 0.55, 0.15


def _level_colour(level: str) -> tuple[float, float, float]:
    return LEVEL_COLORS.get(level, (1.0, 1.0, 1.0))


def _roi_plane(roiset: RoiSet) -> tuple[float, tuple[float, float, float, float] | None]:
    """Where the panels cut: RAS x (mm) of the ROI voxels' centroid (the mid-sagittal plane
    through the ROIs), and (y_min, y_max, z_min, z_max) RAS of the ROIs plus margins (the field
    of view; None without ROI voxels).

    Posteriorly wider than anteriorly: the level labels sit behind the bodies (in the canal).
    """
    labelmap = roiset.labelmap
    m = labelmap.ijk_to_ras
    # np.argwhere's indices, in its order, from the labels' bounding box (one pass, not two)
    ijk = np.stack(nonzero(np.asarray(labelmap.array) > 0), axis=1)[:, ::-1].astype(float)
    if ijk.size == 0:
        nk, nj, ni = labelmap.shape
        return float(m[0, :3] @ (ni / 2, nj / 2, nk / 2) + m[0, 3]), None
    # RAS y and z of every ROI voxel, elementwise (no matrix product: see reformat.py)
    yz = (ijk[:, None, :] * m[None, 1:3, :3]).sum(axis=2) + m[1:3, 3]
    lo, hi = yz.min(axis=0), yz.max(axis=0)
    bounds = (lo[0] - 45.0, hi[0] + 25.0, lo[1] - 20.0, hi[1] + 20.0)
    return float(m[0, :3] @ ijk.mean(axis=0) + m[0, 3]), bounds


def sagittal_views(study: Study, roiset: RoiSet) -> tuple[SagittalPlane, dict[str, SagittalPlane]]:
    """The ROI labels and each map (PDFF, R2* when there) reformatted on one sagittal plane
    through the ROIs, over the ROIs' field of view."""
    x, bounds = _roi_plane(roiset)
    labels = sagittal_plane(roiset.labelmap, x, labels=True, bounds_mm=bounds)
    kinds = [k for k in ("pdff", "r2s") if k in study.maps]
    return labels, {k: sagittal_plane(study.maps[k], x, bounds_mm=bounds) for k in kinds}


def _scale_bar_mm(width_mm: float) -> int:
    return max((b for b in (5, 10, 20, 50, 100) if b <= 0.35 * width_mm), default=5)


@dataclass(frozen=True)
class _View:
    """Where a reformat's millimetres (``extent``: left, right, bottom, top) land on the page."""

    extent: tuple[float, float, float, float]
    box: Box  # the image's pixels on the page

    def px(self, x_mm: float, y_mm: float) -> tuple[float, float]:
        left, right, bottom, top = self.extent
        x0, y0, x1, y1 = self.box
        return (
            x0 + (x_mm - left) / (right - left) * (x1 - x0),
            y0 + (top - y_mm) / (top - bottom) * (y1 - y0),
        )


def _image_box(box: Box, extent: tuple[float, float, float, float]) -> tuple[Box, Box]:
    """The image's box (equal scales, at the bottom-centre of the panel above its colour bar)
    and the colour bar's box (0.8 of the panel's width, 1/20 as high as wide, under the image)."""
    x0, y0, x1, y1 = box
    height = y1 - y0
    area_bottom = y1 - 0.055 * height  # colour bar slot 3.5% of the height, gap 2%
    left, right, bottom, top = extent
    scale = min((x1 - x0) / (right - left), (area_bottom - y0) / (top - bottom))
    w, h = round(scale * (right - left)), round(scale * (top - bottom))
    cx = (x0 + x1) / 2
    image = (round(cx - w / 2), round(area_bottom - h), round(cx - w / 2) + w, round(area_bottom))
    bar_w = 0.8 * (x1 - x0)
    bar_top = area_bottom + 0.02 * height
    return image, (cx - bar_w / 2, bar_top, cx + bar_w / 2, bar_top + bar_w / 20)


def draw_map(
    canvas: Canvas,
    box: Box,
    plane: SagittalPlane,
    labels: SagittalPlane,
    roiset: RoiSet,
    title: str,
    vmax: float,
    notes: LevelNotes,
    centres_z: Mapping[str, float] | None = None,
) -> None:
    """One sagittal panel in ``box`` (px): a map's reformat ``plane`` in grey from 0 to
    ``vmax``, the ROIs of ``labels`` (the label map on the same plane) outlined and named,
    orientation letters, scale bar, title and colour bar. Its texts are recorded as part
    ``"panel:<title>"``.

    ``centres_z``: RAS z (mm) of each level's body centre, where a level without ROI voxels in
    the plane is named (default: halfway between its neighbours' labels).
    """
    image_box, bar_box = _image_box(box, plane.extent_mm)
    view = _View(plane.extent_mm, image_box)
    width, height = image_box[2] - image_box[0], image_box[3] - image_box[1]
    scaled = Image.fromarray(np.asarray(plane.image, np.float32), "F")
    shown = grey(np.asarray(scaled.resize((width, height), Image.Resampling.BILINEAR)), vmax)
    pixels = np.repeat(shown[..., None], 3, axis=2).astype(np.float32)
    rows = (np.arange(height) * labels.image.shape[0] // height)[:, None]
    cols = (np.arange(width) * labels.image.shape[1] // width)[None, :]
    places = _draw_outlines(pixels, labels.image[rows, cols], roiset, view)
    canvas.paste(np.round(pixels).astype(np.uint8), image_box[0], image_box[1])
    canvas.rect(image_box, edge="black", edge_pt=FRAME_PT)
    part = f"panel:{title}"
    canvas.regions[part] = image_box
    _draw_level_labels(canvas, view, places, roiset, notes, centres_z or {}, part)
    _orientation_and_scale(canvas, view, plane, part)
    centre = (image_box[0] + image_box[2]) / 2
    canvas.text(
        centre, image_box[1] - canvas.pt(3), title, TITLE_STYLE, "center", "bottom", part=part
    )
    colour_bar(canvas, bar_box, vmax, part)


def _outline(mask: np.ndarray, dashed: bool) -> np.ndarray:
    """The rim of ``mask``: one pixel either side of its edge; dashed as 9 on, 4 off."""
    rim = ndimage.binary_dilation(mask) & ~ndimage.binary_erosion(mask)
    if dashed:
        yy, xx = np.indices(mask.shape)
        rim &= (xx + yy) % 13 < 9
    return rim


def _draw_outlines(
    pixels: np.ndarray, label_image: np.ndarray, roiset: RoiSet, view: _View
) -> dict[str, tuple[float, float]]:
    """Each ROI filled and outlined in its level's colour (solid: used; dashed, faint: left out)
    on ``pixels`` (the panel's image, float RGB 0-255, ``label_image`` at the same size).

    Returns where each drawn level's label goes (mm): behind the ROI (posterior), at its height.
    """
    left, right, bottom, top = view.extent
    n_rows, n_cols = label_image.shape
    places: dict[str, tuple[float, float]] = {}
    rims = []
    # each label's bounding box in one pass: its pixels are then searched there only (labels
    # are positive integers; the same pixels, in the same order, as over the whole image)
    boxes = ndimage.find_objects(label_image)
    for lv in roiset.levels:
        box = boxes[lv.label - 1] if lv.label <= len(boxes) else None
        if box is None:
            continue
        inner = np.nonzero(label_image[box] == lv.label)
        found = (inner[0] + box[0].start, inner[1] + box[1].start)
        r0, r1 = max(found[0].min() - 2, 0), found[0].max() + 3
        c0, c1 = max(found[1].min() - 2, 0), found[1].max() + 3
        mask = label_image[r0:r1, c0:c1] == lv.label
        colour = np.array(rgb(_level_colour(lv.level)), np.float32)
        alpha = ALPHA_USED if lv.included else ALPHA_LEFT_OUT
        region = pixels[r0:r1, c0:c1]
        region[mask] = (1 - alpha) * region[mask] + alpha * colour
        rims.append((slice(r0, r1), slice(c0, c1), _outline(mask, not lv.included), colour))
        # the label 3 mm behind the ROI's posterior edge
        col_mm = (found[1].max() + 1) / n_cols * (right - left) + 3.0
        places[lv.level] = (left + col_mm, top - found[0].mean() / n_rows * (top - bottom))
    for rs, cs, rim, colour in rims:
        pixels[rs, cs][rim] = colour
    return places


def _draw_level_labels(
    canvas: Canvas,
    view: _View,
    places: Mapping[str, tuple[float, float]],
    roiset: RoiSet,
    notes: LevelNotes,
    centres_z: Mapping[str, float],
    part: str,
) -> None:
    """Every level named: "L3", "L3?" (label uncertain), "L1 excl." (left out), and "no ROI"
    under the name, at the body centre, when the level has no ROI voxels in the plane."""
    left, right, _bottom, _top = view.extent
    xs = [p[0] for p in places.values()]
    x_default = float(np.median(xs)) if xs else left + 0.6 * (right - left)
    names = [lv.level for lv in roiset.levels]
    for i, lv in enumerate(roiset.levels):
        name = lv.level + ("?" if notes.is_uncertain(lv.level) else "")
        if not lv.included:
            name += " excl."
        if lv.level in places:
            cx, cy = places[lv.level]
        else:
            near = [places[n][1] for n in names[max(i - 1, 0) : i + 2] if n in places]
            z = centres_z.get(lv.level, float(np.mean(near)) if len(near) == 2 else None)
            if z is None:
                continue  # no position known: the table still lists the level
            cx, cy, name = x_default, z, name + "\nno ROI"
        x, y = view.px(cx, cy)
        backdrop = ("white", _level_colour(lv.level), 1.5, 1.2)
        canvas.text(
            x, y, name, LABEL_STYLE, "left", "center",
            part=part, frame=view.box, clip=view.box, backdrop=backdrop,
        )  # fmt: skip


def _orientation_and_scale(canvas: Canvas, view: _View, plane: SagittalPlane, part: str) -> None:
    """Orientation letters on the four sides and a scale bar, readable on grey and white."""
    left, right, bottom, top = view.extent
    letters = plane.orientation
    mid_y, mid_x = (top + bottom) / 2, (left + right) / 2
    pad = 0.03 * (right - left)
    for x_mm, y_mm, side, ha, va in (
        (left + pad, mid_y, "left", "left", "center"),
        (right - pad, mid_y, "right", "right", "center"),
        (mid_x, top - pad, "top", "center", "top"),
        (mid_x, bottom + pad, "bottom", "center", "bottom"),
    ):
        x, y = view.px(x_mm, y_mm)
        canvas.text(x, y, letters[side], LETTER_STYLE, ha, va, part=part, frame=view.box)
    bar = _scale_bar_mm(right - left)
    y_bar = bottom + 0.03 * (top - bottom)
    x0 = left + pad
    ends = [view.px(x0, y_bar), view.px(x0 + bar, y_bar)]
    canvas.line(ends, "black", 3.5)
    canvas.line(ends, "white", 2.0)
    x, y = view.px(x0, y_bar + 0.01 * (top - bottom))
    canvas.text(x, y, f"{bar} mm", SCALE_STYLE, "left", "bottom", part=part, frame=view.box)


def r2s_window_max(study: Study, roiset: RoiSet) -> float:
    """Upper end (1/s) of the R2* grey scale: 2.5x the 95th percentile inside the ROIs.

    The whole map is useless for this: fits in air and noise reach the stored maximum (often
    1000 1/s), which would show marrow at 40-150 1/s as black. Falls back to the 99.5th
    percentile of the map's finite values when no ROI holds an R2* value.
    """
    r2s = np.asarray(study.r2s.array)
    # the ROI voxels first, then finite and float64: the same values in the same order as
    # from the whole map made float64 (which costs a copy of the map)
    inside = r2s[np.asarray(roiset.labelmap.array) > 0]
    inside = np.asarray(inside[np.isfinite(inside)], dtype=float)
    if inside.size:
        top = 2.5 * float(np.percentile(inside, 95))
    else:
        r2s = np.asarray(r2s, dtype=float)
        finite = r2s[np.isfinite(r2s)]
        top = float(np.percentile(finite, 99.5)) if finite.size else 0.0
    return top if top > 0 else 1.0


def draw_legend(canvas: Canvas, x: float, y: float) -> float:
    """What the outlines and marks on the panels mean, drawn as on the panels (one level's
    colour stands in for any), from (x, y) px down; returns its bottom. A white dashed rim on the
    R2* map is bone, not an ROI."""
    colour = np.array(rgb(_level_colour("L2")), np.float32)
    em = canvas.pt(LEGEND_STYLE.size)
    x0, top = x + 0.4 * em, y + 0.4 * em
    width, height = round(1.5 * em), round(0.7 * em)
    entries = (
        (ALPHA_USED, "ROI used in the summaries (colour: its level)"),
        (ALPHA_LEFT_OUT, "ROI left out: faint, dashed ('excl.'; flags in the table)"),
        (None, f"'?' after a level: label uncertain (confidence < {UNCERTAIN_CONFIDENCE:.2f})"),
        (None, "A anterior, P posterior, S superior, I inferior"),
    )
    for alpha, label in entries:
        text_x = x0 + width + 0.8 * em
        drawn = canvas.text(text_x, top, label, LEGEND_STYLE, "left", "top", part="legend")
        if alpha is not None:
            mask = np.zeros((height + 2, width + 2), bool)
            mask[1:-1, 1:-1] = True
            patch = np.full((*mask.shape, 3), 255.0, np.float32)
            patch[mask] = (1 - alpha) * 255.0 + alpha * colour
            patch[_outline(mask, dashed=alpha == ALPHA_LEFT_OUT)] = colour
            middle = (drawn.box[1] + drawn.box[3]) / 2
            canvas.paste(patch.astype(np.uint8), x0 - 1, middle - height / 2 - 1)
        top = drawn.box[3] + 0.5 * em
    return top
