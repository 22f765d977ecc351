"""The numpy + gzip NRRD writer (io/nrrd.py) against the SimpleITK path it replaced.

Every segmentation is written twice, by :func:`write_roiset` (the new writer) and by the old path
(``volume_to_sitk`` + ``SetMetaData`` + ``sitk.WriteImage``, kept here as the reference), and
compared by content: parsed header fields, voxels, geometry through SimpleITK and through the
project's readers, segment metadata. Then: the file is written whole or not at all, and writing a
segmentation (and a cold ``analyze``) loads no SimpleITK.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from RefractureRiskLib.core import LevelRoi, RoiFlag, RoiMethod, RoiSet, Volume
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS, level_label
from RefractureRiskLib.io import nrrd
from RefractureRiskLib.io.images import read_image, volume_to_sitk
from RefractureRiskLib.io.nrrd import write_nrrd
from RefractureRiskLib.io.segmentation import read_roiset, segmentation_header, write_roiset
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
from Testing.grids import oblique_ijk_to_ras

GEOMETRY_KEYS = ("space directions", "space origin")


def _oblique_ijk_to_ras() -> np.ndarray:
    """The shared oblique grid, its origin given long decimals."""
    m = oblique_ijk_to_ras()
    m[2, 3] += 1 / 3
    return m


def _synthetic_roiset(big_labels: bool = False) -> RoiSet:
    """Oblique grid; blocks, a single voxel, an empty level and a stray label (written as 0).
    ``big_labels``: label values above 255 (a 16-bit file)."""
    shape = (9, 22, 26)
    base = 250 if big_labels else 0
    labels = np.zeros(shape, np.int16)
    labels[1:4, 2:9, 3:12] = base + level_label("L1")
    labels[4:8, 12:20, 10:21] = base + level_label("L2")
    labels[5, 3, 4] = base + level_label("L3")
    labels[0, 0, 0] = 42
    levels = (
        LevelRoi("L1", base + level_label("L1"), {RoiFlag.FRACTURED, RoiFlag.INDEX}, True),
        LevelRoi("L2", base + level_label("L2")),
        LevelRoi("L3", base + level_label("L3"), frozenset({RoiFlag.LOW_COVERAGE}), False),
        LevelRoi("L4", base + level_label("L4")),
    )
    notes = ("anchor L3 given", "multi-line\nnote with | bar and a \\ backslash", "é")
    return RoiSet(
        Volume(labels, _oblique_ijk_to_ras()),
        levels,
        RoiMethod.MANUAL_POINTS,
        reader="reader A",
        notes=notes,
    )


def _phantom_roiset(spec: PhantomSpec) -> RoiSet:
    """The phantom's true vertebral bodies as a RoiSet (every level, product labels)."""
    truth = generate_phantom(spec).truth
    levels = tuple(LevelRoi(lv.level, lv.label) for lv in truth.levels)
    return RoiSet(truth.body_labels, levels, RoiMethod.AUTOMATIC, reader="automatic")


CASES = {
    "synthetic-oblique": lambda: _synthetic_roiset(),
    "synthetic-16bit": lambda: _synthetic_roiset(big_labels=True),
    "empty": lambda: RoiSet(
        Volume(np.zeros((3, 4, 5), np.int16), _oblique_ijk_to_ras()),
        (),
        RoiMethod.AUTOMATIC,
        reader="automatic",
    ),
    "phantom-sagittal": lambda: _phantom_roiset(
        PhantomSpec(seed=2, in_plane_spacing_mm=2.5, slice_thickness_mm=4.0)
    ),
    "phantom-axial-oblique": lambda: _phantom_roiset(
        PhantomSpec(
            seed=3,
            orientation="axial",
            oblique_deg=12.0,
            in_plane_spacing_mm=2.5,
            slice_thickness_mm=4.0,
            scoliosis_deg=8.0,
        )
    ),
}


def write_with_simpleitk(roiset: RoiSet, path: Path) -> Path:
    """The writer this module replaced (write_roiset before issue 13), for reference."""
    labels = roiset.labelmap.array
    known = np.isin(labels, [lv.label for lv in roiset.levels])
    top = max((lv.label for lv in roiset.levels), default=0)
    dtype = np.uint8 if top <= 255 else np.uint16
    data = np.where(known, labels, 0).astype(dtype)
    image = volume_to_sitk(Volume(data, roiset.labelmap.ijk_to_ras))
    for key, value in segmentation_header(roiset).items():
        image.SetMetaData(key, value)
    sitk.WriteImage(image, str(path), True)
    return path


def raw_header(path: Path) -> tuple[list[str], dict[str, str]]:
    """The header lines and fields (unescaped) read straight from the file text."""
    text = path.read_bytes().split(b"\n\n", 1)[0].decode("utf-8")
    fields = {}
    for line in text.splitlines()[1:]:
        if line.startswith("#"):
            continue
        key, value = line.split(":=", 1) if ":=" in line else line.split(": ", 1)
        # teem escapes: backslash-backslash is a backslash, backslash-n a line break
        fields[key] = value.replace("\\\\", "\0").replace("\\n", "\n").replace("\0", "\\")
    return text.splitlines(), fields


