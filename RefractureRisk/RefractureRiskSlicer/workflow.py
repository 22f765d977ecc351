"""The workflow the Slicer self-test (RefractureRiskTest) and the slicer-core test both run."""

import numpy as np

from . import display, fatwater, mrml, review, tasks


def runWorkflowChecks(logic, phantom, nodes):
    """Run the panel's workflow on the sample-data phantom; raises on failure.

    Automatic detection with an anchor (and its cancel); points at the phantom's true body
    centres -> ROIs -> segmentation round trip -> a moved point updates only its level (as a
    full recomputation gives) -> statistics table and chart -> summaries -> risk with the
    bundled demonstration model, shown beside the spine -> save the results (a temporary
    folder) and record them in a new measurement store (when its driver, SQLAlchemy, is
    installed) -> echo images instead of maps (:func:`echoChecks`) -> the separation's
    choices and echoes beside vendor maps (:func:`separationChecks`) -> relabel/reject a level
    and the risk follows. Offline. Returns progress messages.
    """
    messages = []
    index = ("L1",)
    study = logic.studyFromNodes(
        {k: nodes.get(k) for k in ("pdff", "r2s", "water", "fat")}, fieldStrengthT=1.5
    )
    truth = {lv.level: lv for lv in phantom.truth.levels if lv.level != "S1"}

    anchor = ("L3", tuple(truth["L3"].centre_ras))
    try:
        tasks.runInBackground(
            lambda progress: logic.detectVertebrae(study, anchor, "selftest", index, progress),
            poll=lambda progress: True,  # Cancel pressed at the first look
        )
    except tasks.Cancelled:
        pass
    else:
        raise AssertionError("cancelling the detection did not stop it")
    detected = logic.detectVertebrae(study, anchor=anchor, reader="selftest", indexLevels=index)
    for level, centre in logic.levelCentres(detected).items():
        if level in truth:
            offset = np.linalg.norm(np.subtract(centre, truth[level].centre_ras))
            assert offset < 5.0, (level, offset)
    messages.append(f"detected {len(detected.levels)} levels at their true positions")

    points = mrml.updateMarkupsFromLevelPoints({lv: t.centre_ras for lv, t in truth.items()})
    placed = mrml.levelPointsFromMarkups(points)
    assert set(placed) == set(truth), (sorted(placed), sorted(truth))
    messages.append(f"{len(placed)} points placed")

    result = logic.roisFromPoints(study, placed, reader="selftest", indexLevels=index)
    segmentation = mrml.roiSetToSegmentation(result.roiset, nodes["pdff"])
    back = mrml.roiSetFromSegmentation(segmentation, nodes["pdff"])
    for lv in result.roiset.levels:
        assert int(back.mask(lv.level).sum()) == int(result.roiset.mask(lv.level).sum()), lv.level
        assert back.level(lv.level).flags == lv.flags, lv.level
    messages.append("ROIs round-tripped through the segmentation")

    moved = np.add(placed["L2"], (0.0, 2.5, 2.5))
    points.SetNthControlPointPosition(points.GetControlPointIndexByLabel("L2"), *moved)
    movedRas = mrml.levelPointsFromMarkups(points)["L2"]
    updated = logic.updateLevel(result, study, "L2", movedRas, index)
    assert np.allclose(updated.extras["points_ras"]["L2"], moved)
    assert updated.roiset.mask("L2").sum() > 0
    for lv in ("T12", "L1", "L3"):
        assert np.array_equal(updated.roiset.mask(lv), result.roiset.mask(lv)), lv
    assert updated.extras["updated_levels"] == ("L2",), updated.extras["updated_levels"]
    full = logic.roisFromPoints(study, {**placed, "L2": movedRas}, "selftest", index)
    assert np.array_equal(updated.roiset.labelmap.array, full.roiset.labelmap.array)
    outside = np.add(placed["L2"], (0.0, 80.0, 0.0))  # in front of the spine: no marrow there
    try:
        logic.updateLevel(result, study, "L2", tuple(outside), index)
    except ValueError as err:  # the library's InputError names the level
        assert "L2" in str(err), err
    else:
        raise AssertionError("a point outside the vertebral body was accepted")
    messages.append("moving the L2 point updates only L2; a point off the spine is refused")

    statistics = logic.computeStatistics(result.roiset, study)
    table = mrml.updateTableNode(statistics, name="RefractureRisk statistics")
    assert table.GetNumberOfRows() == len(statistics)
    display.updatePdffChart(statistics)
    means = mrml.meanPdffByLevel(statistics)
    for level, true in truth.items():
        if level in means and not true.fractured and not true.cemented and not true.lesion:
            assert abs(means[level] - true.marrow_pdff_pct) < 5.0, (level, means[level])
    messages.append("statistics match the phantom's true marrow PDFF")

    model = logic.loadModel()
    clinical = {spec.name: typicalInputValue(spec) for spec in logic.clinicalInputSpecs(model)}
    outcome = logic.computeRisk(study, result, model, clinical, indexLevels=index)
    summary, risk = outcome["summary"], outcome["risk"]
    used = summary.levels_used["pdff_global_L1L4_pct"]
    assert "L1" not in used and len(used) >= 2, used  # the index level is not in the summary
    expected = float(np.mean([means[lv] for lv in used]))
    assert abs(summary.pdff_global_L1L4_pct - expected) < 1e-6, (summary, expected)
    assert 0.0 < risk.probability < 1.0
    text = display.riskAnnotationText(risk)
    assert (risk.model_warning is not None) == (not risk.validated)
    assert risk.validated or risk.model_warning.upper() in text
    html = display.resultsHtml(outcome)
    assert f"{100 * risk.probability:.1f}%" in html and risk.model_name in html
    assert "points" not in html
    partial = {k: v for k, v in clinical.items() if k != "age_years"}
    try:
        logic.computeRisk(study, result, model, partial, indexLevels=index)
    except ValueError as err:  # the library's InputError names the missing input
        assert "age_years" in str(err), err
    else:
        if study.patient.age_years is None:
            raise AssertionError("a missing age was not refused")
    ranged = logic.computeRisk(study, result, model, partial, indexLevels=index, missing="range")
    if ranged["risk"].is_range:
        assert "range over missing inputs" in display.riskAnnotationText(ranged["risk"])
    messages.append("a missing input is refused, or shown as a labelled range on request")
    annotation = display.showRiskAnnotation(outcome)
    assert annotation.GetNthControlPointLabel(0) == text
    messages.append(f"risk {100 * risk.probability:.1f}% shown")

    messages.extend(saveAndStore(logic, outcome))
    messages.extend(echoChecks(logic))
    messages.extend(separationChecks(logic))

    shifted = review.relabel(result, "L2", "L3", index)  # the count was off by one
    assert np.array_equal(shifted.roiset.mask("L3"), result.roiset.mask("L2"))
    relabelled = logic.computeRisk(study, shifted, model, clinical, indexLevels=index)
    used = relabelled["summary"].levels_used["pdff_global_L1L4_pct"]
    assert set(used) <= {"L2", "L3", "L4"}, used  # L1 is the index level; T12 is now L1
    messages.append("relabelling shifts every level; the summaries follow the new names")

    rejected = review.reject(result, "L3")
    again = logic.computeRisk(study, rejected, model, clinical, indexLevels=index)
    assert "L3" not in again["summary"].levels_used["pdff_global_L1L4_pct"]
    assert again["risk"].probability != risk.probability
    messages.append("rejecting L3 takes it out of the summaries and changes the risk")
    return messages


