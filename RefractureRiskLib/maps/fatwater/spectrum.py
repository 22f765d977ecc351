"""Published fat spectra (multi-peak models) and their echo-time phasors.

A spectrum is a list of peaks: chemical shift in ppm *relative to water* (water at 4.7 ppm, fat's
main methylene peak at 1.3 ppm, so -3.4 ppm) and relative amplitude (summing to 1). The frequency
of a peak in Hz is ``shift_ppm * 1e-6 * gamma_bar * B0`` with ``gamma_bar`` = 42.577 MHz/T, so a
spectrum is field-strength aware by construction.

Sign convention (the ISMRM fat-water toolbox's, for data with ``PrecessionIsClockwise == 1``):
the fat phasor is ``c(t) = sum_p a_p exp(+i 2 pi f_p t)`` with ``f_p`` negative for the main
peak; data acquired with the opposite precession sense are conjugated on input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: Proton gyromagnetic ratio / 2 pi, in Hz per tesla per ppm (42.577478 MHz/T * 1e-6).
GAMMA_BAR_HZ_PER_T_PPM = 42.577478


@dataclass(frozen=True)
class FatSpectrum:
    """A multi-peak fat model: shifts (ppm relative to water) and relative amplitudes (sum 1)."""

    name: str
    shifts_ppm: tuple[float, ...]
    amplitudes: tuple[float, ...]
    reference: str

    def __post_init__(self) -> None:
        if len(self.shifts_ppm) != len(self.amplitudes) or not self.shifts_ppm:
            raise ValueError(f"fat spectrum {self.name}: shifts and amplitudes differ in length")
        total = float(sum(self.amplitudes))
        if total <= 0:
            raise ValueError(f"fat spectrum {self.name}: amplitudes must sum to > 0")
        object.__setattr__(self, "amplitudes", tuple(a / total for a in self.amplitudes))

    def frequencies_hz(self, field_strength_t: float) -> npt.NDArray[np.float64]:
        """Peak frequencies relative to water (Hz) at ``field_strength_t`` tesla."""
        return np.asarray(self.shifts_ppm) * GAMMA_BAR_HZ_PER_T_PPM * float(field_strength_t)

    def main_peak_hz(self, field_strength_t: float) -> float:
        """Frequency (Hz) of the largest peak: the water-fat swap distance of the field map."""
        k = int(np.argmax(self.amplitudes))
        return float(self.frequencies_hz(field_strength_t)[k])

    def phasor(self, te_s: npt.ArrayLike, field_strength_t: float) -> npt.NDArray[np.complex128]:
        """``c(TE) = sum_p a_p exp(i 2 pi f_p TE)`` at each echo time (seconds)."""
        t = np.asarray(te_s, float)[..., None]
        f = self.frequencies_hz(field_strength_t)
        return np.exp(2j * np.pi * f * t) @ np.asarray(self.amplitudes)


#: The ISMRM 2012 challenge / fat-water toolbox 6-peak model (Yu et al., MRM 2008; Hernando).
ISMRM_6PEAK = FatSpectrum(
    "ismrm-6peak",
    (-3.80, -3.40, -2.60, -1.94, -0.39, 0.60),
    (0.087, 0.693, 0.128, 0.004, 0.039, 0.048),
    "ISMRM fat-water toolbox default (Hernando et al.); Yu et al. MRM 2008;60:1122",
)
#: Hamilton et al., NMR Biomed 2011;24:784 (liver fat, 9 peaks).
HAMILTON_LIVER_9PEAK = FatSpectrum(
    "hamilton-liver-9peak",
    (-3.80, -3.40, -3.10, -2.68, -2.46, -1.95, -0.50, 0.49, 0.59),
    (0.088, 0.642, 0.058, 0.062, 0.058, 0.006, 0.039, 0.010, 0.037),
    "Hamilton et al. NMR Biomed 2011;24:784",
)
#: Ren et al., J Lipid Res 2008;49:2055 (bone marrow / subcutaneous fat, 9 peaks;
#: docs/architecture.md, Facts about the inputs).
REN_MARROW_9PEAK = FatSpectrum(
    "ren-marrow-9peak",
    (-3.80, -3.40, -3.10, -2.68, -2.46, -1.95, -0.50, 0.49, 0.59),
    (9.0, 58.4, 6.0, 8.5, 6.0, 1.5, 4.0, 1.0, 5.7),
    "Ren et al. J Lipid Res 2008;49:2055",
)
#: The single methylene peak (the classic two-species Dixon model; biased, for comparison).
SINGLE_PEAK = FatSpectrum("single-peak", (-3.40,), (1.0,), "methylene peak only")

SPECTRA: dict[str, FatSpectrum] = {
    s.name: s for s in (ISMRM_6PEAK, HAMILTON_LIVER_9PEAK, REN_MARROW_9PEAK, SINGLE_PEAK)
}
DEFAULT_SPECTRUM = ISMRM_6PEAK


def get_spectrum(name: str) -> FatSpectrum:
    """The published spectrum called ``name`` (see :data:`SPECTRA`); ValueError lists the names."""
    try:
        return SPECTRA[name]
    except KeyError:
        raise ValueError(f"unknown fat spectrum {name!r}; known: {', '.join(SPECTRA)}") from None
