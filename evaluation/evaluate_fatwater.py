"""Validation of the fat-water separation: ISMRM 2012 cases against FattyRiot, phantom truth.

Run:  python evaluation/evaluate_fatwater.py [--data ../shared/data/ismrm2012] [--out DIR]
                                             [--no-phantom] [--hmrgc]

ISMRM 2012 challenge cases 13, 15 and 16 (``../shared/data/ismrm2012``, not in the repository:
the data may not be redistributed). Beside each ``NN.mat`` lies ``NN_FattyRiot_reference.png``,
FattyRiot's result: fat magnitude on top, water below, one ``ny``-wide panel per slice, both
scaled jointly to 0-255, so ``100 * fat / (fat + water)`` is a reference PDFF per voxel (8-bit,
so imprecise where both are dim). Inside each case's mask the script reports the median
|PDFF difference| and the share of voxels off by more than 30 points (water-fat swaps), over
the whole mask and over the mask's voxels where the reference shows tissue (fat + water >= 5% of
full scale; the masks also hold background noise, where both PDFFs are random). One PNG per case
(our fat/water in the reference's layout beside the reference, PDFF difference) goes to
``--out`` (default: a temporary folder): never into the repository.

The phantom part measures PDFF and R2* bias (mean over ~1000-voxel patches of one true value)
and swaps on :func:`RefractureRiskLib.phantom.echoes.pattern_echoes` at 1.5 and 3 T, SNR 20,
smooth fields up to +-300 Hz, several seeds.

``--hmrgc`` also runs hmrGC (BMRRgroup/fieldmapping-hmrGC, GPL-3.0, not on PyPI; it must be
importable, e.g. from a separate virtual environment: it is never part of this repository) on
each case in this process and compares our maps with its maps inside the mask: median |PDFF
difference| and share of voxels off by > 30 points (against hmrGC's own PDFF and against the
magnitude ratio of its water and fat images), and R2* median |difference| where hmrGC's PDFF
is 10-90% and hmrGC itself is swap-free there (within 30 points of FattyRiot's PDFF); it also
reports hmrGC against FattyRiot, which shows where hmrGC itself swaps.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CASES = (13, 15, 16)
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ismrm2012"
TISSUE_LEVEL = 0.05 * 255  # reference fat + water at least 5% of full scale
SWAP_PP = 30.0


def reference_maps(png: Path, shape_kji: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """FattyRiot's (fat, water) grey levels ``[k, j, i]`` from its result picture.

    The picture is ``2 nx`` rows (fat, then water) by ``nz * ny`` columns (one panel per
    slice): panel ``k`` shows ``images[:, :, k]``, rows = x (our i), columns = y (our j).
    """
    from PIL import Image

    nk, nj, ni = shape_kji
    img = np.asarray(Image.open(png).convert("L"), float)
    if img.shape != (2 * ni, nk * nj):
        raise ValueError(f"{png}: picture {img.shape} does not fit the case's grid {shape_kji}")
    fat = np.stack([img[:ni, k * nj : (k + 1) * nj].T for k in range(nk)])
    water = np.stack([img[ni:, k * nj : (k + 1) * nj].T for k in range(nk)])
    return fat, water


def reference_pdff(fat: np.ndarray, water: np.ndarray) -> np.ndarray:
    """Reference PDFF (%), NaN where both are 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * fat / (fat + water)


def evaluate_case(case: int, data: Path, out: Path | None) -> dict[str, float]:
    """Run the separation on one case and compare with the reference; writes a PNG to ``out``."""
    from RefractureRiskLib.io.echo_mat import read_echo_mat
    from RefractureRiskLib.maps.fatwater import separate

    echoes = read_echo_mat(data / f"{case}.mat")
    t0 = time.perf_counter()
    result = separate(echoes)
    seconds = time.perf_counter() - t0
    fat_ref, water_ref = reference_maps(data / f"{case}_FattyRiot_reference.png", echoes.shape)
    ref = reference_pdff(fat_ref, water_ref)
    mask = echoes.mask if echoes.mask is not None else np.ones(echoes.shape, bool)
    tissue = mask & ((fat_ref + water_ref) >= TISSUE_LEVEL)
    diff = np.abs(result.pdff.array - ref)
    row: dict[str, float] = {"case": case, "seconds": seconds}
    for name, sel in (("mask", mask), ("tissue", tissue)):
        d = diff[sel & np.isfinite(ref)]
        row[f"n_{name}"] = int(d.size)
        row[f"median_{name}"] = float(np.median(d))
        row[f"swap_pct_{name}"] = float(100.0 * np.mean(d > SWAP_PP))
    if out is not None:
        write_case_png(case, result, fat_ref, water_ref, ref, tissue, out / f"{case}_fatwater.png")
    return row


