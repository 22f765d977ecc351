"""Domain types shared by every layer: Volume, Study, RoiSet and the vertebral levels.

The names below are loaded on first use (PEP 562 ``__getattr__``): importing one light
submodule (``core.errors`` for the command line's ``--help``) does not load numpy through the
others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Each exported name and the submodule that defines it.
_SOURCES: dict[str, str] = {
    "InputError": "errors",
    "VERTEBRAL_LEVELS": "levels",
    "level_index": "levels",
    "level_label": "levels",
    "LevelRoi": "roiset",
    "RoiFlag": "roiset",
    "RoiMethod": "roiset",
    "RoiSet": "roiset",
    "MAP_KINDS": "study",
    "MAP_UNITS": "study",
    "PatientInfo": "study",
    "SeriesProvenance": "study",
    "Study": "study",
    "StudyProvenance": "study",
    "Volume": "volume",
}

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


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{source}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
