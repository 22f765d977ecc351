"""Automatic vertebral ROIs: find the column, the bodies and discs, label levels, place ROIs.

No deep learning (DESIGN.md §4). Steps:

1. Detection grid: the PDFF and signal maps block-averaged to about 2 mm voxels (fast, keeps the
   acquisition's axes, so sagittal, axial and oblique grids are handled alike in RAS mm).
2. Column: marrow (PDFF ~12-85% with signal) is eroded by 3 mm so pedicles and thin bridges
   break; the chain of body-sized components stacked cranio-caudally (each 15-60 mm below the
   previous, within a cone) with the largest total volume is the vertebral column.
3. Centre line: smooth polynomial x(z), y(z) (RAS mm) through the chain's centroids.
4. Profile: along the centre line, the share of marrow, disc (water-bright, PDFF ~0) and void
   (no signal: cement) in a tube of radius :data:`TUBE_RADIUS_MM`. Bodies are the marrow runs;
   gaps holding water are discs; gaps holding void (cement) belong to the body.
5. Sacrum: the S1/S2 junction is a rudimentary (thin) disc or fused; the lowest thin disc at the
   bottom of the chain (or a fused, over-long lowest segment) marks S1. Levels are counted up
   from S1; one anchor point named by the user overrides the count.
6. Each body is segmented on the full grid between its two disc planes (whole body, volume in mL)
   and its safe-core ROI placed as for manual points (:mod:`RefractureRiskLib.roi.body`); voxels
   behind the body's midline posterior wall (pedicle bases that thick slices merge with the
   body) are cut off before its frame and ROI are computed.

Uncertainty (sacrum not found, irregular spacing, a missed disc or body, transitional anatomy,
fewer bodies than expected, anchor disagreement) is reported in ``reasons`` and ``roiset.notes``,
and ``uncertain`` is set, instead of guessing silently.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import cKDTree

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS, level_index
from RefractureRiskLib.core.roiset import LevelRoi, RoiMethod, RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.roi.body import (
    BodyPlacement,
    StudyArrays,
    _nearest_in,
    body_from_marrow,
    bone_tissue,
    clip_posterior_elements,
    focal_lesion_ml,
    level_placement,
    local_marrow,
    refine_body,
    study_arrays,
    void_fraction,
)
from RefractureRiskLib.roi.geometry import (
    DEFAULT_CORE,
    CoreRoiParams,
    axis_along,
    body_frame,
    boundary_distance_mm,
    box_around,
    grid_ras,
    safe_core_roi,
)
from RefractureRiskLib.roi.marrow import (
    DEFAULT_CRITERIA,
    MarrowCriteria,
    disc_mask,
    marrow_mask,
    smooth_pdff,
    spacing_kji,
)
from RefractureRiskLib.roi.qc import apply_qc
from RefractureRiskLib.roi.result import LevelPlacement, RoiResult

DETECTION_SPACING_MM = 2.0
ERODE_MM = 5.0
MIN_COMPONENT_ML = 1.0
TUBE_RADIUS_MM = 8.0
PROFILE_STEP_MM = 1.0
BODY_MARROW_FRAC = 0.45
#: A gap shorter than this share of the median disc gap is a rudimentary disc (sacral fusion).
THIN_DISC_FRAC = 0.6
#: A segment longer than this multiple of the median body length holds two bodies.
LONG_SEGMENT_FACTOR = 1.55
MIN_BODY_MM = 8.0
#: An anchor point farther than this from the centre line is refused, not snapped to a body.
ANCHOR_MAX_DISTANCE_MM = 60.0
#: Larger half-sizes (mm) than any lumbar body (about 50 x 35 mm) mean the segmentation leaked.
MAX_HALF_WIDTH_MM = 32.0
MAX_HALF_DEPTH_MM = 25.0


@dataclass(frozen=True)
class Anchor:
    """A user-named point: ``level`` (e.g. "L3") at ``point_ras`` (RAS, mm) inside that body."""

    level: str
    point_ras: tuple[float, float, float]


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


@dataclass(frozen=True)
class CentreLine:
    """Dense samples of the centre line, cranial to caudal: RAS points, unit caudal tangents, arc
    length ``t_mm`` (0 at the top)."""

    points_ras: npt.NDArray[np.float64]
    tangents: npt.NDArray[np.float64]
    t_mm: npt.NDArray[np.float64]

    def at(self, t: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        p = np.array([np.interp(t, self.t_mm, self.points_ras[:, c]) for c in range(3)])
        d = np.array([np.interp(t, self.t_mm, self.tangents[:, c]) for c in range(3)])
        return p, d / np.linalg.norm(d)


# -- 1. detection grid ---------------------------------------------------------------------------
def _block_mean(arr: npt.NDArray, f: tuple[int, int, int]) -> npt.NDArray[np.float32]:
    nk, nj, ni = (s // ff * ff for s, ff in zip(arr.shape, f, strict=True))
    out = None
    for a in range(f[0]):
        for b in range(f[1]):
            for c in range(f[2]):
                part = np.asarray(arr[a : nk : f[0], b : nj : f[1], c : ni : f[2]], np.float32)
                out = part.copy() if out is None else out.__iadd__(part)
    return out / float(np.prod(f))


def detection_grid(
    arrays: StudyArrays, criteria: MarrowCriteria
) -> tuple[npt.NDArray, npt.NDArray, npt.NDArray, npt.NDArray, npt.NDArray]:
    """Marrow, disc and void masks on a ~2 mm grid, that grid's IJK-to-RAS matrix, and the
    water-rich bone (oedema: low PDFF, high R2*) mask."""
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
    if arrays.r2s_per_s is not None:
        r2 = smooth_pdff(_block_mean(arrays.r2s_per_s, f), spacing_kji(mat), criteria.smooth_mm)
        oedema = wet & (r2 >= arrays.r2s_bone_min_per_s)
    else:
        oedema = np.zeros_like(marrow)
    disc = disc_mask(pdff, sig, arrays.signal_min, criteria) & ~oedema
    void = sig < arrays.signal_min
    return marrow, disc, void, mat, oedema


# -- 2. column --------------------------------------------------------------------------------
def _components(marrow: npt.NDArray, mat: npt.NDArray) -> list[tuple[np.ndarray, float]]:
    """Centroids (RAS) and volumes (mL, eroded) of marrow components after an axial-plane
    erosion of :data:`ERODE_MM` (removes posterior elements, which otherwise join the bodies)."""
    si_axis = axis_along(mat, (0.0, 0.0, 1.0))
    core = boundary_distance_mm(marrow, mat, in_plane_of=si_axis) >= ERODE_MM
    lab, n = ndimage.label(core)
    if n == 0:
        return []
    voxel_ml = abs(np.linalg.det(mat[:3, :3])) / 1000.0
    counts = np.bincount(lab.ravel(), minlength=n + 1)
    idx = np.arange(1, n + 1)
    cents = np.array(ndimage.center_of_mass(core, lab, idx))  # (k, j, i)
    out = []
    for c, cnt in zip(cents, counts[1:], strict=True):
        vol = cnt * voxel_ml
        if vol >= MIN_COMPONENT_ML:
            ras = mat[:3, :3] @ c[::-1] + mat[:3, 3]
            out.append((ras, vol))
    return out


def find_column(comps: list[tuple[np.ndarray, float]]) -> list[tuple[np.ndarray, float]]:
    """The chain of components stacked cranio-caudally with the largest total volume."""
    if not comps:
        return []
    order = sorted(comps, key=lambda c: -c[0][2])  # top first
    n = len(order)
    best = [c[1] for c in order]
    prev = [-1] * n
    for b in range(n):
        for a in range(b):
            dz = order[a][0][2] - order[b][0][2]
            lateral = np.hypot(*(order[a][0][:2] - order[b][0][:2]))
            # up to 80 mm: one body may be missing (oedema without marrow fat)
            linked = 15.0 <= dz <= 80.0 and lateral <= 0.8 * dz + 5.0
            if linked and best[a] + order[b][1] > best[b]:
                best[b] = best[a] + order[b][1]
                prev[b] = a
    end = int(np.argmax(best))
    chain = []
    while end >= 0:
        chain.append(order[end])
        end = prev[end]
    return chain[::-1]


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
    """Shares of marrow, disc and void in the tube, per ``PROFILE_STEP_MM`` bin along the line."""

    t_mm: npt.NDArray[np.float64]
    marrow: npt.NDArray[np.float64]
    disc: npt.NDArray[np.float64]
    void: npt.NDArray[np.float64]
    covered: npt.NDArray[np.bool_]  # bin has enough voxels inside the field of view


def profile_along(
    line: CentreLine, marrow: npt.NDArray, disc: npt.NDArray, void: npt.NDArray, mat: npt.NDArray
) -> Profile:
    """Tube profile along the centre line (tube radius :data:`TUBE_RADIUS_MM`)."""
    x, y, z = grid_ras(marrow.shape, mat)
    lo = line.points_ras.min(axis=0) - TUBE_RADIUS_MM - 2
    hi = line.points_ras.max(axis=0) + TUBE_RADIUS_MM + 2
    near = (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])
    pts = np.stack([x[near], y[near], z[near]], axis=1)
    tree = cKDTree(line.points_ras)
    dist, idx = tree.query(pts, distance_upper_bound=TUBE_RADIUS_MM)
    inside = np.isfinite(dist)
    t = line.t_mm[idx[inside]]
    nb = int(np.ceil(line.t_mm[-1] / PROFILE_STEP_MM)) + 1
    b = np.minimum((t / PROFILE_STEP_MM).astype(int), nb - 1)
    total = np.bincount(b, minlength=nb).astype(float)
    m = np.bincount(b, weights=marrow[near][inside], minlength=nb)
    d = np.bincount(b, weights=disc[near][inside], minlength=nb)
    v = np.bincount(b, weights=void[near][inside], minlength=nb)
    sp = spacing_kji(mat)
    # Bins are finer than thick slices: smooth counts and sums alike before taking ratios.
    sigma = max(1.0, 0.5 * float(sp.max()) / PROFILE_STEP_MM)
    total, m, d, v = (
        ndimage.gaussian_filter1d(a, sigma, mode="constant") for a in (total, m, d, v)
    )
    expected = np.pi * TUBE_RADIUS_MM**2 * PROFILE_STEP_MM / float(np.prod(sp))
    covered = total >= 0.5 * expected
    safe = np.maximum(total, 1e-9)
    fm, fd, fv = (np.where(total > 1e-6, a / safe, 0.0) for a in (m, d, v))
    return Profile(np.arange(nb) * PROFILE_STEP_MM + PROFILE_STEP_MM / 2, fm, fd, fv, covered)


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


# -- 5. labels --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Labelling:
    """Level names per segment (None = not a measured level), with reasons and confidences."""

    names: tuple[str | None, ...]
    confidence: tuple[float, ...]
    reasons: tuple[str, ...]
    sacrum_found: bool


def split_long_segments(
    segs: list[Segment], gaps: list[tuple[float, float, str]]
) -> tuple[list[Segment], list[tuple[float, float, str]], list[str]]:
    """Split segments much longer than the median body (a missed disc) into equal parts."""
    if len(segs) < 3:
        return segs, gaps, []
    med = float(np.median([s.length_mm for s in segs]))
    med_gap = float(np.median([g[1] - g[0] for g in gaps])) if gaps else 8.0
    out_s: list[Segment] = []
    out_g: list[tuple[float, float, str]] = []
    notes = []
    for i, s in enumerate(segs):
        if i > 0:
            out_g.append(gaps[i - 1])
        n = round((s.length_mm + med_gap) / (med + med_gap))
        is_last = i == len(segs) - 1
        if s.length_mm > LONG_SEGMENT_FACTOR * med and n >= 2:
            step = s.length_mm / n
            for p in range(n):
                out_s.append(Segment(s.t0_mm + p * step, s.t0_mm + (p + 1) * step, s.void_frac))
                if p < n - 1:
                    c = s.t0_mm + (p + 1) * step
                    out_g.append((c - 0.5, c + 0.5, "fused" if is_last else "missed"))
            if not is_last:
                notes.append(
                    f"a body {s.length_mm:.0f} mm long (median {med:.0f} mm) was split in {n}: "
                    "a disc may have been missed"
                )
        else:
            out_s.append(s)
    return out_s, out_g, notes


def split_sacral_dip(
    segs: list[Segment], gaps: list[tuple[float, float, str]], prof: Profile
) -> tuple[list[Segment], list[tuple[float, float, str]]]:
    """Split the lowest segment at a partial-volume dip of the marrow share: a rudimentary
    S1/S2 disc (about 3 mm) blurred by thick slices shows as a dip, not a gap. The dip must lie
    at least 0.6 median body lengths below the segment's top and drop below 75% of the
    segment's typical marrow share."""
    if len(segs) < 3:
        return segs, gaps
    last = segs[-1]
    if gaps and (gaps[-1][2] == "fused" or gaps[-1][1] - gaps[-1][0] < 4.0):
        return segs, gaps
    med_len = float(np.median([s.length_mm for s in segs[:-1]]))
    t = prof.t_mm
    inside = (t >= last.t0_mm) & (t <= last.t1_mm)
    search = (t >= last.t0_mm + 0.6 * med_len) & (t <= last.t1_mm - 4.0)
    if not search.any() or not inside.any():
        return segs, gaps
    plateau = float(np.median(prof.marrow[inside]))
    k = np.flatnonzero(search)[int(np.argmin(prof.marrow[search]))]
    if prof.marrow[k] >= 0.75 * plateau:
        return segs, gaps
    cut = float(t[k])
    head = Segment(last.t0_mm, cut - 0.5, last.void_frac)
    tail = Segment(cut + 0.5, last.t1_mm, last.void_frac)
    return [*segs[:-1], head, tail], [*gaps, (cut - 0.5, cut + 0.5, "fused")]


