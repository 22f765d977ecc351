"""Cross-checking the classical level labels against an external vertebra labelling.

An optional deep-learning labelling (for example TotalSegmentator's ``vertebrae_mr`` task, run by
the user where the package and its weights are already installed) is never trusted blindly: the
classical count from the sacrum stays the method of record, and any level where the two disagree
makes the result uncertain with the reason stated. This module never installs or downloads
anything; :func:`totalsegmentator_status` only reports whether the package and local weights are
present.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.roi.result import RoiResult

#: An external ROI must hold at least this share of a level's ROI to name it.
MIN_OVERLAP_FRAC = 0.5


def level_from_external_name(name: str) -> str | None:
    """Product level of an external class name ("vertebrae_L3" -> "L3", "sacrum" -> "S1")."""
    text = name.strip().upper()
    if text in ("SACRUM", "VERTEBRAE_S1", "S1"):
        return "S1"
    m = re.search(r"(T1[0-2]|T[1-9]|L[1-5]|C[1-7])$", text)
    return m.group(1) if m and m.group(1) in VERTEBRAL_LEVELS else None


def totalsegmentator_status() -> tuple[bool, str]:
    """Whether TotalSegmentator is importable and has local weights (nothing is downloaded).

    Weights are looked for in ``$TOTALSEG_HOME_DIR`` or ``~/.totalsegmentator`` (its default).
    """
    if importlib.util.find_spec("totalsegmentator") is None:
        return False, "TotalSegmentator is not installed"
    home = Path(os.environ.get("TOTALSEG_HOME_DIR", Path.home() / ".totalsegmentator"))
    results = home / "nnunet" / "results"
    if not results.is_dir() or not any(results.iterdir()):
        return (
            False,
            f"no TotalSegmentator weights under {results} (they are never downloaded here)",
        )
    return True, f"TotalSegmentator weights found under {results}"


def cross_check_labels(
    result: RoiResult, external: Volume, external_table: Mapping[int, str]
) -> RoiResult:
    """``result`` with a reason (and ``uncertain``) for every level the external labelling names
    differently; the classical labels are kept. ``external_table`` maps the external label values
    to class names (e.g. TotalSegmentator's "vertebrae_L3")."""
    if not external.same_grid(result.roiset.labelmap):
        raise InputError("external labels", "not on the study grid; resample them first")
    ext = np.asarray(external.array)
    names = {int(k): level_from_external_name(v) for k, v in external_table.items()}
    reasons = list(result.reasons)
    for lv in result.roiset.levels:
        mask = result.roiset.labelmap.array == lv.label
        if not mask.any():
            continue
        vals, counts = np.unique(ext[mask], return_counts=True)
        best = int(vals[np.argmax(counts)])
        share = float(counts.max() / mask.sum())
        other = names.get(best) if best else None
        if other is None or share < MIN_OVERLAP_FRAC:
            reasons.append(f"{lv.level}: external labelling has no vertebra here")
        elif other != lv.level:
            reasons.append(f"{lv.level}: external labelling says {other} (classical count kept)")
    if len(reasons) == len(result.reasons):
        return result
    roiset = replace(result.roiset, notes=tuple(reasons))
    return replace(result, roiset=roiset, uncertain=True, reasons=tuple(reasons))


__all__ = ["cross_check_labels", "level_from_external_name", "totalsegmentator_status"]
