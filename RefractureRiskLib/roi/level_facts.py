"""The measured facts of one placed level, from its body placement (manual and automatic ROIs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.levels import level_label
from RefractureRiskLib.roi.crop import bbox_slices, nonzero
from RefractureRiskLib.roi.geometry import body_frame, cell_groups
from RefractureRiskLib.roi.marrow import smooth_pdff, smoothing_reach_vox, spacing_kji
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
        heights_mm=bone_heights_mm(placement, arrays),
        half_extent_mm=frame.half_extent_mm,
        confidence=confidence,
        box=box,
        void_frac=placement.void_frac,
        lesion_ml=placement.lesion_ml,
        roi_pdff_median_pct=float(np.median(roi_vals)) if roi_vals.size else float("nan"),
        notes=tuple(note for note in (placement.message, side_note) if note),
        truncated=truncated,
    )


#: The end voxels of a column of the body count towards its height only when their R2* lies at
#: least this far from the soft tissue's towards the body's bone (a disc or fat the body's
#: segmentation took in has soft-tissue R2*; trabecular bone raises it).
DISC_TRIM_R2S_FRAC = 0.4
#: ... and only when the body's bone R2* is at least this multiple of the soft tissue's (else
#: R2* does not tell bone from disc and the segmented heights stand).
DISC_TRIM_MIN_CONTRAST = 1.3
#: Gaussian sigma (mm) of the R2* smoothing against noise (as the marrow criteria's PDFF).
_R2S_SMOOTH_MM = 1.0


def bone_heights_mm(placement: BodyPlacement, arrays: StudyArrays) -> tuple[float, float, float]:
    """Anterior, middle and posterior heights (mm) of the body's bone.

    The body's segmentation can take in the disc (or fat) at an end plate, most often where
    fracture oedema brings the marrow's PDFF near the disc's; its heights then exceed the
    body's and hide the height loss. In every column along the body's axis (the cells of
    :func:`~RefractureRiskLib.roi.geometry.body_frame`'s heights), voxels beyond the first and
    last bone-like voxel (R2* past :data:`DISC_TRIM_R2S_FRAC` of the way from the soft tissue's
    to the body's bone R2*) are left out, and the heights measured again along the same axis.
    The segmented heights stand without an R2* map, without R2* contrast between bone and soft
    tissue, or if trimming would leave less than half of the body.
    """
    frame, box, body = placement.frame, placement.box, placement.body
    soft = arrays.r2s_soft_tissue_per_s
    if arrays.r2s_per_s is None or not np.isfinite(soft) or np.count_nonzero(body) < 20:
        return frame.heights_mm
    mat = np.asarray(box.ijk_to_ras, float)
    # smoothed only around the body (its box padded by the filter's reach: the same values)
    sp = spacing_kji(mat)
    around = bbox_slices(body, smoothing_reach_vox(sp, _R2S_SMOOTH_MM))
    r2 = smooth_pdff(arrays.r2s_per_s[box.slices][around], sp, _R2S_SMOOTH_MM)
    k, j, i = nonzero(body)
    r2_body = r2[k - around[0].start, j - around[1].start, i - around[2].start]
    bone_like = r2_body[r2_body >= 1.2 * soft]
    if bone_like.size <= 0.3 * r2_body.size:
        return frame.heights_mm
    bone_r2 = float(np.median(bone_like))
    if bone_r2 < DISC_TRIM_MIN_CONTRAST * soft:
        return frame.heights_mm
    bone = r2_body >= soft + DISC_TRIM_R2S_FRAC * (bone_r2 - soft)
    ras = np.stack([i, j, k], 1) @ mat[:3, :3].T + mat[:3, 3]
    local = (ras - np.asarray(frame.centre_ras)) @ frame.axes_ras
    keep = _between_column_ends(local, bone, float(spacing_kji(mat).max()))
    if np.count_nonzero(keep) <= 0.5 * keep.size:
        return frame.heights_mm
    trimmed = np.zeros_like(body)
    trimmed[k[keep], j[keep], i[keep]] = True
    return body_frame(trimmed, mat, frame.axes_ras[:, 2]).heights_mm


def _between_column_ends(
    local: npt.NDArray[np.float64], bone: npt.NDArray[np.bool_], cell_mm: float
) -> npt.NDArray[np.bool_]:
    """Which voxels (frame coordinates ``local``: LR, AP, SI) lie, along SI, between the first
    and last ``bone`` voxel of their column (square cells of ``cell_mm`` across LR and AP)."""
    ci, cj = (np.floor(local[:, a] / cell_mm).astype(np.int64) for a in (0, 1))
    key = (ci - ci.min()) * (cj.max() - cj.min() + 2) + (cj - cj.min())
    column, _ = cell_groups(key)
    lo = np.full(column.max() + 1, np.inf)
    hi = np.full(column.max() + 1, -np.inf)
    np.minimum.at(lo, column[bone], local[bone, 2])
    np.maximum.at(hi, column[bone], local[bone, 2])
    return (local[:, 2] >= lo[column]) & (local[:, 2] <= hi[column])


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
    "DISC_TRIM_MIN_CONTRAST",
    "DISC_TRIM_R2S_FRAC",
    "TRUNCATED_FACE_FRAC",
    "TRUNCATED_FACE_SECTION_FRAC",
    "TRUNCATED_SIDE_FACE_FRAC",
    "bone_heights_mm",
    "cut_by_field_of_view",
    "heights_cut_by_field_of_view",
    "level_placement",
]
