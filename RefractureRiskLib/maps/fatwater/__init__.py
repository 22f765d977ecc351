"""Fat-water separation from complex multi-echo gradient-echo images (numpy/scipy only).

Usage::

    from RefractureRiskLib.maps.fatwater import EchoSet, separate
    result = separate(EchoSet(signal, te_s, field_strength_t))
    result.pdff.array   # percent; result.r2s (1/s), water, fat, fieldmap (Hz), residual

Modules: ``spectrum`` (published fat spectra), ``data`` (the ``EchoSet`` input), ``model``
(signal model and variable-projection cost), ``fieldmap`` (swap-free field map on a block
pyramid), ``fit`` (voxel-wise fit, noise-bias-free PDFF), ``separate`` (the whole chain).
"""

from RefractureRiskLib.core.echoes import EchoSet
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
    "get_spectrum",
    "separate",
]
