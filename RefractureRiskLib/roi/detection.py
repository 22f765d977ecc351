"""Automatic vertebral ROIs, detection: the column, its centre line, and the bodies and gaps on it.

Steps 1-4 of :mod:`RefractureRiskLib.roi.auto` (see its docstring): the ~2 mm detection grid
(marrow, disc, void and oedema masks), the marrow components stacked into the vertebral column,
the centre line fitted through them (RAS mm, arc length from the top), the tube profile of
marrow, disc and void shares along it, its segmentation into bodies (:class:`Segment`) and gaps,
and the rescue of oedematous bodies (no marrow fat) inside over-long gaps or above the column.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from RefractureRiskLib.roi.body import StudyArrays
from RefractureRiskLib.roi.geometry import Box, grid_ras
from RefractureRiskLib.roi.line_points import box_ras, index_box, nearest_line_points
from RefractureRiskLib.roi.marrow import (
    MarrowCriteria,
    disc_mask,
    marrow_mask,
    smooth_pdff,
    spacing_kji,
)

DETECTION_SPACING_MM = 2.0
TUBE_RADIUS_MM = 8.0
PROFILE_STEP_MM = 1.0
#: Fatty marrow for detection: PDFF above the marrow window up to this (%), with R2* at least
#: this multiple of the study's soft tissue (marrow proper needs 1.2 times; fat about 1).
FATTY_MARROW_MAX_PCT = 95.0
FATTY_MARROW_R2S_FACTOR = 1.6
BODY_MARROW_FRAC = 0.45
MIN_BODY_MM = 8.0


@dataclass(frozen=True)
class Segment:
    """A body found on the profile: arc-length range (mm) along the centre line, and gap info."""

    t0_mm: float
    t1_mm: float
    void_frac: float = 0.0

    @property
    def centre_mm(self) -> float:
        return 0.5 * (self.t0_mm + self.t1_mm)

    @property
    def length_mm(self) -> float:
        return self.t1_mm - self.t0_mm


def in_a_segment(segs: list[Segment], t: float) -> bool:
    """Whether arc length ``t`` (mm) lies inside one of ``segs`` (ends included)."""
    return any(sg.t0_mm <= t <= sg.t1_mm for sg in segs)


@dataclass(frozen=True)
class CentreLine:
    """Dense samples of the centre line, cranial to caudal: RAS points, unit caudal tangents, arc
    length ``t_mm`` (0 at the top)."""

    points_ras: npt.NDArray[np.float64]
    tangents: npt.NDArray[np.float64]
    t_mm: npt.NDArray[np.float64]

    @cached_property
    def _samples(self) -> npt.NDArray[np.float64]:
        """Points and tangents side by side, (n, 6): one row pair interpolated per call."""
        return np.hstack([self.points_ras, self.tangents])

    def at(self, t: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Point and unit caudal tangent at arc length ``t`` (mm), linearly interpolated (held
        beyond the ends): what ``np.interp`` gives for each coordinate, bit for bit."""
        t_mm = self.t_mm
        j = int(np.searchsorted(t_mm, t, side="right")) - 1
        if 0 <= j < len(t_mm) - 1 and t_mm[j] != t:
            # np.interp's own operations between samples j and j + 1, on all six columns at once
            # (the per-coordinate calls cost ~30 us each, and the line is read hundreds of times)
            below, above = self._samples[j], self._samples[j + 1]
            both = (above - below) / (t_mm[j + 1] - t_mm[j]) * (t - t_mm[j]) + below
            if not np.isnan(both).any():
                return both[:3], both[3:] / np.linalg.norm(both[3:])
        p = np.array([np.interp(t, t_mm, self.points_ras[:, c]) for c in range(3)])
        d = np.array([np.interp(t, t_mm, self.tangents[:, c]) for c in range(3)])
        return p, d / np.linalg.norm(d)

    def nearest(self, point_ras: npt.ArrayLike) -> tuple[float, float]:
        """(arc length, distance) in mm of the line's sample nearest to ``point_ras``."""
        dist = np.linalg.norm(self.points_ras - np.asarray(point_ras, float), axis=1)
        j = int(np.argmin(dist))
        return float(self.t_mm[j]), float(dist[j])


