"""Domain types shared by every layer: Volume, Study, RoiSet and the vertebral levels."""

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS, level_index, level_label
from RefractureRiskLib.core.roiset import LevelRoi, RoiFlag, RoiMethod, RoiSet
from RefractureRiskLib.core.study import (
    MAP_KINDS,
    MAP_UNITS,
    PatientInfo,
    SeriesProvenance,
    Study,
    StudyProvenance,
)
from RefractureRiskLib.core.volume import Volume

__all__ = [
    "MAP_KINDS",
    "MAP_UNITS",
    "VERTEBRAL_LEVELS",
    "InputError",
    "LevelRoi",
    "PatientInfo",
    "RoiFlag",
    "RoiMethod",
    "RoiSet",
    "SeriesProvenance",
    "Study",
    "StudyProvenance",
    "Volume",
    "level_index",
    "level_label",
]
