"""RefractureRiskLib on first use, and the Python packages it needs that Slicer does not ship."""

import importlib
import os
import sys

#: Python packages the library needs that Slicer does not ship (one requirement a line), in
#: the module's Resources folder.
REQUIREMENTS_FILE = "requirements.txt"


def requirementsPath():
    moduleDir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(moduleDir, "Resources", REQUIREMENTS_FILE)


def ensureLibraryOnPath():
    """Make ``import RefractureRiskLib`` work when the module runs from a source checkout.

    Installed as an extension, CMake puts RefractureRiskLib beside the module file (a folder
    Slicer already has on sys.path); from source it is in the extension root, one folder up.
    """
    moduleDir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for candidate in (moduleDir, os.path.dirname(moduleDir)):
        if os.path.isdir(os.path.join(candidate, "RefractureRiskLib")):
            if candidate not in sys.path:
                sys.path.insert(0, candidate)
            return


def lib(name):
    """``RefractureRiskLib.<name>``, imported on first use (never at module import)."""
    ensureLibraryOnPath()
    return importlib.import_module(f"RefractureRiskLib.{name}")


def requirementLines(path=None):
    """The requirement strings of a requirements file (comments and pip options skipped)."""
    with open(path or requirementsPath(), encoding="utf-8") as f:
        lines = [line.split("#", 1)[0].strip() for line in f]
    return [line for line in lines if line and not line.startswith("-")]


def missingRequirements(requirements):
    """The requirements (strings) not satisfied by the installed distributions; no network."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    missing = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            missing.append(text)
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            missing.append(f"{text} (installed: {installed})")
    return missing


def ensureLibraryDependencies(extra=()):
    """Install RefractureRiskLib's missing packages after the user confirms (first use).

    ``slicer.packaging.pip_ensure`` shows the confirmation dialog and raises RuntimeError when
    the user declines; ``extra``: requirements only some actions need (the store's driver).
    """
    import slicer.packaging

    requirements = [*requirementLines(), *extra]
    slicer.packaging.pip_ensure(requirements, requester="RefractureRisk")


def requireLibraryDependencies(extra=()):
    """Refuse, naming them, when packages the library needs are missing (never installs).

    The self-test uses this: it must run offline, so a missing package is a clear failure.
    """
    missing = missingRequirements([*requirementLines(), *extra])
    if missing:
        raise RuntimeError(
            "RefractureRisk needs Python packages that are not installed: "
            + ", ".join(missing)
            + ". Install them once (open the RefractureRisk module and load a study: it offers "
            "to install them), then run the test again; the test itself downloads nothing."
        )
