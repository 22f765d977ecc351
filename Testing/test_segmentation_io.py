"""RoiSet <-> Slicer ``.seg.nrrd``: round trip, Slicer header conventions, geometry, imports."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pytest
import SimpleITK as sitk

from RefractureRiskLib.core import InputError, LevelRoi, RoiFlag, RoiMethod, RoiSet, Volume
from RefractureRiskLib.core.levels import level_label
from RefractureRiskLib.io.segmentation import read_roiset, write_roiset
from Testing.grids import oblique_ijk_to_ras

SHAPE = (9, 22, 26)  # [k, j, i]


def _labels() -> np.ndarray:
    labels = np.zeros(SHAPE, np.int16)
    labels[1:4, 2:9, 3:12] = level_label("L1")
    labels[4:8, 12:20, 10:21] = level_label("L2")
    labels[5, 3, 4] = level_label("L3")  # single voxel
    labels[0, 0, 0] = 42  # not a level of the RoiSet: written as background
    return labels


def _roiset() -> RoiSet:
    levels = (
        LevelRoi("L1", level_label("L1"), frozenset({RoiFlag.FRACTURED, RoiFlag.INDEX}), True),
        LevelRoi("L2", level_label("L2")),
        LevelRoi("L3", level_label("L3"), frozenset({RoiFlag.LOW_COVERAGE}), False),
        LevelRoi("L4", level_label("L4")),  # no voxels at all
    )
    return RoiSet(
        Volume(_labels(), oblique_ijk_to_ras()),
        levels,
        RoiMethod.MANUAL_POINTS,
        reader="reader A",
        notes=("anchor L3 given", "multi-line\nnote with | bar"),
    )


def _raw_header(path) -> dict[str, str]:
    """Header fields parsed straight from the file text (independent of SimpleITK)."""
    raw = path.read_bytes()
    text = raw.split(b"\n\n", 1)[0].decode("ascii")
    fields = {}
    for line in text.splitlines()[1:]:
        if line.startswith("#"):
            continue
        if ":=" in line:
            key, value = line.split(":=", 1)
        else:
            key, value = line.split(": ", 1)
        # NRRD key/value escapes (teem): backslash-backslash is "\\", backslash-n a line break
        fields[key] = re.sub(r"\\(\\|n)", lambda m: "\\" if m[1] == "\\" else "\n", value)
    return fields


def test_round_trip_oblique(tmp_path) -> None:
    roiset = _roiset()
    path = write_roiset(roiset, tmp_path / "rois.seg.nrrd")
    back = read_roiset(path)
    assert back.levels == roiset.levels
    assert back.method == RoiMethod.MANUAL_POINTS
    assert back.reader == "reader A"
    assert back.notes == roiset.notes
    np.testing.assert_allclose(back.labelmap.ijk_to_ras, roiset.labelmap.ijk_to_ras, atol=1e-9)
    expected = np.where(_labels() == 42, 0, _labels())
    np.testing.assert_array_equal(back.labelmap.array, expected)
    # a study grid given as reference: exact geometry kept
    ref = Volume(np.zeros(SHAPE, np.float32), oblique_ijk_to_ras())
    assert read_roiset(path, reference=ref).labelmap.same_grid(ref)
    assert read_roiset(path, reader="reader B").reader == "reader B"


def test_header_follows_slicer_conventions(tmp_path) -> None:
    path = write_roiset(_roiset(), tmp_path / "rois.seg.nrrd")
    h = _raw_header(path)
    assert h["space"] == "left-posterior-superior"
    assert h["dimension"] == "3" and h["kinds"] == "domain domain domain"
    assert h["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert h["Segmentation_ContainedRepresentationNames"] == "Binary labelmap|"
    assert h["Segmentation_ReferenceImageExtentOffset"] == "0 0 0"
    names = [h[f"Segment{n}_Name"] for n in range(4)]
    assert names == ["L1", "L2", "L3", "L4"]
    assert "Segment4_ID" not in h
    labels = _labels()
    for n, level in enumerate(names):
        assert h[f"Segment{n}_LabelValue"] == str(level_label(level))
        assert h[f"Segment{n}_Layer"] == "0"
        assert h[f"Segment{n}_ID"]
        color = [float(c) for c in h[f"Segment{n}_Color"].split()]
        assert len(color) == 3 and all(0 <= c <= 1 for c in color)
        assert h[f"Segment{n}_Tags"].endswith("|")
        idx = np.argwhere(labels == level_label(level))  # rows (k, j, i)
        if len(idx):
            lo, hi = idx.min(axis=0), idx.max(axis=0)
            expected = f"{lo[2]} {hi[2]} {lo[1]} {hi[1]} {lo[0]} {hi[0]}"
        else:
            expected = "0 -1 0 -1 0 -1"
        assert h[f"Segment{n}_Extent"] == expected
    colors = {h[f"Segment{n}_Color"] for n in range(4)}
    assert len(colors) == 4
    assert "RefractureRisk.Flags:fractured,index|" in h["Segment0_Tags"]
    assert json.loads(h["RefractureRisk_Notes"])[1] == "multi-line\nnote with | bar"

    # geometry in LPS: voxel (i, j, k) lies at diag(-1, -1, 1) @ RAS
    m = oblique_ijk_to_ras()
    origin = [float(x) for x in h["space origin"].strip("()").split(",")]
    np.testing.assert_allclose(origin, [-m[0, 3], -m[1, 3], m[2, 3]], atol=1e-9)
    dirs = [
        [float(x) for x in d.strip("()").split(",")] for d in h["space directions"].split(") (")
    ]
    np.testing.assert_allclose(np.array(dirs).T, np.diag([-1, -1, 1]) @ m[:3, :3], atol=1e-9)
    assert h["encoding"] == "gzip"
    body = gzip.decompress(path.read_bytes().split(b"\n\n", 1)[1])
    data = np.frombuffer(body, np.uint8).reshape(SHAPE)
    np.testing.assert_array_equal(data, np.where(labels == 42, 0, labels))


def test_simpleitk_reads_same_geometry(tmp_path) -> None:
    path = write_roiset(_roiset(), tmp_path / "rois.seg.nrrd")
    image = sitk.ReadImage(str(path))
    assert image.GetSize() == (SHAPE[2], SHAPE[1], SHAPE[0])
    m = oblique_ijk_to_ras()
    for ijk in [(0, 0, 0), (25, 0, 0), (0, 21, 0), (0, 0, 8), (25, 21, 8), (3, 7, 5)]:
        lps = np.array(image.TransformIndexToPhysicalPoint([int(v) for v in ijk]))
        ras = m @ np.array([*ijk, 1.0])
        np.testing.assert_allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-6)
    assert image.GetMetaData("Segment1_Name") == "L2"


def _slicer_style_file(path, offset_ijk=(0, 0, 0)) -> tuple[np.ndarray, Volume]:
    """A segmentation as Slicer saves overlapping segments: two layers, value 1 in each, plus a
    non-level segment, cropped to ``offset_ijk`` with the origin shifted accordingly."""
    ref = Volume(np.zeros(SHAPE, np.float32), oblique_ijk_to_ras())
    di, dj, dk = offset_ijk
    size = (SHAPE[0] - dk, SHAPE[1] - dj, SHAPE[2] - di)
    layer0 = np.zeros(size, np.uint8)
    layer1 = np.zeros(size, np.uint8)
    layer0[1:3, 1:4, 1:5] = 1  # "l1" (lower-case name)
    layer1[3:5, 5:8, 6:9] = 1  # "L2"
    layer0[4:6, 8:10, 10:12] = 2  # "Psoas", skipped
    image = sitk.Compose(sitk.GetImageFromArray(layer0), sitk.GetImageFromArray(layer1))
    shifted = ref.ijk_to_ras @ np.array([di, dj, dk, 1.0])
    lps = np.diag([-1.0, -1.0, 1.0]) @ ref.ijk_to_ras[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps / spacing).ravel().tolist())
    image.SetOrigin([-shifted[0], -shifted[1], shifted[2]])
    fields = {
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|Closed surface|",
        "Segmentation_ReferenceImageExtentOffset": f"{di} {dj} {dk}",
        "Segment0_ID": "Segment_1",
        "Segment0_Name": "l1",
        "Segment0_LabelValue": "1",
        "Segment0_Layer": "0",
        "Segment0_Tags": "Segmentation.Status:inprogress|",
        "Segment1_ID": "Segment_2",
        "Segment1_Name": "L2",
        "Segment1_LabelValue": "1",
        "Segment1_Layer": "1",
        "Segment2_ID": "Segment_3",
        "Segment2_Name": "Psoas",
        "Segment2_LabelValue": "2",
        "Segment2_Layer": "0",
    }
    for key, value in fields.items():
        image.SetMetaData(key, value)
    sitk.WriteImage(image, str(path), True)
    expected = np.zeros(SHAPE, np.int16)
    crop = expected[dk:, dj:, di:]
    crop[layer0 == 1] = level_label("L1")
    crop[layer1 == 1] = level_label("L2")
    return expected, ref


def test_reads_slicer_multilayer_cropped_segmentation(tmp_path) -> None:
    path = tmp_path / "slicer.seg.nrrd"
    expected, ref = _slicer_style_file(path, offset_ijk=(2, 3, 1))
    rois = read_roiset(path, reference=ref)
    assert rois.level_names == ("L1", "L2")
    assert [lv.label for lv in rois.levels] == [level_label("L1"), level_label("L2")]
    assert rois.method == RoiMethod.IMPORTED_MASK
    assert any("Psoas" in n for n in rois.notes)
    assert rois.labelmap.same_grid(ref)
    np.testing.assert_array_equal(rois.labelmap.array, expected)


def test_plain_labelmap_needs_level_table(tmp_path) -> None:
    path = tmp_path / "plain.nrrd"
    labels = np.zeros(SHAPE, np.uint8)
    labels[2:4, 2:4, 2:4] = 7
    image = sitk.GetImageFromArray(labels)
    sitk.WriteImage(image, str(path))
    with pytest.raises(InputError, match="level_table"):
        read_roiset(path)
    rois = read_roiset(path, level_table={7: "l3"})
    assert rois.levels == (LevelRoi("L3", 7),)
    assert np.count_nonzero(rois.mask("L3")) == 8


def test_bad_inputs(tmp_path) -> None:
    with pytest.raises(InputError, match=r"\.seg\.nrrd"):
        write_roiset(_roiset(), tmp_path / "rois.nii.gz")
    with pytest.raises(InputError, match="not found"):
        read_roiset(tmp_path / "absent.seg.nrrd")
    path = write_roiset(_roiset(), tmp_path / "rois.seg.nrrd")
    other = Volume(np.zeros(SHAPE, np.float32), np.diag([1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(InputError, match="not a sub-grid"):
        read_roiset(path, reference=other)
    bad_reader = RoiSet(_roiset().labelmap, _roiset().levels, RoiMethod.AUTOMATIC, reader="a\nb")
    with pytest.raises(InputError, match="line breaks"):
        write_roiset(bad_reader, tmp_path / "bad.seg.nrrd")


# -- against Slicer's own segmentation storage node (slicer-core from PyPI) ----------------------
@pytest.fixture(scope="module")
def slicer_scene():
    try:
        import slicer
        import vtk
    except Exception as err:  # ImportError or a broken binary install
        pytest.skip(f"slicer-core not importable ({type(err).__name__}): pip install slicer-core")
    scene = slicer.vtkMRMLScene()
    slicer.mrmlScene = scene
    return slicer, vtk, scene


@pytest.mark.slicer_core
def test_slicer_reads_and_rewrites_our_segmentation(tmp_path, slicer_scene) -> None:
    slicer, vtk, scene = slicer_scene
    roiset = _roiset()
    path = write_roiset(roiset, tmp_path / "rois.seg.nrrd")

    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    segmentation = node.GetSegmentation()
    names = [segmentation.GetNthSegment(n).GetName() for n in range(4)]
    assert names == ["L1", "L2", "L3", "L4"]
    first = segmentation.GetNthSegment(0)
    assert first.GetLabelValue() == level_label("L1")
    flags = vtk.reference("")
    assert first.GetTag("RefractureRisk.Flags", flags) and str(flags) == "fractured,index"

    # Slicer's voxels of each segment, resampled onto the study grid, equal ours
    reference = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, roiset.labelmap.ijk_to_ras[r, c])
    reference.SetIJKToRASMatrix(matrix)
    slicer.util.updateVolumeFromArray(reference, np.zeros(SHAPE, np.float32))
    for n, level in enumerate(["L1", "L2", "L3"]):
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segmentation.GetNthSegmentID(n))
        labelmap_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        logic = slicer.vtkSlicerSegmentationsModuleLogic
        assert logic.ExportSegmentsToLabelmapNode(node, ids, labelmap_node, reference)
        exported = slicer.util.arrayFromVolume(labelmap_node) > 0
        np.testing.assert_array_equal(exported, roiset.mask(level))

    # Slicer saves it again (cropped to the segments): we read it back onto the study grid
    again = tmp_path / "resaved.seg.nrrd"
    storage2 = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage2.SetFileName(str(again))
    assert storage2.WriteData(node) == 1
    back = read_roiset(again, reference=roiset.labelmap)
    assert back.levels == roiset.levels
    assert back.method == roiset.method and back.reader == roiset.reader
    np.testing.assert_array_equal(back.labelmap.array, np.where(_labels() == 42, 0, _labels()))
