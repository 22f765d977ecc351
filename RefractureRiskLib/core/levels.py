"""Vertebral levels the product measures, in cranio-caudal order, and their label values.

Label values in every label map the product writes are fixed: ``level_label("T10") == 1`` up to
``level_label("S1") == 9``, so a label map means the same thing in every file and session.
"""

from __future__ import annotations

from collections.abc import Mapping

VERTEBRAL_LEVELS: tuple[str, ...] = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")
LUMBAR_GLOBAL_LEVELS: tuple[str, ...] = ("L1", "L2", "L3", "L4")
#: Thoracolumbar junction (T11-L2): the cohort's ``tl_junction`` flag and the model term of it.
TL_JUNCTION_LEVELS: frozenset[str] = frozenset({"T11", "T12", "L1", "L2"})

#: Display colour (RGB, 0-1) of each level: its segment in Slicer and in .seg.nrrd files, its
#: outline in the report's figure; neighbours differ clearly.
LEVEL_COLORS: Mapping[str, tuple[float, float, float]] = {
    "T10": (0.122, 0.467, 0.706),
    "T11": (1.000, 0.498, 0.055),
    "T12": (0.173, 0.627, 0.173),
    "L1": (0.839, 0.153, 0.157),
    "L2": (0.580, 0.404, 0.741),
    "L3": (0.549, 0.337, 0.294),
    "L4": (0.890, 0.467, 0.761),
    "L5": (0.737, 0.741, 0.133),
    "S1": (0.090, 0.745, 0.812),
}


def level_index(level: str) -> int:
    """Position of ``level`` in :data:`VERTEBRAL_LEVELS` (0 = T10). Raises ValueError if unknown."""
    name = level.strip().upper()
    if name not in VERTEBRAL_LEVELS:
        raise ValueError(f"unknown vertebral level {level!r}; expected one of {VERTEBRAL_LEVELS}")
    return VERTEBRAL_LEVELS.index(name)


def level_label(level: str) -> int:
    """Label value of ``level`` in product label maps (T10 -> 1 ... S1 -> 9)."""
    return level_index(level) + 1


def level_from_label(label: int) -> str:
    """Inverse of :func:`level_label`."""
    if not 1 <= label <= len(VERTEBRAL_LEVELS):
        raise ValueError(
            f"label {label} is not a vertebral level label (1..{len(VERTEBRAL_LEVELS)})"
        )
    return VERTEBRAL_LEVELS[label - 1]


def adjacent_levels(level: str) -> tuple[str, ...]:
    """The levels directly above and below ``level`` (within T10-S1)."""
    i = level_index(level)
    return tuple(VERTEBRAL_LEVELS[j] for j in (i - 1, i + 1) if 0 <= j < len(VERTEBRAL_LEVELS))
