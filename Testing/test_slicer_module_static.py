"""Static checks of the Slicer module and the extension packaging (no Slicer, no slicer-core).

The module file and its helper package (RefractureRisk/RefractureRiskSlicer) are parsed, never
imported: widget names used in the code must exist in the .ui, every ``SlicerParameterName`` must
be a parameter of the ``@parameterNodeWrapper`` class and of a type the widget can show, the
module and the package must do no work and import nothing heavy at import time, the module file
keeps the template's five classes within 700 lines, CMake must list every file, the minimum
Slicer version is declared and checked, the self-test never installs packages, and the icon and
extension description must be valid.
"""

from __future__ import annotations

import ast
import json
import re
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "RefractureRisk"
MODULE_FILE = MODULE_DIR / "RefractureRisk.py"
#: The module's helper package (MRML conversions, display, review, background steps).
PACKAGE_DIR = MODULE_DIR / "RefractureRiskSlicer"
PACKAGE_FILES = sorted(PACKAGE_DIR.glob("*.py"))
#: The template's classes stay one readable file (issue 16): helpers go to the package.
MODULE_MAX_LINES = 700
UI_FILE = MODULE_DIR / "Resources" / "UI" / "RefractureRisk.ui"
MODULE_ICON = MODULE_DIR / "Resources" / "Icons" / "RefractureRisk.png"
EXTENSION_ICON = ROOT / "Resources" / "Icons" / "RefractureRisk.png"
REQUIREMENTS = MODULE_DIR / "Resources" / "requirements.txt"
DESCRIPTION_JSON = ROOT / "RefractureRisk.json"

#: Top-level imports the module may make (docs/architecture.md, Layers): the standard library
#: and these.
ALLOWED_THIRD_PARTY = {"slicer", "qt", "ctk", "vtk", "numpy", "RefractureRiskSlicer"}
#: Decorators allowed on module-level classes (they only register the class).
ALLOWED_DECORATORS = {"parameterNodeWrapper"}
#: MRML widget classes that need the scene (connected to the top widget's mrmlSceneChanged).
MRML_WIDGETS = {"qMRMLNodeComboBox", "qSlicerMarkupsPlaceWidget", "qMRMLTableView"}


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(MODULE_FILE.read_text(encoding="utf-8"), filename=str(MODULE_FILE))


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _all_sources() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in [MODULE_FILE, *PACKAGE_FILES])


@pytest.fixture(scope="module")
def ui() -> ET.Element:
    return ET.parse(UI_FILE).getroot()


def _ui_widgets(ui: ET.Element) -> dict[str, ET.Element]:
    widgets = {w.get("name"): w for w in ui.iter("widget")}
    assert None not in widgets, "a widget in the .ui has no name"
    return widgets


def _dynamic_property(widget: ET.Element, name: str) -> str | None:
    for prop in widget.findall("property"):
        if prop.get("name") == name and prop.get("stdset") == "0":
            return prop.findtext("string")
    return None


def _parameter_class(tree: ast.Module) -> ast.ClassDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
            _decorator_name(d) == "parameterNodeWrapper" for d in node.decorator_list
        ):
            return node
    raise AssertionError("no @parameterNodeWrapper class in RefractureRisk.py")


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return getattr(node, "id", "")


def _parameters(tree: ast.Module) -> dict[str, ast.expr]:
    """Parameter name -> annotation of the wrapper class."""
    cls = _parameter_class(tree)
    return {
        stmt.target.id: stmt.annotation
        for stmt in cls.body
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
    }


def _base_type(annotation: ast.expr) -> tuple[str, list[str]]:
    """("float", ["Choice"]) for ``Annotated[float, Choice(...)]``; ("vtkMRML...", []) for nodes."""
    if isinstance(annotation, ast.Subscript) and getattr(annotation.value, "id", "") == "Annotated":
        elts = annotation.slice.elts  # type: ignore[attr-defined]
        return ast.unparse(elts[0]), [_decorator_name(e) for e in elts[1:]]
    return ast.unparse(annotation), []