def label_segments(
    segs: list[Segment], gaps: list[tuple[float, float, str]], bottom_in_fov: bool
) -> Labelling:
    """Levels counted up from the sacrum (S1 is above the lowest rudimentary/fused junction)."""
    reasons: list[str] = []
    n = len(segs)
    if n == 0:
        return Labelling((), (), ("no vertebral bodies found",), False)
    glen = np.array([g[1] - g[0] for g in gaps]) if gaps else np.zeros(0)
    real = [i for i, g in enumerate(gaps) if g[2] in ("disc", "gap")]
    med_gap = float(np.median(glen[real])) if real else 10.0
    s1 = None
    # The rudimentary S1/S2 disc: the lowest gap, clearly thinner than the others, with only
    # the sacral remnant (one segment) below it.
    if gaps:
        last = len(gaps) - 1
        g = gaps[last]
        if g[2] == "fused" or (g[1] - g[0]) < THIN_DISC_FRAC * med_gap:
            s1 = last  # segment index above the last gap
    if s1 is None:
        if bottom_in_fov:
            reasons.append(
                "sacrum not found: no rudimentary S1/S2 disc at the bottom of the column"
            )
        else:
            reasons.append("sacrum not found: the column leaves the field of view caudally")
        s1 = n - 1  # best guess: the lowest body is S1
    else:
        # Transitional anatomy: another thin gap just above S1 (sacralised L5 / lumbarised S1).
        if s1 >= 1 and (glen[s1 - 1] < 0.75 * med_gap):
            reasons.append("possible transitional anatomy: thin L5/S1 disc")
    names: list[str | None] = [None] * n
    base = level_index("S1")
    for i in range(n):
        li = base - (s1 - i)
        if 0 <= li < len(VERTEBRAL_LEVELS):
            names[i] = VERTEBRAL_LEVELS[li]
    sacrum_found = not any(r.startswith("sacrum not found") for r in reasons)
    conf = [1.0 if sacrum_found else 0.3] * n
    return Labelling(tuple(names), tuple(conf), tuple(reasons), sacrum_found)


