"""A cold ``refracture-risk fatwater`` run: what it loads and what it writes.

The command is mostly fixed cost on the ISMRM cases (interpreter, imports, reading, writing): its
NRRDs are written by :func:`RefractureRiskLib.io.nrrd.write_nrrd` (no SimpleITK) and its overview
is laid out in numpy with Pillow for the titles (no matplotlib); the .mat file is read without
scipy. Checked on small phantom echoes:
the modules a new process has loaded when the command exits, the maps it wrote against the
separation run in this process, and the overview against the Pillow drawing it replaced.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import SimpleITK as sitk
from PIL import Image, ImageDraw

from RefractureRiskLib.commands.fatwater import _colour, _overview_panels, write_overview
from RefractureRiskLib.io.echo_mat import read_echo_mat
from RefractureRiskLib.maps.fatwater import get_spectrum, separate
from RefractureRiskLib.phantom.echoes import pattern_echoes

#: Not needed by a cold ``fatwater`` on a .mat file (scipy: the .mat file is read by
#: ``io/mat_v5``, the Gaussian filters are ``maps/fatwater/smooth``; together ~0.3 s of imports).
NOT_LOADED = ("matplotlib", "SimpleITK", "pandas", "pydicom", "highdicom", "scipy")

_PROBE = """
import json, runpy, sys
sys.argv = ["refracture-risk", *json.loads(sys.argv[1])]
try:
    runpy.run_module("RefractureRiskLib.cli", run_name="__main__")
except SystemExit as stop:
    if stop.code:
        raise
print("MODULES=" + json.dumps(sorted(sys.modules)))
"""


def _write_mat(path: Path, ph) -> Path:
    images = ph.echoes.signal.transpose(2, 1, 0, 3)[:, :, :, None, :]  # [x, y, z, coil, echo]
    params = {
        "TE": np.asarray(ph.echoes.te_s)[None, :],
        "images": images,
        "PrecessionIsClockwise": np.uint8(1),
        "FieldStrength": 1.5,
    }
    sio.savemat(path, {"imDataParams": params})
    return path


@pytest.fixture(scope="module")
def cold_run(tmp_path_factory):
    """The phantom's echoes as a .mat file, and one cold command on it: (mat, out, modules)."""
    tmp = tmp_path_factory.mktemp("fatwater_startup")
    ph = pattern_echoes((0, 40, 100), (50.0,), snr=200.0, max_field_hz=80.0, patch_px=8, seed=5)
    mat, out = _write_mat(tmp / "p.mat", ph), tmp / "out"
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(["fatwater", str(mat), "--out", str(out)])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("MODULES="))
    return mat, out, set(json.loads(line.removeprefix("MODULES=")))


def test_cold_fatwater_loads_no_simpleitk_or_matplotlib(cold_run) -> None:
    _mat, out, modules = cold_run
    assert "RefractureRiskLib.commands.fatwater" in modules  # the probe saw the command run
    assert "RefractureRiskLib.io.nrrd" in modules
    loaded = sorted(m for m in modules if m.split(".")[0] in NOT_LOADED)
    assert not loaded, loaded
    assert "numpy.ma" not in modules  # np.percentile would import it (~15 ms)
    # nor what the output set, the BLAS limit and argparse's help width no longer need (~15 ms)
    start_up = {"socket", "uuid", "shutil", "threadpoolctl"} & modules
    assert not start_up, sorted(start_up)
    assert (out / "overview.png").is_file() and (out / "provenance.json").is_file()


