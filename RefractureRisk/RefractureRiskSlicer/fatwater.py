"""Multi-echo images where the panel expects maps: recognised while a DICOM folder is read, and
the maps computed from them (RefractureRiskLib.maps.fatwater) once the user agrees.

A folder whose studies hold no PDFF series but raw echo images (magnitude + phase or real +
imaginary, per ImageType or GE's raw image type: ``io.echo_dicom.frame_component``) is reported
as :class:`EchoSeriesError`; the panel asks, then reads the folder again with ``echoes=True``.
The maps computed there carry provenance saying so (``maps.fatwater.study``); the field map
(Hz), which is no map kind of a ``Study``, travels beside the study as a companion volume.
"""

from . import tasks
from .library import lib


class EchoSeriesError(ValueError):
    """A DICOM folder holds raw multi-echo images, not PDFF/R2* maps.

    ``description`` says what was found (echoes, echo times, components, images), for the
    question the panel asks before computing the maps."""

    def __init__(self, folder, description):
        super().__init__(f"{folder}: {description}, not PDFF/R2* maps")
        self.folder = str(folder)
        self.description = description


def echoSeriesIn(report):
    """What raw echo images a scan report (``io.dicom_series.ScanReport``) holds, when none of
    its studies has a PDFF series: e.g. "multi-echo images: 6 echoes at TE 1.2, 3.2, ... ms
    (magnitude + phase), 288 images"; None when a PDFF series is there or no raw echo is."""
    series = [s for study in report.studies for s in study.series]
    if any(s.kind == "pdff" for s in series):
        return None
    component = lib("io.echo_dicom").frame_component
    numbers, times, components, images = set(), set(), set(), 0
    for s in series:
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


def computeMaps(folder, progress=None, spectrum=None, precession="auto"):
    """(study, companions) from the echoes under ``folder``: the ``Study`` (PDFF %, R2* 1/s,
    water, fat; provenance: computed from the echoes, method, fat spectrum, echo times, field
    strength) and {"fieldmap": Volume in Hz}. ``progress``: the panel's ``Progress`` (message,
    fraction); its cancel (it raises tasks.Cancelled) stops the separation."""
    say = progress or (lambda *args: None)
    say("reading the echo images", 0.02)
    echoSet = lib("maps.fatwater.compute").load_echoes(
        folder, precession, tasks.libraryProgress(say, 0.02, 0.2)
    )
    options = {"spectrum": spectrum} if spectrum else {}
    study, result = lib("maps.fatwater.study").echo_study(
        echoSet, precession=precession, progress=tasks.libraryProgress(say, 0.2, 0.98), **options
    )
    say("maps computed", 1.0)
    return study, {"fieldmap": result.fieldmap}
