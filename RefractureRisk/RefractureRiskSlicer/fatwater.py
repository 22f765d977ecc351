"""Multi-echo images where the panel expects maps: recognised while a DICOM folder is read, and
the maps computed from them (RefractureRiskLib.maps.fatwater) with the fat spectrum and
precession sense chosen in the panel.

A folder whose studies hold no PDFF series but raw echo images (magnitude + phase or real +
imaginary, per ImageType or GE's raw image type: ``io.echo_dicom.frame_component``) is reported
as :class:`EchoSeriesError`; the panel asks, then reads the folder again with the separation's
options (:class:`Separation`). A folder with both the vendor's maps and the echoes is read as
maps; the echoes found beside them are reported with the study (``steps.ReadStudy.echoes``), so
the panel can offer to compute the maps from the echoes instead. The maps computed carry
provenance saying so (``maps.fatwater.study``), naming the fat spectrum and the precession used;
the field map (Hz), which is no map kind of a ``Study``, travels beside the study as a companion
volume.
"""

import dataclasses
from typing import NamedTuple

from . import tasks
from .library import lib

#: The library's published fat spectra (``maps.fatwater.SPECTRA``; the CLI's ``--spectrum``),
#: named here because the parameter node's choices are declared before the library is imported.
FAT_SPECTRA = ("ismrm-6peak", "hamilton-liver-9peak", "ren-marrow-9peak", "single-peak")
#: Phase sense of DICOM echoes (``maps.fatwater.precession``; the CLI's ``--precession``).
PRECESSIONS = ("auto", "clockwise", "counterclockwise")


class Separation(NamedTuple):
    """The panel's options of a fat-water separation; the defaults are the library's and the
    CLI's (``maps.fatwater.DEFAULT_SPECTRUM``, ``--spectrum``/``--precession``)."""

    spectrum: str = "ismrm-6peak"
    precession: str = "auto"

    def describe(self):
        return f"fat spectrum {self.spectrum}, precession {self.precession}"


class EchoSeriesError(ValueError):
    """A DICOM folder holds raw multi-echo images, not PDFF/R2* maps.

    ``description`` says what was found (echoes, echo times, components, images), for the
    question the panel asks before computing the maps."""

    def __init__(self, folder, description):
        super().__init__(f"{folder}: {description}, not PDFF/R2* maps")
        self.folder = str(folder)
        self.description = description


def hasPdffSeries(report):
    """Whether a scan report (``io.dicom_series.ScanReport``) holds a PDFF series."""
    return any(s.kind == "pdff" for study in report.studies for s in study.series)


def echoSeriesIn(report):
    """What raw echo images a scan report (``io.dicom_series.ScanReport``) holds, with or
    without maps beside them: e.g. "multi-echo images: 6 echoes at TE 1.2, 3.2, ... ms
    (magnitude + phase), 288 images"; None when it holds no raw echo image."""
    component = lib("io.echo_dicom").frame_component
    numbers, times, components, images = set(), set(), set(), 0
    for s in (s for study in report.studies for s in study.series):
        for frame in s.frames:
            kind = component(frame)
            if kind is None:
                continue
            images += 1
            components.add(kind)
            numbers.add(frame.echo_number)
            if frame.echo_time_ms is not None:
                times.add(round(float(frame.echo_time_ms), 2))
    if not images:
        return None
    count = max(len(numbers - {None}), len(times))
    te = ", ".join(f"{t:g}" for t in sorted(times)) or "unknown"
    pairs = [p for p in (("magnitude", "phase"), ("real", "imaginary")) if set(p) <= components]
    parts = " + ".join(pairs[0]) if pairs else ", ".join(sorted(components)) + " only"
    return f"multi-echo images: {count} echo(es) at TE {te} ms ({parts}), {images} images"


def computeMaps(folder, progress=None, separation=None):
    """(study, companions) from the echoes under ``folder``: the ``Study`` (PDFF %, R2* 1/s,
    water, fat; provenance: computed from the echoes, method, fat spectrum, precession, echo
    times, field strength) and {"fieldmap": Volume in Hz}. ``separation``: the panel's
    :class:`Separation` (default: the CLI's defaults). ``progress``: the panel's ``Progress``
    (message, fraction); its cancel (it raises tasks.Cancelled) stops the separation."""
    options = separation or Separation()
    say = progress or (lambda *args: None)
    say("reading the echo images", 0.02)
    echoSet = lib("maps.fatwater.compute").load_echoes(
        folder, options.precession, tasks.libraryProgress(say, 0.02, 0.2)
    )
    study, result = lib("maps.fatwater.study").echo_study(
        echoSet,
        spectrum=options.spectrum,
        precession=options.precession,
        progress=tasks.libraryProgress(say, 0.2, 0.98),
    )
    say("maps computed", 1.0)
    return _withPrecession(study, precessionFact(options.precession, result.provenance)), {
        "fieldmap": result.fieldmap
    }


def precessionFact(precession, provenance):
    """One provenance line: the precession asked for and what was done with the phase
    (``provenance``: the separation's, whose ``input_*`` entries are the echoes' reading)."""
    conjugated = provenance.get("input_conjugated")
    done = {True: "phase conjugated", False: "phase as stored"}.get(conjugated, "phase as read")
    note = provenance.get("input_precession")
    if precession == "auto" and note:
        done = f"{done}; {note}"
    return f"precession: {precession} ({done})"


def _withPrecession(study, fact):
    """``study`` whose maps' provenance also names the precession (``fact``)."""
    series = {
        kind: dataclasses.replace(prov, scaling=(*prov.scaling, fact))
        for kind, prov in study.provenance.series.items()
    }
    return dataclasses.replace(
        study, provenance=dataclasses.replace(study.provenance, series=series)
    )
