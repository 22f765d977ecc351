"""A batch's inputs: the patients' study folders (a folder of folders or a manifest CSV) and the
clinical table read as text (by ``io/clinical_table.py``), with the checks on patient ids and
treated levels."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import level_index
from RefractureRiskLib.io.clinical_table import read_table_text


@dataclass(frozen=True)
class PatientStudy:
    """One patient's study folder."""

    patient_id: str
    study_path: Path


def _check_patient_id(patient_id: str, source: str | Path) -> str:
    pid = patient_id.strip()
    if not pid or pid.startswith(".") or "/" in pid or "\\" in pid or len(pid) > 64:
        raise InputError(
            source,
            f"patient_id {patient_id!r} cannot name a folder; use 1-64 characters without "
            "'/', '\\' or a leading '.'",
        )
    return pid


def discover_studies(root: str | Path, exclude: Sequence[Path] = ()) -> list[PatientStudy]:
    """The studies of a batch, sorted by patient_id (see the module doc for the two layouts).

    ``exclude``: folders to leave out (e.g. the output folder when it lies inside ``root``).
    """
    root = Path(root)
    if root.is_file():
        return _read_manifest(root)
    if not root.is_dir():
        raise InputError(root, "batch root not found; give a folder of study folders or a CSV")
    skip = {p.resolve() for p in exclude}
    studies = [
        PatientStudy(_check_patient_id(p.name, p), p)
        for p in sorted(root.iterdir())
        if p.is_dir() and not p.name.startswith(".") and p.resolve() not in skip
    ]
    if not studies:
        raise InputError(root, "no study folders (one sub-folder per patient, named patient_id)")
    return studies


def _read_manifest(path: Path) -> list[PatientStudy]:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as err:  # pandas raises many types; the user needs file + reason
        raise InputError(path, f"cannot read manifest CSV ({type(err).__name__}: {err})") from None
    table.columns = [str(c).strip() for c in table.columns]
    if not {"patient_id", "study_path"} <= set(table.columns):
        raise InputError(path, "a manifest needs the columns patient_id,study_path")
    studies = []
    for i, (pid, study) in enumerate(zip(table["patient_id"], table["study_path"], strict=True)):
        where = f"{path} row {i + 1}"
        if not study.strip():
            raise InputError(where, "study_path is empty")
        p = Path(study.strip())
        studies.append(
            PatientStudy(_check_patient_id(pid, where), p if p.is_absolute() else path.parent / p)
        )
    ids = [s.patient_id for s in studies]
    repeated = sorted({p for p in ids if ids.count(p) > 1})
    if repeated:
        raise InputError(path, f"patient_id listed more than once: {', '.join(repeated)}")
    if not studies:
        raise InputError(path, "the manifest lists no studies")
    return sorted(studies, key=lambda s: s.patient_id)


def read_clinical_text(path: str | Path) -> pd.DataFrame:
    """The clinical table with every cell as text (missing = None), ``patient_id`` stripped.

    Read as text so the cohort table carries the clinical cells as the user wrote them; the
    reader (file types, missing cells) is the one of every clinical table,
    ``io/clinical_table.py`` ``read_table_text``.
    """
    return read_table_text(path, "clinical table")


def _index_levels(clinical: Mapping[str, Any] | None, base: tuple[str, ...]) -> tuple[str, ...]:
    value = None if clinical is None else clinical.get("index_levels")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return base
    names = (v.strip().upper() for v in str(value).replace(",", ";").split(";"))
    # Treated levels outside T10-S1 (e.g. T8) are outside the imaged levels: nothing to flag.
    return tuple(v for v in names if _is_level(v))


def _is_level(name: str) -> bool:
    try:
        level_index(name)
    except ValueError:
        return False
    return True