def axes_from_tangent(tang: npt.NDArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, anterior, superior) unit vectors (RAS) of a body whose caudal tangent is
    ``tang``: superior against the tangent, right as close to +R as is perpendicular to it."""
    sup = -np.asarray(tang, float) / np.linalg.norm(tang)
    right = np.array([1.0, 0.0, 0.0]) - sup[0] * sup
    right /= np.linalg.norm(right)
    # sup x right, term by term as np.cross computes it (same float operations, same bits):
    # np.cross costs ~30 us a call, and this runs hundreds of times per study
    (s0, s1, s2), (r0, r1, r2) = sup.tolist(), right.tolist()
    ant = np.array([s1 * r2 - s2 * r1, s2 * r0 - s0 * r2, s0 * r1 - s1 * r0])
    return right, ant, sup


def cross_section_mask(
    box: Box, centre: npt.NDArray, sup: npt.NDArray, halves: tuple[float, float]
) -> npt.NDArray[np.bool_]:
    """Voxels of ``box`` inside the elliptic cylinder about ``centre`` along ``sup`` (RAS),
    with half-axes ``halves`` (mm) towards the body's right and front."""
    right, ant, _ = axes_from_tangent(-np.asarray(sup, float))
    x, y, z = grid_ras(box.shape, box.ijk_to_ras)
    dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
    u = dx * right[0] + dy * right[1] + dz * right[2]
    v = dx * ant[0] + dy * ant[1] + dz * ant[2]
    return (u / halves[0]) ** 2 + (v / halves[1]) ** 2 <= 1.0


