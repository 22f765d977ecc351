"""World-generator development studies for tests, and which true body each ROI lies in.

Development seeds only (``world_set("dev")``); the frozen test set is used only by
``evaluation/evaluate_auto_roi.py --set test``.
"""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.phantom.world import generate_world, world_set


def world_dev(seed: int):
    """The world development study of ``seed`` (a ``LabelledStudy``: study and truth)."""
    (spec,) = [s for s in world_set("dev", seed + 1) if s.seed == seed]
    return generate_world(spec)


def right_levels(case, result) -> dict[str, bool]:
    """For each ROI named as a true level: does most of it lie in that level's true body?"""
    truth = case.truth.body_labels.array
    label_of = {lv.level: lv.label for lv in case.truth.levels}
    out = {}
    for lr in result.roiset.levels:
        if lr.level not in label_of:
            continue
        under = truth[result.roiset.labelmap.array == lr.label]
        vals, counts = np.unique(under, return_counts=True)
        out[lr.level] = bool(under.size) and int(vals[np.argmax(counts)]) == label_of[lr.level]
    return out