def spacing_reasons(
    segs: list[Segment],
    gaps: list[tuple[float, float, str]],
    sacrum_found: bool = False,
    top_cut: bool = False,
) -> list[str]:
    """Irregular disc spacing, missed discs or bodies (long gaps). With the sacrum found, the
    segment below S1 (S2, possibly cut by the field of view) is not judged, nor is a top
    segment cut by the field of view (its centre is not its body's centre)."""
    reasons = []
    if sacrum_found and len(segs) >= 2:
        segs, gaps = segs[:-1], gaps[:-1]
    if top_cut and len(segs) >= 2:
        segs, gaps = segs[1:], gaps[1:]
    if len(segs) >= 3:
        cents = np.array([s.centre_mm for s in segs])
        d = np.diff(cents)
        med = float(np.median(d))
        # the sacral junction is expected to be short: judge only the mobile spine
        mobile = [i for i, g in enumerate(gaps) if g[2] in ("disc", "gap")]
        for i in mobile:
            r = d[i] / med
            if r > 1.45 or r < 0.6:
                reasons.append(
                    f"irregular disc spacing: {d[i]:.0f} mm between bodies {i + 1} and {i + 2} "
                    f"(median {med:.0f} mm)"
                )
        glen = np.array([gaps[i][1] - gaps[i][0] for i in mobile])
        if len(glen):
            mg = float(np.median(glen))
            for gl in glen:
                if gl > max(2.0 * mg, mg + 10.0):
                    reasons.append(f"gap of {gl:.0f} mm between bodies: a body may be missed")
    return reasons


