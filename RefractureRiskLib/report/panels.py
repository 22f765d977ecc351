"""The report's sagittal panels: a grey map through the ROIs with ROI outlines, level labels,
orientation letters, a scale bar and a colour bar, and the legend that explains them.

Level labels are black on white boxes framed in the level's colour, so every one is readable on
grey, black and white background alike; a level without ROI voxels in the plane (e.g. a cemented
body whose ROI is empty) is still named, at its body centre, so no level of the table is missing
from the images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib import patheffects
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from RefractureRiskLib.core.levels import LEVEL_COLORS
from RefractureRiskLib.core.roiset import RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.report.reformat import SagittalPlane, sagittal_plane
from RefractureRiskLib.report.text import UNCERTAIN_CONFIDENCE, LevelNotes


def _level_colour(level: str) -> tuple[float, float, float]:
    return LEVEL_COLORS.get(level, (1.0, 1.0, 1.0))


def _roi_centre_x(roiset: RoiSet) -> float:
    """RAS x (mm) of the ROI voxels' centroid: the mid-sagittal plane through the ROIs."""
    idx = np.argwhere(roiset.labelmap.array > 0)
    if idx.size == 0:
        nk, nj, ni = roiset.labelmap.shape
        return float(roiset.labelmap.ijk_to_ras_points([[ni / 2, nj / 2, nk / 2]])[0, 0])
    return float(roiset.labelmap.ijk_to_ras_points(idx[:, ::-1].mean(axis=0))[0, 0])


def _roi_bounds_mm(roiset: RoiSet) -> tuple[float, float, float, float] | None:
    """(y_min, y_max, z_min, z_max) RAS of the ROIs plus margins: the figure's field of view.

    Posteriorly wider than anteriorly: the level labels sit behind the bodies (in the canal).
    """
    idx = np.argwhere(roiset.labelmap.array > 0)
    if idx.size == 0:
        return None
    ras = roiset.labelmap.ijk_to_ras_points(idx[:, ::-1])
    lo, hi = ras.min(axis=0), ras.max(axis=0)
    return (lo[1] - 45.0, hi[1] + 25.0, lo[2] - 20.0, hi[2] + 20.0)


def _halo(width: float = 2.0) -> list[Any]:
    return [patheffects.withStroke(linewidth=width, foreground="black")]


def _scale_bar_mm(width_mm: float) -> int:
    return max((b for b in (5, 10, 20, 50, 100) if b <= 0.35 * width_mm), default=5)


def draw_map(
    ax: Any,
    study: Study,
    kind: str,
    roiset: RoiSet,
    title: str,
    vmax: float,
    notes: LevelNotes,
    centres_z: Mapping[str, float] | None = None,
) -> SagittalPlane:
    """One sagittal panel: grey map, ROI outlines, labels, orientation letters, scale bar.

    ``centres_z``: RAS z (mm) of each level's body centre, where a level without ROI voxels in
    the plane is named (default: halfway between its neighbours' labels).
    """
    x = _roi_centre_x(roiset)
    bounds = _roi_bounds_mm(roiset)
    plane = sagittal_plane(study.maps[kind], x, bounds_mm=bounds)
    labels = sagittal_plane(roiset.labelmap, x, labels=True, bounds_mm=bounds)
    img = ax.imshow(plane.image, cmap="gray", vmin=0, vmax=vmax, extent=plane.extent_mm)
    places = _draw_outlines(ax, labels.image, roiset, plane.extent_mm)
    _draw_level_labels(ax, places, roiset, notes, plane.extent_mm, centres_z or {})
    _orientation_and_scale(ax, plane)
    left, right, bottom, top = plane.extent_mm
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_title(title, fontsize=8, pad=3)
    ax.set_xticks([])
    ax.set_yticks([])
    # shrunk so the end ticks' labels stay inside the panel's width (not into the next panel's)
    cbar = ax.figure.colorbar(
        img, ax=ax, orientation="horizontal", fraction=0.035, pad=0.02, shrink=0.8
    )
    cbar.ax.tick_params(labelsize=6)
    return plane


