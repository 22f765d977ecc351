"""Echo images where the panel expects maps (issue 14, point 3), on a real MRML scene
(slicer-core): a DICOM folder of the phantom's six echoes is recognised as echoes, the panel
asks, computes PDFF, R2*, water, fat and the field map in its worker with progress and cancel,
and the volumes reach the scene with provenance saying they were computed from the echoes. A
"no" or a cancel leaves the scene as it was. The logic's own checks (recognition, progress,
provenance, PDFF against the truth) are ``workflow.echoChecks``, which the self-test runs too.
"""

from __future__ import annotations

import numpy as np
import pytest

from RefractureRiskLib.maps.fatwater.study import COMPUTED_FROM_ECHOES
from Testing import slicer_core_bootstrap as boot

pytest_plugins = ("Testing.conftest_slicer",)
pytestmark = pytest.mark.slicer_core


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


def test_the_logic_recognises_computes_and_adds_echo_maps(module, env):
    """workflow.echoChecks (the self-test runs it too): recognised, cancelled halfway, computed
    with progress, in the scene with provenance, PDFF as the phantom's."""
    messages = module.workflow.echoChecks(module.RefractureRiskLogic())
    boot.wait_for_workers()
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
    assert all(d.closed for d in dialogs) and dialogs[-1].value == 100
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
    assert boot.volume_nodes(env.scene) == 5
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
    assert boot.volume_nodes(env.scene) == 0 and widget._parameterNode.pdffVolume is None


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
    boot.wait_for_workers()
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


# -- the separation's choices (fat spectrum, precession) and echoes beside vendor maps ----------
@pytest.fixture(scope="module")
def maps_and_echoes(module, tmp_path_factory):
    """One exam with the vendor's maps (GE style) and the six raw echoes in the same study."""
    folder = tmp_path_factory.mktemp("maps_and_echoes")
    return module.workflow.writeMapsAndEchoes(str(folder)), folder


def test_the_panel_offers_the_library_choices_with_the_cli_defaults(module):
    import argparse

    from RefractureRiskSlicer import fatwater

    from RefractureRiskLib.commands.options import add_separation_arguments
    from RefractureRiskLib.maps.fatwater import DEFAULT_SPECTRUM, SPECTRA

    parser = argparse.ArgumentParser()
    add_separation_arguments(parser)
    cli = parser.parse_args([])
    node = boot.parameter_node_for(module)  # the wrapper's parameters with their defaults
    assert (node.fatSpectrum, node.precession) == (cli.spectrum, cli.precession)
    assert fatwater.Separation() == (cli.spectrum, cli.precession)
    assert cli.spectrum == DEFAULT_SPECTRUM.name
    assert tuple(SPECTRA) == fatwater.FAT_SPECTRA
    precession = next(a for a in parser._actions if a.dest == "precession")
    assert tuple(precession.choices) == fatwater.PRECESSIONS


def _facts(study, kind="pdff"):
    return study.provenance.series[kind].scaling


def test_the_spectrum_chosen_reaches_the_maps_and_their_provenance(logic, echo_phantom):
    from RefractureRiskSlicer.fatwater import Separation

    phantom, folder = echo_phantom
    default = logic.readDicomFolder(str(folder), echoes=True).study
    chosen = Separation()._replace(spectrum="ren-marrow-9peak")
    marrow = logic.readDicomFolder(str(folder), echoes=chosen).study
    for study, name in ((default, "ismrm-6peak"), (marrow, "ren-marrow-9peak")):
        for kind in ("pdff", "r2s", "water", "fat"):
            facts = _facts(study, kind)
            assert [f for f in facts if f.startswith("fat spectrum:")] == [
                next(f for f in facts if f.startswith(f"fat spectrum: {name} (peaks"))
            ], facts
            assert sum(f.startswith("precession: auto (phase ") for f in facts) == 1, facts
    inside = phantom.tissue & (np.abs(phantom.echoes.signal[..., 0]) > 0.3)
    changed = np.abs(marrow.pdff.array[inside] - default.pdff.array[inside])
    assert float(np.mean(changed)) > 0.1  # another spectrum, other fat fractions


