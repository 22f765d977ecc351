"""Maps from an echo series in one call: for the command line, ``analyze`` and the Slicer panel.

:func:`compute_maps` takes an :class:`EchoSet`, an imDataParams ``.mat`` file or a folder of
multi-echo DICOM, and returns the :class:`.separate.FatWaterResult`. Progress follows the
library's convention (``progress(message: str)``, as in ``pipeline.analyze_study``), and is
called often: at every step and about every tenth of the voxel fit. Cancel, either way:

- ``progress`` raises (the Slicer panel's ``Progress`` raises ``Cancelled`` once the user pressed
  Cancel), or any exception reaches the calling thread (the panel also raises it there
  asynchronously): it propagates out unchanged; voxel chunks not yet started on the worker
  threads are dropped and the running ones finish first (a fraction of a second each);
- ``cancelled()`` returns True: :class:`SeparationCancelledError` is raised at the next
  progress point.

Either way nothing is returned and nothing is written (the separation writes no files).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from RefractureRiskLib.core.echoes import EchoSet
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.maps.fatwater.separate import FatWaterResult, separate
from RefractureRiskLib.maps.fatwater.spectrum import DEFAULT_SPECTRUM, FatSpectrum, get_spectrum


class SeparationCancelledError(Exception):
    """The caller's ``cancelled()`` said stop; the separation returned nothing."""

    def __init__(self, message: str = "fat-water separation cancelled") -> None:
        super().__init__(message)


def load_echoes(
    path: str | Path, precession: str = "auto", progress: Callable[[str], None] | None = None
) -> EchoSet:
    """The :class:`EchoSet` of an imDataParams ``.mat`` file or a folder of multi-echo DICOM.

    ``precession`` (DICOM only; a .mat file states it): ``auto`` (fit both senses, keep the
    better), ``clockwise`` or ``counterclockwise``. ``progress`` hears the DICOM header scan."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".mat":
        from RefractureRiskLib.io.echo_mat import read_echo_mat

        return read_echo_mat(p)
    if p.is_dir():
        from RefractureRiskLib.io.echo_dicom import read_echo_dicom
        from RefractureRiskLib.maps.fatwater.precession import choose_precession

        return choose_precession(read_echo_dicom(p, progress), precession)
    if not p.exists():
        raise InputError(p, "not found")
    raise InputError(p, "expected an imDataParams .mat file or a folder of DICOM echoes")


def _checked(
    progress: Callable[[str], None] | None, cancelled: Callable[[], bool] | None
) -> Callable[[str], None]:
    def say(message: str) -> None:
        if cancelled is not None and cancelled():
            raise SeparationCancelledError()
        if progress is not None:
            progress(message)

    return say


def compute_maps(
    source: EchoSet | str | Path,
    spectrum: FatSpectrum | str = DEFAULT_SPECTRUM,
    precession: str = "auto",
    progress: Callable[[str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> FatWaterResult:
    """PDFF (%), R2* (1/s), water, fat, field map (Hz) and residual of an echo series.

    ``source``: an :class:`EchoSet` (the Slicer panel builds one from its volume nodes), an
    imDataParams ``.mat`` file or a DICOM folder (:func:`load_echoes`). ``spectrum``: a
    :class:`FatSpectrum` or its name (``ismrm-6peak`` default, ``hamilton-liver-9peak``,
    ``ren-marrow-9peak``, ``single-peak``). Maps are ``Volume``s on the echoes' grid, with
    provenance (method, fat spectrum, echo times, field strength). ``progress``/``cancelled``:
    see the module docstring. Raises InputError for bad input, :class:`SeparationCancelledError`.
    """
    say = _checked(progress, cancelled)
    if isinstance(spectrum, str):
        try:
            spectrum = get_spectrum(spectrum)
        except ValueError as err:
            raise InputError("fat spectrum", str(err)) from None
    if isinstance(source, EchoSet):
        echoes = source
    else:
        say(f"reading echoes from {source}")
        echoes = load_echoes(source, precession, say)
    say(f"{echoes.n_echoes} echoes, B0 {echoes.field_strength_t:g} T: separating water and fat")
    return separate(echoes, spectrum, progress=say)
