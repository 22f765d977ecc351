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
