"""Per-level QC flags, registered in one place: adding a flag means adding one :class:`QcRule`.

Each rule looks at one level's measurements (:class:`LevelPlacement`) and its neighbours' and
returns the reason it fires, or None. Flagged levels are excluded from summaries by default
(``LevelRoi.included``); the user re-includes them with ``RoiSet.with_override``.

Thresholds (documented here and in :data:`QC_THRESHOLDS`):

- fractured (Genant semi-quantitative: grade 1 starts at a 20-25% height loss): the largest loss
  of the anterior or middle height against the same height expected from the other levels is >=
  20%, or >= 10% with marrow oedema (ROI PDFF >= 8 points below the neighbours' median: an acute
  fracture replaces fat with water; a mild deformity confirmed by oedema is a fracture, while a
  10-20% apparent loss alone is within the measurement error). With oedema to corroborate it the
  anterior height counts without the extra margin below (wedge fractures lose most height in
  front): on the world development set (220 studies, levels on the right body) 5 more of 185
  fractures found, for 3 more false flags among about 1260 normal levels (raising the oedema
  threshold to 10 points as well lost a phantom fracture). The expected height is a robust line
  of height against level (Theil-Sen through the other levels, so the normal caudal increase and
  other fractured levels do not bias it; S1 and truncated levels excluded) whose slope is held
  to the anatomical range, -1% to +6% of the median height per level (lumbar bodies grow
  caudally by about 3-4% per level): noisy end levels cannot tilt the line into calling an end
  level short. The anterior height is less precise (rounded rim) and must exceed the threshold
  by a further 10 points (``EDGE_HEIGHT_MARGIN``); the posterior height is reported but not
  judged (the basivertebral vein and the pedicles make it unreliable). No measurement allowance
  is taken off the 20%: on segmented bodies the measured middle height is within 0.82-1.26 of
  the true one (2nd-98th percentile, world generator, development set), an error larger than any
  allowance, and flagging from 17% nearly doubled the false flags on normal levels (development
  set, levels on the right body: 31 against 17 of 956) for 2 more of 127 fractures. The heights
  are those of the body's bone: a disc or fat the segmentation took in at an end plate is left
  out by R2* (roi/level_facts.py, ``bone_heights_mm``).
- cemented: >= 2.5% of the whole body is cement, judged at least 3 mm inside the body: signal
  void (PMMA has no MR signal) or R2* >= 2.5 times the body's median there (the fit of a void is
  very high even where noise fills it: the two together survive noise). The body's rim is not
  judged: the dark cortex and the tissue around share its voxels, and a maps-only export sees no
  signal at every edge (dev: 'cemented' on 98 of 1229 levels without cement, 57 of 198 in
  maps-only exports; judged inside, 38 and 20; cement recall 64/66 -> 63/66). Only compact parts
  count (at least 5 mm thick somewhere): the cortex of an end plate and noise are sheets and
  specks (dev: 38 -> 12 of 1229, recall unchanged). A small deposit counts: judged inside, 2.5%
  of the body is about 0.5-0.8 mL of void (dev: from 5% to 2.5%, cement recall 91/97 -> 93/97 on
  the world set and 0/4 -> 4/4 on realct, whose deposits fill 6-7% of a body and read about 3%
  inside it; 'cemented' without cement 2 -> 6 of about 1600 levels; phantom unchanged).
  Voids in most bodies (:data:`NOISE_VOID_SHARE`) are noise, not cement: no level is flagged
  and the study is warned.
- lesion: a focal region >= 0.15 mL inside the body with signal but PDFF outside the marrow
  window (a lesion replacing fat), or the ROI median PDFF differs from the neighbours' median by
  >= 15 percentage points on a level not flagged fractured (oedema explains the difference there).
- low_coverage: ROI volume < 1.0 mL (a normal lumbar safe core is 8-20 mL).
- truncated: the field of view cuts the body where its heights are measured (a face of the
  image crossing its height or depth holds >= 2% of its voxels or >= 30% of its mean
  cross-section; a face at its side, >= 15% of its voxels: a sagittal slab grazing the body's
  side leaves its mid-line heights whole; roi/level_facts.py); its heights are not the body's,
  so it is never judged "fractured" and does not set the heights expected of the other levels.
- index: the level was treated (given by the user).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.levels import level_index
from RefractureRiskLib.core.roiset import LevelRoi, RoiFlag
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.roi.result import LevelPlacement, RoiResult

QC_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {
        "fracture_height_loss_frac": 0.20,
        "fracture_oedema_height_loss_frac": 0.10,
        "fracture_oedema_pdff_drop_pct": 8.0,
        "cement_void_frac": 0.025,
        "lesion_pdff_diff_pct": 15.0,
        "lesion_focal_ml": 0.15,
        "low_roi_volume_ml": 1.0,
    }
)


#: Cement is put into one to three bodies; signal voids read in at least this many levels and
#: this share of them are noise (a maps-only export at SNR 5, whose signal is inferred from the
#: maps: 23-32% of every body read as void on a development study) and flag nothing.
NOISE_VOID_MIN_LEVELS = 4
NOISE_VOID_SHARE = 0.75


@dataclass(frozen=True)
class QcContext:
    """What a rule may look at: all placed levels (cranial to caudal), the user's index levels,
    and flags already known per level (``prior``: from an imported segmentation or a reader)."""

    levels: tuple[LevelPlacement, ...]
    index_levels: frozenset[str]
    prior: Mapping[str, frozenset[RoiFlag]] = field(default_factory=dict)

    def known(self, level: str, flag: RoiFlag) -> bool:
        """Whether ``flag`` was already set on ``level`` before this QC run."""
        return flag in self.prior.get(level, frozenset())

    def voids_everywhere(self) -> str | None:
        """Why cement is not judged in this study (None: it is): signal voids in
        :data:`NOISE_VOID_MIN_LEVELS` levels or more and :data:`NOISE_VOID_SHARE` of them read
        as noise in the maps, not cement."""
        thr = QC_THRESHOLDS["cement_void_frac"]
        n = len(self.levels)
        k = sum(lv.void_frac >= thr for lv in self.levels)
        if k >= NOISE_VOID_MIN_LEVELS and k >= NOISE_VOID_SHARE * n:
            return (
                f"cement not judged: signal voids in {k} of {n} bodies read as noise in the "
                "maps, not cement (cement fills one to three bodies)"
            )
        return None

    def neighbours(self, level: str, n_each_side: int = 2) -> list[LevelPlacement]:
        """Up to ``n_each_side`` nearest placed levels above and below (S1 excluded)."""
        lumbar = [lv for lv in self.levels if lv.level != "S1"]
        names = [lv.level for lv in lumbar]
        if level not in names:
            return []
        i = names.index(level)
        return lumbar[max(0, i - n_each_side) : i] + lumbar[i + 1 : i + 1 + n_each_side]


@dataclass(frozen=True)
class QcRule:
    """One QC flag: its key, what it means (with threshold) and the test returning a reason."""

    flag: RoiFlag
    description: str
    test: Callable[[LevelPlacement, QcContext], str | None]


#: Extra loss the anterior/posterior heights must show, beyond the threshold (measurement noise).
EDGE_HEIGHT_MARGIN = 0.1
#: Anatomical range of the change of body height per level, as a share of the median height
#: (lumbar bodies grow caudally by about 3-4% per level; an expected-height line is held to it).
HEIGHT_SLOPE_PER_LEVEL_FRAC = (-0.01, 0.06)


def _theil_sen(x: npt.NDArray, y: npt.NDArray) -> tuple[float, float]:
    """Theil-Sen line: median of pairwise slopes; intercept = median of y - slope x."""
    i, j = np.triu_indices(len(x), 1)
    dx = x[j] - x[i]
    keep = dx != 0
    slope = float(np.median((y[j] - y[i])[keep] / dx[keep])) if keep.any() else 0.0
    return slope, float(np.median(y - slope * x))


def expected_heights_mm(lv: LevelPlacement, ctx: QcContext) -> npt.NDArray[np.float64]:
    """Expected (anterior, middle, posterior) height of ``lv`` from the other levels (mm).

    Heights grow caudally, so a robust straight line (Theil-Sen, insensitive to a few fractured
    levels) of height against level position is fitted through the other placed levels (S1 and
    truncated levels excluded) and evaluated at this level; its slope is held to
    :data:`HEIGHT_SLOPE_PER_LEVEL_FRAC` of the median height (a line through a few noisy levels
    extrapolated to an end level must not expect an impossible height). NaN with fewer than two
    other levels.
    """
    others = [o for o in ctx.levels if o.level not in (lv.level, "S1") and not o.truncated]
    out = np.full(3, np.nan)
    if len(others) < 2:
        return out
    x = np.array([level_index(o.level) for o in others], float)
    h = np.array([o.heights_mm for o in others], float)
    lo, hi = HEIGHT_SLOPE_PER_LEVEL_FRAC
    for p in range(3):
        ok = np.isfinite(h[:, p])
        if ok.sum() < 2:
            continue
        slope, _ = _theil_sen(x[ok], h[ok, p])
        typical = float(np.median(h[ok, p]))
        slope = float(np.clip(slope, lo * typical, hi * typical))
        intercept = float(np.median(h[ok, p] - slope * x[ok]))
        out[p] = intercept + slope * level_index(lv.level)
    return out


def height_losses(lv: LevelPlacement, ctx: QcContext) -> tuple[float, float]:
    """(middle, anterior) relative height loss against the heights expected from the other
    levels (:func:`expected_heights_mm`); NaN where unknown (S1 always)."""
    if lv.level == "S1":
        return float("nan"), float("nan")
    expected = expected_heights_mm(lv, ctx)
    h = np.asarray(lv.heights_mm, float)
    ok = np.isfinite(expected) & np.isfinite(h) & (expected > 0)
    loss = np.where(ok, 1.0 - h / np.where(ok, expected, 1.0), np.nan)
    return float(loss[1]), float(loss[0])


def height_loss_frac(
    lv: LevelPlacement,
    ctx: QcContext,
    edge_margin: float = EDGE_HEIGHT_MARGIN,
    losses: tuple[float, float] | None = None,
) -> float:
    """Relative height loss against the heights expected from the other levels: the middle
    height's loss, or the anterior height's loss less ``edge_margin`` if larger; NaN if
    unknown. ``losses``: :func:`height_losses` when already computed."""
    middle, anterior = height_losses(lv, ctx) if losses is None else losses
    # the anterior and posterior heights are measured less precisely (rounded rims, pedicles,
    # the vein): they count only beyond an extra margin
    candidates = [v for v in (middle, anterior - edge_margin) if np.isfinite(v)]
    return float(max(candidates)) if candidates else float("nan")


def pdff_drop_pct(lv: LevelPlacement, ctx: QcContext) -> float:
    """How far (percentage points) the ROI median PDFF lies below the median of its neighbours'
    (up to two placed levels each side, S1 excluded); NaN if unknown."""
    nbs = [nb.roi_pdff_median_pct for nb in ctx.neighbours(lv.level)]
    nbs = [v for v in nbs if np.isfinite(v)]
    if not nbs or not np.isfinite(lv.roi_pdff_median_pct):
        return float("nan")
    return float(np.median(nbs)) - lv.roi_pdff_median_pct


def _fractured(lv: LevelPlacement, ctx: QcContext) -> str | None:
    if lv.truncated:
        return None  # its height is cut by the field of view, not lost
    losses = height_losses(lv, ctx)
    loss = height_loss_frac(lv, ctx, losses=losses)
    if not np.isfinite(loss):
        return None
    if loss >= QC_THRESHOLDS["fracture_height_loss_frac"]:
        return f"height loss {100 * loss:.0f}% against neighbours"
    drop = pdff_drop_pct(lv, ctx)
    # with oedema to corroborate it, the anterior height counts without the extra margin
    loss = height_loss_frac(lv, ctx, edge_margin=0.0, losses=losses)
    if (
        loss >= QC_THRESHOLDS["fracture_oedema_height_loss_frac"]
        and np.isfinite(drop)
        and drop >= QC_THRESHOLDS["fracture_oedema_pdff_drop_pct"]
    ):
        return (
            f"height loss {100 * loss:.0f}% against neighbours with marrow oedema "
            f"(PDFF {drop:.0f} points below neighbours)"
        )
    return None


def _cemented(lv: LevelPlacement, ctx: QcContext) -> str | None:
    if lv.void_frac >= QC_THRESHOLDS["cement_void_frac"] and not ctx.voids_everywhere():
        return f"{100 * lv.void_frac:.0f}% of the body is cement (signal void or very high R2*)"
    return None


def _lesion(lv: LevelPlacement, ctx: QcContext) -> str | None:
    if lv.lesion_ml >= QC_THRESHOLDS["lesion_focal_ml"]:
        return f"focal region of {lv.lesion_ml:.2f} mL with non-marrow PDFF inside the body"
    if _fractured(lv, ctx) is not None or ctx.known(lv.level, RoiFlag.FRACTURED):
        # Acute fracture oedema lowers PDFF across the whole body (by 10-30 points):
        # a PDFF difference against the neighbours is expected there, not a sign of a lesion.
        return None
    diff = -pdff_drop_pct(lv, ctx)
    if np.isfinite(diff) and abs(diff) >= QC_THRESHOLDS["lesion_pdff_diff_pct"]:
        return f"ROI PDFF {diff:+.0f} points against neighbours"
    return None


def _low_coverage(lv: LevelPlacement, ctx: QcContext) -> str | None:
    if lv.roi_volume_ml < QC_THRESHOLDS["low_roi_volume_ml"]:
        return f"ROI volume {lv.roi_volume_ml:.2f} mL"
    return None


def _truncated(lv: LevelPlacement, ctx: QcContext) -> str | None:
    return "the body is cut by the edge of the field of view" if lv.truncated else None


def _index(lv: LevelPlacement, ctx: QcContext) -> str | None:
    return "treated level (given by the user)" if lv.level in ctx.index_levels else None


#: The registry: one entry per flag, in the order reasons are reported.
QC_RULES: tuple[QcRule, ...] = (
    QcRule(
        RoiFlag.FRACTURED,
        "height loss >= 20% against neighbours, or >= 10% with oedema (PDFF >= 8 points lower)",
        _fractured,
    ),
    QcRule(
        RoiFlag.CEMENTED, "cement (signal void or very high R2*) >= 2.5% of the body", _cemented
    ),
    QcRule(
        RoiFlag.LESION,
        "focal non-marrow region >= 0.15 mL, or ROI PDFF >= 15 points from neighbours",
        _lesion,
    ),
    QcRule(RoiFlag.LOW_COVERAGE, "ROI volume < 1.0 mL", _low_coverage),
    QcRule(RoiFlag.TRUNCATED, "body cut by the edge of the field of view", _truncated),
    QcRule(RoiFlag.INDEX, "index (treated) level given by the user", _index),
)


def evaluate_qc(
    levels: Sequence[LevelPlacement],
    index_levels: Sequence[str] = (),
    prior_flags: Mapping[str, frozenset[RoiFlag]] | None = None,
) -> dict[str, dict[RoiFlag, str]]:
    """Flags and reasons per level: ``{level: {flag: reason}}``.

    ``prior_flags`` (flags known before, e.g. stored in an imported segmentation) are kept with
    the reason "set before (imported)" and inform the rules (an oedematous fractured level is
    not called a lesion).
    """
    ordered = tuple(sorted(levels, key=lambda lv: level_index(lv.level)))
    prior = MappingProxyType(dict(prior_flags or {}))
    ctx = QcContext(ordered, frozenset(s.strip().upper() for s in index_levels), prior)
    out: dict[str, dict[RoiFlag, str]] = {}
    for lv in ordered:
        fired = {RoiFlag(f): "set before (imported)" for f in prior.get(lv.level, ())}
        for rule in QC_RULES:
            reason = rule.test(lv, ctx)
            if reason:
                fired[rule.flag] = reason
        out[lv.level] = fired
    return out


def apply_qc(
    result: RoiResult,
    study: Study | None = None,
    index_levels: Sequence[str] = (),
    prior_flags: Mapping[str, frozenset[RoiFlag]] | None = None,
) -> RoiResult:
    """``result`` with every level's flags set by :data:`QC_RULES` plus ``prior_flags``
    (user overrides are kept); when signal voids fill most bodies (noise, not cement: see
    :meth:`QcContext.voids_everywhere`) a reason says so and the result is uncertain."""
    del study  # rules use the stored measurements; kept for a stable signature
    fired = evaluate_qc(result.levels, index_levels, prior_flags)
    new_levels = []
    for lr in result.roiset.levels:
        flags = frozenset(fired.get(lr.level, {}))
        new_levels.append(LevelRoi(lr.level, lr.label, flags, lr.include_override))
    roiset = replace(result.roiset, levels=tuple(new_levels))
    extras = dict(result.extras)
    extras["qc_reasons"] = {lv: {str(f): r for f, r in d.items()} for lv, d in fired.items()}
    noise = QcContext(tuple(result.levels), frozenset()).voids_everywhere()
    if noise is None or noise in result.reasons:
        return replace(result, roiset=roiset, extras=extras)
    reasons = (*result.reasons, noise)  # the study is warned: its maps are that noisy
    return replace(result, roiset=roiset, extras=extras, uncertain=True, reasons=reasons)


__all__ = [
    "QC_RULES",
    "QC_THRESHOLDS",
    "QcContext",
    "QcRule",
    "apply_qc",
    "evaluate_qc",
    "expected_heights_mm",
    "height_loss_frac",
    "height_losses",
    "pdff_drop_pct",
]