def _draw_outlines(
    ax: Any, label_image: np.ndarray, roiset: RoiSet, extent: tuple[float, float, float, float]
) -> dict[str, tuple[float, float]]:
    """Each ROI filled and outlined in its level's colour (solid: used; dashed, faint: left out).

    Returns where each drawn level's label goes: behind the ROI (posterior), at its height.
    """
    left, right, bottom, top = extent
    overlay = np.zeros((*label_image.shape, 4))
    places: dict[str, tuple[float, float]] = {}
    for lv in roiset.levels:
        mask = label_image == lv.label
        if not mask.any():
            continue
        colour = _level_colour(lv.level)
        overlay[mask] = (*colour, 0.55 if lv.included else 0.15)
        ax.contour(
            mask.astype(float),
            levels=[0.5],
            colors=[colour],
            linewidths=0.8 if lv.included else 1.2,
            linestyles="solid" if lv.included else "dashed",
            extent=extent,
            origin="upper",
        )
        rows, cols = np.nonzero(mask)
        places[lv.level] = (
            left + (cols.max() + 4) * (right - left) / mask.shape[1],
            top - rows.mean() * (top - bottom) / mask.shape[0],
        )
    ax.imshow(overlay, extent=extent, interpolation="nearest")
    return places


def _draw_level_labels(
    ax: Any,
    places: Mapping[str, tuple[float, float]],
    roiset: RoiSet,
    notes: LevelNotes,
    extent: tuple[float, float, float, float],
    centres_z: Mapping[str, float],
) -> None:
    """Every level named: "L3", "L3?" (label uncertain), "L1 excl." (left out), and "no ROI"
    under the name, at the body centre, when the level has no ROI voxels in the plane."""
    left, right, _bottom, _top = extent
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
        ax.text(
            cx,
            cy,
            name,
            color="black",
            fontsize=6,
            fontweight="bold",
            va="center",
            ha="left",
            linespacing=1.0,
            clip_on=True,
            bbox={
                "facecolor": "white",
                "edgecolor": _level_colour(lv.level),
                "linewidth": 1.5,
                "pad": 1.2,
            },
        )


def _orientation_and_scale(ax: Any, plane: SagittalPlane) -> None:
    """Orientation letters on the four sides and a scale bar, readable on grey and white."""
    left, right, bottom, top = plane.extent_mm
    letters = plane.orientation
    style = {"color": "white", "fontsize": 8, "fontweight": "bold", "path_effects": _halo()}
    mid_y, mid_x = (top + bottom) / 2, (left + right) / 2
    pad = 0.03 * (right - left)
    ax.text(left + pad, mid_y, letters["left"], ha="left", va="center", **style)
    ax.text(right - pad, mid_y, letters["right"], ha="right", va="center", **style)
    ax.text(mid_x, top - pad, letters["top"], ha="center", va="top", **style)
    ax.text(mid_x, bottom + pad, letters["bottom"], ha="center", va="bottom", **style)
    bar = _scale_bar_mm(right - left)
    y_bar = bottom + 0.03 * (top - bottom)
    x0 = left + 2 * pad
    ax.plot([x0, x0 + bar], [y_bar, y_bar], color="white", linewidth=2, path_effects=_halo(3.5))
    ax.text(x0, y_bar + 0.01 * (top - bottom), f"{bar} mm", ha="left", va="bottom", **style)


def r2s_window_max(study: Study, roiset: RoiSet) -> float:
    """Upper end (1/s) of the R2* grey scale: 2.5x the 95th percentile inside the ROIs.

    The whole map is useless for this: fits in air and noise reach the stored maximum (often
    1000 1/s), which would show marrow at 40-150 1/s as black. Falls back to the 99.5th
    percentile of the map's finite values when no ROI holds an R2* value.
    """
    r2s = np.asarray(study.r2s.array, dtype=float)
    inside = r2s[(np.asarray(roiset.labelmap.array) > 0) & np.isfinite(r2s)]
    if inside.size:
        top = 2.5 * float(np.percentile(inside, 95))
    else:
        finite = r2s[np.isfinite(r2s)]
        top = float(np.percentile(finite, 99.5)) if finite.size else 0.0
    return top if top > 0 else 1.0


def legend_handles() -> list[Any]:
    """What the outlines and marks on the panels mean, drawn as on the panels (one level's
    colour stands in for any): a white dashed rim on the R2* map is bone, not an ROI."""
    colour = _level_colour("L2")
    return [
        Patch(
            facecolor=(*colour, 0.55),
            edgecolor=colour,
            linewidth=0.8,
            label="ROI used in the summaries (colour: its level)",
        ),
        Patch(
            facecolor=(*colour, 0.15),
            edgecolor=colour,
            linewidth=1.2,
            linestyle="dashed",
            label="ROI left out: faint, dashed ('excl.'; flags in the table)",
        ),
        Line2D(
            [],
            [],
            color="none",
            label=f"'?' after a level: label uncertain (confidence < {UNCERTAIN_CONFIDENCE:.2f})",
        ),
        Line2D([], [], color="none", label="A anterior, P posterior, S superior, I inferior"),
    ]
