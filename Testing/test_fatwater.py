"""Fat-water separation against known truth (the echo phantom) and its building blocks.

Bias is the mean over a patch of ~1000 voxels (16 x 16 x 4) of one true PDFF/R2*; a swap is a
voxel whose PDFF is off by more than 30 points.
"""

from __future__ import annotations

import numpy as np
import pytest

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.maps.fatwater import SPECTRA, EchoSet, get_spectrum, separate
from RefractureRiskLib.maps.fatwater.fieldmap import wrap_hz
from RefractureRiskLib.maps.fatwater.model import basis, gram_features, projection_table
from RefractureRiskLib.maps.fatwater.spectrum import ISMRM_6PEAK
from RefractureRiskLib.phantom.echoes import pattern_echoes

PDFF_LEVELS = (0, 2, 5, 20, 50, 80, 95, 98, 100)
R2S_LEVELS = (25.0, 120.0)


def _patch_errors(ph, result):
    """(true pdff, true r2s, pdff bias pp, r2s bias 1/s, swapped voxels) per patch."""
    rows = []
    for p in np.unique(ph.patch[ph.patch >= 0]):
        sel = ph.patch == p
        true_pdff, true_r2s = float(ph.pdff_pct[sel][0]), float(ph.r2s_per_s[sel][0])
        pdff = result.pdff.array[sel]
        rows.append(
            (
                true_pdff,
                true_r2s,
                float(pdff.mean() - true_pdff),
                float(result.r2s.array[sel].mean() - true_r2s),
                int((np.abs(pdff - true_pdff) > 30).sum()),
            )
        )
    return rows


@pytest.fixture(scope="module", params=[(1.5, 20.0, 300.0, 11), (3.0, 20.0, -300.0, 12)])
def phantom_run(request):
    field_t, snr, max_field, seed = request.param
    ph = pattern_echoes(
        PDFF_LEVELS,
        R2S_LEVELS,
        field_strength_t=field_t,
        snr=snr,
        max_field_hz=max_field,
        patch_px=16,
        n_slices=4,
        seed=seed,
    )
    return ph, separate(ph.echoes)


def test_phantom_pdff_bias_at_most_1pp_across_0_to_100(phantom_run):
    ph, result = phantom_run
    rows = _patch_errors(ph, result)
    worst = max(rows, key=lambda r: abs(r[2]))
    assert abs(worst[2]) <= 1.0, f"PDFF bias {worst[2]:.2f} pp at {worst[0]}% / {worst[1]} 1/s"


def test_phantom_r2s_bias_at_most_5_per_s(phantom_run):
    ph, result = phantom_run
    rows = _patch_errors(ph, result)
    worst = max(rows, key=lambda r: abs(r[3]))
    assert abs(worst[3]) <= 5.0, f"R2* bias {worst[3]:.2f} 1/s at {worst[0]}% / {worst[1]} 1/s"


def test_phantom_no_swaps_with_300_hz_field(phantom_run):
    ph, result = phantom_run
    assert np.abs(ph.field_hz).max() == pytest.approx(300.0, rel=1e-3)
    assert sum(r[4] for r in _patch_errors(ph, result)) == 0
    # the field map agrees with the truth modulo the echo period (uniform echoes), and no
    # voxel is anywhere near its swap (the fat frequency away, wrapped)
    period = 1.0 / np.diff(ph.echoes.te_s)[0]
    err = np.abs(wrap_hz(result.fieldmap.array[ph.tissue] - ph.field_hz[ph.tissue], period))
    swap = abs(wrap_hz(ISMRM_6PEAK.main_peak_hz(ph.echoes.field_strength_t), period))
    assert np.median(err) < 3.0
    assert err.max() < swap / 3


def test_outputs_are_volumes_with_provenance(phantom_run):
    ph, result = phantom_run
    for name, vol in result.maps().items():
        assert vol.shape == ph.echoes.shape, name
        assert np.allclose(vol.ijk_to_ras, ph.echoes.ijk_to_ras)
    prov = result.provenance
    assert prov["fat_spectrum"] == "ismrm-6peak"
    assert prov["field_strength_t"] == ph.echoes.field_strength_t
    assert len(prov["echo_times_ms"]) == ph.echoes.n_echoes
    assert "method" in prov


