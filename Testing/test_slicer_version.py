"""Minimum Slicer version checked at load, and the self-test's offline package check (issue 16)."""

from __future__ import annotations

import types

import pytest

from Testing import slicer_core_bootstrap as boot

pytest_plugins = ("Testing.conftest_slicer",)
pytestmark = pytest.mark.slicer_core


def test_version_problem_message(module):
    assert module.slicerVersionProblem((5, 12)) is None
    assert module.slicerVersionProblem((6, 0)) is None
    message = module.slicerVersionProblem((5, 10))
    assert "5.12" in message and "5.10" in message and "slicer.packaging" in message


@pytest.mark.parametrize(("minor", "refused"), [(10, True), (12, False)])
def test_an_old_slicer_is_told_at_load(module, minor, refused):
    import slicer

    env = boot.bootstrap()
    app = boot.FakeApplication(env.application_logic)
    app.minorVersion = minor
    connected = []
    app.connect = lambda *args: connected.append(args)
    slicer.app = app
    try:
        parent = types.SimpleNamespace()
        module.RefractureRisk(parent)
        assert ("needs 3D Slicer 5.12" in parent.helpText) is refused
        assert (connected == []) is refused  # no sample data registered on an old Slicer
    finally:
        boot.remove_fake_application()


def test_missing_packages_are_named_without_installing(module, tmp_path):
    library = module.library
    assert library.missingRequirements(["numpy>=1.0"]) == []
    missing = library.missingRequirements(["numpy>=999", "surely-not-installed-pkg>=1"])
    assert missing[0].startswith("numpy>=999 (installed: ")
    assert missing[1] == "surely-not-installed-pkg>=1"
    library.requireLibraryDependencies()  # the packages of requirements.txt are installed here
    with pytest.raises(RuntimeError, match=r"surely-not-installed-pkg.*downloads nothing"):
        library.requireLibraryDependencies(extra=("surely-not-installed-pkg>=1",))
