"""Echo images where the panel expects maps (issue 14, point 3), on a real MRML scene
(slicer-core): a DICOM folder of the phantom's six echoes is recognised as echoes, the panel
asks, computes PDFF, R2*, water, fat and the field map in its worker with progress and cancel,
and the volumes reach the scene with provenance saying they were computed from the echoes. A
"no" or a cancel leaves the scene as it was. The logic's own checks (recognition, progress,
provenance, PDFF against the truth) are ``workflow.echoChecks``, which the self-test runs too.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from RefractureRiskLib.maps.fatwater.study import COMPUTED_FROM_ECHOES
from Testing import slicer_core_bootstrap as boot

_REASON = boot.slicer_core_missing_reason()
pytestmark = [
    pytest.mark.slicer_core,
    pytest.mark.skipif(bool(_REASON), reason=_REASON or "slicer-core present"),
]


# -- the fixtures of test_slicer_widget.py: a scene, the module, its widget, progress dialogs ----
@pytest.fixture()
def env():
    return boot.bootstrap()


@pytest.fixture(scope="module")
def module():
    return boot.load_module()


@pytest.fixture()
def dialogs(monkeypatch):
    """The progress dialogs the handlers open (stand-ins, see slicer_core_bootstrap)."""
    import slicer

    opened = []

    def create(**kwargs):
        opened.append(boot.FakeProgressDialog(**kwargs))
        return opened[-1]

    monkeypatch.setattr(slicer.util, "createProgressDialog", create)
    return opened


@pytest.fixture()
def widget(env, module, dialogs):
    w = boot.make_widget(module, env)
    yield w
    w.cleanup()
    boot.remove_fake_application()


@pytest.fixture(scope="module")
def echo_phantom(tmp_path_factory):
    """The spine phantom's six echoes (1.5 T, 24 x 136 x 136) as Siemens-style magnitude and
    phase DICOM, one file per slice, echo and component (288 files)."""
    from RefractureRiskLib.phantom import PhantomSpec
    from RefractureRiskLib.phantom.echo_dicom import write_echo_dicom
    from RefractureRiskLib.phantom.echoes import lumbar_echoes

    spec = PhantomSpec(seed=4, in_plane_spacing_mm=2.5, slice_thickness_mm=4.0)
    phantom = lumbar_echoes(spec, snr=40.0, seed=4)
    folder = write_echo_dicom(phantom.echoes, tmp_path_factory.mktemp("echoes"), seed=4)
    return phantom, folder


@pytest.fixture()
def answers(monkeypatch):
    """The user's answers to the panel's yes/no questions (a list; the questions asked are
    recorded in ``answers.asked``); ``answers.then`` runs after an answer (e.g. to press
    Cancel in the next progress dialog)."""
    import slicer

    class Answers(list):
        asked: list
        then = None

    given = Answers()
    given.asked = []

    def confirm(text, windowTitle=None, **kwargs):
        given.asked.append(text)
        if given.then is not None:
            given.then()
        return given.pop(0)

    monkeypatch.setattr(slicer.util, "confirmYesNoDisplay", confirm)
    return given


def _volumeNodes(scene):
    return scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")


def _waitForWorkers():
    """Let a cancelled step's worker finish (it stops at its next bytecode) before the next
    test measures anything."""
    for thread in threading.enumerate():
        if thread.name == "RefractureRisk step":
            thread.join(10.0)


def test_the_logic_recognises_computes_and_adds_echo_maps(module, env):
    """workflow.echoChecks (the self-test runs it too): recognised, cancelled halfway, computed
    with progress, in the scene with provenance, PDFF as the phantom's."""
    messages = module.workflow.echoChecks(module.RefractureRiskLogic())
    _waitForWorkers()
    assert messages[0] == "echo images recognised as echoes, not maps"
    assert messages[1] == "computing the maps cancelled halfway"
    assert messages[-1].startswith("maps computed from the echoes")


