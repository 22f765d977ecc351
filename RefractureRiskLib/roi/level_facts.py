"""The measured facts of one placed level, from its body placement (manual and automatic ROIs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from RefractureRiskLib.core.levels import level_label
from RefractureRiskLib.roi.result import LevelPlacement

if TYPE_CHECKING:
    from RefractureRiskLib.roi.body import BodyPlacement, StudyArrays


def level_placement(
    level: str, placement: BodyPlacement, arrays: StudyArrays, confidence: float = 1.0
) -> LevelPlacement:
    """The measured facts of one placed level (volumes in mL, heights in mm, ROI median PDFF %)."""
    frame = placement.frame
    box = placement.box
    voxel_ml = abs(np.linalg.det(box.ijk_to_ras[:3, :3])) / 1000.0
    roi_vals = arrays.pdff_pct[box.slices][placement.roi]
    return LevelPlacement(
        level=level,
        label=level_label(level),
        centre_ras=frame.centre_ras,
        body_volume_ml=frame.volume_ml,
        roi_volume_ml=float(np.count_nonzero(placement.roi) * voxel_ml),
        heights_mm=frame.heights_mm,
        half_extent_mm=frame.half_extent_mm,
        confidence=confidence,
        box=box,
        void_frac=placement.void_frac,
        lesion_ml=placement.lesion_ml,
        roi_pdff_median_pct=float(np.median(roi_vals)) if roi_vals.size else float("nan"),
        notes=(placement.message,) if placement.message else (),
        truncated=cut_by_field_of_view(placement, arrays.shape),
    )


#: Share of a body's voxels lying on a face of the image above which the field of view cuts it.
TRUNCATED_FACE_FRAC = 0.02


def cut_by_field_of_view(placement: BodyPlacement, shape: tuple[int, int, int]) -> bool:
    """Whether the field of view cuts the body: at least :data:`TRUNCATED_FACE_FRAC` of its
    voxels lie on a face of the image grid (the rest of the body is outside the image, so its
    heights and volume are not the body's)."""
    body = placement.body
    n = int(np.count_nonzero(body))
    if n == 0:
        return False
    for axis, sl in enumerate(placement.box.slices):
        for at_edge, index in ((sl.start == 0, 0), (sl.stop == shape[axis], -1)):
            if at_edge and np.count_nonzero(np.take(body, index, axis=axis)) >= (
                TRUNCATED_FACE_FRAC * n
            ):
                return True
    return False


__all__ = ["TRUNCATED_FACE_FRAC", "cut_by_field_of_view", "level_placement"]