def test_noise_free_fit_is_exact_with_other_spectrum():
    spectrum = get_spectrum("hamilton-liver-9peak")
    ph = pattern_echoes(
        (0, 30, 70, 100), (40.0,), snr=1e6, max_field_hz=150.0, seed=3, spectrum=spectrum
    )
    result = separate(ph.echoes, spectrum)
    err = np.abs(result.pdff.array - ph.pdff_pct)[ph.tissue]
    assert err.max() < 0.5
    assert np.abs(result.r2s.array - ph.r2s_per_s)[ph.tissue].max() < 1.0
    assert result.provenance["fat_spectrum"] == "hamilton-liver-9peak"


def test_spectra_are_normalised_and_field_aware():
    for spectrum in SPECTRA.values():
        assert sum(spectrum.amplitudes) == pytest.approx(1.0)
    assert ISMRM_6PEAK.main_peak_hz(3.0) == pytest.approx(2 * ISMRM_6PEAK.main_peak_hz(1.5))
    assert ISMRM_6PEAK.main_peak_hz(1.5) == pytest.approx(-3.4 * 42.577478 * 1.5)
    with pytest.raises(ValueError, match="known"):
        get_spectrum("nope")


def test_projection_table_matches_explicit_projection():
    rng = np.random.default_rng(0)
    te = np.array([1.2, 3.2, 5.2, 7.2]) * 1e-3
    phasor = ISMRM_6PEAK.phasor(te, 1.5)
    s = rng.normal(size=(5, 4)) + 1j * rng.normal(size=(5, 4))
    psi, rates = np.array([-80.0, 35.0]), np.array([0.0, 70.0])
    proj = gram_features(s) @ projection_table(te, phasor, psi, rates)
    for a, f in enumerate(psi):
        for b, r in enumerate(rates):
            m = basis(te, phasor, r, f)
            expected = np.real(np.einsum("vm,mn,vn->v", np.conj(s), m @ np.linalg.pinv(m), s))
            np.testing.assert_allclose(proj[:, a * 2 + b], expected, rtol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"te_s": (1e-3, 2e-3)}, "at least 3"),
        ({"te_s": (3e-3, 2e-3, 4e-3)}, "increasing"),
        ({"te_s": (1.0, 2.0, 3.0)}, "look like ms"),
        ({"field_strength_t": 0.0}, "not plausible"),
    ],
)
def test_echo_set_refuses_bad_acquisitions(kwargs, reason):
    n = len(kwargs.get("te_s", (1e-3, 2e-3, 3e-3)))
    signal = np.ones((1, 2, 2, n), np.complex64)
    args = {"te_s": (1e-3, 2e-3, 3e-3), "field_strength_t": 1.5, **kwargs}
    with pytest.raises(InputError, match=reason):
        EchoSet(signal, args["te_s"], args["field_strength_t"], source="x.mat")


def test_echo_set_refuses_magnitude_only():
    with pytest.raises(InputError, match="phase missing"):
        EchoSet(np.ones((1, 2, 2, 3), np.float32), (1e-3, 2e-3, 3e-3), 1.5, source="m")


def test_spine_phantom_echoes_no_swaps_and_unbiased():
    from RefractureRiskLib.phantom import PhantomSpec
    from RefractureRiskLib.phantom.echoes import lumbar_echoes

    spec = PhantomSpec(seed=4, matrix_size=(96, 96), n_slices=12, in_plane_spacing_mm=3.0)
    ph = lumbar_echoes(spec, snr=25.0, max_field_hz=300.0, seed=4)
    result = separate(ph.echoes)
    inside = ph.tissue & (np.abs(ph.echoes.signal[..., 0]) > 0.3)
    diff = result.pdff.array[inside] - ph.pdff_pct[inside]
    assert np.mean(np.abs(diff) > 30) == 0.0
    assert abs(diff.mean()) < 1.0


def test_non_uniform_echoes_no_swaps():
    te_s = (1.1e-3, 2.4e-3, 3.5e-3, 4.9e-3, 6.0e-3, 7.6e-3)
    ph = pattern_echoes((0, 20, 50, 80, 100), (40.0,), te_s=te_s, snr=30.0, seed=2)
    result = separate(ph.echoes)
    assert "non-uniform" in result.provenance["fieldmap"]
    diff = (result.pdff.array - ph.pdff_pct)[ph.tissue]
    assert (np.abs(diff) > 30).sum() == 0
