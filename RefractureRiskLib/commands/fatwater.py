"""``refracture-risk fatwater INPUT --out DIR``: PDFF, R2*, water, fat and field map from echoes.

INPUT is an ISMRM fat-water toolbox ``imDataParams`` .mat file or a folder of multi-echo DICOM
(magnitude + phase or real + imaginary per echo). DIR receives ``pdff.nrrd`` (%), ``r2s.nrrd``
(1/s), ``water.nrrd``, ``fat.nrrd`` (signal units), ``fieldmap.nrrd`` (Hz), ``residual.nrrd``,
``overview.png`` and ``provenance.json``; all of them appear together or not at all. For .mat
input the NRRD axes are the file's (i = x, j = y, k = slice, 1 mm voxels); for DICOM the real
geometry.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from RefractureRiskLib.core.errors import InputError

NAME = "fatwater"
HELP = "fat-water separation of multi-echo data (.mat or DICOM folder) into PDFF/R2*/field maps"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="imDataParams .mat file or DICOM folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument(
        "--spectrum",
        default="ismrm-6peak",
        help="fat spectrum: ismrm-6peak, hamilton-liver-9peak, ren-marrow-9peak, single-peak "
        "(default: ismrm-6peak)",
    )
    parser.add_argument(
        "--precession",
        choices=("auto", "clockwise", "counterclockwise"),
        default="auto",
        help="DICOM phase sense (.mat files say it themselves)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier fatwater output in --out"
    )


def load_echoes(path: Path, precession: str = "auto"):
    """The :class:`EchoSet` of a .mat file or a DICOM folder."""
    if path.is_file() and path.suffix.lower() == ".mat":
        from RefractureRiskLib.io.echo_mat import read_echo_mat

        return read_echo_mat(path)
    if path.is_dir():
        from RefractureRiskLib.io.echo_dicom import read_echo_dicom

        return read_echo_dicom(path, precession)
    if not path.exists():
        raise InputError(path, "not found")
    raise InputError(path, "expected an imDataParams .mat file or a folder of DICOM echoes")


def run(args: argparse.Namespace) -> int:
    from RefractureRiskLib.core.atomic import OutputSet
    from RefractureRiskLib.maps.fatwater import get_spectrum, separate

    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"... {msg}", file=sys.stderr, flush=True)

    try:
        spectrum = get_spectrum(args.spectrum)
    except ValueError as err:
        raise InputError("--spectrum", str(err)) from None
    say(f"reading {args.input}")
    echoes = load_echoes(args.input, args.precession)
    say(
        f"{echoes.n_echoes} echoes, {echoes.shape[2]}x{echoes.shape[1]}x{echoes.shape[0]} voxels, "
        f"B0 {echoes.field_strength_t:g} T ({time.perf_counter() - t0:.1f} s)"
    )
    result = separate(echoes, spectrum, progress=say)
    with OutputSet(overwrite=args.overwrite) as outputs:
        out = outputs.folder(args.out, marker="provenance.json")
        files = write_outputs(result, echoes, out, say)
    total = time.perf_counter() - t0
    for name in files:
        print(f"{name:>15}: {outputs.final(out / name)}")
    print(f"fatwater: {args.input} done in {total:.1f} s")
    return 0


def write_outputs(result, echoes, out: Path, say) -> list[str]:
    """NRRD maps (with provenance in their headers), the PNG overview and provenance.json."""
    import SimpleITK as sitk

    from RefractureRiskLib.io.images import volume_to_sitk

    units = {
        "pdff": "percent",
        "r2s": "1/s",
        "water": "signal",
        "fat": "signal",
        "fieldmap": "Hz",
        "residual": "signal",
    }
    files = []
    prov = json.dumps(result.provenance, sort_keys=True)
    for name, vol in result.maps().items():
        image = volume_to_sitk(vol)
        image.SetMetaData("RefractureRisk_map", name)
        image.SetMetaData("RefractureRisk_unit", units[name])
        image.SetMetaData("RefractureRisk_provenance", prov)
        sitk.WriteImage(image, str(out / f"{name}.nrrd"), True)
        files.append(f"{name}.nrrd")
    say("writing overview.png")
    write_overview(result, echoes, out / "overview.png")
    files.append("overview.png")
    (out / "provenance.json").write_text(
        json.dumps(result.provenance, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    files.append("provenance.json")
    return files


def write_overview(result, echoes, path: Path, max_slices: int = 4) -> None:
    """One row per slice (up to ``max_slices``, evenly spread): |echo 1|, water, fat, PDFF (%),
    R2* (1/s), field map (Hz)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    nk = echoes.shape[0]
    slices = sorted(set(np.linspace(0, nk - 1, min(nk, max_slices)).round().astype(int)))
    mag = np.abs(echoes.signal[..., 0])
    top = float(np.percentile(mag, 99.5)) or 1.0
    wf_top = float(np.percentile(np.maximum(result.water.array, result.fat.array), 99.5)) or 1.0
    r2_top = float(np.percentile(result.r2s.array[result.mask.array > 0], 99)) or 1.0
    panels = [
        ("|echo 1|", mag, dict(cmap="gray", vmin=0, vmax=top)),
        ("water", result.water.array, dict(cmap="gray", vmin=0, vmax=wf_top)),
        ("fat", result.fat.array, dict(cmap="gray", vmin=0, vmax=wf_top)),
        ("PDFF (%)", result.pdff.array, dict(cmap="magma", vmin=0, vmax=100)),
        ("R2* (1/s)", result.r2s.array, dict(cmap="viridis", vmin=0, vmax=r2_top)),
        ("field (Hz)", result.fieldmap.array, dict(cmap="twilight")),
    ]
    fig, axes = plt.subplots(
        len(slices), len(panels), figsize=(2.6 * len(panels), 2.6 * len(slices)), squeeze=False
    )
    for row, k in enumerate(slices):
        for col, (title, arr, style) in enumerate(panels):
            ax = axes[row, col]
            im = ax.imshow(arr[k], **style)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            if col == 0:
                ax.set_ylabel(f"slice {k}", fontsize=8)
    fig.suptitle(
        f"{Path(str(echoes.source)).name}: {result.provenance['fat_spectrum']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