# -- .ui <-> code ------------------------------------------------------------------------------
def test_every_widget_the_code_uses_exists_in_the_ui(tree, ui):
    widgets = _ui_widgets(ui)
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "ui"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "self"
    }
    assert len(used) > 15, f"expected the panel's widgets to be used, found {sorted(used)}"
    missing = sorted(used - set(widgets))
    assert not missing, f"widgets used in RefractureRisk.py but absent from the .ui: {missing}"


def test_every_slicer_parameter_name_is_a_parameter_of_a_matching_type(tree, ui):
    parameters = _parameters(tree)
    bound = {}
    for name, widget in _ui_widgets(ui).items():
        param = _dynamic_property(widget, "SlicerParameterName")
        if param is None:
            continue
        assert param in parameters, f"widget {name}: SlicerParameterName {param!r} is no parameter"
        assert param not in bound, f"parameter {param} bound to both {bound[param]} and {name}"
        bound[param] = name
        cls = widget.get("class")
        base, validators = _base_type(parameters[param])
        if base.startswith("vtkMRML"):
            assert cls == "qMRMLNodeComboBox", (
                f"{name}: node parameter {param} needs a node combo box"
            )
            node_types = [
                s.text for s in widget.iter("string") if s.text and s.text.startswith("vtkMRML")
            ]
            assert node_types == [base], f"{name}: nodeTypes {node_types} do not match {base}"
        elif base == "bool":
            assert cls in ("QCheckBox", "ctkCheckBox", "QPushButton"), (
                f"{name}: {cls} cannot show bool"
            )
        elif cls in ("QComboBox", "ctkComboBox"):
            assert base in ("str", "int", "float", "bool") and "Choice" in validators, (
                f"{name}: a combo box needs Annotated[{base}, Choice(...)] for {param}"
            )
        elif base == "str":
            assert cls in ("QLineEdit", "QLabel", "QTextEdit"), f"{name}: {cls} cannot show str"
        elif base in ("float", "int"):
            assert cls in ("QDoubleSpinBox", "QSpinBox", "ctkSliderWidget", "ctkDoubleSpinBox"), (
                name
            )
        else:
            raise AssertionError(f"{name}: no check for parameter type {base}")
    # parameters without a widget must be ones the code sets itself
    unbound = set(parameters) - set(bound)
    assert unbound == {"clinicalInputs"}, f"parameters without a widget: {sorted(unbound)}"


def test_parameter_choices_name_the_library_levels(tree):
    parameters = _parameters(tree)
    assert ast.unparse(parameters["anchorLevel"]).endswith("Choice(['none', *LEVELS])]")
    levels = _module_constant(_parse(PACKAGE_DIR / "mrml.py"), "LEVELS")
    assert levels == VERTEBRAL_LEVELS


def test_mrml_widgets_receive_the_scene(ui):
    top = ui.find("widget").get("name")
    receivers = {
        c.findtext("receiver")
        for c in ui.iter("connection")
        if c.findtext("sender") == top
        and c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
        and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
    }
    mrml = {name for name, w in _ui_widgets(ui).items() if w.get("class") in MRML_WIDGETS}
    assert mrml, "no MRML widgets found in the .ui"
    assert mrml <= receivers, f"MRML widgets without the scene: {sorted(mrml - receivers)}"
    declared = {c.findtext("class") for c in ui.iter("customwidget")}
    used_custom = {w.get("class") for w in ui.iter("widget") if not w.get("class").startswith("Q")}
    assert used_custom <= declared, f"custom widgets not declared: {used_custom - declared}"


def test_buttons_are_connected_to_handlers(tree, ui):
    connected = set()
    handlers = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "connect":
            target = node.func.value  # type: ignore[attr-defined]
            if isinstance(target, ast.Attribute) and getattr(target.value, "attr", "") == "ui":
                connected.add(target.attr)
                slot = node.args[1]
                assert isinstance(slot, ast.Attribute) and slot.attr in handlers, ast.unparse(node)
    buttons = {name for name, w in _ui_widgets(ui).items() if w.get("class") == "QPushButton"}
    assert buttons <= connected, f"buttons that do nothing: {sorted(buttons - connected)}"


