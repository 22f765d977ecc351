"""The vertebral column as a chain of body candidates, chosen by anatomy (step 2 of auto ROIs).

Candidates are the marrow components left after an in-plane erosion (posterior elements and
thin bridges break off). Each is scored by what a vertebral body is, not by what the phantom
happens to look like:

- **trabecular bone**: R2* clearly above the study's own water-rich soft tissue (muscle,
  organs). Trabecular bone shortens T2* (marrow 60-120 1/s at 1.5 T against about 30 for
  muscle), while fat-infiltrated muscle, fatty bowel contents and mesentery, which share the
  marrow PDFF window, do not. Measured relative to the study, so field strength and vendor
  fitting cancel out;
- **body size**: an eroded lumbar or lower thoracic body holds about 3-45 mL and spans less
  than about 45 mm along the spine; a long column of muscle or a loop of fatty bowel does not.

The chain is the best path through the candidates from cranial to caudal (dynamic
programming): consecutive bodies lie 18-50 mm apart along the spine (centre to centre; up to
90 mm when one body without marrow fat is skipped, at a cost), roughly above each other, and
the path's score adds the candidates' scores and the links' costs. One bright blob in the
bowel cannot pull the chain away: it has no bony R2*, and no chain of body-spaced neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from RefractureRiskLib.roi.geometry import axis_along, boundary_distance_mm

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
    sel = tissue & (pdff < 20.0) & np.isfinite(r2s) & (r2s > 0)
    return float(np.median(r2s[sel])) if sel.any() else float("nan")


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
    core = boundary_distance_mm(marrow, mat, in_plane_of=si_axis) >= ERODE_MM
    lab, n = ndimage.label(core)
    if n == 0:
        return []
    voxel_ml = abs(np.linalg.det(mat[:3, :3])) / 1000.0
    idx = np.arange(1, n + 1)
    counts = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    cents = np.array(ndimage.center_of_mass(core, lab, idx))  # (k, j, i)
    kk, jj, ii = np.indices(core.shape, dtype=np.float32)
    z = mat[2, 0] * ii + mat[2, 1] * jj + mat[2, 2] * kk + mat[2, 3]
    zmax = ndimage.maximum(z, lab, idx)
    zmin = ndimage.minimum(z, lab, idx)
    if r2s is not None and np.isfinite(r2s_reference) and r2s_reference > 0:
        r2_med = np.array(ndimage.median(r2s, lab, idx)) / r2s_reference
    else:
        r2_med = np.full(n, np.nan)
    out = []
    for c, cnt, hi, lo, ratio in zip(cents, counts, zmax, zmin, r2_med, strict=True):
        vol = float(cnt * voxel_ml)
        if vol < MIN_COMPONENT_ML:
            continue
        ras = mat[:3, :3] @ c[::-1] + mat[:3, 3]
        span = float(hi - lo)
        out.append(Candidate(ras, vol, span, float(ratio), body_score(vol, span, float(ratio))))
    return out


def find_column(cands: list[Candidate], must_include: int | None = None) -> list[Candidate]:
    """The best cranio-caudal chain of candidates (see module docstring); ``must_include``
    (an index into ``cands``) forces one candidate into the chain (the user's anchor)."""
    if not cands:
        return []
    order = sorted(range(len(cands)), key=lambda i: -cands[i].centre_ras[2])  # top first
    pos = {c: p for p, c in enumerate(order)}
    forced = pos.get(must_include) if must_include is not None else None
    n = len(order)
    # best[b, h]: best score of a chain ending at b; h = 1 if it holds the forced candidate.
    best = np.full((n, 2), -np.inf)
    back = np.full((n, 2, 2), -1, int)  # (previous candidate, its h)
    for b in range(n):
        cb = cands[order[b]]
        h0 = 1 if b == forced else 0
        best[b, h0] = cb.score
        for a in range(b):
            link = _link_cost(cands[order[a]], cb)
            if link is None:
                continue
            for h in (0, 1):
                if not np.isfinite(best[a, h]):
                    continue
                hb = max(h, h0)
                value = best[a, h] + cb.score - link
                if value > best[b, hb]:
                    best[b, hb] = value
                    back[b, hb] = (a, h)
    h = 1 if forced is not None else 0
    if not np.isfinite(best[:, h]).any():
        return []
    end = int(np.argmax(best[:, h]))
    chain = []
    while end >= 0:
        chain.append(cands[order[end]])
        end, h = back[end, h]
    return chain[::-1]


def _link_cost(upper: Candidate, lower: Candidate) -> float | None:
    """Cost of ``lower`` following ``upper`` in the chain; None if they cannot be neighbours."""
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
    if 0.6 * lo <= dist < lo:  # a fractured body or a body split by noise
        return 0.5
    return None


__all__ = [
    "Candidate",
    "body_score",
    "candidates",
    "find_column",
    "soft_tissue_r2s",
]
