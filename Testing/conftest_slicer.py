"""The slicer-core tests' shared skip and fixtures (issue 15), loaded as a pytest plugin.

A test file of the Slicer module's logic or widget on real MRML (slicer-core) starts with::

    pytest_plugins = ("Testing.conftest_slicer",)
    pytestmark = pytest.mark.slicer_core

Every test marked ``slicer_core`` skips, with the reason, when slicer-core itself is not
importable (``slicer_core_bootstrap.slicer_core_missing_reason``; :func:`pytest_runtest_setup`
below). Each test skips, not the file at import, so under ``REFRACTURE_REQUIRE_REFERENCES=1``
(Testing/conftest.py) each fails with the reason. Nothing else skips: the module
(RefractureRisk/RefractureRisk.py and its package) and the library are imported for real, and an
import error there is an error.

Fixtures (the stand-ins are described in ``slicer_core_bootstrap.py``, which also has the plain
helpers ``volume_nodes`` and ``wait_for_workers``):

- ``env``: a fresh scene and the logics the module needs (``bootstrap``);
- ``module``: the imported module file (once per test file);
- ``logic``: a new ``RefractureRiskLogic`` on ``env``'s scene;
- ``dialogs``: the progress dialogs the handlers open (set ``dialogs.cancel_after`` to press
  Cancel at that look at the Cancel button);
- ``widget``: the module's widget on ``env`` with recording widgets and a plain parameter node;
- ``answers``: the user's answers to the panel's yes/no questions.
"""

from __future__ import annotations

import pytest

from Testing import slicer_core_bootstrap as boot

_MISSING = boot.slicer_core_missing_reason()


@pytest.hookimpl(tryfirst=True)  # before any fixture of the test is set up
def pytest_runtest_setup(item) -> None:
    """Skip a ``slicer_core`` test, with the reason, when slicer-core is not importable."""
    if _MISSING and item.get_closest_marker("slicer_core") is not None:
        pytest.skip(_MISSING)


@pytest.fixture()
def env() -> boot.SlicerCoreEnvironment:
    return boot.bootstrap()


@pytest.fixture(scope="module")
def module():
    return boot.load_module()


@pytest.fixture()
def logic(env, module):
    return module.RefractureRiskLogic()


@pytest.fixture()
def dialogs(monkeypatch):
    """The progress dialogs the handlers open (stand-ins); ``dialogs.cancel_after``: Cancel."""
    import slicer

    class Opened(list):
        cancel_after = None

    opened = Opened()

    def create(**kwargs):
        opened.append(boot.FakeProgressDialog(cancel_after=opened.cancel_after, **kwargs))
        return opened[-1]

    monkeypatch.setattr(slicer.util, "createProgressDialog", create)
    return opened


@pytest.fixture()
def widget(env, module, dialogs):
    w = boot.make_widget(module, env)
    yield w
    w.cleanup()
    boot.remove_fake_application()


@pytest.fixture()
def answers(monkeypatch):
    """The user's answers to the panel's yes/no questions (a list, used in turn; the questions
    asked are recorded in ``answers.asked``, their window titles in ``answers.titles``);
    ``answers.then`` runs after an answer (e.g. to press Cancel in the next progress dialog)."""
    import slicer

    class Answers(list):
        asked: list
        titles: list
        then = None

    given = Answers()
    given.asked, given.titles = [], []

    def confirm(text, windowTitle=None, **kwargs):
        given.asked.append(text)
        given.titles.append(windowTitle)
        if given.then is not None:
            given.then()
        return given.pop(0)

    monkeypatch.setattr(slicer.util, "confirmYesNoDisplay", confirm)
    return given