# -- 1. detection grid ---------------------------------------------------------------------------
def _block_mean(arr: npt.NDArray, f: tuple[int, int, int]) -> npt.NDArray[np.float32]:
    nk, nj, ni = (s // ff * ff for s, ff in zip(arr.shape, f, strict=True))
    parts = (
        np.asarray(arr[a : nk : f[0], b : nj : f[1], c : ni : f[2]], np.float32)
        for a, b, c in itertools.product(range(f[0]), range(f[1]), range(f[2]))
    )
    # summed in float32 in this order, then divided: the first two added into a new array (not
    # a copy of the first, then added) and the division done in place save two passes
    first, second = next(parts), next(parts, None)
    out = first.copy() if second is None else np.add(first, second)
    for part in parts:
        out += part
    out /= float(np.prod(f))
    return out


@dataclass(frozen=True)
class DetectionGrid:
    """The study on a ~2 mm grid: marrow, disc, void and oedema (water-rich bone: low PDFF,
    high R2*) masks, the grid's IJK-to-RAS matrix, smoothed R2* (1/s; None without an R2*
    map) and smoothed PDFF (%)."""

    marrow: npt.NDArray[np.bool_]
    disc: npt.NDArray[np.bool_]
    void: npt.NDArray[np.bool_]
    mat: npt.NDArray[np.float64]
    oedema: npt.NDArray[np.bool_]
    r2s: npt.NDArray | None
    pdff_pct: npt.NDArray | None = None  # smoothed PDFF (%)


def detection_grid(arrays: StudyArrays, criteria: MarrowCriteria) -> DetectionGrid:
    """The study's masks, R2* and PDFF on the ~2 mm detection grid (:class:`DetectionGrid`)."""
    sp = spacing_kji(arrays.ijk_to_ras)
    f = tuple(max(1, round(DETECTION_SPACING_MM / s)) for s in sp)
    pdff = _block_mean(arrays.pdff_pct, f)
    sig = _block_mean(arrays.signal, f)
    scale = np.eye(4)
    scale[:3, :3] = np.diag(f[::-1])
    scale[:3, 3] = (np.asarray(f[::-1], float) - 1.0) / 2.0
    mat = arrays.ijk_to_ras @ scale
    pdff = smooth_pdff(pdff, spacing_kji(mat), criteria.smooth_mm)
    marrow = marrow_mask(pdff, sig, arrays.signal_min, criteria)
    wet = (sig >= arrays.signal_min) & (pdff < criteria.pdff_min_pct)
    r2 = None
    if arrays.r2s_per_s is not None:
        r2 = smooth_pdff(_block_mean(arrays.r2s_per_s, f), spacing_kji(mat), criteria.smooth_mm)
        oedema = wet & (r2 >= arrays.r2s_bone_min_per_s)
        if arrays.r2s_marrow_min_per_s > 0:
            marrow &= r2 >= arrays.r2s_marrow_min_per_s
            # Fatty marrow (sacrum, pelvis, the oldest osteoporotic bodies) rises above the
            # PDFF window, where fat tissue is; its trabeculae still shorten T2* well beyond
            # fat's (fat R2* is close to that of soft tissue).
            fatty = (
                (pdff > criteria.pdff_max_pct)
                & (pdff <= FATTY_MARROW_MAX_PCT)
                & (sig >= arrays.signal_min)
                & (r2 >= FATTY_MARROW_R2S_FACTOR * arrays.r2s_soft_tissue_per_s)
            )
            marrow |= fatty
    else:
        oedema = np.zeros_like(marrow)
    disc = disc_mask(pdff, sig, arrays.signal_min, criteria) & ~oedema
    void = sig < arrays.signal_min
    return DetectionGrid(marrow, disc, void, mat, oedema, r2, pdff)


# -- 2. column: see :mod:`RefractureRiskLib.roi.column` -------------------------------------


# -- 3. centre line ---------------------------------------------------------------------------
def fit_centre_line(
    centroids: npt.NDArray, z_range: tuple[float, float], step_mm: float = 0.5
) -> CentreLine:
    """Polynomial x(z), y(z) through the centroids, sampled from top to bottom of ``z_range``."""
    z = centroids[:, 2]
    deg = int(min(3, max(1, len(z) - 3)))
    if len(z) >= 2:
        px = np.polyfit(z, centroids[:, 0], deg)
        py = np.polyfit(z, centroids[:, 1], deg)
    else:
        px = np.array([centroids[0, 0]])
        py = np.array([centroids[0, 1]])
    zlo, zhi = z_range
    # Beyond the centroids the polynomial is extrapolated linearly (tangent kept).
    zs = np.arange(zhi, zlo - step_mm, -step_mm)
    zc = np.clip(zs, z.min(), z.max())
    dpx, dpy = np.polyder(px) if len(px) > 1 else [0.0], np.polyder(py) if len(py) > 1 else [0.0]
    x = np.polyval(px, zc) + np.polyval(dpx, zc) * (zs - zc)
    y = np.polyval(py, zc) + np.polyval(dpy, zc) * (zs - zc)
    pts = np.stack([x, y, zs], axis=1)
    # d(x, y, z)/dz = (x'(z), y'(z), 1) points cranially; the caudal tangent is its opposite
    tang = np.stack([np.polyval(dpx, zc), np.polyval(dpy, zc), np.ones_like(zs)], axis=1)
    tang = -tang / np.linalg.norm(tang, axis=1, keepdims=True)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    t = np.r_[0.0, np.cumsum(seg)]
    return CentreLine(pts, tang, t)


# -- 4. profile -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """Shares of marrow, disc and void in the tube, per ``PROFILE_STEP_MM`` bin along the line,
    and the tube's mean PDFF (%) when it was measured: it shows a disc the marrow mask misses
    (a thin or degenerated one, or PDFF raised by noise bias at low SNR) as a dip."""

    t_mm: npt.NDArray[np.float64]
    marrow: npt.NDArray[np.float64]
    disc: npt.NDArray[np.float64]
    void: npt.NDArray[np.float64]
    covered: npt.NDArray[np.bool_]  # bin has enough voxels inside the field of view
    pdff_pct: npt.NDArray[np.float64] | None = None


def profile_along(
    line: CentreLine,
    marrow: npt.NDArray,
    disc: npt.NDArray,
    void: npt.NDArray,
    mat: npt.NDArray,
    pdff: npt.NDArray | None = None,
) -> Profile:
    """Tube profile along the centre line (tube radius :data:`TUBE_RADIUS_MM`); its mean PDFF
    too when the grid's ``pdff`` is given."""
    lo = line.points_ras.min(axis=0) - TUBE_RADIUS_MM - 2
    hi = line.points_ras.max(axis=0) + TUBE_RADIUS_MM + 2
    box = index_box(mat, lo, hi, marrow.shape)
    x, y, z = box_ras(box, mat)
    near = (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])
    pts = np.stack([x[near], y[near], z[near]], axis=1)
    inside, idx = nearest_line_points(line.points_ras, pts, TUBE_RADIUS_MM)
    t = line.t_mm[idx[inside]]
    nb = int(np.ceil(line.t_mm[-1] / PROFILE_STEP_MM)) + 1
    b = np.minimum((t / PROFILE_STEP_MM).astype(int), nb - 1)
    total = np.bincount(b, minlength=nb).astype(float)
    m = np.bincount(b, weights=marrow[box][near][inside], minlength=nb)
    d = np.bincount(b, weights=disc[box][near][inside], minlength=nb)
    v = np.bincount(b, weights=void[box][near][inside], minlength=nb)
    sums = [total, m, d, v]
    if pdff is not None:
        sums.append(np.bincount(b, weights=pdff[box][near][inside], minlength=nb))
    sp = spacing_kji(mat)
    # Bins are finer than thick slices: smooth counts and sums alike before taking ratios.
    sigma = max(1.0, 0.5 * float(sp.max()) / PROFILE_STEP_MM)
    total, *sums = (ndimage.gaussian_filter1d(a, sigma, mode="constant") for a in sums)
    expected = np.pi * TUBE_RADIUS_MM**2 * PROFILE_STEP_MM / float(np.prod(sp))
    covered = total >= 0.5 * expected
    safe = np.maximum(total, 1e-9)
    fm, fd, fv, *fp = (np.where(total > 1e-6, a / safe, 0.0) for a in sums)
    t_mm = np.arange(nb) * PROFILE_STEP_MM + PROFILE_STEP_MM / 2
    return Profile(t_mm, fm, fd, fv, covered, fp[0] if fp else None)


