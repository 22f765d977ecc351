"""The vertebral levels of synthetic patients: treated (index) levels, per-level marrow PDFF and
R2* with their exclusion codes, and the global L1-L4 and adjacent-level summaries over them.
"""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.core.levels import LUMBAR_GLOBAL_LEVELS
from RefractureRiskLib.model.dev.schema import (
    INDEX_LEVEL_NAMES,
    MEASURED_LEVELS,
)


def draw_marrow(rng, age, tscore, index_lists, n_prev, field_t):
    """Per-level PDFF (%), R2* (1/s at each patient's field strength) and exclusion codes, drawn
    around a patient-level PDFF and 1.5 T R2*."""
    n = age.size
    pdff_patient = 56.0 + 0.35 * (age - 72) - 3.5 * (tscore + 2.5) + rng.normal(0, 5.0, n)
    r2s_15_patient = 75.0 + 7.0 * (tscore + 2.5) - 0.2 * (age - 72) + rng.normal(0, 6.0, n)
    return _per_level_values(rng, index_lists, n_prev, pdff_patient, r2s_15_patient * field_t / 1.5)


def marrow_summaries(pdff, r2s, excl, index_lists) -> dict[str, np.ndarray]:
    """Global L1-L4 and adjacent-level means over the eligible levels (no random draws)."""
    eligible = excl == ""
    lumbar = np.array([lv in LUMBAR_GLOBAL_LEVELS for lv in MEASURED_LEVELS])
    adjacent = _adjacent_mask(index_lists) & eligible
    return {
        "pdff_global_L1L4": _masked_mean(pdff, eligible & lumbar).round(2),
        "r2s_global_L1L4": _masked_mean(r2s, eligible & lumbar).round(1),
        "pdff_adjacent": _masked_mean(pdff, adjacent).round(2),
        "r2s_adjacent": _masked_mean(r2s, adjacent).round(1),
    }


def draw_index_levels(rng: np.random.Generator) -> list[str]:
    """1-3 contiguous treated levels centred near the thoracolumbar junction."""
    count = int(rng.choice([1, 2, 3], p=[0.75, 0.2, 0.05]))
    weights = np.array([0.4 if lv in ("T12", "L1") else 0.1 for lv in INDEX_LEVEL_NAMES[5:]])
    weights[INDEX_LEVEL_NAMES[5:].index("L2")] = 0.25
    weights[INDEX_LEVEL_NAMES[5:].index("T11")] = 0.2
    names = INDEX_LEVEL_NAMES[5:]  # T6-L5
    while True:
        first = int(rng.choice(len(names), p=weights / weights.sum()))
        levels = list(names[first : first + count])
        lumbar = len(set(levels) & set(LUMBAR_GLOBAL_LEVELS))
        if len(levels) == count and lumbar <= 2:
            return levels


def _per_level_values(
    rng: np.random.Generator,
    index_lists: list[list[str]],
    n_prev: np.ndarray,
    pdff_patient: np.ndarray,
    r2s_patient: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-level PDFF (%), R2* (1/s) and exclusion codes, arrays of shape (patients, levels)."""
    n, n_lv = len(index_lists), len(MEASURED_LEVELS)
    is_index = np.array([[lv in set(v) for lv in MEASURED_LEVELS] for v in index_lists])
    # up to two prevalent fractures at random non-index levels (random keys, smallest first)
    keys = rng.random((n, n_lv))
    keys[is_index] = np.inf
    rank = keys.argsort(axis=1).argsort(axis=1)
    fractured = (rank < np.minimum(n_prev, 2)[:, None]) & ~is_index
    # keep at least two eligible L1-L4 levels, as the design requires for the global mean
    lumbar = np.array([lv in LUMBAR_GLOBAL_LEVELS for lv in MEASURED_LEVELS])
    for i in np.flatnonzero(((~is_index & ~fractured) & lumbar).sum(axis=1) < 2):
        fractured[i] &= ~lumbar
    depth = np.arange(n_lv) - MEASURED_LEVELS.index("L1")  # PDFF rises caudally
    pdff = pdff_patient[:, None] + 1.2 * depth[None, :] + rng.normal(0, 2.5, (n, n_lv))
    pdff -= fractured * rng.uniform(10, 25, (n, n_lv))  # oedema of a recent fracture
    pdff = np.clip(pdff, 3.0, 95.0)
    r2s = r2s_patient[:, None] * np.clip(1.0 + rng.normal(0, 0.06, (n, n_lv)), 0.7, 1.3)
    pdff[is_index] = np.nan  # cement: no marrow signal
    r2s[is_index] = np.nan
    excl = np.full((n, n_lv), "", dtype=object)
    excl[fractured] = "fractured"
    excl[is_index] = "cemented;index"
    return pdff, r2s, excl


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    count = mask.sum(axis=1)
    total = np.where(mask, values, 0.0).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _adjacent_mask(index_lists: list[list[str]]) -> np.ndarray:
    """(patients, measured levels): the level is directly above or below an index level."""
    order = INDEX_LEVEL_NAMES
    out = np.zeros((len(index_lists), len(MEASURED_LEVELS)), dtype=bool)
    for i, levels in enumerate(index_lists):
        near = {
            order[k + d]
            for lv in levels
            for d in (-1, 1)
            if 0 <= (k := order.index(lv)) + d < len(order)
        }
        out[i] = [lv in near and lv not in levels for lv in MEASURED_LEVELS]
    return out