# -- 6. placement -----------------------------------------------------------------------------
def place_segment(
    arrays: StudyArrays,
    line: CentreLine,
    seg: Segment,
    upper_t: float,
    lower_t: float,
    params: CoreRoiParams,
    criteria: MarrowCriteria,
    cross_section_mm: tuple[float, float] | None = None,
) -> BodyPlacement:
    """Whole body and safe core of one segment, between the planes at ``upper_t``/``lower_t``.

    ``cross_section_mm`` (LR, AP half-sizes from the neighbouring bodies) switches to the
    fallback for bodies without marrow fat (fracture oedema): bone tissue (marrow or water-rich
    with high R2*) inside that elliptic cylinder about the centre line, between the planes.
    """
    centre, tang = line.at(seg.centre_mm)
    # the centre line passes within a few mm of the body centre: bodies are <= 50 x 35 mm
    half = (34.0, 28.0, max(20.0, 0.5 * (lower_t - upper_t) + 10.0))
    box = box_around(arrays.shape, arrays.ijk_to_ras, centre, half)
    empty = np.zeros(box.shape, bool)
    if min(box.shape) == 0:
        return BodyPlacement(box, empty, empty, None, "outside the image")
    marrow, void, pdff, signal = local_marrow(arrays, box, criteria)
    x, y, z = grid_ras(box.shape, box.ijk_to_ras)
    pu, nu = line.at(upper_t)
    pl, nl = line.at(lower_t)
    # tangents point caudally: below the upper plane and above the lower plane
    below_upper = (x - pu[0]) * nu[0] + (y - pu[1]) * nu[1] + (z - pu[2]) * nu[2] >= 0
    above_lower = (x - pl[0]) * nl[0] + (y - pl[1]) * nl[1] + (z - pl[2]) * nl[2] <= 0
    slab = below_upper & above_lower
    seed_ijk = (np.r_[centre, 1.0] @ np.linalg.inv(box.ijk_to_ras).T)[:3]
    if cross_section_mm is not None:
        right, ant, _ = _axes_from_tangent(tang)
        dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
        u = dx * right[0] + dy * right[1] + dz * right[2]
        v = dx * ant[0] + dy * ant[1] + dz * ant[2]
        a, b = cross_section_mm
        slab &= (u / (a + 1.0)) ** 2 + (v / (b + 1.0)) ** 2 <= 1.0
        marrow = bone_tissue(arrays, box, marrow, criteria)
    # signal voids (cement) count as body for its shape; the ROI keeps away from them
    body, why = body_from_marrow((marrow | void) & slab, box.ijk_to_ras, seed_ijk, -tang)
    if not body.any():
        return BodyPlacement(box, empty, empty, None, why)
    if cross_section_mm is None:
        body = refine_body(body, pdff, _nearest_in(body, seed_ijk), signal, void)
    # pedicle bases merged by thick slices: cut behind the posterior wall, then the frame
    body = clip_posterior_elements(
        body,
        box.ijk_to_ras,
        body_frame(body, box.ijk_to_ras, si_hint=-tang).axes_ras,
        _nearest_in(body, seed_ijk),
    )
    frame = body_frame(body, box.ijk_to_ras, si_hint=-tang)
    roi = safe_core_roi(body, marrow, box.ijk_to_ras, frame, params)
    msg = "" if roi.any() else "no safe-core ROI"
    lesion = focal_lesion_ml(body, marrow, void, frame, box.ijk_to_ras, pdff)
    return BodyPlacement(box, body, roi, frame, msg, void_fraction(body, void), lesion)


