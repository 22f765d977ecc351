"""``RoiSet``: a label map of per-level ROIs on a study grid, with flags, method and reader."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np

from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS, level_index
from RefractureRiskLib.core.volume import Volume


class RoiFlag(StrEnum):
    """Per-level QC and clinical flags. Flagged levels are excluded from summaries by default."""

    FRACTURED = "fractured"
    CEMENTED = "cemented"
    INDEX = "index"
    LESION = "lesion"
    ARTEFACT = "artefact"
    LOW_COVERAGE = "low_coverage"
    TRUNCATED = "truncated"  # cut by the edge of the field of view: shape and height unknown


class RoiMethod(StrEnum):
    """How the ROIs were made."""

    MANUAL_POINTS = "manual_points"
    AUTOMATIC = "automatic"
    IMPORTED_MASK = "imported_mask"


@dataclass(frozen=True)
class LevelRoi:
    """One level's entry: its label value in the label map, its flags and the user's choice.

    ``include_override``: None = follow the flags (flagged levels excluded); True/False = the
    user re-included or excluded the level explicitly.
    """

    level: str
    label: int
    flags: frozenset[RoiFlag] = frozenset()
    include_override: bool | None = None

    def __post_init__(self) -> None:
        level_index(self.level)  # validates the name
        if self.label <= 0:
            raise ValueError(f"label for {self.level} must be positive, got {self.label}")
        object.__setattr__(self, "flags", frozenset(RoiFlag(f) for f in self.flags))

    @property
    def included(self) -> bool:
        """Whether this level enters the patient summaries."""
        if self.include_override is not None:
            return self.include_override
        return not self.flags


@dataclass(frozen=True, eq=False)
class RoiSet:
    """Integer label map on the study grid plus the label -> level table."""

    labelmap: Volume
    levels: tuple[LevelRoi, ...]
    method: RoiMethod
    reader: str = "unknown"
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not np.issubdtype(self.labelmap.array.dtype, np.integer):
            raise ValueError(f"labelmap must be integer, got {self.labelmap.array.dtype}")
        names = [lv.level for lv in self.levels]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate levels in RoiSet: {names}")
        labels = [lv.label for lv in self.levels]
        if len(set(labels)) != len(labels):
            raise ValueError(f"duplicate label values in RoiSet: {labels}")
        order = sorted(self.levels, key=lambda lv: level_index(lv.level))
        object.__setattr__(self, "levels", tuple(order))
        object.__setattr__(self, "method", RoiMethod(self.method))

    def level(self, name: str) -> LevelRoi:
        """The entry for level ``name`` (KeyError if absent)."""
        for lv in self.levels:
            if lv.level == name:
                return lv
        raise KeyError(f"level {name} not in RoiSet (has {[lv.level for lv in self.levels]})")

    def mask(self, name: str) -> np.ndarray:
        """Boolean ``[k, j, i]`` mask of one level's ROI."""
        return self.labelmap.array == self.level(name).label

    def with_flags(self, name: str, flags: Iterable[RoiFlag | str]) -> RoiSet:
        """A copy where level ``name`` has exactly ``flags``."""
        return self._replace_level(name, flags=frozenset(RoiFlag(f) for f in flags))

    def with_override(self, name: str, include: bool | None) -> RoiSet:
        """A copy where the user's include/exclude choice for ``name`` is ``include``."""
        return self._replace_level(name, include_override=include)

    def _replace_level(self, name: str, **changes: object) -> RoiSet:
        self.level(name)
        levels = tuple(replace(lv, **changes) if lv.level == name else lv for lv in self.levels)
        return replace(self, levels=levels)

    @property
    def level_names(self) -> tuple[str, ...]:
        """Levels present, cranial to caudal."""
        return tuple(lv.level for lv in self.levels)


__all__ = ["VERTEBRAL_LEVELS", "LevelRoi", "RoiFlag", "RoiMethod", "RoiSet"]
