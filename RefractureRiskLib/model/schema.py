"""Moved: the cohort table is :mod:`RefractureRiskLib.model.dev.schema` (development side, pandas).

This alias stays only while ``RefractureRiskLib/batch/`` (edited elsewhere at the time of the move)
still imports the old path; nothing else may use it (``Testing/test_library_purity.py`` checks), and
it goes when batch's imports move. It is the one module of ``model/`` that is not numpy-only.
"""

from RefractureRiskLib.model.dev.schema import (  # noqa: F401
    COHORT_SCHEMA,
    DERIVED_COLUMNS,
    MEASURED_LEVELS,
    MISSING_TOKENS,
    Problem,
    column_spec,
    problems_frame,
    validate_cohort,
)
