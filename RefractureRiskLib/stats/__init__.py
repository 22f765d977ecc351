"""Per-ROI statistics and per-patient summaries (global L1-L4, adjacent levels).

- :mod:`.registry`: every statistic defined once (key, name, unit, formula).
- :mod:`.roi_statistics`: per (level, map) statistics table of a RoiSet on a Study.
- :mod:`.summary`: per-patient global L1-L4 and adjacent-level means.
- :mod:`.muscle`: paraspinal muscle PDFF at L3-L4.
- :mod:`.tables`: statistics to and from CSV / Parquet.
"""

from RefractureRiskLib.stats.muscle import ParaspinalMuscleFat, paraspinal_muscle_pdff
from RefractureRiskLib.stats.registry import (
    STATISTICS,
    Statistic,
    register_statistic,
    statistics_definitions,
)
from RefractureRiskLib.stats.roi_statistics import (
    label_statistics,
    roi_statistics,
    statistics_wide,
)
from RefractureRiskLib.stats.summary import (
    PatientSummary,
    summarize_patient,
    summarize_statistics,
)
from RefractureRiskLib.stats.tables import read_statistics, write_statistics

__all__ = [
    "STATISTICS",
    "ParaspinalMuscleFat",
    "PatientSummary",
    "Statistic",
    "label_statistics",
    "paraspinal_muscle_pdff",
    "read_statistics",
    "register_statistic",
    "roi_statistics",
    "statistics_definitions",
    "statistics_wide",
    "summarize_patient",
    "summarize_statistics",
    "write_statistics",
]
