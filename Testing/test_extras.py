"""Optional dependencies: the base install is lean, every import is declared, and a command that
needs a missing extra says which one to install in one line (exit code 2).

Missing packages are simulated with ``sys.modules[name] = None``, which makes ``import name``
raise ModuleNotFoundError exactly as an absent package does.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

from RefractureRiskLib import cli
from RefractureRiskLib.core import extras
from RefractureRiskLib.core.extras import EXTRA_OF_MODULE, MissingExtraError, require

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT["optional-dependencies"]

#: Import name -> distribution name, where they differ.
DISTRIBUTION_OF = {
    "SimpleITK": "simpleitk",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "sqlalchemy": "sqlalchemy",
    "dask": "dask",
    "distributed": "dask",
    "gdcm": "python-gdcm",
    "openjpeg": "pylibjpeg-openjpeg",
    "rle": "pylibjpeg-rle",
    "jpeg_ls": "pyjpegls",
}


def _names(requirements: list[str]) -> set[str]:
    """Distribution names of requirement strings ("dask[distributed]>=1" -> "dask")."""
    out = set()
    for req in requirements:
        name = req.split(";")[0]
        for sep in "[<>=!~ ":
            name = name.split(sep)[0]
        out.add(name.strip().lower())
    return out


def _extra_names(extra: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """Distributions an extra pulls, following self-references like refracture-risk[a,b]."""
    names: set[str] = set()
    for req in EXTRAS[extra]:
        if req.startswith("refracture-risk["):
            for sub in req[len("refracture-risk[") : req.index("]")].split(","):
                if sub not in seen:
                    names |= _extra_names(sub, seen | {extra})
        else:
            names |= _names([req])
    return names


BASE = _names(PROJECT["dependencies"])


def test_base_install_pulls_none_of_the_heavy_or_gpl_packages() -> None:
    for name in (
        "dask",
        "sqlalchemy",
        "statsmodels",
        "scikit-learn",
        "pyarrow",
        "highdicom",
        "openpyxl",
        "tqdm",
        "pylibjpeg-libjpeg",
    ):
        assert name not in BASE, name
    assert {"numpy", "scipy", "simpleitk", "pydicom", "pandas", "matplotlib"} <= BASE


def test_no_extra_pulls_the_gpl_jpeg_decoder() -> None:
    for extra in EXTRAS:
        assert "pylibjpeg-libjpeg" not in _extra_names(extra), extra


def test_all_and_test_pull_every_extra() -> None:
    every = set().union(*(_extra_names(e) for e in EXTRAS if e not in ("all", "test")))
    assert every <= _extra_names("all")
    assert every <= _extra_names("test")
    assert {"pytest", "ruff"} <= _extra_names("test")


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level third-party module -> library files importing it (AST, so lazy imports count)."""
    stdlib = set(sys.stdlib_module_names)
    found: dict[str, set[str]] = {}
    for path in (REPO / "RefractureRiskLib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                top = mod.split(".")[0]
                if top not in stdlib and top != "RefractureRiskLib":
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def test_every_library_import_is_declared_in_the_base_or_its_extra() -> None:
    imports = _third_party_imports()
    assert "numpy" in imports and "threadpoolctl" in imports  # the scan sees lazy imports
    undeclared = []
    for module, files in sorted(imports.items()):
        dist = DISTRIBUTION_OF.get(module, module).lower()
        extra = EXTRA_OF_MODULE.get(module)
        declared = dist in BASE if extra is None else dist in _extra_names(extra)
        if not declared:
            undeclared.append(f"{module} ({extra or 'base'}): {sorted(files)[:3]}")
    assert not undeclared, undeclared


def test_every_extra_named_in_the_table_exists() -> None:
    assert set(EXTRA_OF_MODULE.values()) <= set(EXTRAS)


def test_require_names_the_extra_in_one_line(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "statsmodels", None)
    with pytest.raises(MissingExtraError) as info:
        require("statsmodels", what="refracture-risk describe")
    text = str(info.value)
    assert "\n" not in text
    assert "refracture-risk describe" in text and "pip install 'refracture-risk[train]'" in text
    assert info.value.extra == "train"


def test_require_returns_the_module_when_installed() -> None:
    assert require("numpy", extra="train", what="x") is sys.modules["numpy"]


def test_require_keeps_an_import_error_inside_an_installed_package(monkeypatch) -> None:
    """Only the package itself missing is a missing extra; a broken dependency is not hidden."""

    def broken(name, *args, **kwargs):
        raise ModuleNotFoundError("No module named 'somethingelse'", name="somethingelse")

    monkeypatch.setattr(extras.importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError) as info:
        require("sklearn", what="x")
    assert not isinstance(info.value, MissingExtraError)


def _run_cli(argv, capsys) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("missing", "argv", "extra"),
    [
        ("sklearn", ["train", "{cohort}", "--out", "{out}/m.json"], "train"),
        ("statsmodels", ["describe", "{cohort}", "--out", "{out}/d"], "train"),
        ("sqlalchemy", ["batch", "{root}", "--clinical", "{cohort}", "--out", "{out}/b"], "batch"),
        (
            "dask",
            ["batch", "{root}", "--clinical", "{cohort}", "--out", "{out}/b", "--dask-local"],
            "batch",
        ),
        ("sqlalchemy", ["agreement", "--store", "{cohort}"], "store"),
        ("psycopg", ["agreement", "--store", "postgresql+psycopg://u@h/db"], "postgresql"),
        ("openpyxl", ["describe", "{xlsx}", "--out", "{out}/d"], "tables"),
        ("xlrd", ["batch", "{root}", "--clinical", "{xls}", "--out", "{out}/b"], "tables"),
    ],
)
def test_command_with_a_missing_extra_says_which_to_install(
    missing, argv, extra, monkeypatch, tmp_path, capsys
) -> None:
    cohort = tmp_path / "cohort.csv"
    cohort.write_text("patient_id,age_years\np1,70\n")
    (tmp_path / "cohort.xlsx").write_bytes(b"not really excel")
    (tmp_path / "cohort.xls").write_bytes(b"not really excel")
    (tmp_path / "root").mkdir()
    fill = {
        "cohort": cohort,
        "xlsx": tmp_path / "cohort.xlsx",
        "xls": tmp_path / "cohort.xls",
        "root": tmp_path / "root",
        "out": tmp_path,
    }
    monkeypatch.setitem(sys.modules, missing, None)
    monkeypatch.setitem(sys.modules, f"{missing}.distributed", None)
    code, err = _run_cli([a.format(**fill) for a in argv], capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"pip install 'refracture-risk[{extra}]'" in lines[0]
    assert lines[0].startswith(f"refracture-risk {argv[0]}: error:")
    assert not any((tmp_path / d).exists() for d in ("b", "d", "m.json")), "work started"


def test_cli_turns_a_deep_missing_optional_import_into_one_line(monkeypatch, capsys) -> None:
    """A library call that imports an optional package itself gets the same message."""
    from RefractureRiskLib.commands import score

    def needs_highdicom(args):
        import highdicom  # noqa: F401

    monkeypatch.setitem(sys.modules, "highdicom", None)
    monkeypatch.setattr(score, "run", needs_highdicom)
    code, err = _run_cli(["score", "--patient", "{}"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "refracture-risk score: error: needs the optional package 'highdicom': "
        "pip install 'refracture-risk[export]'"
    ]


def test_cli_does_not_hide_a_missing_base_module(monkeypatch) -> None:
    from RefractureRiskLib.commands import score

    def needs_numpy(args):
        raise ModuleNotFoundError("No module named 'numpy'", name="numpy")

    monkeypatch.setattr(score, "run", needs_numpy)
    with pytest.raises(ModuleNotFoundError):
        cli.main(["score", "--patient", "{}"])


def test_table_reader_is_checked_before_reading(monkeypatch, tmp_path) -> None:
    from RefractureRiskLib.stats.tables import write_statistics

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    import pandas as pd

    with pytest.raises(MissingExtraError, match=r"refracture-risk\[tables\]"):
        write_statistics(pd.DataFrame({"a": [1]}), tmp_path / "s.parquet")
    assert not (tmp_path / "s.parquet").exists()
    write_statistics(pd.DataFrame({"a": [1]}), tmp_path / "s.csv")  # CSV needs nothing


def test_compressed_dicom_without_a_decoder_names_the_jpeg_extra(monkeypatch, tmp_path) -> None:
    from pydicom.uid import ExplicitVRLittleEndian, JPEGLosslessSV1

    from RefractureRiskLib.core.errors import InputError
    from RefractureRiskLib.io import dicom_volume

    # With the test install's decoders, JPEG lossless decodes; an unknown syntax is not "missing".
    assert dicom_volume._decoder_installed(JPEGLosslessSV1)
    assert dicom_volume._decoder_installed(ExplicitVRLittleEndian)

    class NoDecoder:
        is_available = False

    monkeypatch.setattr("pydicom.pixels.get_decoder", lambda uid: NoDecoder())
    assert not dicom_volume._decoder_installed(JPEGLosslessSV1)

    class Frame:
        path = tmp_path / "missing.dcm"
        transfer_syntax = str(JPEGLosslessSV1)

    with pytest.raises(InputError) as info:
        dicom_volume._decode_file(Frame(), "PDFF")
    assert "pip install 'refracture-risk[jpeg]'" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_demo_runs_without_highdicom_and_says_what_it_left_out(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(extras, "available", lambda module: module != "highdicom")
    code = cli.main(["demo", "--out", str(tmp_path / "demo")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    # The demo's summary (stdout) ends with the line (commit 90d58b4 moved it there).
    assert "pip install 'refracture-risk[export]'" in captured.out + captured.err
    results = tmp_path / "demo" / "results"
    assert (results / "report.pdf").is_file()
    assert not list(results.glob("*.dcm"))
