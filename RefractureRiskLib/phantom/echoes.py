"""Complex multi-echo data with known truth, for testing and timing the fat-water separation.

Signal per voxel and echo time ``t`` (s)::

    s(t) = (W + F c(t)) exp(-R2* t) exp(i (2 pi psi t + phi0)) + complex Gaussian noise

with the multi-peak fat phasor ``c`` of :mod:`RefractureRiskLib.maps.fatwater.spectrum`, a smooth
field map ``psi`` (Hz) and a smooth initial phase ``phi0`` (rad). ``W + F`` is 1 in tissue, so the
SNR is ``1 / sigma`` per real and imaginary channel at ``t = 0``.

- :func:`pattern_echoes`: patches of known PDFF (0-100%) and R2* on a background without signal;
- :func:`lumbar_echoes`: the spine phantom's noise-free water, fat and R2* (:mod:`.generate`) as
  echoes, for a realistic 3D study (e.g. 256 x 256 x 40 voxels, 6 echoes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.echoes import EchoSet
from RefractureRiskLib.maps.fatwater.spectrum import DEFAULT_SPECTRUM, FatSpectrum
from RefractureRiskLib.phantom.signal import echo_times_ms


@dataclass(frozen=True, eq=False)
class EchoPhantom:
    """Echoes and the truth they were made from (arrays ``[k, j, i]``)."""

    echoes: EchoSet
    pdff_pct: npt.NDArray[np.float32]
    r2s_per_s: npt.NDArray[np.float32]
    field_hz: npt.NDArray[np.float32]
    tissue: npt.NDArray[np.bool_]  # voxels with signal (W + F > 0)
    patch: npt.NDArray[np.int16] | None = None  # pattern_echoes: patch index, -1 elsewhere


def smooth_field_hz(
    shape: tuple[int, int, int], max_abs_hz: float, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """A smooth random field map (Hz): a random quadratic plus two broad Gaussian bumps across
    the grid (isotropic in voxel units), scaled so that its largest absolute value is
    ``max_abs_hz``."""
    half = max(shape) / 2.0  # one scale for all axes: a thin slab gets a thin slice of the field
    k, j, i = ((np.arange(n) - (n - 1) / 2.0) / half for n in shape)
    k, j, i = np.meshgrid(k, j, i, indexing="ij")
    coef = rng.normal(size=7)
    field = coef[0] * i + coef[1] * j + 0.3 * coef[2] * k + coef[3] * i * j
    field += 0.5 * coef[4] * i**2 + 0.5 * coef[5] * j**2
    for _ in range(2):
        c = rng.uniform(-0.7, 0.7, size=3)
        field += coef[6] * np.exp(-((i - c[0]) ** 2 + (j - c[1]) ** 2 + (k - c[2]) ** 2) / 0.3)
    field -= field.mean()
    peak = np.abs(field).max()
    return (field * (max_abs_hz / peak if peak > 0 else 0.0)).astype(np.float32)


def complex_echoes(
    water: npt.ArrayLike,
    fat: npt.ArrayLike,
    r2s_per_s: npt.ArrayLike,
    field_hz: npt.ArrayLike,
    te_s: Sequence[float],
    field_strength_t: float,
    sigma: float,
    rng: np.random.Generator,
    spectrum: FatSpectrum = DEFAULT_SPECTRUM,
    phase0_rad: npt.ArrayLike = 0.0,
) -> npt.NDArray[np.complex64]:
    """``[k, j, i, echo]`` complex echoes of real water/fat densities (see the module text)."""
    w = np.asarray(water, np.float32)
    f = np.asarray(fat, np.float32)
    r2 = np.asarray(r2s_per_s, np.float32)
    psi = np.asarray(field_hz, np.float32)
    ph0 = np.asarray(phase0_rad, np.float32)
    c = spectrum.phasor(np.asarray(te_s), field_strength_t)
    out = np.empty((*w.shape, len(te_s)), np.complex64)
    for n, t in enumerate(te_s):
        phase = np.exp(1j * (2 * np.pi * psi * np.float32(t) + ph0))
        s = (w + f * np.complex64(c[n])) * np.exp(-r2 * np.float32(t)) * phase
        if sigma > 0:
            noise = rng.standard_normal((*w.shape, 2), dtype=np.float32) * np.float32(sigma)
            s = s + noise.view(np.complex64)[..., 0]
        out[..., n] = s
    return out


def pattern_echoes(
    pdff_pct: Sequence[float] = (0, 2, 5, 10, 20, 35, 50, 65, 80, 90, 95, 98, 100),
    r2s_per_s: Sequence[float] = (25.0, 60.0, 120.0),
    field_strength_t: float = 1.5,
    te_s: Sequence[float] | None = None,
    snr: float = 20.0,
    max_field_hz: float = 300.0,
    patch_px: int = 10,
    n_slices: int = 2,
    seed: int = 0,
    spectrum: FatSpectrum = DEFAULT_SPECTRUM,
) -> EchoPhantom:
    """Square patches, one per (PDFF, R2*) pair (rows: R2*, columns: PDFF), separated by gaps
    without signal, under a smooth field of up to ``max_field_hz`` and a smooth initial phase.

    ``te_s`` default: the spine phantom's six IDEAL-IQ echo times at ``field_strength_t``.
    """
    rng = np.random.default_rng(seed)
    te = tuple(t * 1e-3 for t in echo_times_ms(field_strength_t)) if te_s is None else te_s
    gap = max(2, patch_px // 3)
    nj = len(r2s_per_s) * (patch_px + gap) + gap
    ni = len(pdff_pct) * (patch_px + gap) + gap
    shape = (n_slices, nj, ni)
    pdff = np.zeros(shape, np.float32)
    r2 = np.zeros(shape, np.float32)
    patch = np.full(shape, -1, np.int16)
    for a, rate in enumerate(r2s_per_s):
        for b, value in enumerate(pdff_pct):
            j0, i0 = gap + a * (patch_px + gap), gap + b * (patch_px + gap)
            sl = (slice(None), slice(j0, j0 + patch_px), slice(i0, i0 + patch_px))
            pdff[sl], r2[sl], patch[sl] = value, rate, a * len(pdff_pct) + b
    tissue = patch >= 0
    water = np.where(tissue, 1.0 - pdff / 100.0, 0.0).astype(np.float32)
    fat = np.where(tissue, pdff / 100.0, 0.0).astype(np.float32)
    field = smooth_field_hz(shape, max_field_hz, rng)
    phase0 = smooth_field_hz(shape, 1.0, rng)  # radians
    signal = complex_echoes(
        water, fat, r2, field, te, field_strength_t, 1.0 / snr, rng, spectrum, phase0
    )
    echoes = EchoSet(
        signal,
        tuple(te),
        field_strength_t,
        np.diag([2.0, 2.0, 5.0, 1.0]),
        None,
        f"pattern phantom seed {seed}",
        {"format": "synthetic pattern phantom", "snr": snr, "max_field_hz": max_field_hz},
    )
    return EchoPhantom(echoes, pdff, r2, field, tissue, patch)


def lumbar_echoes(
    spec=None,
    snr: float = 30.0,
    max_field_hz: float = 300.0,
    seed: int = 0,
    spectrum: FatSpectrum = DEFAULT_SPECTRUM,
) -> EchoPhantom:
    """The spine phantom (``spec``: a :class:`PhantomSpec`, e.g. ``matrix_size=(256, 256),
    n_slices=40``) as six complex echoes at its IDEAL-IQ echo times, field strength and grid."""
    from RefractureRiskLib.phantom.grid import acquisition_grid, n_subsamples
    from RefractureRiskLib.phantom.phantom_model import build_model
    from RefractureRiskLib.phantom.raster import rasterise
    from RefractureRiskLib.phantom.spec import PhantomSpec

    spec = PhantomSpec() if spec is None else spec
    md = build_model(spec)
    mat, shape = acquisition_grid(spec, md.bodies, md.curve)
    raster = rasterise(md, mat, shape, n_subsamples(spec))
    water, fat = raster["water"].astype(np.float32), raster["fat"].astype(np.float32)
    total = water + fat
    rng = np.random.default_rng(seed)
    field = smooth_field_hz(shape, max_field_hz, rng)
    phase0 = smooth_field_hz(shape, 1.0, rng)
    te = tuple(t * 1e-3 for t in echo_times_ms(spec.field_strength_t))
    signal = complex_echoes(
        water,
        fat,
        raster["r2s"],
        field,
        te,
        spec.field_strength_t,
        1.0 / snr,
        rng,
        spectrum,
        phase0,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        pdff = np.where(total > 0, 100.0 * fat / total, 0.0).astype(np.float32)
    echoes = EchoSet(
        signal,
        te,
        spec.field_strength_t,
        mat,
        None,
        f"spine phantom seed {spec.seed}",
        {"format": "synthetic spine phantom echoes", "snr": snr, "max_field_hz": max_field_hz},
    )
    return EchoPhantom(
        echoes, pdff, np.asarray(raster["r2s"], np.float32), field, total > 0.05, None
    )
