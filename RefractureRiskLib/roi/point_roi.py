"""An ROI at a user's point when the body around it is not segmented whole: a sphere at the
point when there is no body (oedema, noise), or the body's marrow at the point when the body is
too small or thin for a safe core (cement, oedema, a fracture). The user's point is trusted;
the level's message says which was done.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from RefractureRiskLib.roi.body import BodyPlacement, StudyArrays, in_vertebral_bone, local_marrow
from RefractureRiskLib.roi.geometry import BodyFrame, Box, box_around, grid_ras
from RefractureRiskLib.roi.marrow import DEFAULT_CRITERIA, MarrowCriteria

#: Radius (mm) of the ROI put at a point whose body cannot be segmented (no marrow fat:
#: fracture oedema, or marrow too noisy): small enough to stay inside any T10-S1 body
#: (at least 14 mm high even when fractured, 25 mm deep) around a point the user placed in it.
POINT_ROI_RADIUS_MM = 6.0
#: Depth (mm) of the marrow taken next to a point that lies in cement or oedema.
NEAREST_MARROW_MM = 4.0


def _distance2_mm2(box: Box, p: np.ndarray) -> np.ndarray:
    """Squared distance (mm^2) of each voxel centre of ``box`` from the RAS point ``p``."""
    x, y, z = grid_ras(box.shape, box.ijk_to_ras)
    return (x - p[0]) ** 2 + (y - p[1]) ** 2 + (z - p[2]) ** 2


def sphere_at_point(
    arrays: StudyArrays, point, why: str, criteria: MarrowCriteria = DEFAULT_CRITERIA
) -> BodyPlacement:
    """A sphere ROI of :data:`POINT_ROI_RADIUS_MM` at a user's point, voids left out, when the
    body around it cannot be segmented: the user's point is trusted, the body's shape is not
    known (no heights, so it is never judged fractured), and the level says so."""
    p = np.asarray(point, float)
    box = box_around(arrays.shape, arrays.ijk_to_ras, p, POINT_ROI_RADIUS_MM + 2.0)
    empty = np.zeros(box.shape, bool)
    if min(box.shape) == 0:
        return BodyPlacement(box, empty, empty, None, "point outside the image")
    d2 = _distance2_mm2(box, p)
    ball = d2 <= POINT_ROI_RADIUS_MM**2
    if not ball.any():  # thick slices: the nearest voxel centre
        ball = d2 == d2.min()
    inside, pdff_here = in_vertebral_bone(arrays, p)
    if not inside:
        return BodyPlacement(box, empty, empty, None, f"{why}; PDFF there {pdff_here:.0f}%")
    _, void, _, _ = local_marrow(arrays, box, criteria)
    roi = ball & ~void
    if roi.sum() < 0.5 * ball.sum():
        return BodyPlacement(box, empty, empty, None, f"{why}; no signal at the point")
    nan3 = (float("nan"),) * 3
    frame = BodyFrame(
        centre_ras=(float(p[0]), float(p[1]), float(p[2])),
        axes_ras=np.eye(3),
        half_extent_mm=nan3,
        heights_mm=nan3,
        volume_ml=float("nan"),
    )
    msg = f"body not segmented ({why}): a {POINT_ROI_RADIUS_MM:g} mm sphere at the point"
    return BodyPlacement(box, roi, roi, frame, msg, 0.0, 0.0)


def core_at_point(
    arrays: StudyArrays,
    placement: BodyPlacement,
    point,
    criteria: MarrowCriteria = DEFAULT_CRITERIA,
    where: str = "the point",
) -> BodyPlacement:
    """The body's marrow (voids left out) within :data:`POINT_ROI_RADIUS_MM` of a user's point,
    or next to it when the point lies in cement or oedema, when the body is segmented but too
    small or thin for a safe core (cement, oedema, a fracture): the body's shape, heights and
    flags are kept; the ROI is put where the user placed the point. ``where`` names the point
    in the level's message (automatic ROIs use the body's centre)."""
    box, p = placement.box, np.asarray(point, float)
    d2 = _distance2_mm2(box, p)
    marrow, void, _, _ = local_marrow(arrays, box, criteria)
    marrow = placement.body & marrow & ~void
    if not marrow.any():
        return placement
    # a point in cement or oedema: the body's marrow nearest to it (a rim around the cement)
    reach_mm = max(POINT_ROI_RADIUS_MM, float(np.sqrt(d2[marrow].min())) + NEAREST_MARROW_MM)
    roi = marrow & (d2 <= reach_mm**2)
    msg = f"{placement.message}: the body's marrow within {reach_mm:.0f} mm of {where}"
    return replace(placement, roi=roi, message=msg)


__all__ = ["NEAREST_MARROW_MM", "POINT_ROI_RADIUS_MM", "core_at_point", "sphere_at_point"]
