"""Fat-water separation from complex multi-echo gradient-echo images (numpy/scipy only).

Usage::

    from RefractureRiskLib.maps.fatwater import EchoSet, separate
    result = separate(EchoSet(signal, te_s, field_strength_t))
    result.pdff.array   # percent; result.r2s (1/s), water, fat, fieldmap (Hz), residual

    # an echo series (EchoSet, .mat file or DICOM folder), with progress and cancel
    # (what the Slicer panel calls):
    from RefractureRiskLib.maps.fatwater import compute_maps
    result = compute_maps("echoes/", progress=print, cancelled=lambda: False)

Modules: ``spectrum`` (published fat spectra), ``model`` (signal model and variable-projection
cost), ``fieldmap`` (swap-free field map on a block pyramid), ``growing`` (its region growing),
``window`` (its finer levels' costs, on each block's window of the field grid only),
``fit`` (voxel-wise fit, noise-bias-free PDFF), ``chunks`` (voxel chunks on threads),
``separate`` (the whole chain), ``precession`` (phase sense of DICOM echoes), ``compute``
(reading + separation in one call: :func:`compute_maps`), ``study`` (an echo study as the
pipeline's ``Study``, for ``analyze``). The input type ``EchoSet`` lives in ``core/echoes.py``.
"""

from RefractureRiskLib.core.echoes import EchoSet
from RefractureRiskLib.maps.fatwater.compute import SeparationCancelledError, compute_maps
from RefractureRiskLib.maps.fatwater.fieldmap import FieldMapOptions
from RefractureRiskLib.maps.fatwater.separate import MAP_NAMES, FatWaterResult, separate
from RefractureRiskLib.maps.fatwater.spectrum import (
    DEFAULT_SPECTRUM,
    SPECTRA,
    FatSpectrum,
    get_spectrum,
)

__all__ = [
    "DEFAULT_SPECTRUM",
    "MAP_NAMES",
    "SPECTRA",
    "EchoSet",
    "FatSpectrum",
    "FatWaterResult",
    "FieldMapOptions",
    "SeparationCancelledError",
    "compute_maps",
    "get_spectrum",
    "separate",
]
