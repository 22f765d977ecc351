"""Where a batch may write: never into its own input (the root folder or a study folder)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa

from RefractureRiskLib.batch.inputs import PatientStudy
from RefractureRiskLib.batch.outputs import COHORT_FILE, PATIENTS_DIR, STATUS_FILE
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.store.measurements import _sqlite_path, store_url


def check_places(root: Path, out: Path, store: str, studies: Sequence[PatientStudy]) -> None:
    """Refuse a batch that would write into its own input, before anything is created.

    ``out`` may not be the root folder (its ``patients`` folder would be read as a study next
    time) nor lie in a study folder; a SQLite ``store`` (a URL or a path, as the batch gives
    it) may lie neither in a study folder nor in the root folder outside ``out``. A study
    folder's files are what is analysed and its analysis key; ``out`` may be a folder inside
    the root, which the study discovery leaves out.
    """
    out_path = out.resolve()
    root_path = root.resolve() if root.is_dir() else None
    folders = [s.study_path.resolve() for s in studies]
    _check_studies_apart(studies, folders)
    if out_path == root_path or any(out_path.is_relative_to(f) for f in folders):
        raise InputError(out, "is the batch's input folder or inside a study; choose another --out")
    if root_path is not None and out_path.parent == root_path and _holds_other_files(out_path):
        # a folder of the root is a patient's study: as --out it is left out of the studies
        raise InputError(
            out,
            "is a folder of the batch's input that holds files of its own (a patient's study?) "
            "and no earlier batch's results; choose another --out",
        )
    url = store_url(store, create=False)
    if _in_memory(url):
        raise InputError(
            store, "an in-memory database keeps nothing after the batch; give a file or a server"
        )
    store_path = _sqlite_path(url)
    if store_path is None:  # another database
        return
    store_path = store_path.resolve()
    inside = [f for f in folders if store_path.is_relative_to(f)]
    in_root = root_path is not None and store_path.is_relative_to(root_path)
    if in_root and not store_path.is_relative_to(out_path):
        inside.append(root_path)
    if inside:
        raise InputError(
            store_path,
            f"the measurement store would be written into the batch's input ({inside[0]}); "
            "give --store a place outside it (default: in --out)",
        )


#: What a batch writes into --out (an earlier run's results may be resumed there).
BATCH_OUTPUTS = (PATIENTS_DIR, STATUS_FILE, COHORT_FILE)


def _holds_other_files(folder: Path) -> bool:
    """True when ``folder`` exists, holds something, and none of it is a batch's results."""
    if not folder.is_dir():
        return False
    names = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    return bool(names) and not names & set(BATCH_OUTPUTS)


def _in_memory(url: str) -> bool:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:  # the store itself refuses it, naming it
        return False
    return parsed.drivername.startswith("sqlite") and parsed.database in (None, "", ":memory:")


def _check_studies_apart(studies: Sequence[PatientStudy], folders: Sequence[Path]) -> None:
    """One study folder per patient: a folder listed for two patients (the same images taken
    for both) or inside another patient's folder (its images read as part of that study too)
    is a manifest error, refused naming both patients."""
    by_folder = sorted(zip(folders, (s.patient_id for s in studies), strict=True))
    for (a, pid_a), (b, pid_b) in itertools.pairwise(by_folder):
        if b == a or b.is_relative_to(a):
            raise InputError(
                b,
                f"study folder of patient {pid_b} is {'the same as' if b == a else 'inside'} "
                f"the study folder of patient {pid_a} ({a}); give each patient their own folder",
            )