def _vectors(text: str) -> np.ndarray:
    return np.array([[float(x) for x in v.strip("()").split(",")] for v in text.split(") (")])


def assert_same_header(new: Path, old: Path) -> dict[str, str]:
    """The two files have the same header fields in the same order, with equal values (the
    geometry's numbers within 1e-9 mm); returns the new file's fields."""
    new_lines, new_fields = raw_header(new)
    _, old_fields = raw_header(old)
    assert new_lines[0] == "NRRD0004"
    assert list(new_fields) == list(old_fields)
    for key in old_fields:
        if key in GEOMETRY_KEYS:
            np.testing.assert_allclose(
                _vectors(new_fields[key]), _vectors(old_fields[key]), rtol=0, atol=1e-9
            )
        else:
            assert new_fields[key] == old_fields[key], key
    return new_fields


@pytest.fixture(scope="module", params=sorted(CASES))
def written(request, tmp_path_factory) -> tuple[RoiSet, Path, Path]:
    roiset = CASES[request.param]()
    folder = tmp_path_factory.mktemp(request.param)
    new = write_roiset(roiset, folder / "new.seg.nrrd")
    old = write_with_simpleitk(roiset, folder / "old.seg.nrrd")
    return roiset, new, old


def test_header_fields_equal_the_simpleitk_writers(written) -> None:
    roiset, new, old = written
    new_fields = assert_same_header(new, old)
    assert new_fields["space"] == "left-posterior-superior"
    assert new_fields["encoding"] == "gzip"
    n_segments = sum(k.endswith("_ID") for k in new_fields)
    assert n_segments == len(roiset.levels)
    assert json.loads(new_fields["RefractureRisk_Notes"]) == list(roiset.notes)


def test_voxels_in_file_order(written) -> None:
    roiset, new, _ = written
    _, fields = raw_header(new)
    labels = roiset.labelmap.array
    expected = np.where(np.isin(labels, [lv.label for lv in roiset.levels]), labels, 0)
    dtype = np.dtype("<u2") if fields["type"] == "unsigned short" else np.dtype(np.uint8)
    body = gzip.decompress(new.read_bytes().split(b"\n\n", 1)[1])
    ni, nj, nk = (int(s) for s in fields["sizes"].split())
    assert (nk, nj, ni) == labels.shape
    np.testing.assert_array_equal(np.frombuffer(body, dtype).reshape(nk, nj, ni), expected)


def test_simpleitk_reads_the_same_image(written) -> None:
    _, new, old = written
    a, b = sitk.ReadImage(str(new)), sitk.ReadImage(str(old))
    assert a.GetSize() == b.GetSize()
    assert a.GetPixelIDValue() == b.GetPixelIDValue()
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
    meta_a = {k: a.GetMetaData(k) for k in a.GetMetaDataKeys()}
    meta_b = {k: b.GetMetaData(k) for k in b.GetMetaDataKeys()}
    assert meta_a.keys() == meta_b.keys()
    segment_keys = [k for k in meta_a if k.startswith(("Segment", "RefractureRisk_"))]
    assert segment_keys and all(meta_a[k] == meta_b[k] for k in segment_keys)


def test_project_readers_read_the_same_segmentation(written) -> None:
    roiset, new, old = written
    if not roiset.levels:  # no segment fields: read as a plain label map (either writer)
        table = {1: "L1"}
        a, b = read_roiset(new, level_table=table), read_roiset(old, level_table=table)
        assert a.levels == b.levels and not a.labelmap.array.any()
        np.testing.assert_allclose(a.labelmap.ijk_to_ras, b.labelmap.ijk_to_ras, atol=1e-9)
        return
    a, b = read_roiset(new), read_roiset(old)
    assert a.levels == b.levels == roiset.levels
    assert (a.method, a.reader, a.notes) == (b.method, b.reader, b.notes)
    assert a.notes == roiset.notes
    np.testing.assert_array_equal(a.labelmap.array, b.labelmap.array)
    np.testing.assert_allclose(a.labelmap.ijk_to_ras, b.labelmap.ijk_to_ras, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.labelmap.ijk_to_ras, roiset.labelmap.ijk_to_ras, atol=1e-9)
    assert read_roiset(new, reference=roiset.labelmap).labelmap.same_grid(roiset.labelmap)
    image_a, image_b = read_image(new), read_image(old)
    np.testing.assert_array_equal(image_a.array, image_b.array)
    np.testing.assert_allclose(image_a.ijk_to_ras, image_b.ijk_to_ras, rtol=0, atol=1e-9)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "float32", "float64"])
