"""Which studies a batch run analyses: each study's clinical row, options and analysis key, and
the tasks left once the store's already recorded analyses and ``--retry-failed`` are applied.

Runs under the batch lock, before any study is analysed (see
:func:`RefractureRiskLib.batch.runner.run_batch`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from RefractureRiskLib.batch.inputs import _index_levels
from RefractureRiskLib.batch.workers import BatchTask, analysis_key
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.pipeline import AnalysisOptions, load_clinical
from RefractureRiskLib.store.measurements import MeasurementStore

if TYPE_CHECKING:
    from RefractureRiskLib.batch.runner import BatchConfig

#: One study as planned: (study, its clinical row or None, its options, its analysis key).
Planned = tuple[Any, Mapping[str, Any] | None, AnalysisOptions, str]

NOT_IN_CLINICAL_NOTE = (
    "not in the clinical table: measured and recorded, no risk, not in the cohort table"
)


def plan_studies(
    config: BatchConfig,
    studies: Sequence[Any],
    clinical_ids: Collection[str],
    previously_failed: Collection[str],
    store: MeasurementStore,
) -> tuple[list[Planned], dict[str, str]]:
    """Each study's clinical row, options and analysis key, and ``patient_id -> reason`` of the
    patients whose clinical row cannot be read (recorded in the store as failures, unless
    ``--retry-failed`` leaves the patient out anyway)."""
    planned: list[Planned] = []
    refused: dict[str, str] = {}
    for s in studies:
        retry = not config.retry_failed_only or s.patient_id in previously_failed
        clinical: Mapping[str, Any] | None = None
        if s.patient_id in clinical_ids:
            try:
                clinical = load_clinical(config.clinical, s.patient_id)
            except InputError as err:  # e.g. the patient_id appears twice
                if not retry:
                    continue
                store.record_failure(s.patient_id, str(err), source=str(s.study_path))
                refused[s.patient_id] = str(err)
                continue
        options = replace(
            config.options, index_levels=_index_levels(clinical, config.options.index_levels)
        )
        key = analysis_key(s.patient_id, s.study_path, clinical, options)
        planned.append((s, clinical, options, key))
    return planned, refused


def select_tasks(
    config: BatchConfig,
    planned: Sequence[Planned],
    recorded: Collection[str],
    previously_failed: Collection[str],
    clinical_ids: Collection[str],
    patients_dir: Path,
) -> tuple[list[BatchTask], list[str], dict[str, str]]:
    """The tasks to run, the patients skipped (their analysis is recorded already) and a note
    per patient to analyse without a clinical row."""
    tasks: list[BatchTask] = []
    skipped: list[str] = []
    notes: dict[str, str] = {}
    for s, clinical, options, key in planned:
        if key in recorded:
            skipped.append(s.patient_id)
            continue
        if config.retry_failed_only and s.patient_id not in previously_failed:
            continue
        if s.patient_id not in clinical_ids:
            notes[s.patient_id] = NOT_IN_CLINICAL_NOTE
        tasks.append(
            BatchTask(s.patient_id, str(s.study_path), clinical, options, str(patients_dir), key)
        )
    return tasks, skipped, notes
