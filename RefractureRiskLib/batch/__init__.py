"""Cohort processing (see :mod:`RefractureRiskLib.batch.runner`); split into modules next."""

from RefractureRiskLib.batch.runner import (
    BatchConfig,
    BatchSummary,
    BatchTask,
    CohortBuild,
    PatientOutcome,
    PatientStudy,
    TaskResult,
    _run_processes,
    analyze_patient,
    cohort_table,
    discover_studies,
    imaging_columns,
    read_clinical_text,
    run_batch,
    study_submission,
)

__all__ = [
    "BatchConfig",
    "BatchSummary",
    "BatchTask",
    "CohortBuild",
    "PatientOutcome",
    "PatientStudy",
    "TaskResult",
    "_run_processes",
    "analyze_patient",
    "cohort_table",
    "discover_studies",
    "imaging_columns",
    "read_clinical_text",
    "run_batch",
    "study_submission",
]
