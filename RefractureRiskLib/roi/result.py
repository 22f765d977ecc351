"""The structured result of ROI placement: RoiSet, whole-body labels, per-level facts, uncertainty.

Manual and automatic placement return the same type, so a viewer or report handles both. Any
uncertainty message is in ``reasons`` *and* in ``roiset.notes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from RefractureRiskLib.core.roiset import RoiSet
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.roi.geometry import Box


@dataclass(frozen=True)
class LevelPlacement:
    """Measured geometry of one labelled level.

    ``centre_ras`` (mm), ``body_volume_ml`` (whole vertebral body incl. enclosed voids such as
    cement), ``roi_volume_ml`` (safe-core ROI), ``heights_mm`` (anterior, middle, posterior body
    height), ``half_extent_mm`` (LR, AP, SI), ``confidence`` in [0, 1] that the level label is
    right, ``void_frac`` the share of the body without marrow signal (cement), ``lesion_ml`` the
    volume of enclosed tissue with signal but not marrow PDFF (focal lesion), ``box`` the local
    box the level was computed in (a one-level update touches only this box).
    """

    level: str
    label: int
    centre_ras: tuple[float, float, float]
    body_volume_ml: float
    roi_volume_ml: float
    heights_mm: tuple[float, float, float]
    half_extent_mm: tuple[float, float, float]
    confidence: float
    box: Box
    void_frac: float = 0.0
    roi_pdff_median_pct: float = float("nan")
    lesion_ml: float = 0.0
    notes: tuple[str, ...] = ()
    truncated: bool = False  # the body reaches the edge of the field of view


@dataclass(frozen=True, eq=False)
class RoiResult:
    """ROIs of one study with the whole vertebral bodies and the uncertainty of the labels.

    ``body_labels``: int16 label map of whole bodies on the study grid, same label values as the
    RoiSet (core/levels.py). ``uncertain`` is True whenever the level labels may be wrong;
    ``reasons`` says why (also copied to ``roiset.notes``).
    """

    roiset: RoiSet
    body_labels: Volume
    levels: tuple[LevelPlacement, ...]
    uncertain: bool = False
    reasons: tuple[str, ...] = ()
    signal_min: float = 1.0
    extras: dict = field(default_factory=dict)

    @property
    def confidence(self) -> dict[str, float]:
        """Per-level label confidence in [0, 1]."""
        return {lv.level: lv.confidence for lv in self.levels}

    def placement(self, level: str) -> LevelPlacement:
        """The entry of ``level`` (KeyError if absent)."""
        for lv in self.levels:
            if lv.level == level:
                return lv
        raise KeyError(f"level {level} not placed (have {[lv.level for lv in self.levels]})")

    def level_rows(self) -> list[dict[str, object]]:
        """One plain dict per level (for tables; no pandas needed)."""
        rows = []
        for lv in self.levels:
            flags = sorted(str(f) for f in self.roiset.level(lv.level).flags)
            rows.append(
                {
                    "level": lv.level,
                    "label": lv.label,
                    "body_volume_ml": lv.body_volume_ml,
                    "roi_volume_ml": lv.roi_volume_ml,
                    "height_anterior_mm": lv.heights_mm[0],
                    "height_middle_mm": lv.heights_mm[1],
                    "height_posterior_mm": lv.heights_mm[2],
                    "centre_r_mm": lv.centre_ras[0],
                    "centre_a_mm": lv.centre_ras[1],
                    "centre_s_mm": lv.centre_ras[2],
                    "label_confidence": lv.confidence,
                    "void_frac": lv.void_frac,
                    "lesion_ml": lv.lesion_ml,
                    "flags": ";".join(flags),
                }
            )
        return rows


#: The automatic method's result is the same structure.
AutoRoiResult = RoiResult


def body_volume_ml(result: RoiResult, level: str) -> float:
    """Whole-body volume (mL) of ``level`` counted on the body label map."""
    lab = result.placement(level).label
    return float(
        np.count_nonzero(result.body_labels.array == lab) * result.body_labels.voxel_volume_ml
    )


__all__ = ["AutoRoiResult", "LevelPlacement", "RoiResult", "body_volume_ml"]