def _axes_from_tangent(tang: npt.NDArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, anterior, superior) unit vectors of a body whose caudal tangent is ``tang``."""
    sup = -np.asarray(tang, float) / np.linalg.norm(tang)
    right = np.array([1.0, 0.0, 0.0]) - sup[0] * sup
    right /= np.linalg.norm(right)
    return right, np.cross(sup, right), sup


def _anchor_labels(
    line: CentreLine, segs: list[Segment], anchor: Anchor, base: Labelling
) -> Labelling:
    level = anchor.level.strip().upper()
    try:
        a_idx = level_index(level)
    except ValueError as err:
        raise InputError(f"anchor {anchor.level!r}", str(err)) from None
    p = np.asarray(anchor.point_ras, float)
    d = np.linalg.norm(line.points_ras - p, axis=1)
    j = int(np.argmin(d))
    t = line.t_mm[j]
    reasons = list(r for r in base.reasons if not r.startswith("sacrum not found"))
    dists = [
        0.0 if s.t0_mm <= t <= s.t1_mm else min(abs(t - s.t0_mm), abs(t - s.t1_mm)) for s in segs
    ]
    k = int(np.argmin(dists))
    if d[j] > ANCHOR_MAX_DISTANCE_MM:
        # Far from the spine (a typo or another coordinate system): relabelling the nearest
        # body would silently rename every level.
        raise InputError(
            f"anchor {level} at ({', '.join(f'{v:g}' for v in p)}) RAS mm",
            f"is {d[j]:.0f} mm from the spine's centre line (at most {ANCHOR_MAX_DISTANCE_MM:g} "
            f"mm accepted); place it inside the {level} vertebral body (RAS, not LPS)",
        )
    if dists[k] > 0 or d[j] > 25.0:
        reasons.append(
            f"anchor {level} is not inside a detected body ({d[j]:.0f} mm from the centre line); "
            "used the nearest body"
        )
    names: list[str | None] = []
    for i in range(len(segs)):
        li = a_idx + (i - k)
        names.append(VERTEBRAL_LEVELS[li] if 0 <= li < len(VERTEBRAL_LEVELS) else None)
    if base.names and base.sacrum_found and base.names[k] != level:
        reasons.append(
            f"anchor {level} disagrees with the count from the sacrum "
            f"({base.names[k] or 'unlabelled'}): labels follow the anchor"
        )
    conf = tuple(0.95 if reasons else 1.0 for _ in segs)
    return Labelling(tuple(names), conf, tuple(reasons), base.sacrum_found)


def automatic_rois(
    study: Study,
    *,
    anchor: Anchor | None = None,
    params: CoreRoiParams = DEFAULT_CORE,
    criteria: MarrowCriteria = DEFAULT_CRITERIA,
    reader: str = "automatic",
    index_levels: Sequence[str] = (),
) -> RoiResult:
    """Find, label and measure the vertebral bodies T10-S1 of ``study`` (see module docstring)."""
    arrays = study_arrays(study, criteria)
    marrow, disc, void, mat, oedema = detection_grid(arrays, criteria)
    comps = _components(marrow, mat)
    chain = find_column(comps)
    if len(chain) < 2:
        raise InputError("study", "no vertebral column found (fewer than two marrow bodies)")
    cents = np.array([c[0] for c in chain])
    zs = _fov_z_range(marrow.shape, mat)
    line = fit_centre_line(cents, zs)
    prof = profile_along(line, marrow, disc, void, mat)
    segs, gaps = segment_profile(prof)
    if oedema.any():
        # long gaps may hide a body without marrow fat (fracture oedema): look there with R2*
        wet = profile_along(line, marrow | oedema, disc & ~oedema, void, mat)
        segs, gaps = rescue_gaps(segs, gaps, wet)
    segs, gaps, split_notes = split_long_segments(segs, gaps)
    segs, gaps = split_sacral_dip(segs, gaps, prof)
    if not segs:
        raise InputError("study", "no vertebral bodies found along the column")
    covered_idx = np.flatnonzero(prof.covered)
    bottom_in_fov = bool(covered_idx.size) and (prof.t_mm[covered_idx[-1]] - segs[-1].t1_mm > 4.0)
    top_at_edge = bool(covered_idx.size) and (segs[0].t0_mm - prof.t_mm[covered_idx[0]] < 4.0)
    labelling = label_segments(segs, gaps, bottom_in_fov)
    reasons = (
        list(labelling.reasons)
        + split_notes
        + spacing_reasons(segs, gaps, labelling.sacrum_found, top_at_edge)
    )
    if anchor is not None:
        labelling = _anchor_labels(line, segs, anchor, labelling)
        reasons = list(labelling.reasons) + split_notes
    named = [n for n in labelling.names if n is not None]
    if named and named[0] != "T10" and not top_at_edge and anchor is None:
        reasons.append(
            f"fewer bodies than expected: the column ends at {named[0]} inside the field of view"
        )
    # place each named level
    shape = arrays.shape
    roi_arr = np.zeros(shape, np.int16)
    body_arr = np.zeros(shape, np.int16)
    entries: list[LevelPlacement] = []
    planes = []
    for i, seg in enumerate(segs):
        # The slab reaches across each gap to just short of the neighbouring body: the disc
        # itself separates the bodies, and a plane tilted by a centre-line error must not cut
        # off an endplate corner (split gaps inside fused/merged segments are exact cuts).
        upper, lower = seg.t0_mm - 4.0, seg.t1_mm + 4.0  # column ends: no neighbour known
        if i > 0:
            g0, g1, _ = gaps[i - 1]
            upper = g0 + min(1.0, 0.5 * (g1 - g0))
        if i < len(gaps):
            g0, g1, _ = gaps[i]
            lower = g1 - min(1.0, 0.5 * (g1 - g0))
        planes.append((upper, lower))
    named = [i for i, n in enumerate(labelling.names) if n is not None]
    placed = {i: place_segment(arrays, line, segs[i], *planes[i], params, criteria) for i in named}
    good = [
        i
        for i in named
        if placed[i].frame is not None
        and placed[i].frame.half_extent_mm[0] <= MAX_HALF_WIDTH_MM
        and placed[i].frame.half_extent_mm[1] <= MAX_HALF_DEPTH_MM
    ]
    if good:
        ml_per_mm = np.median([placed[i].frame.volume_ml / segs[i].length_mm for i in good])
        halves = np.array([placed[i].frame.half_extent_mm[:2] for i in good])
        for i in named:
            pl = placed[i]
            small = pl.frame is None or pl.frame.volume_ml < 0.5 * ml_per_mm * segs[i].length_mm
            leaked = pl.frame is not None and (
                pl.frame.half_extent_mm[0] > MAX_HALF_WIDTH_MM
                or pl.frame.half_extent_mm[1] > MAX_HALF_DEPTH_MM
            )
            if not (small or leaked):
                continue
            near = np.argsort([abs(g - i) for g in good])[:2]
            cross = tuple(float(h) for h in np.median(halves[near], axis=0))
            fb = place_segment(arrays, line, segs[i], *planes[i], params, criteria, cross)
            if fb.frame is not None and (
                pl.frame is None or leaked or fb.frame.volume_ml > pl.frame.volume_ml
            ):
                placed[i] = replace(fb, message="no marrow fat (oedema?): body from R2*, shape")
    for i in named:
        name = labelling.names[i]
        pl = placed[i]
        if pl.frame is None:
            reasons.append(f"{name}: body not segmented ({pl.message})")
            continue
        off = float(
            np.min(np.linalg.norm(line.points_ras - np.asarray(pl.frame.centre_ras), axis=1))
        )
        t_body = float(
            line.t_mm[np.argmin(np.linalg.norm(line.points_ras - pl.frame.centre_ras, axis=1))]
        )
        lr_half, ap_half, _ = pl.frame.half_extent_mm
        if abs(t_body - segs[i].centre_mm) > max(6.0, 0.4 * segs[i].length_mm) or off > 10.0:
            reasons.append(f"{name}: the body found is not where the profile put it")
        elif lr_half > MAX_HALF_WIDTH_MM or ap_half > MAX_HALF_DEPTH_MM:
            reasons.append(
                f"{name}: implausible body ({2 * lr_half:.0f} x {2 * ap_half:.0f} mm): "
                "not a vertebral body alone"
            )
        # any doubt about the count lowers every label's confidence (one wrong count shifts all)
        conf = labelling.confidence[i] if not reasons else min(labelling.confidence[i], 0.5)
        entry = level_placement(name, pl, arrays, conf)
        view_b = body_arr[pl.box.slices]
        view_b[pl.body & (view_b == 0)] = entry.label
        view_r = roi_arr[pl.box.slices]
        view_r[pl.roi & (view_r == 0)] = entry.label
        entries.append(entry)
    if not entries:
        raise InputError("study", "no vertebral level could be placed")
    uncertain = bool(reasons)
    grid = study.grid
    entries.sort(key=lambda e: level_index(e.level))
    notes = tuple(reasons) if reasons else ()
    roiset = RoiSet(
        labelmap=Volume(roi_arr, grid.ijk_to_ras),
        levels=tuple(LevelRoi(e.level, e.label) for e in entries),
        method=RoiMethod.AUTOMATIC,
        reader=reader,
        notes=notes,
    )
    result = RoiResult(
        roiset=roiset,
        body_labels=Volume(body_arr, grid.ijk_to_ras),
        levels=tuple(entries),
        uncertain=uncertain,
        reasons=notes,
        signal_min=arrays.signal_min,
        extras={
            "centre_line_ras": line.points_ras,
            "segments_mm": [(s.t0_mm, s.t1_mm) for s in segs],
            "gaps_mm": gaps,
            "segment_names": labelling.names,
            "index_levels": tuple(index_levels),
            "anchor": anchor,
        },
    )
    return apply_qc(result, study, index_levels=index_levels)


def _fov_z_range(shape: tuple[int, int, int], mat: npt.NDArray) -> tuple[float, float]:
    nk, nj, ni = shape
    corners = np.array(
        [[i, j, k, 1.0] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)]
    )
    z = (corners @ mat.T)[:, 2]
    return float(z.min()), float(z.max())


__all__ = [
    "Anchor",
    "CentreLine",
    "Labelling",
    "Profile",
    "Segment",
    "automatic_rois",
    "detection_grid",
    "find_column",
    "fit_centre_line",
    "label_segments",
    "profile_along",
    "segment_profile",
]