# -- import-time behaviour -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", [MODULE_FILE, *PACKAGE_FILES], ids=lambda p: p.relative_to(MODULE_DIR).as_posix()
)
def test_top_level_imports_are_light(path):
    allowed = set(sys.stdlib_module_names) | ALLOWED_THIRD_PARTY
    for node in _parse(path).body:
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # within the package
                assert path.parent == PACKAGE_DIR, f"{path.name}: relative import"
                continue
            roots = [node.module.split(".")[0]]
        else:
            continue
        bad = [r for r in roots if r not in allowed]
        assert not bad, (
            f"{path.name} line {node.lineno}: top-level import of {bad}; import it inside a "
            "function"
        )
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"^\s*(import|from)\s+RefractureRiskLib", text, re.M), (
        "RefractureRiskLib must be imported lazily through library.lib()"
    )


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except ValueError:
        return False
    return True


def _module_constant(tree: ast.Module, name: str):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"no module constant {name}")


@pytest.mark.parametrize(
    "path", [MODULE_FILE, *PACKAGE_FILES], ids=lambda p: p.relative_to(MODULE_DIR).as_posix()
)
def test_no_work_at_import_time(path):
    """Module level holds only imports, docstrings, literal constants, functions and classes."""
    for node in _parse(path).body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # docstring
        if isinstance(node, ast.Assign):
            assert _is_literal(node.value), f"{path.name} line {node.lineno}: non-literal constant"
            continue
        if isinstance(node, ast.ClassDef):
            for deco in node.decorator_list:
                assert _decorator_name(deco) in ALLOWED_DECORATORS, f"class {node.name}: decorator"
            for stmt in node.body:
                ok = isinstance(stmt, (ast.FunctionDef, ast.AnnAssign, ast.Pass)) or (
                    isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                )
                assert ok, f"class {node.name} line {stmt.lineno}: statement runs at import"
                if isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                    assert _is_literal(stmt.value), f"class {node.name}: non-literal default"
            continue
        raise AssertionError(f"line {node.lineno}: {type(node).__name__} runs at import time")


def test_template_classes_present(tree):
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    bases = {name: [ast.unparse(b) for b in c.bases] for name, c in classes.items()}
    assert bases["RefractureRisk"] == ["ScriptedLoadableModule"]
    assert "ScriptedLoadableModuleWidget" in bases["RefractureRiskWidget"]
    # the library compositions of the steps are a mixin from the package (steps.py)
    assert bases["RefractureRiskLogic"] == ["WorkflowSteps", "ScriptedLoadableModuleLogic"]
    assert bases["RefractureRiskTest"] == ["ScriptedLoadableModuleTest"]
    source = _all_sources()
    for api in (
        "slicer.util.loadUI",
        "connectGui",
        "slicer.util.tryWithErrorDisplay",
        "slicer.packaging.pip_ensure",
        "slicer.util.createProgressDialog",
        "registerCustomSampleDataSource",
        DEMO_WARNING_IN_HELP,
    ):
        assert api in source, f"{api!r} not used in the module"


DEMO_WARNING_IN_HELP = "NOT validated and NOT for clinical"


def test_logic_has_no_gui_calls(tree):
    logic = next(
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RefractureRiskLogic"
    )
    steps = next(
        n
        for n in _parse(PACKAGE_DIR / "steps.py").body
        if isinstance(n, ast.ClassDef) and n.name == "WorkflowSteps"
    )
    methods = [m for cls in (logic, steps) for m in cls.body if isinstance(m, ast.FunctionDef)]
    assert len(methods) > 20
    for method in methods:
        text = ast.unparse(method)
        for token in ("qt.", "ctk.", "slicer.app", "errorDisplay", "self.ui", "slicer.modules"):
            assert token not in text, f"RefractureRiskLogic.{method.name} uses {token}"


