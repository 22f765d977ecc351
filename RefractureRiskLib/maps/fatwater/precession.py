"""The precession sense of raw echoes read from DICOM: as stored, conjugated, or chosen by
fitting the signal model both ways (vendors differ and few files say)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from RefractureRiskLib.core.echoes import EchoSet
from RefractureRiskLib.maps.fatwater.fieldmap import echo_period_hz
from RefractureRiskLib.maps.fatwater.model import gram_features, projection_table
from RefractureRiskLib.maps.fatwater.quantile import percentile
from RefractureRiskLib.maps.fatwater.spectrum import DEFAULT_SPECTRUM


def choose_precession(echoes: EchoSet, precession: str = "auto") -> EchoSet:
    """Conjugate ``echoes`` when asked, or when ``auto`` finds the model fits the conjugate
    better (mean normalised residual of the best field per voxel, over up to 20000 voxels
    spread evenly over those above 10% of the 99th percentile of the energy: the mixed voxels
    decide, single-species voxels fit either way, so the sample must not be only the brightest,
    which are often pure fat or fluid)."""

    if precession not in ("auto", "clockwise", "counterclockwise"):
        raise ValueError(f"precession must be auto, clockwise or counterclockwise: {precession}")
    if precession == "clockwise":
        return replace(echoes, provenance={**echoes.provenance, "conjugated": False})
    if precession == "counterclockwise":
        return replace(
            echoes,
            signal=np.conj(echoes.signal),
            provenance={**echoes.provenance, "conjugated": True},
        )
    res_as_is, res_conj = _precession_residuals(echoes)
    conj = res_conj < res_as_is
    note = f"auto: mean residual {res_as_is:.4f} as stored, {res_conj:.4f} conjugated"
    return replace(
        echoes,
        signal=np.conj(echoes.signal) if conj else echoes.signal,
        provenance={**echoes.provenance, "conjugated": bool(conj), "precession": note},
    )


def _precession_residuals(echoes: EchoSet) -> tuple[float, float]:
    flat = echoes.signal.reshape(-1, echoes.n_echoes)
    energy = (np.abs(flat) ** 2).sum(axis=1)
    strong = np.flatnonzero(energy > 0.1 * energy.dtype.type(percentile(energy, 99)))
    pick = strong[:: max(1, strong.size // 20000)]
    te = np.asarray(echoes.te_s)
    phasor = DEFAULT_SPECTRUM.phasor(te, echoes.field_strength_t)
    period = echo_period_hz(te) or 1000.0
    grid = np.linspace(-period / 2, period / 2, 96, endpoint=False)
    table = projection_table(te, phasor, grid, [0.0, 50.0, 150.0, 400.0])
    out = []
    for sig in (flat[pick], np.conj(flat[pick])):
        g = gram_features(sig)
        best = (g @ table).max(axis=1)
        out.append(float(np.mean(1.0 - best / np.maximum(energy[pick], 1e-30))))
    return out[0], out[1]


__all__ = ["choose_precession"]
