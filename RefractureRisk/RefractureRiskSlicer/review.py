"""The reader's review of automatically labelled levels: which to check, and the three answers
(accept the label, reject the level, relabel it), each a new ``RoiResult``.

The ROI engine gives every level a label confidence (0-1) and reasons; a reason about one body
starts with its level ("T12: ..."), any other reason (sacrum not found, irregular spacing)
concerns the count and so every level. The reader's decisions are kept in the result's
``extras["review"]`` ({level: "accepted" | "rejected" | "relabelled from L2"}), and the result
is ``uncertain`` while a listed level has no decision.
"""

import dataclasses

import numpy as np

from .library import lib
from .mrml import LEVELS

#: Label confidence below which a level is listed for review even without a reason.
CONFIDENT = 0.8


def reviewRows(roiResult):
    """[{level, confidence, reasons, decision}] of the levels to review, cranial to caudal."""
    own = lib("roi.auto").LEVEL_REASON
    general = [r for r in roiResult.reasons if not own.match(r)]
    decisions = roiResult.extras.get("review", {})
    rows = []
    for placement in roiResult.levels:
        reasons = [r for r in roiResult.reasons if r.startswith(f"{placement.level}: ")]
        reasons += general
        if placement.confidence >= CONFIDENT and not reasons and placement.level not in decisions:
            continue
        rows.append(
            {
                "level": placement.level,
                "confidence": float(placement.confidence),
                "reasons": reasons or [f"label confidence {placement.confidence:.2f}"],
                "decision": decisions.get(placement.level, ""),
            }
        )
    return rows


def _decided(roiResult, decisions):
    extras = dict(roiResult.extras)
    extras["review"] = {**roiResult.extras.get("review", {}), **decisions}
    pending = [row for row in reviewRows(dataclasses.replace(roiResult, extras=extras))
               if not row["decision"]]  # fmt: skip
    return dataclasses.replace(roiResult, extras=extras, uncertain=bool(pending))


def accept(roiResult, level):
    """The reader confirms ``level``'s label."""
    roiResult.placement(level)  # KeyError when absent
    return _decided(roiResult, {level: "accepted"})


def reject(roiResult, level):
    """The reader rejects ``level``: shown, excluded from the summaries (re-includable)."""
    roiResult.placement(level)
    roiset = roiResult.roiset.with_override(level, False)
    return _decided(dataclasses.replace(roiResult, roiset=roiset), {level: "rejected"})


def relabel(roiResult, level, newLevel, indexLevels=()):
    """``level`` named ``newLevel``. When ``newLevel`` is free only that level is renamed (one
    body misnamed); when another body has it, every label shifts by the same number of levels
    (the count was off: the bodies' order is right, their names are not), and a body shifted
    beyond T10-S1 is dropped (it is not a level the product measures). QC flags are re-derived
    (the index flag follows the names)."""
    core = lib("core")
    names = [p.level for p in roiResult.levels]
    if level not in names:
        raise core.InputError(f"level {level}", "is not placed")
    if newLevel not in LEVELS:
        raise core.InputError(f"level {newLevel}", f"is not a level ({', '.join(LEVELS)})")
    if newLevel == level:
        return roiResult
    if newLevel not in names:
        mapping = {level: newLevel}
    else:
        shift = LEVELS.index(newLevel) - LEVELS.index(level)
        mapping = {
            n: LEVELS[LEVELS.index(n) + shift]
            if 0 <= LEVELS.index(n) + shift < len(LEVELS)
            else None
            for n in names
        }
    result = renamed(roiResult, mapping)
    result = lib("roi.qc").apply_qc(result, None, tuple(indexLevels))
    return _decided(
        result, {new: f"relabelled from {old}" for old, new in mapping.items() if new is not None}
    )


def renamed(roiResult, mapping):
    """``roiResult`` with levels renamed by ``mapping`` ({old: new}; new None: the level is
    dropped); label values, segment order, body labels, placements, overrides, stored points and
    the levels' box-local masks (roi.level_update paints with them) follow."""
    core = lib("core")
    label = core.level_label
    lut = np.arange(max(label(n) for n in LEVELS) + 1, dtype=np.int16)
    for old, new in mapping.items():
        lut[label(old)] = 0 if new is None else label(new)

    def name(level):
        return mapping.get(level, level)

    kept = [lv for lv in roiResult.roiset.levels if name(lv.level) is not None]
    levels = tuple(
        core.LevelRoi(name(lv.level), label(name(lv.level)), lv.flags, lv.include_override)
        for lv in sorted(kept, key=lambda lv: LEVELS.index(name(lv.level)))
    )
    roiLabels = roiResult.roiset.labelmap
    roiset = dataclasses.replace(
        roiResult.roiset, labelmap=roiLabels.with_array(lut[roiLabels.array]), levels=levels
    )
    placements = sorted(
        (
            dataclasses.replace(p, level=name(p.level), label=label(name(p.level)))
            for p in roiResult.levels
            if name(p.level) is not None
        ),
        key=lambda p: LEVELS.index(p.level),
    )
    extras = dict(roiResult.extras)
    for key in ("points_ras", "review", "level_masks"):  # the masks: a later point move
        if key in extras:
            extras[key] = {name(k): v for k, v in extras[key].items() if name(k) is not None}
    bodies = roiResult.body_labels
    return dataclasses.replace(
        roiResult,
        roiset=roiset,
        body_labels=bodies.with_array(lut[bodies.array]),
        levels=tuple(placements),
        extras=extras,
    )
