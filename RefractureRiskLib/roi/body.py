"""One vertebral body around a seed point: whole-body mask, frame and safe-core ROI, in a box.

Shared by manual ROIs (seed = the user's point) and automatic ROIs (seed = a detected centre), so
both place the measurement ROI the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from RefractureRiskLib.roi.cement import void_fraction
from RefractureRiskLib.roi.crop import (
    bbox_slices,
    centres_of_mass,
    component_at,
    in_plane_core,
    nonzero,
)
from RefractureRiskLib.roi.geometry import (
    BodyFrame,
    Box,
    CoreRoiParams,
    axis_along,
    fill_holes,
    safe_core_roi,
    voxel_ras,
)
from RefractureRiskLib.roi.level_facts import cut_by_field_of_view, level_placement  # re-exported
from RefractureRiskLib.roi.marrow import spacing_kji
from RefractureRiskLib.roi.tissue import (  # re-exported
    BONE_FRAC,
    BONE_NEIGHBOUR_MM,
    BONE_R2S_MIN_PER_S_1P5T,
    BONE_RADIUS_MM,
    MARROW_R2S_FACTOR,
    StudyArrays,
    bone_tissue,
    in_vertebral_bone,
    local_marrow,
    study_arrays,
)
from RefractureRiskLib.roi.unlike_ends import trim_unlike_ends

#: Half size (mm, RAS x/y/z) of the box searched around a seed: fits a lumbar body (about 50 mm
#: wide, 35 mm deep, 30 mm high) even when the seed is 15 mm off its centre.
BOX_HALF_MM: tuple[float, float, float] = (42.0, 38.0, 34.0)
#: Pedicles, laminae and thin bridges narrower than twice this (in the axial plane) are cut off
#: the body: a 2D opening of this radius in each plane normal to the spine axis. Pedicles are
#: 8-10 mm wide (up to 12 mm with partial volume of thick sagittal slices); bodies >= 27 mm.
OPEN_MM: float = 6.0
#: How far (mm) the opened body is grown back along the spine axis (tilted endplates).
SI_REGROW_MM: float = 10.0
#: A vertebral body is at least twice this (mm) along each of its axes (even when fractured).
MIN_HALF_EXTENT_MM: float = 5.0
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
    void_frac: float = 0.0  # share of the body with no signal (cement)
    lesion_ml: float = 0.0  # enclosed non-marrow tissue with signal (focal lesion), mL
    cut_at_neighbours: bool = False  # segmented within the planes halfway to the next points
    leaked: bool = False  # segmented again in the column's cross-section after it leaked

    @property
    def ok(self) -> bool:
        return self.frame is not None and bool(self.roi.any())


#: PDFF (%) of the tissues around a body: discs/muscle/soft tissue (low) and fat (high).
LOW_TISSUE_PDFF_PCT = 3.0
FAT_PDFF_PCT = 90.0


#: A voxel next to the body darker than this share of the body's median signal is cortex.
CORTEX_SIGNAL_FRAC = 0.6


def refine_body(
    body: npt.NDArray[np.bool_],
    pdff_smooth: npt.NDArray,
    seed_kji: tuple[int, int, int],
    signal: npt.NDArray | None = None,
    void: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.bool_]:
    """Trim partial-volume boundary voxels and add the dark cortical shell.

    A voxel belongs to the body when its PDFF is nearer the body's own marrow PDFF (median) than
    the neighbouring tissue's (fat or water-like), i.e. when about half of it or more is marrow;
    enclosed holes stay filled. Then the voxels touching the body (faces) that are dark
    (signal < :data:`CORTEX_SIGNAL_FRAC` of the body's median) are added: the cortex, which the
    true body includes but which has too little signal to count as marrow.
    """
    sl = bbox_slices(body, 1)  # holes, components and the rim of the body lie in it
    if sl is None:
        return body
    body_b, pdff_b = body[sl], pdff_smooth[sl]
    core = float(np.median(pdff_b[body_b]))
    lo = 0.5 * (core + LOW_TISSUE_PDFF_PCT)
    hi = 0.5 * (core + FAT_PDFF_PCT)
    kept = body_b & (((pdff_b >= lo) & (pdff_b <= hi)) | (void[sl] if void is not None else False))
    kept = fill_holes(kept) & body_b
    lab, _ = ndimage.label(kept)
    at = tuple(int(a) - s.start for a, s in zip(seed_kji, sl, strict=True))
    keep = lab[at] if all(0 <= a < n for a, n in zip(at, lab.shape, strict=True)) else 0
    if keep == 0:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        keep = int(np.argmax(sizes))
    out_b = lab == keep if keep else body_b
    if signal is not None and out_b.any():
        signal_b = signal[sl]
        ring = ndimage.binary_dilation(out_b) & ~out_b
        dark = signal_b < CORTEX_SIGNAL_FRAC * float(np.median(signal_b[out_b]))
        out_b = out_b | (ring & dark)
    out = np.zeros_like(body)
    out[sl] = out_b
    return out


#: How far (mm) body voxels may lie behind the body's midline posterior wall (real posterior
#: walls are flat to mildly concave); voxels further back are posterior elements.
POSTERIOR_WALL_TOL_MM: float = 2.0
#: Half width (mm) of the midline band in which the posterior wall is measured.
MIDLINE_HALF_WIDTH_MM: float = 6.0


def clip_posterior_elements(
    body: npt.NDArray[np.bool_],
    ijk_to_ras: npt.NDArray,
    axes_ras: npt.NDArray,
    seed_kji: tuple[int, int, int],
) -> npt.NDArray[np.bool_]:
    """``body`` without the voxels behind its posterior wall (pedicle bases), one component.

    Thick slices merge the pedicle bases with the lateral parts of a body (a 4 mm sagittal slice
    averages body and pedicle), so the in-plane opening of :func:`body_from_marrow` cannot cut
    them off, and a posterior appendage moves the body's frame (centre, depth) and lets the
    safe core reach into it (most of all when cement fills the centre). The pedicles leave the
    body behind its posterior wall, which the midline shows (the canal, not bone, lies behind
    it there): the wall is the 2nd percentile of the anterior coordinate (``axes_ras`` column 1,
    unit, towards anterior) of the body voxels within :data:`MIDLINE_HALF_WIDTH_MM` of the
    body's median LR position; voxels more than :data:`POSTERIOR_WALL_TOL_MM` plus half a voxel
    behind it are removed, and the component holding ``seed_kji`` (else the largest) is kept.
    """
    if not body.any():
        return body
    axes = np.asarray(axes_ras, float)
    local = voxel_ras(body, ijk_to_ras) @ axes[:, :2]  # (LR, AP) mm, arbitrary origin
    sp = spacing_kji(ijk_to_ras)
    cols = np.asarray(ijk_to_ras, float)[:3, :3] / sp[::-1]  # unit i, j, k directions
    lr_half_voxel = 0.5 * float(np.abs(axes[:, 0] @ cols * sp[::-1]).max())
    ap_half_voxel = 0.5 * float(np.abs(axes[:, 1] @ cols * sp[::-1]).max())
    mid = np.abs(local[:, 0] - np.median(local[:, 0])) <= max(MIDLINE_HALF_WIDTH_MM, lr_half_voxel)
    if np.count_nonzero(mid) < 10:
        return body
    wall = float(np.percentile(local[mid, 1], 2.0))
    keep = local[:, 1] >= wall - POSTERIOR_WALL_TOL_MM - ap_half_voxel
    if keep.all():
        return body
    sl = bbox_slices(body)  # what is kept lies in the body's box
    out = np.zeros(tuple(s.stop - s.start for s in sl), bool)
    out[tuple(a[keep] - s.start for a, s in zip(nonzero(body), sl, strict=True))] = True
    lab, _ = ndimage.label(out)
    at = tuple(int(a) - s.start for a, s in zip(seed_kji, sl, strict=True))
    inside = all(0 <= a < n for a, n in zip(at, out.shape, strict=True))
    comp = lab[at] if inside and out[at] else 0
    if comp == 0:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        comp = int(np.argmax(sizes))
    if not comp:
        return body
    whole = np.zeros_like(body)
    whole[sl] = lab == comp
    return whole


#: Enclosed non-marrow regions smaller than this (mL) are noise, not lesions.
LESION_MIN_ML: float = 0.12


def focal_lesion_ml(
    body: npt.NDArray[np.bool_],
    marrow: npt.NDArray[np.bool_],
    void: npt.NDArray[np.bool_],
    frame: BodyFrame,
    ijk_to_ras: npt.NDArray,
    pdff_smooth: npt.NDArray | None = None,
) -> float:
    """Volume (mL) of regions inside the body with signal but not marrow PDFF (focal lesions).

    With ``pdff_smooth``, "marrow PDFF" is relative to this body: at least half-way from
    water-like tissue to the body's median marrow PDFF (a lesion replacing fat). Regions with no
    signal are cement (:mod:`RefractureRiskLib.roi.cement`); regions centred in the
    basivertebral-vein zone (posterior third, middle of the height) are the vein, not lesions.
    """
    sl = bbox_slices(body, 1)  # the body and its holes lie in it
    if sl is None:
        return 0.0
    body, marrow = body[sl], marrow[sl]
    if pdff_smooth is not None and (body & marrow).any():
        pdff = pdff_smooth[sl]
        core = float(np.median(pdff[body & marrow]))
        marrow = marrow & (pdff >= 0.5 * (core + LOW_TISSUE_PDFF_PCT))
    inner = body & marrow
    holes = fill_holes(inner) & ~marrow & ~void[sl] & body
    if not holes.any():
        return 0.0
    lab, n = ndimage.label(holes)
    voxel_ml = abs(np.linalg.det(np.asarray(ijk_to_ras)[:3, :3])) / 1000.0
    sizes = np.bincount(lab.ravel(), minlength=n + 1) * voxel_ml
    big = [c for c in range(1, n + 1) if sizes[c] >= LESION_MIN_ML]
    if not big:
        return 0.0
    cents = centres_of_mass(holes, lab, big, tuple(s.start for s in sl))
    total = 0.0
    half = np.maximum(np.asarray(frame.half_extent_mm), 1e-3)
    for c, (k, j, i) in zip(big, cents, strict=True):
        ras = np.asarray(ijk_to_ras)[:3, :3] @ np.array([i, j, k]) + np.asarray(ijk_to_ras)[:3, 3]
        lr, ap, si = frame.to_local(ras[None, :])[0] / half
        if ap < -0.4 and abs(si) < 0.5 and abs(lr) < 0.5:
            continue  # the basivertebral vein
        total += float(sizes[c])
    return total


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
    filled = fill_holes(marrow)
    if not filled.any():
        return filled, "no marrow near the point"
    axis = axis_along(ijk_to_ras, si_ras)
    core = in_plane_core(filled, ijk_to_ras, axis, open_mm)
    if not core.any():
        core = filled
    box = bbox_slices(core)  # labelled there: the same labels, in the same order
    lab = np.zeros(core.shape, np.int32)
    lab[box] = ndimage.label(core[box])[0]
    seed = np.asarray(seed_ijk, float)[::-1]  # -> (k, j, i)
    sp = spacing_kji(ijk_to_ras)
    k, j, i = nonzero(lab)
    d = np.sqrt((((np.stack([k, j, i], 1) - seed) * sp) ** 2).sum(axis=1))
    nearest = int(np.argmin(d))
    if d[nearest] > open_mm + MAX_SEED_DISTANCE_MM:
        return np.zeros_like(filled), f"no marrow within {MAX_SEED_DISTANCE_MM:g} mm of the point"
    comp = lab == lab[k[nearest], j[nearest], i[nearest]]
    sp_plane = sp.copy()
    sp_plane[axis] = 1.0e4
    # grow back by open_mm within the planes: only the component's box, widened, can change
    reach = np.ceil((open_mm + sp) / sp).astype(int)
    reach[axis] = 0
    sl = bbox_slices(comp, tuple(reach))
    grown = np.zeros_like(comp)
    grow = ndimage.distance_transform_edt(~comp[sl], sampling=sp_plane)
    grown[sl] = grow <= open_mm + 0.5 * float(np.delete(sp, axis).max())
    body = filled & grown
    # The opening works in array planes; a tilted body loses the oblique parts near its
    # endplates. Grow back along the spine axis only, inside the marrow (geodesic, 1D): the
    # body's own footprint regains its full height, pedicles (beside it) do not come back.
    if body.any():
        steps = int(np.ceil(SI_REGROW_MM / sp[axis]))
        struct = np.zeros((3, 3, 3), bool)
        struct[tuple(slice(None) if a == axis else 1 for a in range(3))] = True  # along the axis
        # 1D growth along the axis: only the body's box, widened along it, can change
        sl = bbox_slices(body, tuple(steps if a == axis else 0 for a in range(3)))
        body[sl] = ndimage.binary_dilation(body[sl], struct, iterations=steps, mask=filled[sl])
    return component_at(body, (k[nearest], j[nearest], i[nearest])), ""


def measured_placement(
    arrays: StudyArrays,
    box: Box,
    body: npt.NDArray[np.bool_],
    marrow: npt.NDArray[np.bool_],
    void: npt.NDArray[np.bool_],
    pdff: npt.NDArray,
    frame: BodyFrame,
    params: CoreRoiParams,
    no_roi_message: str,
) -> BodyPlacement:
    """A segmented body's placement: its safe-core ROI (``no_roi_message`` when there is none)
    without its ends unlike the rest of its marrow, focal lesion volume and cement (signal
    void) share. ``pdff`` is the box's smoothed PDFF map."""
    roi = safe_core_roi(body, marrow, box.ijk_to_ras, frame, params)
    roi = trim_unlike_ends(roi, pdff, frame, box.ijk_to_ras)
    msg = "" if roi.any() else no_roi_message
    lesion = focal_lesion_ml(body, marrow, void, frame, box.ijk_to_ras, pdff)
    r2 = None if arrays.r2s_per_s is None else arrays.r2s_per_s[box.slices]
    cement = void_fraction(body, void, r2, box.ijk_to_ras, arrays.void_inferred)
    return BodyPlacement(box, body, roi, frame, msg, cement, lesion)


def _nearest_in(mask: npt.NDArray[np.bool_], seed_ijk: npt.ArrayLike) -> tuple[int, int, int]:
    """Index (k, j, i) of the voxel of ``mask`` nearest (in index units) to a seed (i, j, k)."""
    k, j, i = nonzero(mask)
    s = np.asarray(seed_ijk, float)
    n = int(np.argmin((i - s[0]) ** 2 + (j - s[1]) ** 2 + (k - s[2]) ** 2))
    return int(k[n]), int(j[n]), int(i[n])


__all__ = [
    "BONE_FRAC",
    "BONE_NEIGHBOUR_MM",
    "BONE_R2S_MIN_PER_S_1P5T",
    "BONE_RADIUS_MM",
    "BOX_HALF_MM",
    "MARROW_R2S_FACTOR",
    "BodyPlacement",
    "StudyArrays",
    "body_from_marrow",
    "bone_tissue",
    "clip_posterior_elements",
    "cut_by_field_of_view",
    "focal_lesion_ml",
    "in_vertebral_bone",
    "level_placement",
    "local_marrow",
    "measured_placement",
    "refine_body",
    "study_arrays",
]
