"""Automatic vertebral ROIs: bodies at the top of the column that are not like its marrow.

The chain of bodies is found and counted from the sacrum up; at its far (cranial) end,
with the thoracic bodies small and the field of view's edge near, it can run off the
column into neighbouring tissue that passes for marrow (fat-infiltrated muscle, the
crura, an organ's fatty edge), and the top labels then lie outside every vertebra while
the count below them stays right. Vertebral marrow within one patient differs little from
body to body: a single body far below the rest is common (acute fracture oedema, a
haemangioma's rim, a cement deposit), but two or more in a row at the top, each far below
the column's own marrow, are more likely not vertebrae. Such levels are named in a reason
(the study is warned; their confidence is lowered), never relabelled or dropped: acute
fractures at the top two levels look the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from RefractureRiskLib.roi.result import LevelPlacement

#: ROI PDFF (points) below the median of the column's ROIs from which a level at the top is
#: unlike the column's marrow, and the fewest such levels in a row from the top that are
#: reported. Development sets (world 220, realct 85, phantom 40 studies): at 25 points and two
#: in a row, 3 studies whose top 2-3 labels lay outside every vertebra (22-25% against 54%,
#: 16% against 49%, 20-22% against 55%) and no other study; at 20 points a phantom study
#: with acute fractures of its top two bodies as well, at 15 one more world study.
TOP_RUN_PDFF_DROP_PP = 25.0
TOP_RUN_MIN_LEVELS = 2


def unlike_marrow_at_top(entries: Sequence[LevelPlacement]) -> dict[str, str]:
    """Reasons, by level, for the levels at the top of ``entries`` (in level order, top
    first) whose ROI PDFF lies :data:`TOP_RUN_PDFF_DROP_PP` or more below the median of all
    levels, when at least :data:`TOP_RUN_MIN_LEVELS` of them lie in a row from the top and
    at least two levels below them are not (empty when none)."""
    pdff = np.array([e.roi_pdff_median_pct for e in entries], float)
    finite = pdff[np.isfinite(pdff)]
    if finite.size < TOP_RUN_MIN_LEVELS + 2:
        return {}
    ref = float(np.median(finite))
    k = 0
    while k < len(pdff) and np.isfinite(pdff[k]) and ref - pdff[k] >= TOP_RUN_PDFF_DROP_PP:
        k += 1
    if k < TOP_RUN_MIN_LEVELS or len(pdff) - k < 2:
        return {}
    return {
        e.level: (
            f"{e.level}: marrow fat {pdff[i]:.0f}% where the column's bodies have {ref:.0f}% "
            f"(median), as at the {k} top levels in a row: these may not be vertebral bodies "
            "(tissue beside the column), or acute fractures"
        )
        for i, e in enumerate(entries[:k])
    }


__all__ = ["TOP_RUN_MIN_LEVELS", "TOP_RUN_PDFF_DROP_PP", "unlike_marrow_at_top"]