def write_case_png(case, result, fat_ref, water_ref, ref, tissue, path: Path) -> None:
    """Reference layout: per slice, our fat over our water, FattyRiot's beside, |PDFF diff|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fat, water = result.fat.array, result.water.array
    top = float(np.percentile(np.maximum(fat, water), 99.5)) or 1.0
    nk = fat.shape[0]
    fig, axes = plt.subplots(nk, 3, figsize=(9, 3.2 * nk), squeeze=False)
    for k in range(nk):
        ours = np.concatenate([fat[k].T, water[k].T], axis=0)
        theirs = np.concatenate([fat_ref[k].T, water_ref[k].T], axis=0)
        axes[k, 0].imshow(ours, cmap="gray", vmin=0, vmax=top)
        axes[k, 1].imshow(theirs, cmap="gray", vmin=0, vmax=255)
        d = np.where(tissue[k], result.pdff.array[k] - ref[k], np.nan)
        im = axes[k, 2].imshow(d.T, cmap="bwr", vmin=-50, vmax=50)
        for ax in axes[k]:
            ax.set_xticks([])
            ax.set_yticks([])
        axes[k, 0].set_ylabel(f"slice {k}")
    axes[0, 0].set_title("ours: fat (top) / water")
    axes[0, 1].set_title("FattyRiot: fat / water")
    axes[0, 2].set_title("PDFF ours - ref (pp), tissue")
    fig.colorbar(im, ax=axes[:, 2].tolist(), fraction=0.05)
    fig.suptitle(f"ISMRM 2012 case {case}")
    fig.savefig(path, dpi=70)
    plt.close(fig)


def phantom_bias(
    seeds: tuple[int, ...] = (101, 102, 103), snr: float = 20.0
) -> list[dict[str, float]]:
    """Worst patch PDFF/R2* bias and swapped voxels per field strength (pattern phantom)."""
    from RefractureRiskLib.maps.fatwater import separate
    from RefractureRiskLib.phantom.echoes import pattern_echoes

    rows = []
    for field_t in (1.5, 3.0):
        pdff_bias: dict[tuple[float, float], list[float]] = {}
        r2s_bias: dict[tuple[float, float], list[float]] = {}
        swaps = voxels = 0
        for seed in seeds:
            ph = pattern_echoes(
                (0, 2, 5, 10, 20, 35, 50, 65, 80, 90, 95, 98, 100),
                (25.0, 60.0, 120.0),
                field_strength_t=field_t,
                snr=snr,
                max_field_hz=300.0,
                patch_px=16,
                n_slices=4,
                seed=seed,
            )
            res = separate(ph.echoes)
            for p in np.unique(ph.patch[ph.patch >= 0]):
                sel = ph.patch == p
                key = (float(ph.pdff_pct[sel][0]), float(ph.r2s_per_s[sel][0]))
                pdff_bias.setdefault(key, []).append(float(res.pdff.array[sel].mean() - key[0]))
                r2s_bias.setdefault(key, []).append(float(res.r2s.array[sel].mean() - key[1]))
                swaps += int((np.abs(res.pdff.array[sel] - key[0]) > SWAP_PP).sum())
                voxels += int(sel.sum())
        worst_p = max(pdff_bias.items(), key=lambda kv: abs(np.mean(kv[1])))
        worst_r = max(r2s_bias.items(), key=lambda kv: abs(np.mean(kv[1])))
        rows.append(
            {
                "field_t": field_t,
                "snr": snr,
                "pdff_bias_pp": float(np.mean(worst_p[1])),
                "pdff_at": worst_p[0],
                "r2s_bias_per_s": float(np.mean(worst_r[1])),
                "r2s_at": worst_r[0],
                "swaps": swaps,
                "voxels": voxels,
            }
        )
    return rows


@dataclass
class HmrgcMaps:
    """hmrGC's maps ``[k, j, i]`` on one case and its in-process wall and CPU time (s).

    ``pdff_pct`` is hmrGC's own PDFF: ``100 (1 - |W| / |W + F|)`` below 50% (negative where
    water and fat are out of phase), ``100 |F| / |W + F|`` above; ``pdff_mag_pct`` is the plain
    magnitude ratio ``100 |F| / (|W| + |F|)`` of its water and fat images, which tells a swap
    (a wrong field map) from that estimator's behaviour."""

    pdff_pct: np.ndarray
    pdff_mag_pct: np.ndarray
    r2s_per_s: np.ndarray
    fieldmap_hz: np.ndarray
    seconds: float
    cpu_s: float


