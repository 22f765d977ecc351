"""The library is pure Python: importing every module pulls in no slicer, qt or vtk module,
and no lower layer imports a higher one (io -> maps -> roi -> stats -> model -> report)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "RefractureRiskLib"
FORBIDDEN = ("slicer", "qt", "ctk", "vtk", "PythonQt", "PySide6", "PyQt5")
LAYERS = ("io", "maps", "roi", "stats", "model", "report")


def _modules() -> list[str]:
    names = []
    for path in sorted(LIB.rglob("*.py")):
        rel = path.relative_to(LIB.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def test_importing_the_library_loads_no_gui_or_vtk_module():
    code = (
        "import importlib, json, sys\n"
        f"for name in {_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert not bad, f"library imports GUI/VTK modules: {bad}"


def _imported_layers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "RefractureRiskLib" and len(parts) > 1 and parts[1] in LAYERS:
                found.add(parts[1])
    return found


def test_layers_only_import_downwards():
    problems = []
    for layer in LAYERS:
        rank = LAYERS.index(layer)
        for path in (LIB / layer).rglob("*.py"):
            for used in _imported_layers(path):
                if LAYERS.index(used) > rank:
                    problems.append(f"{path.relative_to(LIB)} imports higher layer {used}")
    assert not problems, "\n".join(problems)


#: The scoring side of the risk model: what a clinic (and Slicer, which has no pandas) runs.
MODEL_DIR = LIB / "model"
#: Modules of model/ that are not the scoring side: the dev package.
NOT_SCORING = {"dev"}


def _scoring_modules() -> list[str]:
    return sorted(
        f"RefractureRiskLib.model.{p.stem}"
        for p in MODEL_DIR.glob("*.py")
        if p.stem != "__init__" and p.stem not in NOT_SCORING
    )


def test_scoring_side_imports_only_numpy_and_the_standard_library():
    """Every module of model/ (not model/dev/) loads numpy, the standard library and the project's
    own core and model modules, nothing else: no pandas, scipy, scikit-learn or matplotlib."""
    modules = _scoring_modules()
    assert {"RefractureRiskLib.model.scoring", "RefractureRiskLib.model.modelfile"} <= set(modules)
    code = (
        "import importlib, json, sys\n"
        "before = set(sys.modules)\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    allowed_own = ("RefractureRiskLib.core", "RefractureRiskLib.model")
    problems = []
    for name in loaded:
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top.startswith("_") or top == "numpy":
            continue
        if top == "RefractureRiskLib":
            if name == top or name == "RefractureRiskLib.model.dev":
                continue
            if name.startswith(allowed_own) and not name.startswith("RefractureRiskLib.model.dev."):
                continue
        problems.append(name)
    assert not problems, f"the scoring side loads more than numpy + stdlib: {problems}"


def test_scoring_side_does_not_import_the_development_side():
    """Read from the source: no module of model/ outside model/dev imports model.dev (so the
    split cannot be undone by a lazy import inside a function either)."""
    problems = []
    for path in MODEL_DIR.glob("*.py"):
        if path.stem in NOT_SCORING:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("RefractureRiskLib.model.dev"):
                    problems.append(f"{path.name}: from {node.module}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in ("pandas", "scipy", "sklearn", "matplotlib"):
                        problems.append(f"{path.name}: import {alias.name}")
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.split(".")[0] in ("pandas", "scipy", "sklearn", "matplotlib")
            ):
                problems.append(f"{path.name}: from {node.module}")
    assert not problems, "\n".join(problems)


def test_model_has_no_development_alias():
    """The cohort table lives in ``model/dev/schema.py`` only: no module imports the old
    ``model.schema`` path, and the scoring side has no module that is not numpy-only."""
    assert not (LIB / "model" / "schema.py").exists()
    users = [
        str(path.relative_to(LIB))
        for path in LIB.rglob("*.py")
        if "RefractureRiskLib.model.schema" in path.read_text()
    ]
    assert not users, f"import RefractureRiskLib.model.dev.schema instead: {users}"
