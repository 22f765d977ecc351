"""Bodies at the top of the column that are not like its marrow (roi/top_run.py): the rule on
its own, and on a development study whose column ran off into other tissue at the top."""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.roi.auto import automatic_rois
from RefractureRiskLib.roi.geometry import box_from_ijk
from RefractureRiskLib.roi.result import LevelPlacement
from RefractureRiskLib.roi.top_run import TOP_RUN_PDFF_DROP_PP, unlike_marrow_at_top
from Testing.world_cases import right_levels, world_dev

NAMES = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")


def _levels(pdff: list[float]) -> list[LevelPlacement]:
    box = box_from_ijk((4, 4, 4), np.eye(4), (0, 0, 0), (4, 4, 4))
    return [
        LevelPlacement(
            level=name,
            label=k + 1,
            centre_ras=(0, 0, 0),
            body_volume_ml=30.0,
            roi_volume_ml=8.0,
            heights_mm=(25, 25, 25),
            half_extent_mm=(20, 15, 12),
            confidence=1.0,
            box=box,
            roi_pdff_median_pct=p,
        )
        for k, (name, p) in enumerate(zip(NAMES, pdff, strict=False))
    ]


def test_two_top_levels_far_below_the_column_are_named() -> None:
    reasons = unlike_marrow_at_top(_levels([22, 24, 53, 55, 54, 56, 52, 57, 55]))
    assert set(reasons) == {"T10", "T11"}
    assert all(r.startswith(f"{lv}: ") and "may not be vertebral" in r for lv, r in reasons.items())
    # the whole run from the top, however long
    assert set(unlike_marrow_at_top(_levels([22, 24, 23, 55, 54, 56, 52, 57, 55]))) == {
        "T10",
        "T11",
        "T12",
    }


def test_one_low_level_or_a_low_level_inside_the_column_is_not_doubted() -> None:
    # one body far below the rest: acute fracture oedema, a haemangioma, cement
    assert unlike_marrow_at_top(_levels([20, 54, 53, 55, 54, 56, 52, 57, 55])) == {}
    # low bodies in the middle of the column: fractures between normal bodies
    assert unlike_marrow_at_top(_levels([54, 53, 20, 22, 54, 56, 52, 57, 55])) == {}
    # a drop short of the threshold
    near = 54 - TOP_RUN_PDFF_DROP_PP + 1
    assert unlike_marrow_at_top(_levels([near, near, 53, 55, 54, 56, 52, 57, 55])) == {}
    # no ROI PDFF (nan) ends the run; too few levels to judge
    assert unlike_marrow_at_top(_levels([22, float("nan"), 53, 55, 54, 56, 52, 57, 55])) == {}
    assert unlike_marrow_at_top(_levels([22, 24, 53])) == {}


def test_a_column_that_ran_off_at_the_top_is_warned_with_those_levels() -> None:
    """world-dev-39: the top three bodies were found in tissue beside the column (their ROIs
    lie in no vertebra, PDFF 22-25% against 54%), the count below them is right and nothing
    else doubted it: before this rule the study was wrong and not warned."""
    case = world_dev(39)
    res = automatic_rois(case.study)
    right = right_levels(case, res)
    assert [lv for lv, ok in right.items() if not ok] == ["T10", "T11", "T12"], right
    assert res.uncertain
    named = {r.split(":")[0] for r in res.reasons if "may not be vertebral" in r}
    assert named == {"T10", "T11", "T12"}, res.reasons
    conf = {lv.level: lv.confidence for lv in res.levels}
    assert max(conf[lv] for lv in named) <= 0.5