def test_module_file_keeps_to_the_template():
    """The template's five classes in one readable file; helpers live in the package."""
    lines = MODULE_FILE.read_text(encoding="utf-8").count("\n")
    assert lines <= MODULE_MAX_LINES, f"RefractureRisk.py has {lines} lines"
    classes = [n.name for n in _parse(MODULE_FILE).body if isinstance(n, ast.ClassDef)]
    assert classes == [
        "RefractureRisk",
        "RefractureRiskParameterNode",
        "RefractureRiskWidget",
        "RefractureRiskLogic",
        "RefractureRiskTest",
    ]


# -- packaging -------------------------------------------------------------------------------------
def _cmake_set(text: str, name: str) -> str:
    match = re.search(rf'set\({name}\s+"([^"]*)"\)', text)
    assert match, f"{name} not set in CMakeLists.txt"
    return match.group(1)


def test_top_level_cmakelists_declares_the_extension():
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r"^project\(RefractureRisk\)", text, re.M)
    for var in (
        "EXTENSION_HOMEPAGE",
        "EXTENSION_CONTRIBUTORS",
        "EXTENSION_DESCRIPTION",
        "EXTENSION_ICONURL",
        "EXTENSION_SCREENSHOTURLS",
    ):
        assert _cmake_set(text, var).strip(), var
    assert _cmake_set(text, "EXTENSION_CATEGORY") == "Quantification"
    assert _cmake_set(text, "EXTENSION_DEPENDS") == "NA"
    assert _cmake_set(text, "EXTENSION_ICONURL").endswith("Resources/Icons/RefractureRisk.png")
    for url in _cmake_set(text, "EXTENSION_SCREENSHOTURLS").split():
        local = url.split("/main/", 1)[1]
        assert (ROOT / local).is_file(), f"screenshot {local} is not in the repository"
    assert "find_package(Slicer REQUIRED)" in text
    assert re.search(r"^add_subdirectory\(RefractureRisk\)", text, re.M)
    assert "RefractureRiskLib" in text and "ctkMacroCompilePythonScript" in text
    assert (ROOT / "RefractureRiskLib" / "__init__.py").is_file()


def test_module_cmakelists_lists_the_module_files():
    text = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    name = re.search(r"set\(MODULE_NAME (\w+)\)", text).group(1)
    assert name == "RefractureRisk"
    assert "slicerMacroBuildScriptedModule(" in text
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text
    listed = {
        entry.replace("${MODULE_NAME}", name)
        for entry in re.findall(r"^\s+(\S+\.(?:py|png|ui|txt))\s*$", text, re.M)
    }
    assert {"RefractureRisk.py", "Resources/UI/RefractureRisk.ui"} <= listed
    package = {p.relative_to(MODULE_DIR).as_posix() for p in PACKAGE_FILES}
    assert package and package <= listed, f"not in MODULE_PYTHON_SCRIPTS: {package - listed}"
    for entry in listed:
        assert (MODULE_DIR / entry).is_file(), f"CMake lists {entry}, which does not exist"
    for sub in re.findall(r"^\s*add_subdirectory\((\w+)\)", text, re.M):
        assert (MODULE_DIR / sub / "CMakeLists.txt").is_file(), (
            f"add_subdirectory({sub}) is missing"
        )
    resources = {
        str(p.relative_to(MODULE_DIR)) for p in (MODULE_DIR / "Resources").rglob("*") if p.is_file()
    }
    assert resources <= listed, f"resources CMake does not install: {sorted(resources - listed)}"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("icon", [MODULE_ICON, EXTENSION_ICON], ids=["module", "extension"])
def test_icon_is_128_png(icon):
    assert _png_size(icon) == (128, 128)


