"""``refracture-risk fatwater INPUT --out DIR``: PDFF, R2*, water, fat and field map from echoes.

INPUT is an ISMRM fat-water toolbox ``imDataParams`` .mat file or a folder of multi-echo DICOM
(magnitude + phase or real + imaginary per echo). DIR receives ``pdff.nrrd`` (%), ``r2s.nrrd``
(1/s), ``water.nrrd``, ``fat.nrrd`` (signal units), ``fieldmap.nrrd`` (Hz), ``residual.nrrd``,
``overview.png`` and ``provenance.json``; with ``--dicom`` (DICOM input) also ``dicom/<map>.dcm``,
one DICOM Parametric Map series per map. All of them appear together or not at all. For .mat
input the NRRD axes are the file's (i = x, j = y, k = slice, 1 mm voxels); for DICOM the real
geometry. The NRRDs are raw (uncompressed) and the PNG stored (deflate level 0) unless ``--gzip``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from RefractureRiskLib.commands.options import add_separation_arguments
from RefractureRiskLib.core.errors import InputError

NAME = "fatwater"
HELP = "fat-water separation of multi-echo data (.mat or DICOM folder) into PDFF/R2*/field maps"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="imDataParams .mat file or DICOM folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    add_separation_arguments(parser)
    parser.add_argument(
        "--dicom",
        action="store_true",
        help="also write the maps as DICOM Parametric Map series (dicom/*.dcm) referencing the "
        "source echoes, for PACS (DICOM input only; needs the 'export' extra)",
    )
    parser.add_argument(
        "--deidentify", action="store_true", help="de-identify the DICOM maps (with --dicom)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier fatwater output in --out"
    )
    parser.add_argument(
        "--gzip",
        action="store_true",
        help="gzip the NRRD maps (about 2/3 of the size; on a 256x256x40 study ~0.6 s more CPU) "
        "and deflate the overview PNG (level 1: about 1/3 of the size, ~0.01-0.04 s more)",
    )


def run(args: argparse.Namespace) -> int:
    """The command, with the cold process's fixed costs cut: the .mat input is read and
    inflated on a thread while numpy loads (:mod:`..io.mat_inflate`). (Cyclic garbage
    collection is paused for it by :func:`RefractureRiskLib.cli.collection_paused`.)"""
    from RefractureRiskLib.io.mat_inflate import forget_reading, start_reading

    start_reading(args.input)
    try:
        return _run(args)
    finally:  # a command that failed before reading it (e.g. --dicom on a .mat) keeps no read
        forget_reading(args.input)


def _run(args: argparse.Namespace) -> int:
    from RefractureRiskLib.commands.options import refuse_inputs_inside
    from RefractureRiskLib.core.atomic import OutputSet
    from RefractureRiskLib.maps.fatwater import get_spectrum, separate
    from RefractureRiskLib.maps.fatwater.compute import load_echoes

    refuse_inputs_inside(args.out, {"the echo input": args.input})
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"... {msg}", file=sys.stderr, flush=True)

    try:
        spectrum = get_spectrum(args.spectrum)
    except ValueError as err:
        raise InputError("--spectrum", str(err)) from None
    if args.dicom:
        _check_dicom_request(args.input)
    say(f"reading {args.input}")
    echoes = load_echoes(args.input, args.precession)
    say(
        f"{echoes.n_echoes} echoes, {echoes.shape[2]}x{echoes.shape[1]}x{echoes.shape[0]} voxels, "
        f"B0 {echoes.field_strength_t:g} T ({time.perf_counter() - t0:.1f} s)"
    )
    result = separate(echoes, spectrum, progress=say)
    with OutputSet(overwrite=args.overwrite) as outputs:
        out = outputs.folder(args.out, marker="provenance.json")
        files = write_outputs(result, echoes, out, say, compress=args.gzip)
        if args.dicom:
            files += write_dicom_maps(result, args.input, out, args.deidentify, say)
    total = time.perf_counter() - t0
    for name in files:
        print(f"{name:>15}: {outputs.final(out / name)}")
    print(f"fatwater: {args.input} done in {total:.1f} s")
    return 0


def _check_dicom_request(source: Path) -> None:
    """Refuse ``--dicom`` before any work when it cannot be honoured."""
    from RefractureRiskLib.core.extras import require

    if not source.is_dir():
        raise InputError(
            "--dicom",
            f"{source} is not a DICOM folder: DICOM maps reference their source echo images, "
            "which a .mat file does not have",
        )
    require("highdicom", what="DICOM map export (--dicom)")


def write_dicom_maps(result, source: Path, out: Path, deidentify: bool, say) -> list[str]:
    """The maps as DICOM Parametric Maps in ``out/dicom`` (:mod:`..export.parametric_maps`)."""
    from RefractureRiskLib.export.parametric_maps import export_parametric_maps
    from RefractureRiskLib.io.echo_dicom import echo_source_files

    say("writing DICOM parametric maps")
    written = export_parametric_maps(
        result.maps(), echo_source_files(source), out / "dicom", deidentify
    )
    return [f"dicom/{p.name}" for p in written.values()]


#: Unit written into each map's NRRD header.
_UNITS = {
    "pdff": "percent",
    "r2s": "1/s",
    "water": "signal",
    "fat": "signal",
    "fieldmap": "Hz",
    "residual": "signal",
}


def _write_nrrd(name: str, vol, out: Path, prov: str, compress: bool = False) -> str:
    """One map as ``out/<name>.nrrd`` with its name, unit and provenance as ``key:=value``
    header fields (:func:`..io.nrrd.write_nrrd`: numpy + zlib, whole or nothing; no SimpleITK,
    whose import alone took ~0.1 s of a ~1 s cold command). Raw unless ``compress``: gzip
    (level 1) of the six maps of a 256 x 256 x 40 study took 0.6 s CPU, raw 0.04 s, for
    42 instead of 63 MB."""
    from RefractureRiskLib.io.nrrd import write_nrrd

    fields = {
        "RefractureRisk_map": name,
        "RefractureRisk_unit": _UNITS[name],
        "RefractureRisk_provenance": prov,
    }
    write_nrrd(vol, out / f"{name}.nrrd", fields, compress=compress)
    return f"{name}.nrrd"


def write_outputs(result, echoes, out: Path, say, compress: bool = False) -> list[str]:
    """NRRD maps (with provenance in their headers; gzip'd if ``compress``), the PNG overview
    (deflated at level 1 if ``compress``, else stored: the same pixels, ~3.5x the bytes, for
    10-40 ms less on the ISMRM cases) and provenance.json.

    The NRRDs are written on threads while the overview is drawn: file writes and zlib release
    the GIL."""
    from concurrent.futures import ThreadPoolExecutor

    prov = json.dumps(result.provenance, sort_keys=True)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="nrrd") as pool:
        written = [
            pool.submit(_write_nrrd, n, v, out, prov, compress) for n, v in result.maps().items()
        ]
        say("writing overview.png")
        write_overview(result, echoes, out / "overview.png", level=1 if compress else 0)
        files = [f.result() for f in written]
    files.append("overview.png")
    (out / "provenance.json").write_text(
        json.dumps(result.provenance, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    files.append("provenance.json")
    return files


#: Colour anchors (RGB) of the overview's colour maps, spread evenly over the value range.
_LUTS = {
    "gray": [(0, 0, 0), (255, 255, 255)],
    "magma": [(0, 0, 4), (80, 18, 123), (183, 55, 121), (252, 137, 97), (252, 253, 191)],
    "viridis": [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)],
    "cyclic": [(225, 216, 226), (94, 120, 180), (47, 20, 54), (180, 80, 60), (225, 216, 226)],
}


def _colour(values, lo: float, hi: float, lut: str, inside=None):
    """``values`` scaled to ``lo..hi`` and coloured through the anchors of ``lut``: uint8 RGB,
    as ``np.interp`` over evenly spread anchors gives it, each channel truncated. With the
    boolean mask ``inside`` (of ``values``' shape) only those voxels are coloured, the rest
    black. Grey (two anchors, 0 and 255) is ``255 x`` in float64: ``np.interp``'s slope
    ``(255 - 0) / (1 - 0)`` times ``x - 0``, plus 0, the same values without its search."""
    import numpy as np

    anchors = np.asarray(_LUTS[lut], float)
    rgb = np.zeros((*values.shape, 3), np.uint8)
    picked = values if inside is None else values[inside]
    x = np.clip((np.nan_to_num(picked) - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
    if lut == "gray" and anchors.tolist() == [[0, 0, 0], [255, 255, 255]]:
        channels = [np.multiply(x, 255.0, dtype=np.float64)] * 3
    else:
        pos, x64 = np.linspace(0.0, 1.0, len(anchors)), x.astype(np.float64)
        channels = [np.interp(x64, pos, anchors[:, c]) for c in range(3)]
    # each channel cast (truncated) as it is written; one cast where the three are equal
    if inside is None and channels[0] is channels[1]:
        rgb[...] = channels[0][..., None]
    elif inside is None:
        for c in range(3):
            rgb[..., c] = channels[c]
    else:  # by flat index: ~2x faster than a boolean-mask assignment here
        rgb.reshape(-1, 3)[np.flatnonzero(inside)] = np.stack(channels, -1).astype(np.uint8)
    return rgb


def _overview_panels(result, echoes, slices: list[int]):
    """The overview's columns ``(title, values[slices], lo, hi, lut)`` and the mask of the
    shown slices. Scales come from the slices shown (percentiles over the whole volume cost
    more than the picture)."""
    import numpy as np

    from RefractureRiskLib.maps.fatwater.quantile import percentile as _percentile

    inside = result.mask.array[slices] > 0
    mag = np.abs(echoes.signal[slices, ..., 0])
    water, fat = result.water.array[slices], result.fat.array[slices]
    r2s, field = result.r2s.array[slices], result.fieldmap.array[slices]
    top = _percentile(mag, 99.5) or 1.0
    wf_top = _percentile(np.maximum(water, fat), 99.5) or 1.0
    r2_top = _percentile(r2s[inside], 99) if inside.any() else 1.0
    f_lo, f_hi = (
        (float(field[inside].min()), float(field[inside].max())) if inside.any() else (0, 1)
    )
    panels = [
        ("|echo 1|", mag, 0.0, top, "gray"),
        ("water", water, 0.0, wf_top, "gray"),
        ("fat", fat, 0.0, wf_top, "gray"),
        ("PDFF 0-100 %", result.pdff.array[slices], 0.0, 100.0, "magma"),
        (f"R2* 0-{r2_top:.0f} 1/s", r2s, 0.0, r2_top, "viridis"),
        (f"field {f_lo:.0f}..{f_hi:.0f} Hz", field, f_lo, f_hi, "cyclic"),
    ]
    return panels, inside


def _titles(titles: list[str], x0s: list[int], width: int, height: int):
    """A white ``height`` x ``width`` RGB strip with each title at (x0, 2) in Pillow's default
    font (only the strip is drawn by Pillow; the tiles are laid out in numpy)."""
    import numpy as np
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for x0, title in zip(x0s, titles, strict=True):
        draw.text((x0, 2), title, fill=(0, 0, 0))
    return np.asarray(strip)


def write_overview(result, echoes, path: Path, max_slices: int = 4, level: int = 1) -> None:
    """One row per slice (up to ``max_slices``, evenly spread): |echo 1|, water, fat (gray,
    jointly scaled), PDFF (0-100%, magma), R2* (0 to its 99th percentile, viridis), field map
    (its range in the mask, cyclic); PDFF, R2* and field black outside the mask. Tiles are
    coloured and enlarged (nearest neighbour) in numpy, the titles drawn with Pillow, the page
    encoded by :func:`..report.encode.png_from_pixels` (zlib ``level``)."""
    import numpy as np

    from RefractureRiskLib.report.encode import png_from_pixels

    nk, nj, ni = echoes.shape[:3]
    slices = sorted(set(np.linspace(0, nk - 1, min(nk, max_slices)).round().astype(int)))
    panels, inside = _overview_panels(result, echoes, slices)
    zoom = max(1, round(160 / max(nj, ni)))
    head, gap, tile_w, tile_h = 14, 4, ni * zoom, nj * zoom
    x0s = [gap + col * (tile_w + gap) for col in range(len(panels))]
    width = len(panels) * (tile_w + gap) + gap
    page = np.full((head + len(slices) * (tile_h + gap) + gap, width, 3), 255, np.uint8)
    # the titles first, as a strip deep enough for descenders: the tiles then cover its foot
    strip = _titles([p[0] for p in panels], x0s, width, min(head + 16, page.shape[0]))
    page[: strip.shape[0]] = strip
    for col, (_title, values, lo, hi, lut) in enumerate(panels):
        rgb = _colour(values, lo, hi, lut, inside if col >= 3 else None)  # black outside
        rgb = rgb.repeat(zoom, axis=1).repeat(zoom, axis=2) if zoom > 1 else rgb
        for row in range(len(slices)):
            y0 = head + row * (tile_h + gap)
            page[y0 : y0 + tile_h, x0s[col] : x0s[col] + tile_w] = rgb[row]
    path.write_bytes(png_from_pixels(page, level))