def test_the_panel_offers_to_compute_the_maps_and_loads_them(
    widget, env, dialogs, answers, echo_phantom
):
    phantom, folder = echo_phantom
    widget._ensureDependencies = lambda *a, **k: None
    widget.ui.dicomFolderPathLineEdit.currentPath = str(folder)
    answers.append(True)
    widget.onLoadDicomFolder()
    assert len(answers.asked) == 1
    assert "6 echo(es)" in answers.asked[0] and "magnitude + phase" in answers.asked[0]
    assert "Compute PDFF, R2*" in answers.asked[0]
    assert [d.labelText.split("\n")[0] for d in dialogs] == [
        "Reading DICOM...",
        "Computing the maps from the echoes...",
    ]
    assert all(d.closed for d in dialogs) and dialogs[-1].value >= 90
    p = widget._parameterNode
    for kind in ("pdff", "r2s", "water", "fat"):
        node = getattr(p, f"{kind}Volume")
        assert node is not None and env.scene.GetNodeByID(node.GetID()) is node, kind
        assert COMPUTED_FROM_ECHOES in node.GetDescription(), kind
    fieldmaps = [
        node
        for node in env.scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
        if node.GetName() == "RefractureRisk field map (Hz)"
    ]
    assert len(fieldmaps) == 1
    assert _volumeNodes(env.scene) == 5
    study = widget._study()
    assert study.provenance.series["pdff"].classified_by == COMPUTED_FROM_ECHOES
    assert study.provenance.field_strength_t == 1.5
    inside = phantom.tissue & (np.abs(phantom.echoes.signal[..., 0]) > 0.3)
    assert abs(float(np.mean(study.pdff.array[inside] - phantom.pdff_pct[inside]))) < 1.0
    assert widget.logic.dicomSource is None  # SEG/SR export refuses: no DICOM PDFF


def test_no_to_the_question_loads_nothing(widget, env, dialogs, answers, echo_phantom):
    _phantom, folder = echo_phantom
    widget._ensureDependencies = lambda *a, **k: None
    widget.ui.dicomFolderPathLineEdit.currentPath = str(folder)
    answers.append(False)
    widget.onLoadDicomFolder()
    assert len(answers.asked) == 1 and len(dialogs) == 1  # nothing computed
    assert _volumeNodes(env.scene) == 0 and widget._parameterNode.pdffVolume is None


class _CancelWhen(boot.FakeProgressDialog):
    """A progress dialog whose Cancel is pressed once ``when(dialog)`` is true."""

    def __init__(self, when, **kwargs) -> None:
        super().__init__(**kwargs)
        self.when = when

    @property
    def wasCanceled(self) -> bool:
        self.polls += 1
        return self.when(self)


@pytest.mark.parametrize(
    "when",
    [lambda d: d.polls >= 2, lambda d: d.value >= 40],
    ids=["while reading the echoes", "while separating"],
)
def test_a_cancelled_computation_adds_nothing(
    widget, env, dialogs, answers, echo_phantom, monkeypatch, when
):
    """Cancel while the echoes are read (a library call that reports nothing: the asynchronous
    cancel) or in the voxel fit: no volume, no companion field map, no DICOM source."""
    import slicer
    from RefractureRiskSlicer import studies

    _phantom, folder = echo_phantom
    widget._ensureDependencies = lambda *a, **k: None
    widget.ui.dicomFolderPathLineEdit.currentPath = str(folder)

    def create(**kwargs):
        dialogs.append(_CancelWhen(when, **kwargs))
        return dialogs[-1]

    answers.append(True)
    answers.then = lambda: monkeypatch.setattr(slicer.util, "createProgressDialog", create)
    before, kept = env.scene.GetNumberOfNodes(), list(studies._companions)
    widget.onLoadDicomFolder()  # a cancel is no error
    _waitForWorkers()
    assert len(dialogs) == 2 and dialogs[-1].closed and when(dialogs[-1])
    assert dialogs[-1].value < 100
    assert env.scene.GetNumberOfNodes() == before
    assert widget._parameterNode.pdffVolume is None and widget.logic.dicomSource is None
    assert studies._companions == kept  # no field map waiting to be added


def test_library_progress_reads_counts_and_never_goes_back(module):
    from RefractureRiskSlicer import tasks

    seen = []
    say = tasks.libraryProgress(lambda message, fraction: seen.append(fraction), 0.2, 0.6)
    for message in ("field map: 9 levels", "voxel fit 50%", "scanned 1 of 4 files", "done"):
        say(message)
    assert seen == pytest.approx([0.2, 0.4, 0.4, 0.4])
    say("voxel fit 100%")
    assert seen[-1] == pytest.approx(0.6)