@pytest.mark.parametrize("compress", [True, False])
def test_write_nrrd_any_scalar_type(tmp_path, dtype, compress) -> None:
    rng = np.random.default_rng(7)
    array = (rng.random((4, 5, 6)) * 200 - (0 if dtype.startswith("u") else 100)).astype(dtype)
    volume = Volume(array, _oblique_ijk_to_ras())
    fields = {"Tricky": "back\\slash, line\nbreak, a:=b", "Plain": "x"}
    new = write_nrrd(volume, tmp_path / "new.nrrd", fields, compress=compress)
    old = tmp_path / "old.nrrd"
    reference = volume_to_sitk(volume)
    for key, value in fields.items():
        reference.SetMetaData(key, value)
    sitk.WriteImage(reference, str(old), compress)
    assert assert_same_header(new, old)["encoding"] == ("gzip" if compress else "raw")
    a, b = sitk.ReadImage(str(new)), sitk.ReadImage(str(old))
    assert a.GetPixelIDValue() == b.GetPixelIDValue()
    assert a.GetMetaData("Tricky") == fields["Tricky"]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), array)
    back = read_image(new)
    np.testing.assert_array_equal(back.array, array)
    np.testing.assert_allclose(back.ijk_to_ras, volume.ijk_to_ras, rtol=0, atol=1e-9)


def test_refuses_what_it_cannot_write(tmp_path) -> None:
    volume = Volume(np.zeros((2, 3, 4), np.uint8), np.eye(4))
    with pytest.raises(InputError, match="header key"):
        write_nrrd(volume, tmp_path / "a.nrrd", {"a:=b": "1"})
    with pytest.raises(InputError, match="header key"):
        write_nrrd(volume, tmp_path / "a.nrrd", {"two\nlines": "1"})
    with pytest.raises(InputError, match="3D array"):
        write_nrrd(Volume(np.zeros((2, 3, 4), np.bool_), np.eye(4)), tmp_path / "b.nrrd")
    assert not list(tmp_path.iterdir())


def test_whole_file_or_none(tmp_path, monkeypatch) -> None:
    target = tmp_path / "rois.seg.nrrd"
    write_roiset(_synthetic_roiset(), target)
    before = target.read_bytes()
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()

    def fail(*_args) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(nrrd.os, "replace", fail)
    empty = RoiSet(
        Volume(np.zeros((9, 22, 26), np.int16), _oblique_ijk_to_ras()),
        (),
        RoiMethod.AUTOMATIC,
        reader="automatic",
    )
    with pytest.raises(OSError, match="disk full"):
        write_roiset(empty, target)
    assert target.read_bytes() == before  # the old file, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["rois.seg.nrrd"]  # no temporary left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_WRITE_ONE = """
import sys
import numpy as np
from RefractureRiskLib.core import LevelRoi, RoiMethod, RoiSet, Volume
from RefractureRiskLib.io.segmentation import write_roiset
labels = np.zeros((3, 4, 5), np.int16)
labels[1, 2, 3] = 4
write_roiset(RoiSet(Volume(labels, np.eye(4)), (LevelRoi("L1", 4),), RoiMethod.AUTOMATIC,
                    reader="a"), sys.argv[1])
print("SimpleITK" in sys.modules)
"""


def test_writing_a_segmentation_loads_no_simpleitk(tmp_path) -> None:
    path = tmp_path / "one.seg.nrrd"
    proc = subprocess.run(
        [sys.executable, "-c", _WRITE_ONE, str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False"
    assert read_roiset(path).levels == (LevelRoi("L1", 4),)  # the check ran on a real write


_ANALYZE = """
import runpy, sys
sys.argv = ["refracture-risk", "analyze", *sys.argv[1:]]
try:
    runpy.run_module("RefractureRiskLib.cli", run_name="__main__")
except SystemExit as stop:
    assert not stop.code, stop.code
print("SIMPLEITK=" + str(sorted(m for m in sys.modules if m.split(".")[0] == "SimpleITK")))
"""


def test_cold_analyze_loads_no_simpleitk(tmp_path) -> None:
    from RefractureRiskLib.phantom.dicom_writer import write_dicom_study

    spec = PhantomSpec(seed=1, in_plane_spacing_mm=2.0, snr=80.0)
    write_dicom_study(
        generate_phantom(spec).study, tmp_path / "dicom", seed=1, kinds=("pdff", "r2s")
    )
    out = tmp_path / "out"
    args = [str(tmp_path / "dicom"), "--index-levels", "L1", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", _ANALYZE, *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "SIMPLEITK=[]" in proc.stdout.splitlines()
    rois = read_roiset(out / "rois.seg.nrrd")
    bodies = read_roiset(out / "bodies.seg.nrrd", reference=rois.labelmap)
    assert rois.levels and {lv.level for lv in rois.levels} <= set(VERTEBRAL_LEVELS)
    assert np.count_nonzero(bodies.labelmap.array) > np.count_nonzero(rois.labelmap.array) > 0
