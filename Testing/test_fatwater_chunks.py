"""The fat-water separation's speed-ups give the same numbers: block features computed slab by
slab, a chunk's features turned to a field instead of recomputed (to float32 rounding), voxel
chunks on threads; and a progress callback that raises stops the run."""

from __future__ import annotations

import time

import numpy as np
import pytest

from RefractureRiskLib.maps.fatwater.chunks import run_chunks
from RefractureRiskLib.maps.fatwater.fieldmap import _reduce, block_features
from RefractureRiskLib.maps.fatwater.fit import fit_voxels
from RefractureRiskLib.maps.fatwater.model import demodulate, gram_features
from RefractureRiskLib.maps.fatwater.rows import ChunkRows, echo_pairs
from RefractureRiskLib.maps.fatwater.spectrum import ISMRM_6PEAK


@pytest.mark.parametrize("pieces", [False, True])
@pytest.mark.parametrize("shape", [(5, 7, 9, 6), (1, 8, 8, 6), (4, 1, 6, 4)])
def test_block_features_are_summed_voxel_features(shape, pieces, monkeypatch):
    if pieces:  # slabs cut into pieces of a few rows (an odd last one)
        monkeypatch.setattr("RefractureRiskLib.maps.fatwater.fieldmap._PIECE_VOXELS", 40)
    rng = np.random.default_rng(1)
    signal = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    mask = rng.random(shape[:3]) > 0.3
    voxel = np.zeros((*shape[:3], shape[3] ** 2), np.float32)
    voxel[mask] = gram_features(signal[mask])
    np.testing.assert_allclose(block_features(signal, mask, workers=2), _reduce(voxel), atol=1e-5)


def test_gram_features_match_the_outer_products():
    rng = np.random.default_rng(2)
    s = (rng.normal(size=(7, 5)) + 1j * rng.normal(size=(7, 5))).astype(np.complex64)
    feats = gram_features(s)
    m, n = np.triu_indices(5, k=1)
    outer = np.conj(s[:, m]) * s[:, n]
    np.testing.assert_allclose(feats[:, :5], np.abs(s) ** 2, rtol=1e-5)
    np.testing.assert_allclose(feats[:, 5:15], outer.real, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats[:, 15:], outer.imag, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "te", [1.2e-3 + 2.0e-3 * np.arange(6), np.array([1.0, 2.3, 3.1, 5.0, 6.2]) * 1e-3]
)
def test_chunk_rows_turn_the_features_as_demodulating_the_echoes(te):
    rng = np.random.default_rng(4)
    n = te.size
    sig = (rng.normal(size=(3000, n)) + 1j * rng.normal(size=(3000, n))).astype(np.complex64)
    psi = rng.uniform(-400, 400, 3000).astype(np.float32)
    pairs = echo_pairs(te)
    rows = ChunkRows(sig, pairs)
    direct = gram_features(demodulate(sig, te, psi))[:, pairs.perm]
    np.testing.assert_allclose(rows.features_at(psi).T, direct, rtol=2e-5, atol=2e-5)
    y = demodulate(sig, te, psi)
    scale = rng.uniform(0.5, 1.0, (n, 3000)).astype(np.float32)
    got = rows.demodulated(psi, scale)
    np.testing.assert_allclose(got[:n], (y.T * scale).real, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(got[n:], (y.T * scale).imag, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(rows.energy(), (np.abs(sig) ** 2).sum(axis=1), rtol=1e-5)


def test_voxel_fit_on_threads_equals_serial():
    rng = np.random.default_rng(3)
    te = 1.2e-3 + 2.0e-3 * np.arange(6)
    sig = (rng.normal(size=(5000, 6)) + 1j * rng.normal(size=(5000, 6))).astype(np.complex64)
    pred = rng.uniform(-50, 50, 5000)
    phasor = ISMRM_6PEAK.phasor(te, 1.5)
    args = (sig, te, phasor, pred, 80.0, 4.5, 500.0)
    serial = fit_voxels(*args, chunk=700, workers=1)
    threaded = fit_voxels(*args, chunk=700, workers=3)
    for name in ("field_hz", "r2s_per_s", "water", "fat", "residual_rms"):
        np.testing.assert_array_equal(getattr(serial, name), getattr(threaded, name))


class _StopError(Exception):
    pass


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_that_raises_stops_the_chunks(workers):
    done: list[int] = []
    messages: list[str] = []

    def progress(msg: str) -> None:
        messages.append(msg)
        raise _StopError

    def work(sl: slice) -> None:
        time.sleep(0.005)
        done.append(sl.start)

    with pytest.raises(_StopError):
        run_chunks(work, 1000, 10, progress, "x", workers)
    assert messages and messages[0].startswith("x ")
    assert len(done) < 100  # the chunks not yet started were dropped


def test_progress_reports_percentages_to_100():
    messages: list[str] = []
    run_chunks(lambda sl: None, 95, 10, messages.append, "fit", workers=2)
    assert messages[-1] == "fit 100%"
    assert len(messages) <= 11


def test_blas_limit_is_set_once_for_nested_contexts(monkeypatch) -> None:
    """The separation holds BLAS to one thread around its many run_chunks calls: only the
    outermost context asks threadpoolctl (each ask scans the loaded libraries)."""
    import contextlib

    from RefractureRiskLib.core import blas
    from RefractureRiskLib.maps.fatwater import chunks

    asked = []

    def fake_limit():
        asked.append(1)
        return contextlib.nullcontext()

    monkeypatch.setattr(blas, "_limit", fake_limit)
    with blas.single_threaded_blas():
        for _ in range(3):
            chunks.run_chunks(lambda sl: None, 10, 2, workers=2)
    assert asked == [1]
    chunks.run_chunks(lambda sl: None, 10, 2, workers=1)
    assert asked == [1, 1]  # closed: the next call asks again
    assert blas._held == 0
