"""The arrays of the last studies ROIs were placed on, kept for a viewer's repeated calls.

A point dragged in a viewer re-measures one level many times: the whole-image signal sum and
noise estimate of :func:`~RefractureRiskLib.roi.body.study_arrays` are computed once per study.
"""

from __future__ import annotations

from RefractureRiskLib.core.study import Study
from RefractureRiskLib.roi.body import StudyArrays, study_arrays
from RefractureRiskLib.roi.marrow import DEFAULT_CRITERIA, MarrowCriteria

_CACHE: list[tuple[Study, MarrowCriteria, StudyArrays]] = []


def study_arrays_cached(study: Study, criteria: MarrowCriteria = DEFAULT_CRITERIA) -> StudyArrays:
    """:func:`study_arrays`, remembered for the last two studies (a point drag in a viewer
    recomputes one level many times: the whole-image signal sum and noise estimate once)."""
    for st, crit, arrays in _CACHE:
        if st is study and crit == criteria:
            return arrays
    arrays = study_arrays(study, criteria)
    _CACHE.insert(0, (study, criteria, arrays))
    del _CACHE[2:]
    return arrays


def clear_study_cache() -> None:
    """Forget the arrays :func:`study_arrays_cached` keeps (a viewer closed its studies)."""
    _CACHE.clear()


__all__ = ["clear_study_cache", "study_arrays_cached"]
