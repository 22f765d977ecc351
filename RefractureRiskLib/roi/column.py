"""The vertebral column as a chain of body candidates, chosen by anatomy (step 2 of auto ROIs).

Candidates are the marrow components left after an in-plane erosion (posterior elements and
thin bridges break off). Each is scored by what a vertebral body is, not by what the phantom
happens to look like:

- **trabecular bone**: R2* clearly above the study's own water-rich soft tissue (muscle,
  organs). Trabecular bone shortens T2* (marrow 60-120 1/s at 1.5 T against about 30 for
  muscle), while fat-infiltrated muscle, fatty bowel contents and mesentery, which share the
  marrow PDFF window, do not. Measured relative to the study (the higher of its soft tissue's
  and its fat's R2*: in some studies fat's lies well above muscle's), so field strength and
  vendor fitting cancel out;
- **body size**: an eroded lumbar or lower thoracic body holds about 3-45 mL and spans less
  than about 45 mm along the spine; a long column of muscle or a loop of fatty bowel does not.

The chain is the best path through the candidates from cranial to caudal (dynamic programming
over pairs of consecutive candidates): consecutive bodies lie 18-50 mm apart along the spine
(centre to centre; up to 90 mm when one body without marrow fat is skipped, at a cost, and up to
135 mm across two: adjacent cemented levels), roughly above each other, and the column turns
from one link to the next only as a spine does (:data:`MAX_TURN_DEG`: backwards up to the
lumbosacral angle, forwards no more than the thoracic kyphosis, little sideways). The path's
score adds the candidates' scores and the links' costs. One bright blob in the bowel cannot pull
the chain away: it has no bony R2*, no chain of body-spaced neighbours, and the column cannot
turn towards it. On the development sets the true centres of consecutive levels turn at most 21
degrees backwards and 11 forwards (world generator), 30 backwards at L5-S1 (real CT anatomy), 5
sideways."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from RefractureRiskLib.roi.crop import in_plane_core
from RefractureRiskLib.roi.geometry import axis_along
from RefractureRiskLib.roi.line_points import values_at

#: In-plane erosion (mm) of the marrow mask before components are taken.
ERODE_MM = 5.0
#: Components smaller than this (mL, eroded) are noise.
MIN_COMPONENT_ML = 1.0
#: Eroded body volume (mL) judged plausible, and the SI span (mm) a body does not exceed.
BODY_ML_RANGE: tuple[float, float] = (3.0, 45.0)
MAX_BODY_SPAN_MM = 45.0
#: R2* of a candidate over the study's soft-tissue R2*: at or below the first it is not bone
#: (score -1), at or above the second it is (score +1).
R2S_RATIO_RANGE: tuple[float, float] = (1.05, 1.45)
#: Centre-to-centre distance (mm) of neighbouring bodies along the spine (T10-S1 bodies of
#: 20-30 mm with discs of 4-12 mm; fractured bodies shorter), and with one body skipped.
LINK_MM: tuple[float, float] = (18.0, 50.0)
SKIP_LINK_MM = 90.0
SKIP_COST = 1.5
#: ... and with two bodies skipped, only where at least :data:`HIDDEN_SHARE` of the straight
#: way between the two lies in signal void or oedema (adjacent cemented or fractured levels:
#: neither shows as marrow): dearer than one skip, but cheaper than a body's score, so the
#: column goes on below them. World development studies (100 fresh seeds): S1 found again below
#: cemented L4 and L5 (the way between L3 and S1 0.34 void); without the void condition, a
#: normal column was linked across three bodies (T9 to L1, 0.09 void) and its warning lost.
SKIP2_LINK_MM = 135.0
SKIP2_COST = 1.75
HIDDEN_SHARE = 0.3
#: The chain's bend between neighbours: in-plane offset at most this share of their distance.
MAX_SLOPE = 1.0


@dataclass(frozen=True)
class Candidate:
    """A marrow component: centroid (RAS mm), eroded volume (mL), span along S-I (mm), R2*
    over soft tissue (NaN without an R2* map), and its score as a vertebral body."""

    centre_ras: npt.NDArray[np.float64]
    volume_ml: float
    span_mm: float
    r2s_ratio: float
    score: float


def soft_tissue_r2s(r2s: npt.NDArray, pdff: npt.NDArray, tissue: npt.NDArray) -> float:
    """Median R2* (1/s) of the study's water-rich soft tissue (PDFF < 20%, with signal): the
    reference bone is compared with. NaN if there is none."""
    return _median_r2s(r2s, tissue & (pdff < 20.0), 1)


#: PDFF (%) above which tissue is fat (subcutaneous, retroperitoneal, presacral), and the least
#: number of such voxels for its R2* to be a reference.
FAT_PDFF_MIN = 85.0
MIN_FAT_VOXELS = 100


def fat_r2s(r2s: npt.NDArray, pdff: npt.NDArray, tissue: npt.NDArray) -> float:
    """Median R2* (1/s) of the study's fat (PDFF above :data:`FAT_PDFF_MIN`, with signal); NaN
    if there is too little. Fat at the edge of the marrow PDFF window (partial volume) forms
    body-sized candidates too, and its R2* may lie well above muscle's (realct-dev-12: fat 1.8
    times the water-rich tissue, marrow 6 times): bone is judged against the higher of the two
    (:func:`bone_reference_r2s`)."""
    return _median_r2s(r2s, tissue & (pdff > FAT_PDFF_MIN) & (pdff <= 100.0), MIN_FAT_VOXELS)


def _median_r2s(r2s: npt.NDArray, sel: npt.NDArray, min_voxels: int) -> float:
    """Median of the valid (finite, positive) R2* values where ``sel``; NaN with fewer than
    ``min_voxels`` of them."""
    sel = sel & np.isfinite(r2s) & (r2s > 0)
    return float(np.median(r2s[sel])) if int(sel.sum()) >= min_voxels else float("nan")


def bone_reference_r2s(soft_tissue: float, fat: float) -> float:
    """The R2* (1/s) a candidate's is compared with: the higher of the study's soft-tissue and
    fat R2* (NaN without soft tissue: no R2* judgement at all)."""
    if not np.isfinite(soft_tissue):
        return float("nan")
    return max(soft_tissue, fat) if np.isfinite(fat) else soft_tissue


def body_score(volume_ml: float, span_mm: float, r2s_ratio: float) -> float:
    """How much a candidate looks like one vertebral body (about -3 to +2)."""
    lo, hi = BODY_ML_RANGE
    if volume_ml < lo:
        size = volume_ml / lo - 1.0  # small: -0.7 .. 0
    elif volume_ml <= hi:
        size = 1.0
    else:
        size = 1.0 - (volume_ml - hi) / hi  # a merged or non-body blob: falls below 0 at 2x
    if span_mm > MAX_BODY_SPAN_MM:
        size -= (span_mm - MAX_BODY_SPAN_MM) / 20.0
    if np.isfinite(r2s_ratio):
        a, b = R2S_RATIO_RANGE
        bone = float(np.clip(2.0 * (r2s_ratio - a) / (b - a) - 1.0, -1.5, 1.0))
    else:
        bone = 0.0
    return float(max(size, -2.0) + bone)


def candidates(
    marrow: npt.NDArray[np.bool_],
    mat: npt.NDArray,
    r2s: npt.NDArray | None = None,
    r2s_reference: float = float("nan"),
) -> list[Candidate]:
    """Marrow components after an in-plane erosion of :data:`ERODE_MM`, scored as bodies."""
    si_axis = axis_along(mat, (0.0, 0.0, 1.0))
    core = in_plane_core(marrow, mat, si_axis, ERODE_MM)
    lab, n = ndimage.label(core)
    if n == 0:
        return []
    voxel_ml = abs(np.linalg.det(mat[:3, :3])) / 1000.0
    # per-component sums over the labelled voxels only (of the components large enough)
    flat = lab.ravel()
    at = np.flatnonzero(flat)
    counts = np.bincount(flat[at], minlength=n + 1)
    big = counts * voxel_ml >= MIN_COMPONENT_ML
    at = at[big[flat[at]]]
    ids = flat[at]
    kji = np.unravel_index(at, core.shape)
    idx = np.flatnonzero(big)
    cents = np.stack([np.bincount(ids, c, n + 1)[idx] for c in kji], axis=1) / counts[idx, None]
    k, j, i = (c.astype(np.float32) for c in kji)
    z = mat[2, 0] * i + mat[2, 1] * j + mat[2, 2] * k + np.float32(mat[2, 3])
    zmax, zmin = np.full(n + 1, -np.inf, z.dtype), np.full(n + 1, np.inf, z.dtype)
    np.maximum.at(zmax, ids, z)
    np.minimum.at(zmin, ids, z)
    if r2s is not None and np.isfinite(r2s_reference) and r2s_reference > 0:
        r2_med = _medians(np.asarray(r2s).ravel()[at], ids, n + 1)[idx] / r2s_reference
    else:
        r2_med = np.full(idx.size, np.nan)
    out = []
    for c, cnt, hi, lo, ratio in zip(cents, counts[idx], zmax[idx], zmin[idx], r2_med, strict=True):
        vol = float(cnt * voxel_ml)
        ras = mat[:3, :3] @ c[::-1] + mat[:3, 3]
        span = float(hi - lo)
        out.append(Candidate(ras, vol, span, float(ratio), body_score(vol, span, float(ratio))))
    return out


def _medians(values: npt.NDArray, ids: npt.NDArray, n: int) -> npt.NDArray[np.float64]:
    """Median of ``values`` per id (0..n-1; NaN for an id with none), as ``ndimage.median``:
    the mean of the two middle values of an even count."""
    order = np.lexsort((values, ids))
    v = values[order]
    counts = np.bincount(ids, minlength=n)
    starts = np.cumsum(counts) - counts
    out = np.full(n, np.nan)
    has = counts > 0
    c, s = counts[has], starts[has]
    out[has] = (v[s + (c - 1) // 2] + v[s + c // 2]) / 2.0
    return out


def find_column(
    cands: list[Candidate],
    must_include: int | None = None,
    hidden: Callable[[npt.NDArray, npt.NDArray], bool] | None = None,
) -> list[Candidate]:
    """The best cranio-caudal chain of candidates (see module docstring); ``must_include``
    (an index into ``cands``) forces one candidate into the chain (the user's anchor);
    ``hidden(p, q)`` says whether the way between two centres (RAS mm) runs through tissue
    that hides bodies (cement, oedema): only then may a link skip two bodies.

    Dynamic programming over pairs of consecutive candidates, so each link is judged with the
    one before it: the column does not turn more than :data:`MAX_TURN_DEG` from one link to
    the next."""
    if not cands:
        return []
    order = sorted(range(len(cands)), key=lambda i: -cands[i].centre_ras[2])  # top first
    forced = order.index(must_include) if must_include is not None else None
    pts = np.array([cands[i].centre_ras for i in order])
    score = np.array([cands[i].score for i in order])
    n = len(order)
    link = np.full((n, n), np.inf)
    for a in range(n):
        for b in range(a + 1, n):
            cost = _link_cost(cands[order[a]], cands[order[b]], hidden)
            link[a, b] = np.inf if cost is None else cost
    sag, cor = _link_angles(pts)
    # best[a, b, h]: best chain ending with the link a -> b; h = 1 if it holds the forced one
    best = np.full((n, n, 2), -np.inf)
    back = np.full((n, n, 2, 2), -1, int)  # (candidate before a, its h); -1: a starts
    for b in range(n):
        for c in np.flatnonzero(np.isfinite(link[b])):
            ok = _turn_ok(sag[:, b], cor[:, b], sag[b, c], cor[b, c]) & np.isfinite(link[:, b])
            for h in (0, 1):
                start = score[b] if h == int(b == forced) else -np.inf
                prev = np.where(ok, best[:, b, h], -np.inf)
                a = int(np.argmax(prev))
                base, before = (prev[a], a) if prev[a] > start else (start, -1)
                if not np.isfinite(base):
                    continue
                hc = max(h, int(c == forced))
                value = base + score[c] - link[b, c]
                if value > best[b, c, hc]:
                    best[b, c, hc] = value
                    back[b, c, hc] = (before, h)
    return [cands[order[i]] for i in _best_chain(best, back, score, forced)]


#: How far (degrees) the column turns from one link to the next at most, in the sagittal plane
#: towards posterior (the lumbosacral junction: up to about 30 in real spines) and anterior
#: (thoracic kyphosis: about 10), and in the coronal plane (scoliosis: a few per level); with
#: room for the candidates' centroids, a few mm off the bodies' centres.
MAX_TURN_DEG = {"posterior": 50.0, "anterior": 30.0, "coronal": 30.0}


def hidden_share(
    mask: npt.NDArray[np.bool_], mat: npt.NDArray, p: npt.NDArray, q: npt.NDArray
) -> float:
    """Share of the straight way from ``p`` to ``q`` (RAS mm; sampled every mm, ends left out)
    that lies in ``mask`` (voxels of the grid with IJK-to-RAS ``mat``)."""
    n = max(int(np.linalg.norm(q - p)), 2)
    pts = np.ones((n - 1, 4))
    pts[:, :3] = p + np.outer(np.linspace(0.0, 1.0, n + 1)[1:-1], q - p)
    found, ok = values_at(mask, mat, pts)
    return float(np.mean(found[ok])) if ok.any() else 0.0


def _link_angles(pts: npt.NDArray) -> tuple[npt.NDArray, npt.NDArray]:
    """For every pair (a, b), the tilt (degrees) of the step a -> b from straight down:
    towards anterior in the sagittal plane, towards the left in the coronal plane."""
    d = pts[None, :, :] - pts[:, None, :]
    down = -d[..., 2]
    return np.degrees(np.arctan2(d[..., 1], down)), np.degrees(np.arctan2(d[..., 0], down))


def _turn_ok(
    sag_in: npt.NDArray, cor_in: npt.NDArray, sag_out: float, cor_out: float
) -> npt.NDArray[np.bool_]:
    """Whether the turn from each incoming link to the outgoing one is anatomical."""
    turn = sag_out - sag_in
    lim = MAX_TURN_DEG
    return (
        (turn <= lim["anterior"])
        & (turn >= -lim["posterior"])
        & (np.abs(cor_out - cor_in) <= lim["coronal"])
    )


def _best_chain(
    best: npt.NDArray, back: npt.NDArray, score: npt.NDArray, forced: int | None
) -> list[int]:
    """Indices (in top-first order) of the best chain: the best final link, or one candidate
    alone when no chain of two beats it."""
    h = 1 if forced is not None else 0
    alone = forced if forced is not None else int(np.argmax(score))
    if not np.isfinite(best[:, :, h]).any() or best[:, :, h].max() < score[alone]:
        return [alone]
    b, c = np.unravel_index(int(np.argmax(best[:, :, h])), best.shape[:2])
    chain = [int(c), int(b)]
    while True:
        a, h = back[b, c, h]
        if a < 0:
            return chain[::-1]
        chain.append(int(a))
        b, c = a, b


def _link_cost(
    upper: Candidate,
    lower: Candidate,
    hidden: Callable[[npt.NDArray, npt.NDArray], bool] | None = None,
) -> float | None:
    """Cost of ``lower`` following ``upper`` in the chain; None if they cannot be neighbours
    (``hidden``: see :func:`find_column`)."""
    d = upper.centre_ras - lower.centre_ras
    dz = float(d[2])
    lateral = float(np.hypot(d[0], d[1]))
    dist = float(np.linalg.norm(d))
    if dz <= 0 or lateral > MAX_SLOPE * dz + 5.0:
        return None
    lo, hi = LINK_MM
    if lo <= dist <= hi:
        return 0.0
    if hi < dist <= SKIP_LINK_MM:
        return SKIP_COST
    if SKIP_LINK_MM < dist <= SKIP2_LINK_MM and hidden is not None:
        return SKIP2_COST if hidden(upper.centre_ras, lower.centre_ras) else None
    if 0.6 * lo <= dist < lo:  # a fractured body or a body split by noise
        return 0.5
    return None


__all__ = [
    "HIDDEN_SHARE",
    "Candidate",
    "body_score",
    "bone_reference_r2s",
    "candidates",
    "fat_r2s",
    "find_column",
    "hidden_share",
    "soft_tissue_r2s",
]
