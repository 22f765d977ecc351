"""Cohort processing: one study per patient, in parallel, resumable, into the measurement store.

Like :mod:`RefractureRiskLib.pipeline` this package only composes library calls.

Input
    ``root`` is a folder whose immediate sub-folders are the studies, one per patient, each
    folder's name being the (pseudonymised) ``patient_id``; hidden folders (``.name``) are
    ignored. Alternatively ``root`` is a manifest CSV with columns ``patient_id,study_path``
    (relative paths are taken from the manifest's folder).

Per patient (in a worker process, a Dask worker, or in-process with ``workers=0``)
    :func:`analyze_patient` runs :func:`~RefractureRiskLib.pipeline.analyze_study` with the
    patient's clinical row (its ``index_levels`` become the treated levels) into a staging folder
    beside ``OUT/patients/<patient_id>`` and moves it into place only on success
    (:mod:`RefractureRiskLib.core.atomic`), so a killed run never leaves a half-written patient
    folder. The worker never raises: any failure (corrupt DICOM, no PDFF series, no vertebral
    column, bad clinical value, ...) comes back as a reason.

The parent process is the only writer to the measurement store: one
:class:`~RefractureRiskLib.store.measurements.StudySubmission` per study (one transaction), or
one failure record with its reason. Workers therefore need no database access (Dask workers on
other machines need only the shared ``root`` and ``out`` folders).

Resuming and concurrency
    One batch at a time per ``out`` (:mod:`~RefractureRiskLib.batch.lock`: a second one is
    refused naming the first; a killed batch's lock is taken over). A re-run skips the studies
    the store already holds with the same analysis key (patient, the study folder's files, the
    clinical row, the measurement options, the model file and the software version; see
    :func:`~RefractureRiskLib.batch.workers.analysis_key`) unless ``reanalyze``, and retries
    every other patient, failed ones included (``retry_failed_only=True`` retries only the
    patients whose last attempt failed). Since the store, not the folder, says what is done, a
    batch killed at any moment and re-run has every study exactly once in the store. Batches
    with separate output folders may share one store: the key is recorded in the same
    transaction as the study, so each analysis is recorded once.

Patients missing from the clinical table
    are measured and recorded (the images are valid) but get no risk; they are reported per
    patient and are not in the cohort table (it needs their clinical columns).

Cohort table
    :func:`cohort_table` merges the clinical table with the imaging columns of the model's schema
    (per-level ``pdff_pct_<L>``, ``r2s_per_s_<L>``, ``excl_<L>``, the L1-L4 and adjacent
    summaries, mean L1-L4 body volume, ``mri_field_T``, ``mri_vendor``, ``reader_id``), computed
    from the store's *current* measurements of the reader, so a later correction in the store
    shows up when the table is rebuilt. Every clinical row is kept (imaging empty where not
    measured); the table is checked with
    :func:`~RefractureRiskLib.model.dev.schema.validate_cohort`.

Modules (data flows one way: inputs -> cohort -> runner <- workers)
    :mod:`~RefractureRiskLib.batch.inputs` study discovery, manifest and clinical table;
    :mod:`~RefractureRiskLib.batch.workers` one patient per task and the executors;
    :mod:`~RefractureRiskLib.batch.cohort` the cohort table from the store;
    :mod:`~RefractureRiskLib.batch.runner` :func:`run_batch`, recording and the summary.
"""

from RefractureRiskLib.batch.cohort import (
    IMAGING_COLUMNS,
    CohortBuild,
    cohort_table,
    imaging_columns,
)
from RefractureRiskLib.batch.inputs import PatientStudy, discover_studies, read_clinical_text
from RefractureRiskLib.batch.runner import (
    COHORT_FILE,
    COHORT_PROBLEMS_FILE,
    PATIENTS_DIR,
    STATUS_FILE,
    STORE_FILE,
    BatchConfig,
    BatchSummary,
    PatientOutcome,
    run_batch,
)
from RefractureRiskLib.batch.workers import (
    IN_FLIGHT_PER_WORKER,
    REPLACED_PREFIX,
    STAGING_PREFIX,
    BatchTask,
    TaskResult,
    analyze_patient,
    study_submission,
)
from RefractureRiskLib.store.submission import STORE_STATISTICS

__all__ = [
    "COHORT_FILE",
    "COHORT_PROBLEMS_FILE",
    "IMAGING_COLUMNS",
    "IN_FLIGHT_PER_WORKER",
    "PATIENTS_DIR",
    "REPLACED_PREFIX",
    "STAGING_PREFIX",
    "STATUS_FILE",
    "STORE_FILE",
    "STORE_STATISTICS",
    "BatchConfig",
    "BatchSummary",
    "BatchTask",
    "CohortBuild",
    "PatientOutcome",
    "PatientStudy",
    "TaskResult",
    "analyze_patient",
    "cohort_table",
    "discover_studies",
    "imaging_columns",
    "read_clinical_text",
    "run_batch",
    "study_submission",
]
