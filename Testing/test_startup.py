"""``refracture-risk --help`` and each subcommand's ``--help`` load no heavy package.

Start-up is what a user waits for before anything happens: command modules import what they use
inside ``run``. Checked in a fresh interpreter: the modules loaded when the command exits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from RefractureRiskLib.cli import COMMAND_MODULES

HEAVY = (
    "matplotlib",
    "pandas",
    "scipy",
    "SimpleITK",
    "pydicom",
    "dask",
    "distributed",
    "sqlalchemy",
    "sklearn",
    "statsmodels",
    "highdicom",
    "pyarrow",
    "PIL",
)


#: Runs the command as ``python -m RefractureRiskLib.cli`` does, then lists sys.modules (which,
#: unlike ``-X importtime``, includes modules loaded through importlib).
_PROBE = """
import json, runpy, sys
sys.argv = ["refracture-risk", *json.loads(sys.argv[1])]
try:
    runpy.run_module("RefractureRiskLib.cli", run_name="__main__")
except SystemExit:
    pass
print("MODULES=" + json.dumps(sorted(sys.modules)))
"""


def imported_modules(*args: str) -> set[str]:
    """Every module a new ``refracture-risk ARGS`` process has imported when it exits."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: refracture-risk" in proc.stdout
    line = next(x for x in proc.stdout.splitlines() if x.startswith("MODULES="))
    return set(json.loads(line.removeprefix("MODULES=")))


def _heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in HEAVY)


def test_help_imports_no_heavy_package() -> None:
    names = imported_modules("--help")
    assert {f"RefractureRiskLib.commands.{c}" for c in COMMAND_MODULES} <= names
    assert not _heavy(names), _heavy(names)


def test_help_does_not_load_numpy() -> None:
    """The top-level help lists the commands without building their options (issue 13)."""
    names = imported_modules("--help")
    assert "numpy" not in names, sorted(n for n in names if n.startswith("RefractureRiskLib"))


@pytest.mark.parametrize("command", COMMAND_MODULES)
def test_subcommand_help_imports_no_heavy_package(command: str) -> None:
    names = imported_modules(command, "--help")
    assert not _heavy(names), _heavy(names)


def test_the_check_sees_a_heavy_import(monkeypatch, tmp_path) -> None:
    """A command module importing pydicom at module level is caught (the check can fail)."""
    shim = tmp_path / "sitecustomize.py"
    shim.write_text("import pydicom\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    assert "pydicom" in _heavy(imported_modules("--help"))


# -- the analysis itself (issue 13): what importing the pipeline and running ``analyze`` load --
#: Packages the analysis does not need at import: SimpleITK is loaded when a segmentation is
#: written or a file read; scipy.spatial (which loads scipy.linalg) not at all: the tube profile
#: finds each voxel's nearest centre-line point with numpy (roi.line_points.nearest_line_points).
NOT_ON_IMPORT = ("SimpleITK", "scipy.spatial", "scipy.linalg")
#: ... and not while ``analyze`` runs on a plain study (automatic ROIs).
NOT_IN_ANALYZE = ("scipy.spatial", "scipy.linalg", "SimpleITK", "matplotlib")


def _loaded(names: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(p for p in packages if any(n == p or n.startswith(p + ".") for n in names))


def _modules_after(code: str, *args: str) -> set[str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code + "\nprint('MODULES=' + json.dumps(sorted(sys.modules)))",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("MODULES="))
    return set(json.loads(line.removeprefix("MODULES=")))


def test_importing_the_pipeline_loads_no_simpleitk_nor_scipy_spatial() -> None:
    names = _modules_after("import json, sys\nimport RefractureRiskLib.pipeline")
    assert "RefractureRiskLib.roi.detection" in names  # the check looks where the code is
    assert not _loaded(names, NOT_ON_IMPORT), _loaded(names, NOT_ON_IMPORT)


def test_a_cold_analyze_loads_no_scipy_spatial_simpleitk_or_matplotlib(tmp_path) -> None:
    from RefractureRiskLib.commands.demo import DEMO_CLINICAL
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
    from RefractureRiskLib.phantom.dicom_writer import write_dicom_study

    phantom = generate_phantom(PhantomSpec(seed=1, fractured={"L1": 0.3}, snr=80.0))
    study = tmp_path / "dicom"
    write_dicom_study(phantom.study, study, vendor="GE", seed=1)
    clinical = tmp_path / "patient.json"
    clinical.write_text(json.dumps(DEMO_CLINICAL))
    probe = (
        "import json, runpy, sys\n"
        "sys.argv = ['refracture-risk', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('RefractureRiskLib.cli', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
    )
    out = tmp_path / "out"
    args = ("analyze", str(study), "--clinical", str(clinical), "--index-levels", "L1")
    names = _modules_after(probe, *args, "--out", str(out))
    assert (out / "rois.seg.nrrd").is_file()  # the analysis ran to its end
    assert "RefractureRiskLib.roi.detection" in names  # the automatic ROIs ran
    assert "RefractureRiskLib.io.nrrd" in names and "RefractureRiskLib.report.canvas" in names
    assert not _loaded(names, NOT_IN_ANALYZE), _loaded(names, NOT_IN_ANALYZE)


def test_the_pipeline_check_sees_a_heavy_import(monkeypatch, tmp_path) -> None:
    """scipy.spatial imported on the way (here by sitecustomize) is caught (the check can fail)."""
    (tmp_path / "sitecustomize.py").write_text("import scipy.spatial\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    names = _modules_after("import json, sys\nimport RefractureRiskLib.pipeline")
    assert _loaded(names, NOT_ON_IMPORT) == ["scipy.linalg", "scipy.spatial"]