def test_cold_fatwater_maps_equal_the_separation(cold_run) -> None:
    """Every NRRD, read back with SimpleITK, holds exactly the separation's map, on its grid,
    with its name, unit and provenance in the header."""
    mat, out, _modules = cold_run
    result = separate(read_echo_mat(mat), get_spectrum("ismrm-6peak"))
    provenance = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    for name, vol in result.maps().items():
        image = sitk.ReadImage(str(out / f"{name}.nrrd"))
        array = sitk.GetArrayFromImage(image)
        assert array.dtype == vol.array.dtype and np.array_equal(array, vol.array), name
        assert image.GetMetaData("RefractureRisk_map") == name
        assert image.GetMetaData("RefractureRisk_unit")
        header = json.loads(image.GetMetaData("RefractureRisk_provenance"))
        assert header["method"] == provenance["method"] == result.provenance["method"]
        assert image.GetSpacing() == (1.0, 1.0, 1.0)
        assert image.GetDirection() == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def _overview_with_pillow(result, echoes, max_slices: int = 4) -> np.ndarray:
    """The overview as it was drawn before (one Pillow tile per slice and map, resized nearest
    and pasted after the titles): the reference for the numpy layout."""
    nk, nj, ni = echoes.shape[:3]
    slices = sorted(set(np.linspace(0, nk - 1, min(nk, max_slices)).round().astype(int)))
    panels, inside = _overview_panels(result, echoes, slices)
    zoom = max(1, round(160 / max(nj, ni)))
    head, gap = 14, 4
    width = len(panels) * (ni * zoom + gap) + gap
    canvas = Image.new("RGB", (width, head + len(slices) * (nj * zoom + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for col, (title, *_rest) in enumerate(panels):
        draw.text((gap + col * (ni * zoom + gap), 2), title, fill=(0, 0, 0))
    for row in range(len(slices)):
        for col, (_title, values, lo, hi, lut) in enumerate(panels):
            rgb = _colour(values[row], lo, hi, lut)
            if col >= 3:
                rgb[~inside[row]] = 0
            tile = Image.fromarray(rgb).resize((ni * zoom, nj * zoom), Image.NEAREST)
            canvas.paste(tile, (gap + col * (ni * zoom + gap), head + row * (nj * zoom + gap)))
    return np.asarray(canvas)


@pytest.mark.parametrize("n_slices", [1, 2, 7])
def test_overview_equals_the_pillow_drawing(tmp_path, n_slices: int) -> None:
    """Same pixels as the Pillow drawing for 1 slice, 2 (zoomed x3: 48 px) and 7 (four shown)."""
    ph = pattern_echoes(
        (0, 50, 100), (50.0, 120.0), snr=100.0, max_field_hz=150.0, patch_px=6, n_slices=n_slices
    )
    result = separate(ph.echoes, get_spectrum("ismrm-6peak"))
    write_overview(result, ph.echoes, tmp_path / "overview.png")
    drawn = np.asarray(Image.open(tmp_path / "overview.png").convert("RGB"))
    expected = _overview_with_pillow(result, ph.echoes)
    assert drawn.shape == expected.shape
    assert np.array_equal(drawn, expected), int((drawn != expected).any(axis=-1).sum())
    # the picture is not blank: titles in the header, the PDFF panel coloured
    assert (drawn[:14] < 128).any()
    assert len(np.unique(drawn.reshape(-1, 3), axis=0)) > 50


def test_nrrds_raw_by_default_gzip_on_request(tmp_path) -> None:
    """``write_outputs`` writes raw NRRDs (gzip cost 0.6 s CPU on a 256x256x40 study) and
    gzip'd ones with ``compress=True`` (``--gzip``): the same voxels either way."""
    from RefractureRiskLib.commands.fatwater import write_outputs

    ph = pattern_echoes((0, 50, 100), (50.0,), snr=100.0, max_field_hz=100.0, patch_px=6)
    result = separate(ph.echoes, get_spectrum("ismrm-6peak"))
    sizes = {}
    for compress in (False, True):
        out = tmp_path / f"gz{int(compress)}"
        out.mkdir()
        write_outputs(result, ph.echoes, out, lambda _msg: None, compress=compress)
        for name, vol in result.maps().items():
            path = out / f"{name}.nrrd"
            header = path.read_bytes().split(b"\n\n", 1)[0].decode()
            assert ("encoding: gzip" if compress else "encoding: raw") in header, name
            array = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
            assert np.array_equal(array, vol.array), (name, compress)
        sizes[compress] = sum(p.stat().st_size for p in out.glob("*.nrrd"))
    assert sizes[True] < sizes[False]


def test_in_process_command_leaves_garbage_collection_on(tmp_path) -> None:
    """The command line pauses cyclic garbage collection while the command runs (and freezes
    the objects at the interpreter's exit only): a caller in the same process, like this test,
    gets it back on, after a run and after a refused input alike."""
    import gc

    from RefractureRiskLib.cli import main

    ph = pattern_echoes((0, 50, 100), (50.0,), snr=100.0, max_field_hz=100.0, patch_px=6)
    mat = _write_mat(tmp_path / "p.mat", ph)
    assert gc.isenabled()
    assert main(["fatwater", str(mat), "--out", str(tmp_path / "out")]) == 0
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert (tmp_path / "out" / "pdff.nrrd").is_file()
    assert main(["fatwater", str(tmp_path / "absent.mat"), "--out", str(tmp_path / "o2")]) == 2
    assert gc.isenabled()


@pytest.mark.parametrize("lut", ["gray", "magma", "viridis", "cyclic"])
def test_colour_equals_np_interp_of_each_channel(lut: str) -> None:
    """The overview's colouring (grey as ``255 x``, a mask colouring only its voxels) gives the
    bytes of the plain definition: ``np.interp`` per channel over evenly spread anchors, each
    truncated to uint8, black outside the mask."""
    from RefractureRiskLib.commands.fatwater import _LUTS

    rng = np.random.default_rng(11)
    values = rng.uniform(-20.0, 120.0, size=(3, 40, 50)).astype(np.float32)
    values[0, 0, :6] = [np.nan, 0.0, 100.0, 25.0, 50.0, np.float32(np.nextafter(100.0, 0))]
    values[1] = np.round(values[1])  # many values on the anchors and the ends
    anchors = np.asarray(_LUTS[lut], float)
    x = np.clip((np.nan_to_num(values) - 0.0) / 100.0, 0.0, 1.0)
    pos = np.linspace(0.0, 1.0, len(anchors))
    want = np.stack([np.interp(x, pos, anchors[:, c]) for c in range(3)], axis=-1)
    want = want.astype(np.uint8)
    np.testing.assert_array_equal(_colour(values, 0.0, 100.0, lut), want)
    inside = rng.random(values.shape) > 0.4
    want[~inside] = 0
    np.testing.assert_array_equal(_colour(values, 0.0, 100.0, lut, inside), want)
