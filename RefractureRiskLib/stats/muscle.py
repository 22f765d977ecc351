"""Paraspinal muscle fat: PDFF of the left and right erector spinae with multifidus at L3-L4.

Muscle fat infiltration is a sarcopenia marker linked to new vertebral fractures. The muscle
mask comes from the ROI code (or the user); this module only measures it, with the same
statistics engine as the vertebral ROIs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.stats.roi_statistics import label_statistics

#: Default label values of the muscle mask.
LEFT_LABEL = 1
RIGHT_LABEL = 2
#: Below this volume a side is reported but not trusted (NaN with a note).
MIN_SIDE_VOLUME_ML = 1.0


@dataclass(frozen=True)
class ParaspinalMuscleFat:
    """PDFF (percent) of the paraspinal muscles at L3-L4, per side and combined.

    ``mean_pdff_pct`` is the mean of the two side means (each side weighs equally), NaN unless
    both sides are measured. Volumes are of the voxels with a finite PDFF.
    """

    left_pdff_pct: float
    right_pdff_pct: float
    mean_pdff_pct: float
    left_volume_ml: float
    right_volume_ml: float
    levels: str = "L3-L4"
    notes: tuple[str, ...] = ()


def paraspinal_muscle_pdff(
    pdff: Volume,
    muscle_labels: Volume | npt.NDArray,
    left_label: int = LEFT_LABEL,
    right_label: int = RIGHT_LABEL,
    min_side_volume_ml: float = MIN_SIDE_VOLUME_ML,
) -> ParaspinalMuscleFat:
    """Mean PDFF of the left/right paraspinal muscle masks (already limited to L3-L4).

    ``pdff`` is the PDFF map in percent; ``muscle_labels`` an integer mask on the same grid
    (a ``Volume``, or a ``[k, j, i]`` array taken to be on ``pdff``'s grid) with ``left_label``
    for the left and ``right_label`` for the right erector spinae + multifidus.
    """
    if isinstance(muscle_labels, Volume):
        if not muscle_labels.same_grid(pdff):
            raise InputError(
                "muscle mask",
                f"not on the PDFF grid: {muscle_labels.describe_geometry()} vs "
                f"{pdff.describe_geometry()}",
            )
        labels = muscle_labels.array
    else:
        labels = np.asarray(muscle_labels)
    if labels.shape != pdff.shape:
        raise InputError("muscle mask", f"shape {labels.shape} != PDFF shape {pdff.shape}")
    if left_label == right_label:
        raise InputError("muscle mask", "left and right label values must differ")
    table = label_statistics(
        {"pdff": pdff.array}, labels, [left_label, right_label], pdff.voxel_volume_ml
    )
    notes: list[str] = []
    sides: dict[str, tuple[float, float]] = {}
    for side, label in (("left", left_label), ("right", right_label)):
        row = table[table["label"] == label].iloc[0]
        volume = float(row["volume_ml"])
        mean = float(row["mean"])
        if volume < min_side_volume_ml:
            notes.append(
                f"{side} muscle mask has {volume:.2f} mL with valid PDFF "
                f"(< {min_side_volume_ml} mL): not measured"
            )
            mean = float("nan")
        sides[side] = (mean, volume)
    left, right = sides["left"][0], sides["right"][0]
    combined = float(np.mean([left, right])) if np.isfinite([left, right]).all() else float("nan")
    return ParaspinalMuscleFat(
        left_pdff_pct=left,
        right_pdff_pct=right,
        mean_pdff_pct=combined,
        left_volume_ml=sides["left"][1],
        right_volume_ml=sides["right"][1],
        notes=tuple(notes),
    )