def test_requirements_are_project_dependencies():
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = {
        re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower()
        for dep in pyproject["project"]["dependencies"]
    }
    lines = [
        ln.strip()
        for ln in REQUIREMENTS.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines
    for line in lines:
        name = re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower()
        assert name in declared, f"requirements.txt names {name}, which pyproject.toml does not"


#: Slicer ExtensionsIndex catalog entry schema 1.0.2 (Slicer/Schemas): property -> JSON types.
SCHEMA_1_0_2_PROPERTIES = {
    "$schema": str,
    "category": str,
    "scm_url": str,
    "scm_revision": str,
    "scm_type": str,
    "build_dependencies": list,
    "dicom_support_rule": str,
    "build_subdirectory": str,
    "enabled": bool,
    "tier": int,
}


def test_extension_description_json():
    doc = json.loads(DESCRIPTION_JSON.read_text(encoding="utf-8"))
    assert doc["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.2.json#")
    for key in ("$schema", "category", "scm_url"):
        assert key in doc, f"required {key} missing"
    extra = set(doc) - set(SCHEMA_1_0_2_PROPERTIES)
    assert not extra, f"properties the schema does not allow: {extra}"
    for key, value in doc.items():
        expected = SCHEMA_1_0_2_PROPERTIES[key]
        assert isinstance(value, expected) and not (expected is int and isinstance(value, bool)), (
            key
        )
    assert all(isinstance(d, str) for d in doc.get("build_dependencies", []))
    assert doc.get("scm_type", "git") in ("git", "local")
    assert 1 <= doc.get("tier", 1) <= 5
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert doc["category"] == _cmake_set(cmake, "EXTENSION_CATEGORY")


def test_self_test_runs_the_slicer_core_workflow(tree):
    """The Slicer self-test and the slicer-core test share one workflow function."""

    def calls(node: ast.AST) -> set[str]:
        return {
            getattr(n.func, "id", getattr(n.func, "attr", ""))
            for n in ast.walk(node)
            if isinstance(n, ast.Call)
        }

    test_class = next(
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Test")
    )
    assert "runWorkflowChecks" in calls(test_class)
    core_test = ast.parse((ROOT / "Testing" / "test_slicer_core_logic.py").read_text("utf-8"))
    workflow = next(
        n
        for n in core_test.body
        if isinstance(n, ast.FunctionDef) and n.name == "test_workflow_on_phantom"
    )
    assert "runWorkflowChecks" in calls(workflow)
    assert "generatePhantomStudy" in calls(test_class) and "generatePhantomStudy" in calls(workflow)


# -- issue 16: rough edges, version, offline self-test -------------------------------------------
def test_store_path_browse_can_name_a_new_file(ui):
    """ctkPathLineEdit opens a save dialog (a new file name allowed) only with Writable."""
    widget = _ui_widgets(ui)["storePathLineEdit"]
    filters = next(
        p.findtext("set") for p in widget.findall("property") if p.get("name") == "filters"
    )
    flags = {f.strip() for f in filters.split("|")}
    assert {"ctkPathLineEdit::Files", "ctkPathLineEdit::Writable"} <= flags, flags


def test_minimum_slicer_version_is_declared_and_checked(tree):
    constant = _module_constant(tree, "MINIMUM_SLICER_VERSION")
    assert constant == (5, 12)
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r'set\(REFRACTURERISK_MINIMUM_SLICER_VERSION "5\.12"\)', cmake)
    assert "FATAL_ERROR" in cmake.split("REFRACTURERISK_MINIMUM_SLICER_VERSION", 1)[1]
    module = next(
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RefractureRisk"
    )
    text = ast.unparse(module)
    assert "slicerVersionProblem" in text and "slicer.app.majorVersion" in text


def test_self_test_needs_no_network(tree):
    """The self-test checks the packages and never installs (pip_ensure skips in testing mode
    unless told otherwise; a test must not download)."""
    assert "skip_in_testing=False" not in _all_sources()
    test_class = next(
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RefractureRiskTest"
    )
    text = ast.unparse(test_class)
    assert "requireLibraryDependencies" in text
    assert "pip_ensure" not in text and "pip_install" not in text and "ensureLibrary" not in text