def segment_profile(prof: Profile) -> tuple[list[Segment], list[tuple[float, float, str]]]:
    """Bodies (marrow runs, void gaps merged in) and the gaps between them (t0, t1, kind)."""
    body = (prof.marrow >= BODY_MARROW_FRAC) & prof.covered
    runs = _runs(body)
    segs: list[Segment] = []
    gaps: list[tuple[float, float, str]] = []
    for a, b in runs:
        t0, t1 = prof.t_mm[a] - PROFILE_STEP_MM / 2, prof.t_mm[b - 1] + PROFILE_STEP_MM / 2
        if segs:
            g0, g1 = segs[-1].t1_mm, t0
            sl = slice(int(g0 / PROFILE_STEP_MM), int(np.ceil(g1 / PROFILE_STEP_MM)))
            dfrac = float(prof.disc[sl].mean()) if sl.stop > sl.start else 0.0
            vfrac = float(prof.void[sl].mean()) if sl.stop > sl.start else 0.0
            if vfrac > max(dfrac, 0.2) and (g1 - g0) < 20.0:
                last = segs.pop()
                segs.append(Segment(last.t0_mm, t1, max(last.void_frac, vfrac)))
                continue
            gaps.append((g0, g1, "disc" if dfrac >= 0.15 else "gap"))
        segs.append(Segment(t0, t1))
    # Drop slivers (noise) but keep their neighbours' gaps joined; a short last segment that
    # reaches the end of the field of view is a body cut by it (often S2): kept, as evidence of
    # the junction above it.
    covered = np.flatnonzero(prof.covered)
    end_t = prof.t_mm[covered[-1]] + PROFILE_STEP_MM / 2 if covered.size else 0.0
    keep = [
        s
        for n, s in enumerate(segs)
        if s.length_mm >= MIN_BODY_MM
        or (n == len(segs) - 1 and s.length_mm >= 3.0 and s.t1_mm >= end_t - 2.0)
    ]
    if len(keep) != len(segs):
        gaps = [
            (a.t1_mm, b.t0_mm, _gap_kind(prof, a.t1_mm, b.t0_mm))
            for a, b in itertools.pairwise(keep)
        ]
    return keep, gaps