def test_the_precession_chosen_reaches_the_maps_and_their_provenance(logic, echo_phantom):
    from RefractureRiskSlicer.fatwater import Separation

    phantom, folder = echo_phantom
    studies = {
        sense: logic.readDicomFolder(str(folder), echoes=Separation(precession=sense)).study
        for sense in ("auto", "clockwise", "counterclockwise")
    }
    assert "precession: clockwise (phase as stored)" in _facts(studies["clockwise"])
    assert "precession: counterclockwise (phase conjugated)" in _facts(studies["counterclockwise"])
    inside = phantom.tissue & (np.abs(phantom.echoes.signal[..., 0]) > 0.3)
    error = {
        sense: float(np.mean(np.abs(s.pdff.array[inside] - phantom.pdff_pct[inside])))
        for sense, s in studies.items()
    }
    # the two senses give different maps; auto takes the one the model fits, the better one
    assert abs(error["clockwise"] - error["counterclockwise"]) > 1.0, error
    assert error["auto"] == pytest.approx(min(error["clockwise"], error["counterclockwise"]))
    auto = next(f for f in _facts(studies["auto"]) if f.startswith("precession: auto"))
    best = min(("clockwise", "counterclockwise"), key=error.get)
    assert ("phase conjugated" in auto) == (best == "counterclockwise"), auto


def test_the_panel_computes_with_the_spectrum_chosen(widget, answers, echo_phantom):
    _phantom, folder = echo_phantom
    widget._ensureDependencies = lambda *a, **k: None
    widget.ui.dicomFolderPathLineEdit.currentPath = str(folder)
    widget._parameterNode.fatSpectrum = "single-peak"
    widget._parameterNode.precession = "clockwise"
    answers.append(True)
    widget.onLoadDicomFolder()
    assert "fat spectrum single-peak, precession clockwise" in answers.asked[0]
    description = widget._parameterNode.pdffVolume.GetDescription()
    assert "fat spectrum: single-peak (peaks -3.4 ppm" in description
    assert "precession: clockwise (phase as stored)" in description


def test_the_logic_reads_vendor_maps_and_reports_the_echoes_beside_them(
    module, logic, maps_and_echoes
):
    """The self-test's separationChecks, then the read itself: the vendor's maps (their DICOM
    source kept for SEG/SR) and a description of the echoes found beside them."""
    messages = module.workflow.separationChecks(logic)
    assert messages[1] == "vendor maps read; the echoes beside them reported"
    _phantom, folder = maps_and_echoes
    read = logic.readDicomFolder(str(folder))
    assert {"pdff", "r2s", "water", "fat"} <= set(read.study.maps)
    assert read.study.provenance.series["pdff"].classified_by != COMPUTED_FROM_ECHOES
    assert read.source is not None and len(read.source[0]) == read.study.grid.shape[0]
    assert read.echoes.startswith("multi-echo images: 6 echo(es) at TE ")
    assert read.echoes.endswith("(magnitude + phase), 288 images")
    assert logic.readDicomFolder(str(folder / "maps")).echoes is None  # maps only: nothing


@pytest.mark.parametrize("instead", [True, False], ids=["computed instead", "vendor kept"])
def test_the_panel_loads_vendor_maps_and_offers_the_echoes_instead(
    widget, env, dialogs, answers, maps_and_echoes, instead
):
    phantom, folder = maps_and_echoes
    widget._ensureDependencies = lambda *a, **k: None
    widget.ui.dicomFolderPathLineEdit.currentPath = str(folder)
    answers.append(instead)
    widget.onLoadDicomFolder()
    assert answers.titles == ["Echo images found too"]
    assert "vendor's PDFF/R2* maps are loaded" in answers.asked[0]
    assert "6 echo(es)" in answers.asked[0] and "instead" in answers.asked[0]
    assert "fat spectrum ismrm-6peak, precession auto" in answers.asked[0]
    p = widget._parameterNode
    computed = COMPUTED_FROM_ECHOES in p.pdffVolume.GetDescription()
    assert computed == instead
    if instead:
        assert len(dialogs) == 2 and dialogs[-1].labelText.startswith("Computing the maps")
        assert boot.volume_nodes(env.scene) == 6 + 5  # the vendor's stay, for comparison
        assert widget.logic.dicomSource is None
        inside = phantom.tissue & (np.abs(phantom.echoes.signal[..., 0]) > 0.3)
        error = widget._study().pdff.array[inside] - phantom.pdff_pct[inside]
        assert abs(float(np.mean(error))) < 1.0
    else:
        assert len(dialogs) == 1 and boot.volume_nodes(env.scene) == 6  # the vendor's only
        assert widget.logic.dicomSource is not None  # SEG/SR can reference the vendor PDFF
