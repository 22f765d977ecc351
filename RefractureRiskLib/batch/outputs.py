"""The tables a batch run writes into ``--out``: the cohort table, its schema problems and the
status of every patient of the run, published together (see core.atomic)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from RefractureRiskLib.batch.cohort import CohortBuild
from RefractureRiskLib.core.atomic import OutputSet
from RefractureRiskLib.model.dev.schema import problems_frame

if TYPE_CHECKING:
    from RefractureRiskLib.batch.runner import PatientOutcome

#: What a batch writes into --out: one folder per patient and the tables.
PATIENTS_DIR = "patients"
COHORT_FILE = "cohort.csv"
COHORT_PROBLEMS_FILE = "cohort_problems.csv"
STATUS_FILE = "batch_status.csv"


def write_tables(
    out: Path, cohort: CohortBuild, ordered: Sequence[PatientOutcome]
) -> dict[str, Path]:
    """cohort.csv, cohort_problems.csv (only when there are problems) and batch_status.csv,
    published together (see core.atomic)."""
    files: dict[str, Path] = {"cohort": out / COHORT_FILE}
    problems_path = out / COHORT_PROBLEMS_FILE
    with OutputSet(overwrite=True, recover=False) as outputs:
        cohort.table.to_csv(outputs.file(files["cohort"]), index=False)
        if cohort.problems:
            problems_frame(cohort.problems).to_csv(outputs.file(problems_path), index=False)
            files["cohort_problems"] = problems_path
        files["status"] = out / STATUS_FILE
        status = pd.DataFrame([o.__dict__ for o in ordered])
        status.to_csv(outputs.file(files["status"]), index=False)
    if not cohort.problems:
        with contextlib.suppress(FileNotFoundError):
            problems_path.unlink()
    return files