def rescue_gaps(
    segs: list[Segment], gaps: list[tuple[float, float, str]], wet: Profile
) -> tuple[list[Segment], list[tuple[float, float, str]]]:
    """Bodies found inside over-long gaps on the profile of marrow *or* oedematous bone."""
    if len(gaps) < 2:
        return segs, gaps
    med = float(np.median([g[1] - g[0] for g in gaps]))
    out_s, out_g = [segs[0]], []
    for seg, gap in zip(segs[1:], gaps, strict=True):
        g0, g1, kind = gap
        if g1 - g0 > max(2.0 * med, med + 12.0):
            inner = Profile(wet.t_mm, wet.marrow, wet.disc, wet.void, wet.covered.copy())
            inner.covered[(wet.t_mm < g0 + 2.0) | (wet.t_mm > g1 - 2.0)] = False
            found, _ = segment_profile(inner)
            last = g0
            for f in found:
                out_g.append((last, f.t0_mm, "disc"))
                out_s.append(Segment(f.t0_mm, f.t1_mm, f.void_frac))
                last = f.t1_mm
            out_g.append((last, g1, kind if not found else "disc"))
        else:
            out_g.append(gap)
        out_s.append(seg)
    return _rescue_top(out_s, out_g, wet, med)


def _rescue_top(
    segs: list[Segment], gaps: list[tuple[float, float, str]], wet: Profile, med_gap: float
) -> tuple[list[Segment], list[tuple[float, float, str]]]:
    """Oedematous bodies above the first marrow body: accepted one by one going up while each
    is body-sized, separated from the body below by a disc-sized gap of water-like tissue, and
    not running into the edge of the field of view (soft tissue above the column is not bone)."""
    med_len = float(np.median([s.length_mm for s in segs]))
    covered = np.flatnonzero(wet.covered)
    if not covered.size:
        return segs, gaps
    start = wet.t_mm[covered[0]] - PROFILE_STEP_MM / 2
    inner = Profile(wet.t_mm, wet.marrow, wet.disc, wet.void, wet.covered.copy())
    inner.covered[wet.t_mm > segs[0].t0_mm - 2.0] = False
    found, _ = segment_profile(inner)
    for f in reversed(found):
        gap = segs[0].t0_mm - f.t1_mm
        ok = (
            MIN_BODY_MM <= f.length_mm <= 1.4 * med_len
            and gap <= 2.0 * med_gap
            and f.t0_mm > start + 3.0
            and _gap_kind(wet, f.t1_mm, segs[0].t0_mm) == "disc"
        )
        if not ok:
            break
        gaps = [(f.t1_mm, segs[0].t0_mm, "disc"), *gaps]
        segs = [Segment(f.t0_mm, f.t1_mm, f.void_frac), *segs]
    return segs, gaps


def _gap_kind(prof: Profile, g0: float, g1: float) -> str:
    sl = slice(int(g0 / PROFILE_STEP_MM), max(int(np.ceil(g1 / PROFILE_STEP_MM)), int(g0) + 1))
    return "disc" if float(prof.disc[sl].mean()) >= 0.15 else "gap"


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))


__all__ = [
    "CentreLine",
    "DetectionGrid",
    "Profile",
    "Segment",
    "axes_from_tangent",
    "detection_grid",
    "fit_centre_line",
    "in_a_segment",
    "profile_along",
    "rescue_gaps",
    "segment_profile",
]