def _cpu_self_s() -> float:
    """CPU seconds (user + system, all threads) used so far by this process."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def hmrgc_separate(echoes) -> HmrgcMaps:
    """hmrGC's multi-echo graph cut (its README's API, default method) on an :class:`EchoSet`.

    The echoes go back to the file's x, y, z, echo order; the fat model is our default (the
    ISMRM 6-peak spectrum, shifts relative to water, as hmrGC's phasor ``exp(+i 2 pi f t)``
    expects: the same sign convention as ours and the ISMRM toolbox for clockwise data). The
    ISMRM files carry no voxel size, so hmrGC's own default (1 mm isotropic) is passed
    explicitly. Timed: construction + ``perform()``; the first call in a process includes
    numba's compilation.
    """
    from hmrGC.dixon_imaging import MultiEcho

    from RefractureRiskLib.maps.fatwater.spectrum import GAMMA_BAR_HZ_PER_T_PPM, ISMRM_6PEAK

    signal = np.ascontiguousarray(echoes.signal.transpose(2, 1, 0, 3))
    mask = (
        echoes.mask.transpose(2, 1, 0)
        if echoes.mask is not None
        else np.ones(signal.shape[:3], bool)
    )
    params = {
        "TE_s": np.asarray(echoes.te_s, float),
        "centerFreq_Hz": GAMMA_BAR_HZ_PER_T_PPM * 1e6 * echoes.field_strength_t,
        "fieldStrength_T": echoes.field_strength_t,
        "voxelSize_mm": np.array([1.0, 1.0, 1.0]),
        "FatModel": {
            "freqs_ppm": np.asarray(ISMRM_6PEAK.shifts_ppm),
            "relAmps": np.asarray(ISMRM_6PEAK.amplitudes),
        },
    }
    c0, t0 = _cpu_self_s(), time.perf_counter()
    g = MultiEcho(signal, np.ascontiguousarray(mask.astype(bool)), params)
    g.verbose = False
    g.perform()
    seconds, cpu = time.perf_counter() - t0, _cpu_self_s() - c0

    def back(a: np.ndarray) -> np.ndarray:
        return np.asarray(a, float).transpose(2, 1, 0)

    water, fat = np.abs(g.images["water"]), np.abs(g.images["fat"])
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(water + fat > 0, 100.0 * fat / (water + fat), 0.0)
    return HmrgcMaps(
        back(g.images["fatFraction_percent"]),
        back(mag),
        back(g.r2starmap),
        back(g.fieldmap),
        seconds,
        cpu,
    )


def hmrgc_available() -> bool:
    """True when hmrGC can be imported (it is not a dependency of this project)."""
    try:
        import hmrGC  # noqa: F401
    except ImportError:
        return False
    return True


def compare_with_hmrgc(case: int, data: Path) -> dict[str, float]:
    """Our maps against hmrGC's inside the case's mask, and hmrGC against FattyRiot."""
    from RefractureRiskLib.io.echo_mat import read_echo_mat
    from RefractureRiskLib.maps.fatwater import separate

    echoes = read_echo_mat(data / f"{case}.mat")
    ours = separate(echoes)
    hm = hmrgc_separate(echoes)
    fat_ref, water_ref = reference_maps(data / f"{case}_FattyRiot_reference.png", echoes.shape)
    ref = reference_pdff(fat_ref, water_ref)
    mask = echoes.mask if echoes.mask is not None else np.ones(echoes.shape, bool)
    tissue = mask & ((fat_ref + water_ref) >= TISSUE_LEVEL) & np.isfinite(ref)
    d_pdff = np.abs(ours.pdff.array - hm.pdff_pct)
    d_mag = np.abs(ours.pdff.array - hm.pdff_mag_pct)
    hm_ref = np.abs(hm.pdff_mag_pct - ref)  # FattyRiot's reference is a magnitude ratio too
    ours_ref = np.abs(ours.pdff.array - ref)
    mid = tissue & (hm.pdff_mag_pct >= 10) & (hm.pdff_mag_pct <= 90) & (hm_ref <= SWAP_PP)
    d_r2s = np.abs(ours.r2s.array - hm.r2s_per_s)[mid]
    return {
        "case": case,
        "n_mask": int(mask.sum()),
        "median_pdff_mask": float(np.median(d_pdff[mask])),
        "swap_pct_mask": float(100.0 * np.mean(d_pdff[mask] > SWAP_PP)),
        "median_pdff_tissue": float(np.median(d_pdff[tissue])),
        "swap_pct_tissue": float(100.0 * np.mean(d_pdff[tissue] > SWAP_PP)),
        "swap_pct_tissue_mag": float(100.0 * np.mean(d_mag[tissue] > SWAP_PP)),
        "n_mid": int(mid.sum()),
        "median_r2s_mid": float(np.median(d_r2s)) if d_r2s.size else float("nan"),
        "hmrgc_ref_swap_pct": float(100.0 * np.mean(hm_ref[tissue] > SWAP_PP)),
        "ours_ref_swap_pct": float(100.0 * np.mean(ours_ref[tissue] > SWAP_PP)),
        "hmrgc_seconds": hm.seconds,
    }


def print_hmrgc_table(data: Path) -> None:
    """One row per case: ours vs hmrGC, and hmrGC vs FattyRiot (its own swaps)."""
    print(
        "\n| case | mask voxels | median abs dPDFF vs hmrGC, mask (pp) | >30 pp, mask (%) "
        "| median abs dPDFF vs hmrGC, tissue (pp) | >30 pp, tissue (%) "
        "| >30 pp vs hmrGC magnitude PDFF, tissue (%) | R2* voxels | median abs dR2* (1/s) "
        "| hmrGC magnitude PDFF vs FattyRiot >30 pp (%) | ours vs FattyRiot >30 pp (%) "
        "| hmrGC (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for case in CASES:
        r = compare_with_hmrgc(case, data)
        print(
            f"| {case} | {r['n_mask']} | {r['median_pdff_mask']:.2f} | {r['swap_pct_mask']:.2f} "
            f"| {r['median_pdff_tissue']:.2f} | {r['swap_pct_tissue']:.2f} "
            f"| {r['swap_pct_tissue_mag']:.2f} | {r['n_mid']} | {r['median_r2s_mid']:.1f} "
            f"| {r['hmrgc_ref_swap_pct']:.2f} | {r['ours_ref_swap_pct']:.2f} "
            f"| {r['hmrgc_seconds']:.1f} |",
            flush=True,
        )
    print(
        "R2* voxels: tissue voxels where hmrGC's magnitude PDFF is 10-90% and within 30 pp of "
        "FattyRiot's (hmrGC swap-free there); the first hmrGC call includes numba's compilation."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="PNG folder (default: temporary)")
    parser.add_argument("--no-phantom", action="store_true")
    parser.add_argument(
        "--hmrgc", action="store_true", help="also compare with hmrGC (must be importable)"
    )
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="fatwater-eval-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.data.is_dir():
        print(
            "| case | mask voxels | median abs dPDFF (pp) | >30 pp (%) | tissue voxels "
            "| median abs dPDFF tissue (pp) | >30 pp tissue (%) | separation (s) |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for case in CASES:
            r = evaluate_case(case, args.data, out)
            print(
                f"| {case} | {r['n_mask']} | {r['median_mask']:.2f} | {r['swap_pct_mask']:.2f} "
                f"| {r['n_tissue']} | {r['median_tissue']:.2f} | {r['swap_pct_tissue']:.2f} "
                f"| {r['seconds']:.1f} |"
            )
        print(f"\nPNG per case in {out}")
        if args.hmrgc:
            if not hmrgc_available():
                print("\n--hmrgc: hmrGC is not importable here: no comparison made")
                return 1
            print_hmrgc_table(args.data)
    else:
        print(f"ISMRM data not found at {args.data}: skipped")
    if not args.no_phantom:
        print(
            "\n| B0 (T) | SNR | worst PDFF bias (pp) | at (PDFF %, R2* 1/s) "
            "| worst R2* bias (1/s) | at | swapped voxels |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in phantom_bias():
            print(
                f"| {r['field_t']} | {r['snr']:.0f} | {r['pdff_bias_pp']:+.2f} | {r['pdff_at']} "
                f"| {r['r2s_bias_per_s']:+.2f} | {r['r2s_at']} | {r['swaps']} of {r['voxels']} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