def echoChecks(logic):
    """Echo images instead of maps: the phantom's six echoes as DICOM (magnitude + phase, in a
    temporary folder) are recognised as echoes, a computation cancelled halfway returns
    nothing, and the maps computed (progress reported, never going back) reach the scene as
    PDFF, R2*, water, fat and field map volumes whose provenance says they were computed from
    the echoes; their PDFF is the phantom's. Returns messages."""
    import shutil
    import tempfile

    from .library import lib

    spec = lib("phantom").PhantomSpec(seed=4, in_plane_spacing_mm=2.5, slice_thickness_mm=4.0)
    phantom = lib("phantom.echoes").lumbar_echoes(spec, snr=40.0, seed=4)
    folder = tempfile.mkdtemp(prefix="RefractureRisk_echoes_")
    try:
        lib("phantom.echo_dicom").write_echo_dicom(phantom.echoes, folder, seed=4)
        try:
            logic.readDicomFolder(folder)
        except fatwater.EchoSeriesError as found:
            assert "6 echo(es)" in found.description, found.description
        else:
            raise AssertionError("echo images were read as maps")
        messages = ["echo images recognised as echoes, not maps"]
        try:
            tasks.runInBackground(
                lambda progress: logic.readDicomFolder(folder, progress, echoes=True),
                poll=lambda progress: progress.fraction >= 0.3,  # Cancel in the voxel fit
            )
        except tasks.Cancelled:
            messages.append("computing the maps cancelled halfway")
        else:
            raise AssertionError("cancelling the computation did not stop it")
        fractions = []
        loaded = logic.readDicomFolder(
            folder, lambda message, fraction: fractions.append(fraction), echoes=True
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert len(fractions) > 10 and fractions == sorted(fractions), fractions
    nodes = logic.addStudyToScene(logic.useDicomSource(loaded), baseName="echoes")
    assert set(nodes) == {"pdff", "r2s", "water", "fat", "fieldmap"}, sorted(nodes)
    assert logic.dicomSource is None  # no DICOM PDFF to reference in SEG/SR
    study = logic.studyFromNodes({"pdff": nodes["pdff"], "r2s": nodes["r2s"]})
    computed = lib("maps.fatwater.study").COMPUTED_FROM_ECHOES
    assert study.provenance.series["pdff"].classified_by == computed
    assert computed in nodes["pdff"].GetDescription()
    assert computed in nodes["fieldmap"].GetDescription()
    inside = phantom.tissue & (np.abs(phantom.echoes.signal[..., 0]) > 0.3)
    difference = float(np.mean(study.pdff.array[inside] - phantom.pdff_pct[inside]))
    assert abs(difference) < 1.0, difference
    messages.append(f"maps computed from the echoes: PDFF {difference:+.2f} pp from the truth")
    return messages


def writeMapsAndEchoes(folder, seed=4):
    """One exam as a scanner stores it: the phantom's vendor maps (GE IDEAL-IQ style, under
    ``folder/maps``) and its six raw echoes (magnitude + phase, under ``folder/echoes``) in the
    same DICOM study (the echoes get the maps' study, frame of reference and patient). Returns
    the echo phantom (``phantom.echoes.EchoPhantom``: truth for the computed maps)."""
    import os

    import pydicom

    from .library import lib

    spec = lib("phantom").PhantomSpec(seed=seed, in_plane_spacing_mm=2.5, slice_thickness_mm=4.0)
    phantom = lib("phantom.echoes").lumbar_echoes(spec, snr=40.0, seed=seed)
    maps = lib("phantom").generate_phantom(spec).study
    written = lib("phantom.dicom_writer").write_dicom_study(
        maps, os.path.join(folder, "maps"), seed=seed
    )
    echoes = lib("phantom.echo_dicom").write_echo_dicom(
        phantom.echoes, os.path.join(folder, "echoes"), seed=seed
    )
    exam = pydicom.dcmread(written.series[0].files[0], stop_before_pixels=True)
    shared = ("StudyInstanceUID", "FrameOfReferenceUID", "StudyDate", "StudyTime", "StudyID")
    shared += ("PatientID", "PatientName", "PatientBirthDate", "PatientSex")
    for path in sorted(echoes.iterdir()):
        ds = pydicom.dcmread(path)
        for keyword in shared:
            if keyword in exam:
                setattr(ds, keyword, getattr(exam, keyword))
        ds.save_as(path)
    return phantom


def separationChecks(logic):
    """The panel's fat-water choices and vendor maps with echoes beside them: the choices are
    the installed library's (spectra, default as the CLI's); a folder with both is read as the
    vendor's maps and reports the echoes; the maps computed from those echoes name the fat
    spectrum and precession used, and another spectrum gives another PDFF. Returns messages."""
    import argparse
    import shutil
    import tempfile

    from .library import lib

    library, default = lib("maps.fatwater"), fatwater.Separation().spectrum
    assert tuple(library.SPECTRA) == fatwater.FAT_SPECTRA, tuple(library.SPECTRA)
    parser = argparse.ArgumentParser()
    lib("commands.options").add_separation_arguments(parser)
    cli = parser.parse_args([])
    choices = {action.dest: action.choices for action in parser._actions}
    assert tuple(choices["precession"]) == fatwater.PRECESSIONS, choices["precession"]
    assert fatwater.Separation() == fatwater.Separation(cli.spectrum, cli.precession), cli
    assert cli.spectrum == library.DEFAULT_SPECTRUM.name
    messages = ["the panel's fat spectra and precessions are the library's; defaults the CLI's"]
    folder = tempfile.mkdtemp(prefix="RefractureRisk_maps_echoes_")
    try:
        phantom = writeMapsAndEchoes(folder)
        read = logic.readDicomFolder(folder)
        assert "pdff" in read.study.maps and read.source is not None, sorted(read.study.maps)
        assert read.echoes and "6 echo(es)" in read.echoes, read.echoes
        messages.append("vendor maps read; the echoes beside them reported")
        computed = {
            spectrum: logic.readDicomFolder(folder, echoes=fatwater.Separation(spectrum)).study
            for spectrum in (default, "single-peak")
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    inside = phantom.tissue & (np.abs(phantom.echoes.signal[..., 0]) > 0.3)
    bias = {}
    for spectrum, study in computed.items():
        facts = study.provenance.series["pdff"].scaling
        assert any(f.startswith(f"fat spectrum: {spectrum} ") for f in facts), facts
        assert any(f.startswith("precession: auto (") for f in facts), facts
        bias[spectrum] = float(np.mean(study.pdff.array[inside] - phantom.pdff_pct[inside]))
    assert abs(bias[default]) < 1.0, bias
    assert bias["single-peak"] < bias[default] - 1.0, bias
    messages.append(
        "maps computed with the chosen spectrum, named in their provenance: PDFF "
        + ", ".join(f"{spectrum} {value:+.2f} pp" for spectrum, value in bias.items())
    )
    return messages


def saveAndStore(logic, outcome):
    """Save the results into a temporary folder and record them in a new SQLite measurement
    store (skipped, and said so, when SQLAlchemy is not installed); returns messages."""
    import importlib.util
    import os
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="RefractureRisk_selftest_")
    try:
        written = logic.saveResults(outcome, os.path.join(folder, "results"))
        names = {os.path.basename(path) for path in written}
        assert {"results.json", "rois.seg.nrrd"} <= names, sorted(names)
        messages = [f"{len(written)} result files saved"]
        if importlib.util.find_spec("sqlalchemy") is None:
            return [*messages, "measurement store not checked: SQLAlchemy is not installed"]
        store = os.path.join(folder, "store.sqlite")
        logic.writeToStore(outcome, store, "selftest", "P001")
        assert os.path.getsize(store) > 0
        return [*messages, "measurements recorded in a new store"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def typicalInputValue(spec):
    """A plausible test value for a model input: its missing-value substitute, else mid-range."""
    if spec.missing_value is not None:
        return spec.missing_value
    if spec.kind == "category":
        return spec.levels[0]
    if spec.kind == "binary":
        return 0
    lo, hi = spec.soft_range or spec.hard_range
    return 0.5 * (lo + hi)
