"""Run the Slicer module's logic against real MRML from ``slicer-core`` (PyPI), without Qt.

slicer-core ships Slicer's MRML, logic and segmentation libraries and ``slicer.util``, but not
the application: no ``slicer.app``, ``slicer.modules``, Qt/ctk, or the Qt-based Python modules
``slicer.ScriptedLoadableModule``, ``slicer.parameterNodeWrapper`` and ``slicer.i18n``.

:func:`bootstrap` makes a scene usable the way the application would (docs/architecture.md,
Testing): a fresh
``vtkMRMLScene`` assigned to ``slicer.mrmlScene``, the segmentation converter rules registered,
and the volumes, colours, segmentations and markups logics attached to the scene.

:func:`load_module` imports ``RefractureRisk/RefractureRisk.py`` (and, through it, its helper
package ``RefractureRisk/RefractureRiskSlicer``). Because the module's top-level
imports name the three Qt-based Slicer modules above, this file puts TEST-ONLY STAND-INS for them
into ``sys.modules`` when (and only when) the real ones cannot be imported. The stand-ins provide
base classes with the same names and the few behaviours the logic relies on
(``ScriptedLoadableModuleLogic.__init__``; ``tr`` returning its text; ``parameterNodeWrapper``
returning the class unchanged; ``Choice`` accepting its arguments). The parameter node wrapper
and the GUI are therefore NOT exercised by these tests; the logic is exercised unchanged.

:func:`make_widget` builds the module's widget for tests of its handlers (the decisions they
make on a real scene): every .ui widget is a recorder, the parameter node a plain object, and
``slicer.app`` / ``qt`` minimal TEST-ONLY stand-ins (:class:`FakeApplication`,
:func:`install_fake_qt`). What Qt itself does (dialogs, layouts, painting) is not exercised.
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
MODULE_DIR = REPO_ROOT / "RefractureRisk"
MODULE_FILE = MODULE_DIR / "RefractureRisk.py"
MODULE_NAME = "RefractureRisk"

#: The slicer-core release these tests were written against (docs/architecture.md, Testing).
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
    # Slicer puts the module's folder on sys.path (its helper package RefractureRiskSlicer
    # lives there, as DICOMLib does beside DICOM.py).
    if str(MODULE_DIR) not in sys.path:
        sys.path.insert(0, str(MODULE_DIR))
    spec = importlib.util.spec_from_file_location(MODULE_NAME, MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


# -- TEST-ONLY stand-ins for the application, for the widget's handlers --------------------------
# The widget's handlers are plain methods over ``self.ui`` (widgets), ``self._parameterNode`` and
# ``slicer.app``. The stand-ins below let the slicer-core tests call those handlers on a real MRML
# scene: every widget of the .ui is a recorder (attributes can be set; any method call is recorded),
# the parameter node is a plain object with the wrapper class's parameters and defaults, and
# ``slicer.app`` / ``qt`` provide the handful of calls the handlers make. What Qt itself would do
# (dialogs, layouts, painting) is not exercised.


class RecordingWidget:
    """A widget stand-in: set attributes freely; every method call is recorded in ``calls``."""

    def __init__(self, name: str) -> None:
        self.__dict__["name"] = name
        self.__dict__["calls"] = []

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)

        def method(*args, **kwargs):
            self.calls.append((attr, args))
            return None

        return method

    def called(self, attr: str) -> list[tuple]:
        return [args for name, args in self.calls if name == attr]


class RecordingUi:
    """``self.ui``: one :class:`RecordingWidget` per widget name, created on first use."""

    def __getattr__(self, name: str) -> RecordingWidget:
        if name.startswith("__"):
            raise AttributeError(name)
        widget = RecordingWidget(name)
        setattr(self, name, widget)
        return widget


class FakeApplication:
    """``slicer.app`` stand-in: testing mode on (message boxes are only logged), no main window."""

    majorVersion = 5  # noqa: N815 - Qt property names
    minorVersion = 12  # noqa: N815

    def __init__(self, application_logic) -> None:
        self._application_logic = application_logic
        self.testing = True
        self.processed_events_at: list[float] = []

    def testingEnabled(self) -> bool:
        return self.testing

    def setOverrideCursor(self, cursor) -> None:
        pass

    def restoreOverrideCursor(self) -> None:
        pass

    def processEvents(self, *flags) -> None:
        import time

        self.processed_events_at.append(time.perf_counter())

    def applicationLogic(self):
        return self._application_logic

    def topLevelWidgets(self) -> list:
        return []  # no main window

    def connect(self, *args) -> None:
        pass


class FakeProgressDialog:
    """``slicer.util.createProgressDialog`` result: records what it showed; ``cancel_after``:
    the user presses Cancel once the handler has looked at the Cancel button that many times."""

    def __init__(self, cancel_after: int | None = None, **kwargs) -> None:
        self.kwargs = kwargs
        self.labelText = kwargs.get("labelText", "")
        self.value = kwargs.get("value", 0)
        self.maximum = kwargs.get("maximum", 100)
        self.cancel_after = cancel_after
        self.polls = 0
        self.closed = False

    @property
    def wasCanceled(self) -> bool:
        self.polls += 1
        return self.cancel_after is not None and self.polls >= self.cancel_after

    def close(self) -> None:
        self.closed = True


def install_fake_qt():
    """TEST ONLY: a ``qt`` module with the names the handlers use (installed if Qt is absent)."""
    try:
        return importlib.import_module("qt")
    except ImportError:
        pass
    qt = types.ModuleType("qt")
    qt.__doc__ = "TEST-ONLY stand-in installed by Testing/slicer_core_bootstrap.py"
    qt.Qt = types.SimpleNamespace(WaitCursor=3)
    qt.QEventLoop = types.SimpleNamespace(ExcludeUserInputEvents=1, AllEvents=0)
    qt.QDialog = types.SimpleNamespace(Accepted=1, Rejected=0)

    class QInputDialog:
        """Answers as the user told it to (``answer``: an item's index, or None for Cancel).

        Like PythonQt's static ``getItem``, Cancel returns the current item's text, not "".
        """

        answer: int | None = None
        UseListViewForComboBoxItems = 2

        def __init__(self, parent=None) -> None:
            self._items: list[str] = []
            self._text = ""

        @staticmethod
        def getItem(parent, title, label, items, current=0, editable=True, *args):
            chosen = QInputDialog.answer
            return items[current if chosen is None else chosen]

        def setComboBoxItems(self, items) -> None:
            self._items = list(items)

        def setTextValue(self, text) -> None:
            self._text = text

        @property
        def textValue(self) -> str:  # a Qt property: an attribute in PythonQt
            return self._items[self.answer] if self.answer is not None else self._text

        def exec_(self) -> int:
            return 0 if self.answer is None else 1

        exec = exec_

        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    qt.QInputDialog = QInputDialog

    # any other Qt class (widgets built in code): a recorder; never a module attribute such as
    # __file__ (tools that walk sys.modules, e.g. hypothesis, read it)
    def qt_class(name):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: RecordingWidget(name)

    qt.__getattr__ = qt_class
    sys.modules["qt"] = qt
    return qt


def parameter_node_for(module) -> types.SimpleNamespace:
    """The parameter node wrapper's parameters with their defaults (nodes: None)."""
    cls = module.RefractureRiskParameterNode
    values = {name: getattr(cls, name, None) for name in cls.__annotations__}
    return types.SimpleNamespace(**values)


def make_widget(module, env: SlicerCoreEnvironment):
    """The module's widget with recording widgets, a plain parameter node and the stand-in app.

    ``setup()`` (which needs Qt to load the .ui) is not called; the observers it adds on the scene
    and on the interaction node are added here the same way (:meth:`observeApplication`).
    """
    import slicer

    install_fake_qt()
    slicer.app = FakeApplication(env.application_logic)
    widget = module.RefractureRiskWidget()
    widget.ui = RecordingUi()
    widget.logic = module.RefractureRiskLogic()
    widget._parameterNode = parameter_node_for(module)
    widget.observeApplication()
    return widget


def remove_fake_application() -> None:
    import slicer

    if isinstance(getattr(slicer, "app", None), FakeApplication):
        del slicer.app


def volume_nodes(scene) -> int:
    """How many scalar volume nodes ``scene`` holds."""
    return scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")


def wait_for_workers(timeout_s: float = 10.0) -> None:
    """Let a cancelled step's worker finish (it stops at its next bytecode) before the next
    test measures anything."""
    import threading

    for thread in threading.enumerate():
        if thread.name == "RefractureRisk step":
            thread.join(timeout_s)
