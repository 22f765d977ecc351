"""Run the Slicer module's logic against real MRML from ``slicer-core`` (PyPI), without Qt.

slicer-core ships Slicer's MRML, logic and segmentation libraries and ``slicer.util``, but not
the application: no ``slicer.app``, ``slicer.modules``, Qt/ctk, or the Qt-based Python modules
``slicer.ScriptedLoadableModule``, ``slicer.parameterNodeWrapper`` and ``slicer.i18n``.

:func:`bootstrap` makes a scene usable the way the application would (DESIGN.md §7): a fresh
``vtkMRMLScene`` assigned to ``slicer.mrmlScene``, the segmentation converter rules registered,
and the volumes, colours, segmentations and markups logics attached to the scene.

:func:`load_module` imports ``RefractureRisk/RefractureRisk.py``. Because the module's top-level
imports name the three Qt-based Slicer modules above, this file puts TEST-ONLY STAND-INS for them
into ``sys.modules`` when (and only when) the real ones cannot be imported. The stand-ins provide
base classes with the same names and the few behaviours the logic relies on
(``ScriptedLoadableModuleLogic.__init__``; ``tr`` returning its text; ``parameterNodeWrapper``
returning the class unchanged; ``Choice`` accepting its arguments). The widget, the parameter node
wrapper and the GUI are therefore NOT exercised by these tests; the logic is exercised unchanged.
Inside Slicer none of this is used.
"""

from __future__ import annotations

import importlib.util
import sys
import types
import unittest
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODULE_FILE = REPO_ROOT / "RefractureRisk" / "RefractureRisk.py"
MODULE_NAME = "RefractureRisk"

#: The slicer-core release these tests were written against (DESIGN.md §7).
SLICER_CORE_PIN = "slicer-core==5.12.4.0"


def slicer_core_missing_reason() -> str | None:
    """Why slicer-core cannot be used here, or None when it can."""
    try:
        import slicer
        import slicer.util  # noqa: F401
        from slicer import vtkMRMLScene  # noqa: F401
    except Exception as err:  # ImportError, or a broken binary install
        problem = f"{type(err).__name__}: {err}"
        return f"slicer-core is not importable ({problem}); pip install {SLICER_CORE_PIN}"
    return None


@dataclass
class SlicerCoreEnvironment:
    """The scene and the module logics created by :func:`bootstrap`."""

    scene: object
    application_logic: object
    color_logic: object
    volumes_logic: object
    segmentations_logic: object
    markups_logic: object


def bootstrap() -> SlicerCoreEnvironment:
    """A fresh scene set as ``slicer.mrmlScene`` with the logics the module's logic needs."""
    import slicer

    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    registered = {type(rule).__name__ for rule in _rules(factory)}
    for rule_class in (
        "vtkBinaryLabelmapToClosedSurfaceConversionRule",
        "vtkClosedSurfaceToBinaryLabelmapConversionRule",
        "vtkClosedSurfaceToFractionalLabelmapConversionRule",
        "vtkFractionalLabelmapToClosedSurfaceConversionRule",
    ):
        if rule_class not in registered and hasattr(slicer, rule_class):
            factory.RegisterConverterRule(getattr(slicer, rule_class)())

    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    color_logic = slicer.vtkSlicerColorLogic()
    color_logic.SetMRMLApplicationLogic(app_logic)
    color_logic.SetMRMLScene(
        scene
    )  # adds the built-in colour tables (file-based ones need the app)
    app_logic.SetColorLogic(color_logic)
    volumes_logic = slicer.vtkSlicerVolumesLogic()
    volumes_logic.SetMRMLApplicationLogic(app_logic)
    volumes_logic.SetMRMLScene(scene)
    segmentations_logic = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations_logic.SetMRMLApplicationLogic(app_logic)
    segmentations_logic.SetMRMLScene(scene)
    markups_logic = slicer.vtkSlicerMarkupsLogic()
    markups_logic.SetMRMLApplicationLogic(app_logic)
    markups_logic.SetMRMLScene(scene)
    return SlicerCoreEnvironment(
        scene, app_logic, color_logic, volumes_logic, segmentations_logic, markups_logic
    )


def _rules(factory) -> list:
    rules = factory.GetConverterRules()
    try:
        return list(rules)
    except TypeError:
        return []


def install_gui_stand_ins() -> list[str]:
    """TEST ONLY: stand-ins for Slicer's Qt-based Python modules that slicer-core lacks.

    Installs nothing for a module that imports for real. Returns the names it installed.
    """
    import slicer

    installed = []

    def needs(name: str) -> bool:
        try:
            importlib.import_module(name)
        except ImportError:
            return True
        return False

    if needs("slicer.i18n"):
        i18n = types.ModuleType("slicer.i18n")
        i18n.tr = lambda text: text
        i18n.translate = lambda context, text: text
        _install("slicer.i18n", i18n, slicer)
        installed.append("slicer.i18n")

    if needs("slicer.parameterNodeWrapper"):
        pnw = types.ModuleType("slicer.parameterNodeWrapper")

        def parameter_node_wrapper(cls):
            return cls

        class _Validator:
            def __init__(self, *args, **kwargs) -> None:
                self.args = args

        pnw.parameterNodeWrapper = parameter_node_wrapper
        for name in ("Choice", "WithinRange", "Minimum", "Maximum", "Default"):
            setattr(pnw, name, type(name, (_Validator,), {}))
        _install("slicer.parameterNodeWrapper", pnw, slicer)
        installed.append("slicer.parameterNodeWrapper")

    if needs("slicer.ScriptedLoadableModule"):
        slm = types.ModuleType("slicer.ScriptedLoadableModule")

        class ScriptedLoadableModule:
            def __init__(self, parent) -> None:
                self.parent = parent

        class ScriptedLoadableModuleWidget:
            def __init__(self, parent=None) -> None:
                self.parent = parent

        class ScriptedLoadableModuleLogic:
            """Same constructor behaviour as Slicer's: records the module name."""

            def __init__(self, parent=None) -> None:
                name = type(self).__name__
                self.moduleName = name[:-5] if name.endswith("Logic") else name
                self.isSingletonParameterNode = True

            def getParameterNode(self):
                raise NotImplementedError("parameter nodes need the Slicer application")

        class ScriptedLoadableModuleTest(unittest.TestCase):
            def delayDisplay(self, message, *args, **kwargs) -> None:
                print(message)

        for cls in (
            ScriptedLoadableModule,
            ScriptedLoadableModuleWidget,
            ScriptedLoadableModuleLogic,
            ScriptedLoadableModuleTest,
        ):
            setattr(slm, cls.__name__, cls)
        _install("slicer.ScriptedLoadableModule", slm, slicer)
        installed.append("slicer.ScriptedLoadableModule")
    return installed


def _install(name: str, module: types.ModuleType, parent) -> None:
    module.__doc__ = "TEST-ONLY stand-in installed by Testing/slicer_core_bootstrap.py"
    sys.modules[name] = module
    setattr(parent, name.rsplit(".", 1)[1], module)


def load_module() -> types.ModuleType:
    """Import RefractureRisk/RefractureRisk.py (stand-ins installed first where needed)."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    install_gui_stand_ins()
    spec = importlib.util.spec_from_file_location(MODULE_NAME, MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module
