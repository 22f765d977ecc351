"""Signal model of the synthetic IDEAL-IQ maps: fat spectrum, in/out-of-phase, noise, bias field.

What the noise model does (and why):

- Water and fat are the complex IDEAL estimates ``W b + n_w`` and ``F b + n_f`` with ``b`` the
  receive bias and ``n`` complex Gaussian noise (SD ``sigma`` per real/imaginary channel,
  ``sigma = marrow signal / snr``). The water and fat images are their magnitudes, so they are
  Rician-distributed like a scanner's.
- PDFF uses magnitude discrimination (Liu et al., MRM 2007), as IDEAL-IQ does: fat-dominant
  voxels ``|F| / |W + F|``, water-dominant voxels ``1 - |W| / |W + F|``. This avoids most of
  the noise bias that ``|F| / (|W| + |F|)`` has at low SNR (the small fat magnitude of water-rich
  tissue is Rician-biased upwards). It is clipped to 0-100 % as vendors store it.
- R2* gets Gaussian noise with the Cramer-Rao-like SD ``1 / (snr_voxel * sqrt(sum (TE - mean
  TE)^2))`` (snr_voxel = local signal / sigma), then clipped to 0..R2S_MAX_PER_S: unbiased where
  there is signal, meaningless (as on a scanner) where there is none.
- In- and out-of-phase images are the multi-peak signal at the nominal in/out-of-phase echo
  times with R2* decay, with their own complex noise, as magnitudes.
- The bias field multiplies signals only; PDFF and R2* are ratios/decays and do not see it
  (except through the local SNR).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

#: Gyromagnetic ratio of 1H over 2 pi (MHz/T).
GAMMA_MHZ_PER_T = 42.577478
#: Bone-marrow fat spectrum (Ren et al.): (ppm relative to water, relative amplitude %).
FAT_PEAKS_PPM_PCT: tuple[tuple[float, float], ...] = (
    (-3.80, 9.0),
    (-3.40, 58.4),
    (-3.10, 6.0),
    (-2.68, 8.5),
    (-2.46, 6.0),
    (-1.95, 1.5),
    (-0.50, 4.0),
    (0.49, 1.0),
    (0.59, 5.7),
)
#: Six-echo IDEAL-IQ echo times (ms) per field strength (first TE, echo spacing).
ECHO_TRAIN_MS: dict[float, tuple[float, float]] = {1.5: (1.2, 2.0), 3.0: (0.9, 0.8)}
R2S_MAX_PER_S = 1000.0
SIGNAL_SCALE = 1000.0  # marrow proton density (water + fat) in image units


def echo_times_ms(field_strength_t: float, n_echoes: int = 6) -> tuple[float, ...]:
    """Echo times (ms) of the simulated IDEAL-IQ acquisition."""
    first, spacing = ECHO_TRAIN_MS[float(field_strength_t)]
    return tuple(round(first + spacing * n, 3) for n in range(n_echoes))


def in_out_phase_te_ms(field_strength_t: float) -> tuple[float, float]:
    """(in-phase, out-of-phase) echo times (ms) for the main fat peak at this field."""
    shift_hz = 3.40e-6 * GAMMA_MHZ_PER_T * 1e6 * float(field_strength_t)
    op = 1e3 / (2.0 * shift_hz)
    return 2.0 * op, op


def fat_phasor(te_ms: float, field_strength_t: float) -> complex:
    """Complex fat signal at ``te_ms`` relative to TE = 0 (multi-peak, amplitudes sum to 1)."""
    total = sum(a for _, a in FAT_PEAKS_PPM_PCT)
    value = 0j
    for ppm, amp in FAT_PEAKS_PPM_PCT:
        f_hz = ppm * 1e-6 * GAMMA_MHZ_PER_T * 1e6 * float(field_strength_t)
        value += (
            amp
            / total
            * complex(
                math.cos(2 * math.pi * f_hz * te_ms * 1e-3),
                math.sin(2 * math.pi * f_hz * te_ms * 1e-3),
            )
        )
    return value


def bias_field(
    x: npt.NDArray, y: npt.NDArray, z: npt.NDArray, amplitude: float, rng: np.random.Generator
) -> npt.NDArray:
    """Smooth multiplicative field ``1 + amplitude * g`` with max |g| = 1 over the points.

    ``g`` is a sum of three plane cosines with wavelengths 250-600 mm and random directions.
    """
    g = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), np.float32)
    if amplitude <= 0:
        return g + 1.0
    for _ in range(3):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        k = 2 * np.pi / rng.uniform(250.0, 600.0)
        phase = rng.uniform(0, 2 * np.pi)
        g += np.cos(k * (direction[0] * x + direction[1] * y + direction[2] * z) + phase)
    g -= g.mean()
    g /= max(float(np.abs(g).max()), 1e-6)
    return (1.0 + amplitude * g).astype(np.float32)


def synthesise_maps(
    water: npt.NDArray,
    fat: npt.NDArray,
    r2s_per_s: npt.NDArray,
    field_strength_t: float,
    bias: npt.NDArray,
    snr: float | None,
    rng: np.random.Generator,
) -> dict[str, npt.NDArray]:
    """Water, fat, in/out-of-phase (image units), PDFF (%) and R2* (1/s) from true densities.

    ``water``/``fat``: proton densities (marrow water + fat = 1); ``r2s_per_s`` true R2*.
    """
    scale = np.float32(SIGNAL_SCALE)
    w = (np.asarray(water, np.float32) * bias * scale).astype(np.float32, copy=False)
    f = (np.asarray(fat, np.float32) * bias * scale).astype(np.float32, copy=False)
    r2 = np.asarray(r2s_per_s, np.float32)
    te_in, te_out = in_out_phase_te_ms(field_strength_t)
    c_in, c_out = fat_phasor(te_in, field_strength_t), fat_phasor(te_out, field_strength_t)
    s_in = (w + f * np.complex64(c_in)) * np.exp(r2 * np.float32(-te_in * 1e-3))
    s_out = (w + f * np.complex64(c_out)) * np.exp(r2 * np.float32(-te_out * 1e-3))
    if snr is None:
        return _noiseless_maps(w, f, r2, s_in, s_out)
    sigma = np.float32(SIGNAL_SCALE / float(snr))
    shape = w.shape

    def cnoise() -> npt.NDArray[np.complex64]:
        pair = rng.standard_normal((*shape, 2), dtype=np.float32)
        pair *= sigma
        return pair.view(np.complex64)[..., 0]

    wc = w + cnoise()
    fc = f + cnoise()
    aw, af, awf = np.abs(wc), np.abs(fc), np.abs(wc + fc)
    with np.errstate(divide="ignore", invalid="ignore"):
        ff = np.where(af >= aw, af / awf, 1 - aw / awf)
    pdff = np.clip(np.nan_to_num(np.float32(100.0) * ff, nan=0.0), 0.0, 100.0)
    tes = np.asarray(echo_times_ms(field_strength_t)) * 1e-3
    spread = np.float32(np.sqrt(np.sum((tes - tes.mean()) ** 2)))
    snr_vox = np.maximum((w + f) / sigma, np.float32(0.05))
    r2s = r2 + rng.standard_normal(shape, dtype=np.float32) / (snr_vox * spread)
    r2s = np.clip(r2s, 0.0, R2S_MAX_PER_S)
    return {
        "water": aw,
        "fat": af,
        "in_phase": np.abs(s_in + cnoise()),
        "out_phase": np.abs(s_out + cnoise()),
        "pdff": pdff.astype(np.float32),
        "r2s": r2s.astype(np.float32),
    }


def _noiseless_maps(
    w: npt.NDArray, f: npt.NDArray, r2: npt.NDArray, s_in: npt.NDArray, s_out: npt.NDArray
) -> dict[str, npt.NDArray]:
    """The maps without noise: PDFF and R2* where there is signal (0 elsewhere)."""
    total = w + f
    floor = np.float32(1e-3 * SIGNAL_SCALE)
    has_signal = total > floor
    pdff = np.where(has_signal, np.float32(100.0) * f / np.maximum(total, floor), 0)
    return {
        "water": w,
        "fat": f,
        "in_phase": np.abs(s_in),
        "out_phase": np.abs(s_out),
        "pdff": pdff.astype(np.float32),
        "r2s": np.where(has_signal, r2, 0).astype(np.float32),
    }


def synthesise_echoes(
    water: npt.NDArray,
    fat: npt.NDArray,
    r2s_per_s: npt.NDArray,
    field_strength_t: float,
    bias: npt.NDArray | np.float32,
    snr: float | None,
    rng: np.random.Generator,
) -> dict[str, npt.NDArray]:
    """Magnitude images ``echo_1`` .. ``echo_6`` at :func:`echo_times_ms` (image units).

    Each echo is ``|(W + F c(TE)) exp(-R2* TE) + n|`` with the multi-peak fat phasor ``c`` and
    complex noise of the same SD as the maps' (``SIGNAL_SCALE / snr`` per channel). The derived
    maps are simulated directly, not fitted from these echoes.
    """
    scale = np.float32(SIGNAL_SCALE)
    w = np.asarray(water, np.float32) * bias * scale
    f = np.asarray(fat, np.float32) * bias * scale
    r2 = np.asarray(r2s_per_s, np.float32)
    sigma = None if snr is None else np.float32(SIGNAL_SCALE / float(snr))
    echoes = {}
    for n, te_ms in enumerate(echo_times_ms(field_strength_t), start=1):
        signal = (w + f * np.complex64(fat_phasor(te_ms, field_strength_t))) * np.exp(
            r2 * np.float32(-te_ms * 1e-3)
        )
        if sigma is not None:
            pair = rng.standard_normal((*w.shape, 2), dtype=np.float32)
            pair *= sigma
            signal = signal + pair.view(np.complex64)[..., 0]
        echoes[f"echo_{n}"] = np.abs(signal).astype(np.float32)
    return echoes
