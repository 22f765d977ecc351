"""One vertebral body around a seed point: whole-body mask, frame and safe-core ROI, in a box.

Shared by manual ROIs (seed = the user's point) and automatic ROIs (seed = a detected centre), so
both place the measurement ROI the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.roi.geometry import (
    DEFAULT_CORE,
    BodyFrame,
    Box,
    CoreRoiParams,
    axis_along,
    body_frame,
    boundary_distance_mm,
    box_around,
    safe_core_roi,
)
from RefractureRiskLib.roi.marrow import (
    DEFAULT_CRITERIA,
    MarrowCriteria,
    marrow_mask,
    signal_array,
    signal_reference,
    smooth_pdff,
    spacing_kji,
)

#: Half size (mm, RAS x/y/z) of the box searched around a seed: fits a lumbar body (about 50 mm
#: wide, 35 mm deep, 30 mm high) even when the seed is 15 mm off its centre.
BOX_HALF_MM: tuple[float, float, float] = (45.0, 42.0, 36.0)
#: Pedicles, laminae and thin bridges narrower than twice this (in the axial plane) are cut off
#: the body: a 2D opening of this radius in each plane normal to the spine axis. Pedicles are
#: 8-10 mm wide (up to 12 mm with partial volume of thick sagittal slices); bodies >= 27 mm.
OPEN_MM: float = 6.0
#: A seed further than this from any marrow is refused.
MAX_SEED_DISTANCE_MM: float = 8.0


@dataclass(frozen=True)
class BodyPlacement:
    """Result for one body: its box, whole-body and ROI masks in the box, frame and a message."""

    box: Box
    body: npt.NDArray[np.bool_]
    roi: npt.NDArray[np.bool_]
    frame: BodyFrame | None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.frame is not None and bool(self.roi.any())


@dataclass(frozen=True)
class StudyArrays:
    """The arrays ROI placement reads, prepared once per study (no copies of the maps)."""

    pdff_pct: npt.NDArray
    signal: npt.NDArray
    signal_ref: float
    ijk_to_ras: npt.NDArray[np.float64]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.pdff_pct.shape)  # type: ignore[return-value]


def local_marrow(
    arrays: StudyArrays, box: Box, criteria: MarrowCriteria = DEFAULT_CRITERIA
) -> npt.NDArray[np.bool_]:
    """Marrow mask of a box (PDFF smoothed within the box only, so results depend on the box)."""
    pdff = smooth_pdff(arrays.pdff_pct[box.slices], spacing_kji(box.ijk_to_ras), criteria.smooth_mm)
    return marrow_mask(pdff, arrays.signal[box.slices], arrays.signal_ref, criteria)


def body_from_marrow(
    marrow: npt.NDArray[np.bool_],
    ijk_to_ras: npt.NDArray,
    seed_ijk: npt.ArrayLike,
    si_ras: npt.ArrayLike = (0.0, 0.0, 1.0),
    open_mm: float = OPEN_MM,
) -> tuple[npt.NDArray[np.bool_], str]:
    """The body containing ``seed_ijk`` (box-local i, j, k): filled marrow, opened, one component.

    Enclosed voids (cement, lesions) are filled so they count as body; posterior elements and
    thin bridges are removed by an opening of radius ``open_mm`` within planes normal to the
    spine axis ``si_ras``, done by reconstruction (erode, keep the seed's component, dilate back
    inside the marrow). Returns the mask and "" or the reason it is empty.
    """
    filled = ndimage.binary_fill_holes(marrow)
    if not filled.any():
        return filled, "no marrow near the point"
    axis = axis_along(ijk_to_ras, si_ras)
    core = boundary_distance_mm(filled, ijk_to_ras, in_plane_of=axis) >= open_mm
    if not core.any():
        core = filled
    lab, _n = ndimage.label(core)
    seed = np.asarray(seed_ijk, float)[::-1]  # -> (k, j, i)
    sp = spacing_kji(ijk_to_ras)
    k, j, i = np.nonzero(lab)
    d = np.sqrt((((np.stack([k, j, i], 1) - seed) * sp) ** 2).sum(axis=1))
    nearest = int(np.argmin(d))
    if d[nearest] > open_mm + MAX_SEED_DISTANCE_MM:
        return np.zeros_like(filled), f"no marrow within {MAX_SEED_DISTANCE_MM:g} mm of the point"
    comp = lab == lab[k[nearest], j[nearest], i[nearest]]
    sp_plane = sp.copy()
    sp_plane[axis] = 1.0e4
    grow = ndimage.distance_transform_edt(~comp, sampling=sp_plane)
    body = filled & (grow <= open_mm + 0.5 * float(np.delete(sp, axis).max()))
    lab2, _ = ndimage.label(body)
    keep = lab2[k[nearest], j[nearest], i[nearest]]
    return (lab2 == keep) if keep else body, ""


def place_at_seed(
    arrays: StudyArrays,
    seed_ras: npt.ArrayLike,
    params: CoreRoiParams = DEFAULT_CORE,
    criteria: MarrowCriteria = DEFAULT_CRITERIA,
    si_hint: npt.ArrayLike | None = None,
    box_half_mm: tuple[float, float, float] = BOX_HALF_MM,
) -> BodyPlacement:
    """Segment the body around ``seed_ras`` and place its safe-core ROI, all inside one box."""
    box = box_around(arrays.shape, arrays.ijk_to_ras, seed_ras, box_half_mm)
    empty = np.zeros(box.shape, bool)
    if min(box.shape) == 0:
        return BodyPlacement(box, empty, empty, None, "point outside the image")
    marrow = local_marrow(arrays, box, criteria)
    seed_ijk = (np.r_[np.asarray(seed_ras, float), 1.0] @ np.linalg.inv(box.ijk_to_ras).T)[:3]
    si = (0.0, 0.0, 1.0) if si_hint is None else si_hint
    body, why = body_from_marrow(marrow, box.ijk_to_ras, seed_ijk, si)
    if not body.any():
        return BodyPlacement(box, empty, empty, None, why)
    frame = body_frame(body, box.ijk_to_ras, si_hint)
    roi = safe_core_roi(body, marrow, box.ijk_to_ras, frame, params)
    msg = "" if roi.any() else "body too small for a safe-core ROI"
    return BodyPlacement(box, body, roi, frame, msg)


def study_arrays(study: Study) -> StudyArrays:
    """Prepare the PDFF map, the total signal and its reference level of ``study``."""
    if "pdff" not in study.maps:
        raise InputError("study", "ROI placement needs a PDFF map (kind 'pdff', percent)")
    signal = signal_array(study)
    return StudyArrays(
        pdff_pct=study.pdff.array,
        signal=signal,
        signal_ref=signal_reference(signal),
        ijk_to_ras=np.asarray(study.grid.ijk_to_ras, float),
    )


__all__ = [
    "BOX_HALF_MM",
    "BodyPlacement",
    "StudyArrays",
    "body_from_marrow",
    "local_marrow",
    "place_at_seed",
    "study_arrays",
]
