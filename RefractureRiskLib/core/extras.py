"""Optional dependencies: which extra brings each, and the one-line message when one is missing.

The base install analyses one patient and writes its report. Training, batch runs, the
measurement store, DICOM export, Excel/Parquet tables and compressed DICOM are extras
(``pyproject.toml``); a command that needs one calls :func:`require` before its work starts, so a
missing package is reported as ``pip install 'refracture-risk[EXTRA]'`` and exit code 2, not as a
traceback half-way through.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: Top-level module name -> the extra of ``pyproject.toml`` that installs it.
EXTRA_OF_MODULE: dict[str, str] = {
    "statsmodels": "train",
    "sklearn": "train",
    "threadpoolctl": "train",
    "dask": "batch",
    "distributed": "batch",
    "tqdm": "batch",
    "sqlalchemy": "store",
    "psycopg": "postgresql",
    "highdicom": "export",
    "pyarrow": "tables",
    "openpyxl": "tables",
    "xlrd": "tables",
    "gdcm": "jpeg",
    "pylibjpeg": "jpeg",
    "openjpeg": "jpeg",
    "rle": "jpeg",
    "jpeg_ls": "jpeg",
    "h5py": "mat73",
}


class MissingExtraError(ImportError):
    """An optional package is not installed; ``str(err)`` is the one line telling how to add it."""

    def __init__(self, module: str, extra: str, what: str) -> None:
        self.module = module
        self.extra = extra
        self.what = what
        super().__init__(
            f"{what} needs the optional package {module!r}: pip install 'refracture-risk[{extra}]'",
            name=module,
        )


def install_hint(module: str) -> str | None:
    """``pip install 'refracture-risk[EXTRA]'`` for an optional module, None for any other."""
    extra = EXTRA_OF_MODULE.get(module.split(".")[0])
    return f"pip install 'refracture-risk[{extra}]'" if extra else None


def available(module: str) -> bool:
    """Whether an optional module is installed (found without importing it)."""
    return importlib.util.find_spec(module) is not None


def require(module: str, *, extra: str | None = None, what: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra that installs it.

    ``what``: the feature that needs it, as the user asked for it (e.g. "batch with --workers").
    ``extra`` defaults to the entry of :data:`EXTRA_OF_MODULE`.
    """
    extra = extra or EXTRA_OF_MODULE[module.split(".")[0]]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        # Only the module itself (or its package) being absent is a missing extra; an import
        # error inside an installed package is a real fault and keeps its traceback.
        missing = (err.name or "").split(".")[0]
        if isinstance(err, ModuleNotFoundError) and missing == module.split(".")[0]:
            raise MissingExtraError(module, extra, what) from None
        raise


def require_store(location: str | None) -> None:
    """Check the packages a measurement store at ``location`` (URL or SQLite path) needs."""
    require("sqlalchemy", what="the measurement store")
    if location and location.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres"):
        require("psycopg", what="a PostgreSQL measurement store")


#: Table file suffix -> (module pandas reads it with, what the user asked for).
_TABLE_READERS: dict[str, str] = {
    ".xlsx": "openpyxl",
    ".xlsm": "openpyxl",
    ".xls": "xlrd",
    ".parquet": "pyarrow",
    ".pq": "pyarrow",
}


def require_table_reader(suffix: str) -> None:
    """Check that pandas can read (or write) a table of this suffix; CSV/TSV/JSON need nothing."""
    module = _TABLE_READERS.get(suffix.lower())
    if module is not None:
        require(module, what=f"reading or writing {suffix} tables")
