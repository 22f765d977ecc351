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
from types import MappingProxyType

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS, level_label
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.roi.result import RoiResult

#: An external ROI must hold at least this share of a level's ROI to name it.
MIN_OVERLAP_FRAC = 0.5

#: TotalSegmentator's vertebrae, caudal to cranial (the order of its label values).
_TS_VERTEBRAE = tuple(
    f"vertebrae_{lv}"
    for lv in (*(f"L{n}" for n in range(5, 0, -1)), *(f"T{n}" for n in range(12, 0, -1)),
               *(f"C{n}" for n in range(7, 0, -1)))
)  # fmt: skip

#: Label numberings of external vertebra labellings (label value -> class name), by the name
#: ``--external-labels-scheme`` takes. ``totalsegmentator``: its MR task ``vertebrae_mr`` (1 sacrum,
#: 2 L5 ... 25 C1); ``totalsegmentator-total``: its CT task ``total`` (v2: 25 sacrum, 26 S1,
#: 27 L5 ... 50 C1), both as in TotalSegmentator's ``map_to_binary.py``; ``refracture``: this
#: product's own label values (T10 = 1 ... S1 = 9, core/levels.py), e.g. a ``bodies.seg.nrrd``.
EXTERNAL_SCHEMES: Mapping[str, Mapping[int, str]] = MappingProxyType(
    {
        "totalsegmentator": {1: "sacrum"} | {i + 2: n for i, n in enumerate(_TS_VERTEBRAE)},
        "totalsegmentator-total": {25: "sacrum", 26: "vertebrae_S1"}
        | {i + 27: n for i, n in enumerate(_TS_VERTEBRAE)},
        "refracture": {level_label(lv): lv for lv in VERTEBRAL_LEVELS},
    }
)


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
    differently; the classical labels are kept, the confidence of a disputed level drops to 0.5
    at most. ``external_table`` maps the external label values to class names (e.g.
    TotalSegmentator's "vertebrae_L3"; :data:`EXTERNAL_SCHEMES`)."""
    if not external.same_grid(result.roiset.labelmap):
        raise InputError("external labels", "not on the study grid; resample them first")
    ext = np.asarray(external.array)
    table = {int(k): v for k, v in external_table.items()}
    reasons = list(result.reasons)
    disputed: set[str] = set()
    for lv in result.roiset.levels:
        mask = result.roiset.labelmap.array == lv.label
        if not mask.any():
            continue
        vals, counts = np.unique(ext[mask], return_counts=True)
        best = int(vals[np.argmax(counts)])
        name = table.get(best) if best else None
        said = None if name is None else level_from_external_name(name) or _short(name)
        if said is None or counts.max() / mask.sum() < MIN_OVERLAP_FRAC:
            reasons.append(f"{lv.level}: external labelling has no vertebra here")
        elif said != lv.level:
            reasons.append(f"{lv.level}: external labelling says {said} (classical count kept)")
        else:
            continue
        disputed.add(lv.level)
    if not disputed:
        return result
    levels = tuple(
        replace(p, confidence=min(p.confidence, 0.5)) if p.level in disputed else p
        for p in result.levels
    )
    roiset = replace(result.roiset, notes=tuple(reasons))
    return replace(result, roiset=roiset, levels=levels, uncertain=True, reasons=tuple(reasons))


def scheme_table(scheme: str) -> Mapping[int, str]:
    """The label numbering called ``scheme`` in :data:`EXTERNAL_SCHEMES`; InputError names the
    known ones otherwise."""
    if scheme not in EXTERNAL_SCHEMES:
        raise InputError(
            "--external-labels-scheme",
            f"unknown scheme {scheme!r}; expected one of {', '.join(EXTERNAL_SCHEMES)}",
        )
    return EXTERNAL_SCHEMES[scheme]


def _short(name: str) -> str:
    """An external class name outside the product's levels, shortened ("vertebrae_T9" -> "T9")."""
    return name.removeprefix("vertebrae_")


def check_external_labels(result: RoiResult, path: str | Path, scheme: str) -> RoiResult:
    """:func:`cross_check_labels` against the label image ``path`` numbered by ``scheme`` (a
    key of :data:`EXTERNAL_SCHEMES`); an image on another grid is resampled onto the study's
    (nearest neighbour). InputError names the file: missing, unreadable, not whole labels, no
    overlap with the study, or no vertebra of the scheme in it."""
    table = scheme_table(scheme)
    # Imported here: SimpleITK is loaded only when an external labelling is given.
    from RefractureRiskLib.io.images import read_image

    labels = read_image(path)
    values = np.asarray(labels.array, dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)) or values.min() < 0:
        raise InputError(path, "not a label image: expected whole label values >= 0 (0 = none)")
    labels = labels.with_array(values.astype(np.int32))
    grid = result.roiset.labelmap
    if not labels.same_grid(grid):
        labels = _nearest_onto(labels, grid)
        if not labels.array.any():
            raise InputError(path, "no labelled voxel lies inside the study's images")
    if not np.isin(np.unique(labels.array), list(table)).any():
        raise InputError(
            path,
            f"none of its labels is a vertebra in the {scheme!r} numbering "
            f"({min(table)}..{max(table)}); check --external-labels-scheme",
        )
    return cross_check_labels(result, labels, table)


def _nearest_onto(labels: Volume, grid: Volume) -> Volume:
    """``labels`` resampled onto ``grid`` (nearest neighbour; 0 outside)."""
    import SimpleITK as sitk

    from RefractureRiskLib.io.images import sitk_to_volume, volume_to_sitk

    reference = volume_to_sitk(grid.with_array(np.zeros(grid.shape, np.uint8)))
    image = volume_to_sitk(labels)
    out = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return Volume(sitk_to_volume(out).array.astype(np.int32), grid.ijk_to_ras)


__all__ = [
    "EXTERNAL_SCHEMES",
    "check_external_labels",
    "cross_check_labels",
    "level_from_external_name",
    "scheme_table",
    "totalsegmentator_status",
]
