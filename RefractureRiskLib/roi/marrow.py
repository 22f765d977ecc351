"""Which voxels are vertebral marrow, from the PDFF map and the signal (water + fat).

Marrow is the tissue with PDFF between about 12% and 85% *and* real signal; discs and CSF are
water-bright with PDFF near 0%; subcutaneous fat is above 90%; background and cortex have no
signal (their PDFF is noise). Cement is a signal void. These criteria are the one place the ROI
code decides "marrow"; manual and automatic ROIs share them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from RefractureRiskLib.core.study import Study


@dataclass(frozen=True)
class MarrowCriteria:
    """Thresholds that define marrow (documented defaults; units in the names).

    - ``pdff_min_pct`` / ``pdff_max_pct``: marrow PDFF window (docs/architecture.md: ~12-85%;
      the upper bound is 80% because retroperitoneal fat (85-92%) touches the bodies anteriorly).
    - ``signal_min_frac``: minimum signal (water + fat) as a fraction of the study's signal
      reference (the 99th percentile of signal); below it a voxel is background, cortex or cement.
    - ``smooth_mm``: Gaussian sigma applied to PDFF before thresholding, against noise.
    - ``disc_pdff_max_pct``: PDFF below which water-bright tissue counts as disc/CSF.
    """

    pdff_min_pct: float = 12.0
    pdff_max_pct: float = 80.0
    signal_min_frac: float = 0.12
    smooth_mm: float = 1.0
    disc_pdff_max_pct: float = 8.0


DEFAULT_CRITERIA = MarrowCriteria()


def has_signal_images(study: Study) -> bool:
    """Whether ``study`` holds a measured total signal: water and fat, or in-phase images (a
    maps-only export has neither: :func:`signal_array` then infers one from the maps)."""
    maps = study.maps
    return ("water" in maps and "fat" in maps) or "in_phase" in maps


def signal_array(study: Study) -> npt.NDArray[np.float32]:
    """Total signal (arbitrary units) on the study grid: water + fat, else in-phase.

    Without either (a maps-only export: PDFF and R2* alone), :func:`tissue_evidence` stands in:
    a 0-1 measure of "this voxel holds tissue" from the maps themselves.
    """
    maps = study.maps
    if not has_signal_images(study):
        r2s = maps["r2s"].array if "r2s" in maps else None
        return tissue_evidence(study.pdff.array, r2s, spacing_kji(study.grid.ijk_to_ras))
    if "water" in maps and "fat" in maps:
        # float32 maps are not copied first (the same sums: abs and add are elementwise)
        total = np.abs(maps["water"].array.astype(np.float32, copy=False))
        total += np.abs(maps["fat"].array.astype(np.float32, copy=False))
        return total
    return np.abs(maps["in_phase"].array.astype(np.float32, copy=False))


#: Local PDFF step (points: mean absolute difference between neighbouring voxels over 5 x 5
#: voxels, along the calmest of four in-plane directions) at and below which a voxel of a
#: maps-only export counts fully as tissue, and at and above which it counts as no signal.
#: Where there is no signal a fitter's PDFF is noise (steps of 20-33 points in every direction,
#: depending on how the vendor's fit treats pure noise); tissue at SNR 5 steps by about 10-16
#: points (marrow near 50% fat), fat and water-like tissue by less. The calmest direction keeps
#: real tissue edges (marrow next to fat or disc) from looking noisy.
TISSUE_PDFF_STEP_PCT: tuple[float, float] = (13.0, 19.0)
#: The same for R2*, as steps of log(R2* + 30 1/s): tissue R2* is smooth (relative noise well
#: under 30% at SNR 5; the 30 1/s offset keeps the absolute noise of low-R2* tissue such as
#: discs and CSF from looking relative), the fit of noise swings between 0 and hundreds of 1/s.
TISSUE_LOG_R2S_STEP: tuple[float, float] = (0.35, 0.7)


def _calm_steps(arr: npt.NDArray, axes: tuple[int, int], size: tuple[int, ...]) -> npt.NDArray:
    """Local mean |step| between neighbours along the calmest of four in-plane directions."""
    a, b = axes
    steps = []
    for shift in ((1, 0), (0, 1), (1, 1), (1, -1)):
        moved = arr
        for ax, n in zip((a, b), shift, strict=True):
            moved = np.roll(moved, n, axis=ax) if n else moved
        steps.append(ndimage.uniform_filter(np.abs(arr - moved), size=size, mode="nearest"))
    return np.minimum.reduce(steps)


def _ramp(x: npt.NDArray, lo_hi: tuple[float, float]) -> npt.NDArray[np.float32]:
    lo, hi = lo_hi
    return np.clip((hi - x) / (hi - lo), 0.0, 1.0).astype(np.float32)


def tissue_evidence(
    pdff_pct: npt.NDArray,
    r2s_per_s: npt.NDArray | None,
    spacing_kji_mm: npt.ArrayLike,
) -> npt.NDArray[np.float32]:
    """A stand-in for the total signal when only the PDFF and R2* maps were exported (0-1).

    Vendors either mask the background (PDFF and R2* exactly 0) or leave the fit's noise
    there, where PDFF and R2* jump from voxel to voxel in every direction. Tissue has locally
    coherent maps, at least along its edges. The evidence is the product of two ramps, one on
    the local PDFF step (:data:`TISSUE_PDFF_STEP_PCT`) and one on the local step of log R2*
    (:data:`TISSUE_LOG_R2S_STEP`; without an R2* map, PDFF alone), each 1 when calm and 0 when
    noisy; masked voxels (PDFF and R2* both exactly 0) and non-finite values are 0. Cement and
    cortex have no signal either, so they come out as voids, as with water + fat.
    """
    arr = np.nan_to_num(np.asarray(pdff_pct, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    sp = np.asarray(spacing_kji_mm, float)
    fine = [a for a in range(3) if sp[a] <= 2.5 * sp.min()]
    a, b = (fine + [a for a in range(3) if a not in fine])[-2:]  # the two finest axes
    size = tuple(5 if ax in (a, b) else 1 for ax in range(3))
    evidence = _ramp(_calm_steps(arr, (a, b), size), TISSUE_PDFF_STEP_PCT)
    masked = ~np.isfinite(np.asarray(pdff_pct, np.float32)) | (arr == 0.0)
    if r2s_per_s is not None:
        r2 = np.asarray(r2s_per_s, np.float32)
        log_r2 = np.log(np.clip(np.nan_to_num(r2, nan=0.0), 0.0, 1e4) + 30.0)
        evidence *= _ramp(_calm_steps(log_r2, (a, b), size), TISSUE_LOG_R2S_STEP)
        masked = (masked & (r2 == 0.0)) | ~np.isfinite(r2)
    else:
        # without R2*, exact zeros mark the vendor's mask only where a whole neighbourhood is 0
        masked &= ndimage.maximum_filter(np.abs(arr), size=size, mode="nearest") == 0.0
    evidence[masked] = 0.0
    return evidence


def signal_reference(signal: npt.NDArray) -> float:
    """Robust bright-tissue signal level: 99th percentile over a strided subsample (fast)."""
    sub = signal[:: max(1, signal.shape[0] // 20), ::2, ::2]
    ref = float(np.percentile(sub, 99.0))
    return ref if ref > 0 else 1.0


def noise_sigma(signal: npt.NDArray) -> float:
    """Noise SD (signal units) of the total signal, from neighbouring-voxel differences.

    1.4826 * median |difference| / sqrt(2) along the finest array axis: homogeneous tissue and
    air dominate an image, so edges do not move the median. 0 for noiseless images.
    """
    arr = np.asarray(signal, np.float32)
    axis = int(np.argmax(arr.shape))
    sub = arr[:: max(1, arr.shape[0] // 16)] if axis != 0 else arr[:, ::4, ::4]
    diff = np.abs(np.diff(sub, axis=axis))
    return float(1.4826 * median_float32(diff) / np.sqrt(2.0))


def median_float32(values: npt.NDArray) -> np.floating:
    """``np.median(values)``, the same value and type, faster for float32 values >= 0.

    np.median partitions the whole array (slow on an image's many near-equal values). Finite
    float32 values without a sign bit sort as their bit patterns do, so the middle values are
    found in the bucket of their upper 16 bits (one ``bincount``) and averaged as np.median
    averages them (float32 sum of the two, halved in float32). Anything else goes to np.median.
    """
    v = np.ravel(values)
    if v.dtype != np.float32 or v.size < 2 or not np.isfinite(v).all() or np.signbit(v).any():
        return np.median(values)
    v = np.ascontiguousarray(v)
    upper = v.view(np.uint16)[1::2] if np.little_endian else v.view(np.uint16)[::2]
    counts = np.bincount(upper)
    ends = np.cumsum(counts)
    half = v.size // 2
    middle = []
    for rank in (half - 1, half) if v.size % 2 == 0 else (half,):
        bucket = int(np.searchsorted(ends, rank, side="right"))
        below = int(ends[bucket] - counts[bucket])
        middle.append(np.partition(v[upper == bucket], rank - below)[rank - below])
    return np.mean(np.array(middle, np.float32))


def signal_threshold(signal: npt.NDArray, criteria: MarrowCriteria | None = None) -> float:
    """Minimum total signal of tissue: ``signal_min_frac`` of the reference and above the noise
    floor of air (the sum of two Rayleigh magnitudes averages 2.5 sigma; see :func:`noise_sigma`).
    """
    crit = DEFAULT_CRITERIA if criteria is None else criteria
    ref = signal_reference(signal)
    return max(crit.signal_min_frac * ref, NOISE_FLOOR_SIGMAS * noise_sigma(signal))


#: Tissue must exceed this many noise SDs of the total signal (air sits at about 1.8).
NOISE_FLOOR_SIGMAS = 2.8


def smooth_pdff(
    pdff_pct: npt.NDArray, spacing_kji_mm: npt.ArrayLike, sigma_mm: float
) -> npt.NDArray[np.float32]:
    """PDFF smoothed by a Gaussian of ``sigma_mm`` (not along axes coarser than 2 sigma)."""
    sp = np.asarray(spacing_kji_mm, float)
    sigma_vox = np.where(sp <= 2.0 * sigma_mm, sigma_mm / sp, 0.0)
    arr = np.asarray(pdff_pct, np.float32)
    if sigma_mm <= 0 or not np.any(sigma_vox > 0):
        return arr
    return ndimage.gaussian_filter(arr, sigma=tuple(sigma_vox), mode="nearest", truncate=2.0)


def smoothing_reach_vox(spacing_kji_mm: npt.ArrayLike, sigma_mm: float) -> tuple[int, ...]:
    """How far (voxels, per array axis k, j, i) :func:`smooth_pdff` reaches: each smoothed value
    depends only on the values within this many voxels of it along each axis (scipy's Gaussian
    radius at ``truncate=2``; 0 along axes it leaves alone). A box padded by this reach (or ending
    where the array ends) gives the same smoothed values inside the unpadded part."""
    sp = np.asarray(spacing_kji_mm, float)
    if sigma_mm <= 0:
        return (0, 0, 0)
    sigma_vox = np.where(sp <= 2.0 * sigma_mm, sigma_mm / sp, 0.0)
    return tuple(int(2.0 * float(s) + 0.5) if s > 1e-15 else 0 for s in sigma_vox)


def marrow_mask(
    pdff_smooth_pct: npt.NDArray,
    signal: npt.NDArray,
    signal_min: float,
    criteria: MarrowCriteria = DEFAULT_CRITERIA,
) -> npt.NDArray[np.bool_]:
    """Marrow voxels: smoothed PDFF in the window and total signal >= ``signal_min``."""
    return (
        (pdff_smooth_pct >= criteria.pdff_min_pct)
        & (pdff_smooth_pct <= criteria.pdff_max_pct)
        & (signal >= signal_min)
    )


def disc_mask(
    pdff_smooth_pct: npt.NDArray,
    signal: npt.NDArray,
    signal_min: float,
    criteria: MarrowCriteria = DEFAULT_CRITERIA,
) -> npt.NDArray[np.bool_]:
    """Water-bright, fat-free voxels (discs, CSF): low PDFF and signal >= ``signal_min``."""
    return (pdff_smooth_pct <= criteria.disc_pdff_max_pct) & (signal >= signal_min)


def spacing_kji(ijk_to_ras: npt.NDArray) -> npt.NDArray[np.float64]:
    """Voxel size (mm) along the array axes k, j, i."""
    return np.linalg.norm(np.asarray(ijk_to_ras)[:3, :3], axis=0)[::-1]


__all__ = [
    "DEFAULT_CRITERIA",
    "MarrowCriteria",
    "disc_mask",
    "has_signal_images",
    "marrow_mask",
    "median_float32",
    "noise_sigma",
    "signal_array",
    "signal_reference",
    "signal_threshold",
    "smooth_pdff",
    "smoothing_reach_vox",
    "spacing_kji",
    "tissue_evidence",
]
