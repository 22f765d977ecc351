"""The study's arrays ROI placement reads, and the tissue tests on them: marrow and void in a
box, water-rich bone (oedema) by R2*, and whether a point lies in vertebral bone.

Split from :mod:`RefractureRiskLib.roi.body`, which re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.roi.column import fat_r2s, soft_tissue_r2s
from RefractureRiskLib.roi.distance import boundary_distance_mm
from RefractureRiskLib.roi.geometry import Box, box_around, grid_ras
from RefractureRiskLib.roi.marrow import (
    DEFAULT_CRITERIA,
    NOISE_FLOOR_SIGMAS,
    MarrowCriteria,
    has_signal_images,
    marrow_mask,
    noise_sigma,
    signal_array,
    signal_reference,
    smooth_pdff,
    spacing_kji,
)


@dataclass(frozen=True)
class StudyArrays:
    """The arrays ROI placement reads, prepared once per study (no copies of the maps)."""

    pdff_pct: npt.NDArray
    signal: npt.NDArray
    signal_min: float
    ijk_to_ras: npt.NDArray[np.float64]
    noisy: bool = False  # the noise floor, not the tissue contrast, sets ``signal_min``
    r2s_per_s: npt.NDArray | None = None
    r2s_bone_min_per_s: float = float("inf")  # R2* above which water-rich tissue is bone
    # median R2* (1/s) of the study's water-rich soft tissue: what bone is compared with (NaN:
    # no R2* map, or no soft tissue to compare with; PDFF and signal then decide alone)
    r2s_soft_tissue_per_s: float = float("nan")
    r2s_fat_per_s: float = float("nan")  # median R2* of the study's fat (NaN: too little)
    # no water, fat or in-phase image (a maps-only export): ``signal`` is inferred from how
    # calm the maps are, so a void is a guess that R2* must back up (roi.cement.void_fraction)
    void_inferred: bool = False

    @property
    def r2s_marrow_min_per_s(self) -> float:
        """R2* (1/s) marrow must reach (:data:`MARROW_R2S_FACTOR` times soft tissue; 0: none)."""
        ref = self.r2s_soft_tissue_per_s
        return MARROW_R2S_FACTOR * ref if np.isfinite(ref) else 0.0

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.pdff_pct.shape)  # type: ignore[return-value]


def local_marrow(
    arrays: StudyArrays, box: Box, criteria: MarrowCriteria = DEFAULT_CRITERIA
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.float32], npt.NDArray]:
    """Marrow and void (no signal) masks of a box and its smoothed PDFF (maps smoothed within
    the box only, so a level's result depends only on its box) and the signal it used."""
    sp = spacing_kji(box.ijk_to_ras)
    pdff = smooth_pdff(arrays.pdff_pct[box.slices], sp, criteria.smooth_mm)
    raw = arrays.signal[box.slices]
    signal = smooth_pdff(raw, sp, criteria.smooth_mm)
    # Smoothing the signal blurs the thin dark cortex: only worth it when noise decides.
    used = signal if arrays.noisy else raw
    marrow = marrow_mask(pdff, used, arrays.signal_min, criteria)
    if arrays.r2s_per_s is not None and arrays.r2s_marrow_min_per_s > 0:
        r2 = smooth_pdff(arrays.r2s_per_s[box.slices], sp, criteria.smooth_mm)
        marrow &= r2 >= arrays.r2s_marrow_min_per_s
    return marrow, signal < arrays.signal_min, pdff, used


def study_arrays(study: Study, criteria: MarrowCriteria = DEFAULT_CRITERIA) -> StudyArrays:
    """Prepare the PDFF map, the total signal and its reference level of ``study``."""
    if "pdff" not in study.maps:
        raise InputError("study", "ROI placement needs a PDFF map (kind 'pdff', percent)")
    signal = signal_array(study)
    floor = NOISE_FLOOR_SIGMAS * noise_sigma(signal)
    contrast = criteria.signal_min_frac * signal_reference(signal)
    field_t = study.provenance.field_strength_t or 1.5
    r2s = study.r2s.array if "r2s" in study.maps else None
    ref = fat = float("nan")
    if r2s is not None:
        step = (slice(None), slice(None, None, 2), slice(None, None, 2))
        with_signal = signal[step] >= max(floor, contrast)
        ref = soft_tissue_r2s(r2s[step], study.pdff.array[step], with_signal)
        fat = fat_r2s(r2s[step], study.pdff.array[step], with_signal)
    return StudyArrays(
        pdff_pct=study.pdff.array,
        signal=signal,
        signal_min=max(floor, contrast),
        ijk_to_ras=np.asarray(study.grid.ijk_to_ras, float),
        noisy=floor > contrast,
        r2s_per_s=r2s,
        r2s_bone_min_per_s=BONE_R2S_MIN_PER_S_1P5T * field_t / 1.5,
        r2s_soft_tissue_per_s=ref,
        r2s_fat_per_s=fat,
        void_inferred=not has_signal_images(study),
    )


#: Marrow R2* must reach this multiple of the study's soft-tissue R2* (median over water-rich
#: tissue with signal: muscle, organs). Trabecular bone shortens T2*: marrow R2* is 1.5-3 times
#: that of muscle at either field strength, while fat-infiltrated muscle, fatty bowel contents,
#: mesentery edges and discs or muscle lifted into the PDFF window by noise are not.
MARROW_R2S_FACTOR = 1.2


#: R2* (1/s at 1.5 T; doubles at 3 T) separating oedematous marrow (trabecular bone keeps R2*
#: high, >= ~35) from discs and CSF (~15 and ~4) when PDFF alone cannot (acute fracture oedema
#: can lower marrow PDFF below 12%). Used only inside the spinal column's tube and slab, where
#: muscle (~28) is absent.
BONE_R2S_MIN_PER_S_1P5T = 22.0


def bone_tissue(
    arrays: StudyArrays, box: Box, marrow: npt.NDArray[np.bool_], criteria: MarrowCriteria
) -> npt.NDArray[np.bool_]:
    """Marrow plus water-rich bone (oedema): signal, PDFF below the marrow window, R2* high."""
    if arrays.r2s_per_s is None:
        return marrow
    sp = spacing_kji(box.ijk_to_ras)
    r2 = smooth_pdff(arrays.r2s_per_s[box.slices], sp, criteria.smooth_mm)
    pdff = smooth_pdff(arrays.pdff_pct[box.slices], sp, criteria.smooth_mm)
    signal = smooth_pdff(arrays.signal[box.slices], sp, criteria.smooth_mm)
    wet = (pdff < criteria.pdff_max_pct) & (signal >= arrays.signal_min)
    return marrow | (wet & (r2 >= arrays.r2s_bone_min_per_s))


#: A point is in vertebral bone when this share of the tissue within :data:`BONE_RADIUS_MM`
#: is marrow, water-rich bone (oedema: high R2*) or signal void inside bone (cement) ...
BONE_FRAC = 0.5
BONE_RADIUS_MM = 6.0
#: ... and marrow at least 4 mm thick lies within this distance (mm; a neighbour across a disc).
BONE_NEIGHBOUR_MM = 25.0


def in_vertebral_bone(
    arrays: StudyArrays, point_ras: npt.ArrayLike, criteria: MarrowCriteria = DEFAULT_CRITERIA
) -> tuple[bool, float]:
    """Whether a user's point lies in vertebral bone even where no body can be segmented
    around it (an oedematous or cemented body has no marrow fat), and the median PDFF (%)
    there. A gas bubble is void but not bone; the partial-volume rim between fat and water
    tissue has marrow PDFF but is not 4 mm thick, nor has it bone nearby."""
    p = np.asarray(point_ras, float)
    box = box_around(arrays.shape, arrays.ijk_to_ras, p, BONE_RADIUS_MM)
    if min(box.shape) == 0:
        return False, float("nan")
    marrow, void, pdff, _ = local_marrow(arrays, box, criteria)
    bone = bone_tissue(arrays, box, marrow, criteria) | void
    x, y, z = grid_ras(box.shape, box.ijk_to_ras)
    ball = (x - p[0]) ** 2 + (y - p[1]) ** 2 + (z - p[2]) ** 2 <= BONE_RADIUS_MM**2
    if not ball.any():
        return False, float("nan")
    pdff_here = float(np.median(pdff[ball]))
    if bone[ball].mean() < BONE_FRAC or not (bone & ~void)[ball].any():
        return False, pdff_here
    near = box_around(arrays.shape, arrays.ijk_to_ras, p, BONE_NEIGHBOUR_MM)
    deep = boundary_distance_mm(local_marrow(arrays, near, criteria)[0], near.ijk_to_ras) >= 2.0
    return bool(deep.any()), pdff_here


__all__ = [
    "BONE_FRAC",
    "BONE_NEIGHBOUR_MM",
    "BONE_R2S_MIN_PER_S_1P5T",
    "BONE_RADIUS_MM",
    "MARROW_R2S_FACTOR",
    "StudyArrays",
    "bone_tissue",
    "in_vertebral_bone",
    "local_marrow",
    "study_arrays",
]
