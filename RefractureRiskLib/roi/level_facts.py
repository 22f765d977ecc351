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
    truncated = heights_cut_by_field_of_view(placement, arrays.shape)
    side_note = (
        "the field of view grazes the body's side: heights measured, volume short"
        if not truncated and cut_by_field_of_view(placement, arrays.shape)
        else ""
    )
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
        notes=tuple(note for note in (placement.message, side_note) if note),
        truncated=truncated,
    )


#: Share of a body's voxels lying on a face of the image above which the field of view cuts it.
TRUNCATED_FACE_FRAC = 0.02
#: A face crossing the body's height or depth also cuts it when it holds at least this share of
#: the body's mean cross-section along the face's normal: with fine voxels one layer holds few
#: of a body's voxels, yet a face across a third of its section cuts its heights.
TRUNCATED_FACE_SECTION_FRAC = 0.3
#: A face across the body's left-right axis (the side of a sagittal slab) cuts its heights only
#: when it holds at least this share of the body's voxels: a thinner side slice leaves the
#: heights measured near the mid-line intact (only the volume is short).
TRUNCATED_SIDE_FACE_FRAC = 0.15
#: A face whose normal lies within about 45 degrees of the body's left-right axis is a side face.
_SIDE_FACE_COS = 0.7


def _face_shares(
    placement: BodyPlacement, shape: tuple[int, int, int]
) -> list[tuple[float, float, bool]]:
    """Per image face the body touches: the share of its voxels on the face, the face's voxels
    over the body's mean voxels per layer along the face's normal (its share of a mean
    cross-section), and whether it is a side face (normal along the body's left-right axis)."""
    body = placement.body
    n = int(np.count_nonzero(body))
    if n == 0:
        return []
    ijk_to_ras = np.asarray(placement.box.ijk_to_ras, float)
    lr_axis = np.asarray(placement.frame.axes_ras, float)[:, 0]
    out = []
    for axis, sl in enumerate(placement.box.slices):
        normal = ijk_to_ras[:3, 2 - axis]  # array axis 0 is k (the third grid index)
        side = abs(float(normal @ lr_axis)) >= _SIDE_FACE_COS * float(np.linalg.norm(normal))
        others = tuple(a for a in range(3) if a != axis)
        per_layer = n / max(int(np.count_nonzero(body.any(axis=others))), 1)
        for at_edge, index in ((sl.start == 0, 0), (sl.stop == shape[axis], -1)):
            if at_edge:
                on_face = int(np.count_nonzero(np.take(body, index, axis=axis)))
                out.append((on_face / n, on_face / per_layer, side))
    return out


def cut_by_field_of_view(placement: BodyPlacement, shape: tuple[int, int, int]) -> bool:
    """Whether the field of view cuts the body: at least :data:`TRUNCATED_FACE_FRAC` of its
    voxels lie on a face of the image grid (the rest of the body is outside the image, so its
    volume, and its centre, are not the body's)."""
    return any(share >= TRUNCATED_FACE_FRAC for share, _, _ in _face_shares(placement, shape))


def heights_cut_by_field_of_view(placement: BodyPlacement, shape: tuple[int, int, int]) -> bool:
    """Whether the field of view cuts the body where its heights are measured (the level's
    ``truncated``): a face crossing the body's height or depth holds at least
    :data:`TRUNCATED_FACE_FRAC` of its voxels or :data:`TRUNCATED_FACE_SECTION_FRAC` of its mean
    cross-section; a face at its side at least :data:`TRUNCATED_SIDE_FACE_FRAC` of its voxels
    (a sagittal slab grazing the body's side leaves its mid-line heights whole)."""
    for share, section, side in _face_shares(placement, shape):
        if side and share >= TRUNCATED_SIDE_FACE_FRAC:
            return True
        if not side and (share >= TRUNCATED_FACE_FRAC or section >= TRUNCATED_FACE_SECTION_FRAC):
            return True
    return False


__all__ = [
    "TRUNCATED_FACE_FRAC",
    "TRUNCATED_FACE_SECTION_FRAC",
    "TRUNCATED_SIDE_FACE_FRAC",
    "cut_by_field_of_view",
    "heights_cut_by_field_of_view",
    "level_placement",
]
