"""MRML nodes <-> RefractureRiskLib types: volumes, segmentations, tables and markups.

Every function works on ``slicer.mrmlScene`` without the application (the slicer-core tests run
them). Coordinates are RAS in millimetres; arrays are indexed [k, j, i] as
``slicer.util.arrayFromVolume`` returns them.
"""

import math
import re

import numpy as np
import slicer
import vtk

from .library import lib

#: Vertebral levels in cranio-caudal order (RefractureRiskLib.core.levels; the tests check it).
LEVELS = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")

#: Segment tags carrying the library's per-level facts through a segmentation node; the tags
#: RefractureRiskLib.io.segmentation writes into .seg.nrrd files.
TAG_LEVEL = "RefractureRisk.Level"
TAG_FLAGS = "RefractureRisk.Flags"  # comma-separated RoiFlag values
TAG_INCLUDE = "RefractureRisk.IncludeOverride"  # "none", "true" or "false"
TAG_METHOD = "RefractureRisk.Method"
TAG_READER = "RefractureRisk.Reader"

#: Column name suffix -> unit label shown in tables (columns carry units in their names).
UNIT_SUFFIXES = (("_pct", "%"), ("_per_s", "1/s"), ("_ml", "mL"), ("_mm", "mm"), ("_t", "T"))

#: Words naming map kinds in series or node names (only to preselect already loaded volumes).
KIND_NAME_TOKENS = (
    ("pdff", ("FATFRAC", "FAT_FRAC", "FAT FRAC", "PDFF", "FF")),
    ("r2s", ("R2STAR", "R2_STAR", "R2*", "R2S")),  # never T2*: its unit needs converting
    ("water", ("WATER", "W")),
    ("fat", ("FAT", "F")),
)

TEMP_NODE_NAME = "__RefractureRisk_temp"


# -- volumes ---------------------------------------------------------------------------------
def volumeFromNode(volumeNode, copy=True):
    """A library ``Volume`` (array [k, j, i], IJK-to-RAS) from a scalar volume node.

    ``copy=False`` shares the node's voxels (read-only use on the GUI thread, e.g. the cached
    study of a live point move). Refuses a volume under a transform: the library needs the grid
    in patient RAS, so the user must harden the transform first.
    """
    core = lib("core")
    if volumeNode is None or volumeNode.GetImageData() is None:
        raise core.InputError(nodeName(volumeNode), "no image data in the volume node")
    if volumeNode.GetParentTransformNode() is not None:
        raise core.InputError(
            nodeName(volumeNode), "the volume is under a transform; harden the transform first"
        )
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    array = np.array(slicer.util.arrayFromVolume(volumeNode), copy=copy)
    return core.Volume(array, slicer.util.arrayFromVTKMatrix(matrix))


def updateVolumeNode(volume, volumeNode=None, name="Volume", labelmap=False):
    """Write a library ``Volume`` into a (new) scalar or label-map volume node, geometry exact.

    MRML stores a grid as spacing, origin and direction cosines, so a sheared IJK-to-RAS
    (non-orthogonal axes) cannot be represented and is refused rather than approximated.
    """
    core = lib("core")
    matrix = np.asarray(volume.ijk_to_ras, float)
    axes = matrix[:3, :3] / np.linalg.norm(matrix[:3, :3], axis=0)
    if not np.allclose(axes.T @ axes, np.eye(3), atol=1e-6):
        raise core.InputError(
            name, "the grid axes are not orthogonal; MRML cannot store this geometry"
        )
    array = np.asarray(volume.array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype in (np.int64, np.uint64):
        if array.size and (
            array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max
        ):
            raise core.InputError(name, "integer values do not fit in 32 bits")
        array = array.astype(np.int32)  # VTK cannot show 64-bit integer volumes
    if volumeNode is None:
        className = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
        volumeNode = slicer.mrmlScene.AddNewNodeByClass(className, name)
    slicer.util.updateVolumeFromArray(volumeNode, np.ascontiguousarray(array))
    volumeNode.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    return volumeNode


def guessMapKinds(volumeNodes):
    """{kind: node} guessed from the nodes' map-kind attribute or names (the user can correct)."""
    found = {}
    for node in volumeNodes:
        kind = node.GetAttribute("RefractureRisk.MapKind") or guessKindFromName(node.GetName())
        if kind and kind not in found:
            found[kind] = node
    return found


def guessKindFromName(name):
    """Map kind a node/series name suggests ("FatFrac: ..." -> "pdff"), else None."""
    words = re.split(r"[\s:_\-/()]+", (name or "").upper())
    text = (name or "").upper()
    for kind, tokens in KIND_NAME_TOKENS:
        for token in tokens:
            if (len(token) > 2 and token in text) or token in words:
                return kind
    return None


def nodeStamp(node):
    """What changes when a volume node's voxels or geometry change (for caches)."""
    image = node.GetImageData()
    return (node.GetID(), node.GetMTime(), None if image is None else image.GetMTime())


# -- ROIs <-> segmentation -------------------------------------------------------------------
def roiSetToSegmentation(
    roiSet, referenceVolumeNode, segmentationNode=None, colors=None, only=None, afterEach=None,
    boxes=None,
):  # fmt: skip
    """Show a ``RoiSet`` as a segmentation: one segment per level, named by the level.

    ``colors``: {level: RGB 0-1} (see display.levelColors). Flags, the user's include choice,
    method and reader travel as segment tags, the tags RefractureRiskLib writes into .seg.nrrd
    files. ``only``: the levels whose voxels changed (a live point move): only their segments
    are rebuilt; every segment's colour and tags are refreshed, and segments of levels no longer
    in the RoiSet are removed. Each segment is imported from the level's bounding box only,
    found within ``boxes`` ({level: slices of the grid holding all its voxels}, e.g. the
    placement boxes of a ``RoiResult``; default: the whole grid).
    """
    if segmentationNode is None:
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass(
            "vtkMRMLSegmentationNode", "RefractureRisk ROIs"
        )
    segmentationNode.CreateDefaultDisplayNodes()
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolumeNode)
    segmentation = segmentationNode.GetSegmentation()
    rebuild = set(roiSet.level_names if only is None else only)
    wanted = {f"Segment_{name}" for name in roiSet.level_names}
    for index in reversed(range(segmentation.GetNumberOfSegments())):
        segmentId = segmentation.GetNthSegmentID(index)
        level = segmentId[len("Segment_") :] if segmentId.startswith("Segment_") else None
        if segmentId not in wanted or level in rebuild or only is None:
            segmentation.RemoveSegment(segmentId)
    labels = np.asarray(roiSet.labelmap.array)
    colors = colors or {}
    display = segmentationNode.GetDisplayNode()
    temp = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", TEMP_NODE_NAME)
    try:
        for level in roiSet.levels:
            segmentId = f"Segment_{level.level}"
            color = colors.get(level.level, (0.5, 0.5, 0.5))
            if level.level in rebuild or segmentation.GetSegment(segmentId) is None:
                region = (boxes or {}).get(level.level)
                _importLevel(
                    roiSet, labels, level, segmentationNode, temp, segmentId, color, region
                )
                if afterEach is not None:
                    afterEach()
            segment = segmentation.GetSegment(segmentId)
            segment.SetColor(*color)
            override = level.include_override
            segment.SetTag(TAG_LEVEL, level.level)
            segment.SetTag(TAG_FLAGS, ",".join(sorted(str(f) for f in level.flags)))
            segment.SetTag(TAG_INCLUDE, "none" if override is None else str(override).lower())
            segment.SetTag(TAG_METHOD, str(roiSet.method))
            segment.SetTag(TAG_READER, roiSet.reader)
            display.SetSegmentOpacity2DFill(segmentId, 1.0 if level.included else 0.1)
    finally:
        slicer.mrmlScene.RemoveNode(temp)
    return segmentationNode


def _importLevel(roiSet, labels, level, segmentationNode, temp, segmentId, color, region=None):
    """One level's voxels as a segment, imported from their bounding box (not the whole grid),
    searched for in ``region`` (slices of the grid holding all of them; None: the grid)."""
    region = region or (slice(None),) * 3
    mask = labels[region] == level.label
    lo, hi = np.zeros(3, int), np.ones(3, int)
    for axis in range(3):  # bounds from projections: cheaper than listing every voxel
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if len(present):
            lo[axis], hi[axis] = present[0], present[-1] + 1
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    corner = lo + [s.start or 0 for s in region]  # in the grid, k j i
    matrix = np.asarray(roiSet.labelmap.ijk_to_ras, float).copy()
    matrix[:3, 3] = roiSet.labelmap.ijk_to_ras_points([corner[::-1]])[0]  # i j k order
    cropped = lib("core").Volume(mask[box].astype(np.uint8), matrix)
    updateVolumeNode(cropped, temp, name=level.level)
    segmentationNode.GetSegmentation().AddEmptySegment(segmentId, level.level, color)
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segmentId)
    if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
        temp, segmentationNode, ids
    ):
        raise RuntimeError(f"importing the ROI of {level.level} into the segmentation failed")


def roiSetFromSegmentation(segmentationNode, referenceVolumeNode, reader=None):
    """A ``RoiSet`` on the reference volume's grid from a segmentation, one segment per level.

    The level comes from the segment's level tag, else from its name ("L1", "L1 vertebra",
    "vertebrae_L1"); a segment that names no level, or two segments naming one level, is
    refused with the segment's name. Label values follow the product's table (T10=1 ... S1=9).
    Method and reader come from the segments' tags (written by :func:`roiSetToSegmentation`);
    untagged segments are an imported mask. ``reader`` overrides the stored reader.
    """
    core = lib("core")
    if segmentationNode is None:
        raise core.InputError("segmentation", "choose a segmentation first")
    grid = volumeFromNode(referenceVolumeNode, copy=False)
    segmentation = segmentationNode.GetSegmentation()
    labels = np.zeros(grid.shape, np.int16)
    levels, seen, methods, readers = [], {}, set(), set()
    for index in range(segmentation.GetNumberOfSegments()):
        segmentId = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(segmentId)
        name = segment.GetName()
        levelName = segmentTag(segment, TAG_LEVEL) or levelFromName(name)
        if levelName is None:
            raise core.InputError(
                f"segment {name!r}", f"the name names no vertebral level ({', '.join(LEVELS)})"
            )
        if levelName in seen:
            raise core.InputError(
                f"segment {name!r}", f"level {levelName} is also segment {seen[levelName]!r}"
            )
        seen[levelName] = name
        mask = segmentMask(segmentationNode, segmentId, referenceVolumeNode)
        label = core.level_label(levelName)
        overlap = mask & (labels != 0)
        if overlap.any():
            raise core.InputError(
                f"segment {name!r}", f"overlaps another level in {int(overlap.sum())} voxels"
            )
        labels[mask] = label
        flags = [f for f in re.split(r"[,;]", segmentTag(segment, TAG_FLAGS) or "") if f]
        override = (segmentTag(segment, TAG_INCLUDE) or "none").lower()
        methods.add(segmentTag(segment, TAG_METHOD) or str(core.RoiMethod.IMPORTED_MASK))
        readers.add(segmentTag(segment, TAG_READER) or "unknown")
        levels.append(
            core.LevelRoi(
                level=levelName,
                label=label,
                flags=frozenset(flags),
                include_override=None if override == "none" else override == "true",
            )
        )
    if not levels:
        raise core.InputError(nodeName(segmentationNode), "the segmentation has no segments")
    method = methods.pop() if len(methods) == 1 else core.RoiMethod.IMPORTED_MASK
    if reader is None:
        reader = readers.pop() if len(readers) == 1 else "unknown"
    return core.RoiSet(
        labelmap=grid.with_array(labels), levels=tuple(levels), method=method, reader=reader
    )


def segmentMask(segmentationNode, segmentId, referenceVolumeNode):
    """Boolean [k, j, i] mask of one segment on the reference volume's grid."""
    ids = vtk.vtkStringArray()
    ids.InsertNextValue(segmentId)
    temp = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", TEMP_NODE_NAME)
    try:
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentationNode, ids, temp, referenceVolumeNode
        )
        if not ok:
            raise RuntimeError(f"exporting segment {segmentId} failed")
        return np.array(slicer.util.arrayFromVolume(temp)) != 0
    finally:
        slicer.mrmlScene.RemoveNode(temp)


def segmentTag(segment, tag):
    value = vtk.reference("")
    if segment.GetTag(tag, value):
        return str(value)
    return None


# -- tables ----------------------------------------------------------------------------------
def updateTableNode(records, tableNode=None, name="RefractureRisk table"):
    """Fill a table node from a DataFrame or a sequence of dicts (pandas is not needed).

    Numeric columns (int, float, bool; None/NaN as missing) become double columns, the rest
    string columns. Units are read from the column names' suffixes (``_pct`` -> %).
    """
    rows = records_(records)
    columns = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    if tableNode is None:
        tableNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", name)
    wasModifying = tableNode.StartModify()
    try:
        tableNode.RemoveAllColumns()
        table = tableNode.GetTable()
        for column in columns:
            values = [row.get(column) for row in rows]
            if all(isNumberOrMissing(v) for v in values) and any(v is not None for v in values):
                array = vtk.vtkDoubleArray()
                for v in values:
                    array.InsertNextValue(math.nan if v is None else float(v))
            else:
                array = vtk.vtkStringArray()
                for v in values:
                    array.InsertNextValue("" if v is None or isNan(v) else str(v))
            array.SetName(str(column))
            table.AddColumn(array)
            unit = unitFromColumnName(str(column))
            if unit:
                tableNode.SetColumnUnitLabel(str(column), unit)
        table.Modified()
    finally:
        tableNode.EndModify(wasModifying)
    return tableNode


def recordsFromTableNode(tableNode):
    """The table node as a list of dicts (numbers as float, NaN for missing)."""
    table = tableNode.GetTable()
    names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    rows = []
    for r in range(table.GetNumberOfRows()):
        row = {}
        for c, column in enumerate(names):
            array = table.GetColumn(c)
            row[column] = (
                array.GetValue(r) if isinstance(array, vtk.vtkStringArray) else array.GetTuple1(r)
            )
        rows.append(row)
    return rows


def meanPdffByLevel(statistics):
    """{level: mean PDFF %} from the long statistics table (rows with map == "pdff")."""
    return {
        row["level"]: float(row["mean"])
        for row in records_(statistics)
        if row.get("map") == "pdff"
        and isNumberOrMissing(row.get("mean"))
        and row.get("mean") is not None
    }


def unitFromColumnName(column):
    """Unit label of a table column from its name's suffix, or "" when it has none."""
    for suffix, unit in UNIT_SUFFIXES:
        if column.endswith(suffix):
            return unit
    return ""


# -- markups <-> level points ----------------------------------------------------------------
def levelPointsFromMarkups(markupsNode, strict=True):
    """{level: (R, A, S) mm} from control points labelled with level names (world coordinates).

    ``strict``: a point whose label names no level, or two points of one level, is an error
    naming the point; otherwise such points are skipped (used while the user is placing).
    """
    core = lib("core") if strict else None
    points = {}
    if markupsNode is None:
        if strict:
            raise core.InputError("ROI points", "choose or place the point list first")
        return points
    for index in range(markupsNode.GetNumberOfControlPoints()):
        label = markupsNode.GetNthControlPointLabel(index)
        level = levelFromName(label)
        if level is None or level in points:
            if strict:
                reason = "names no vertebral level" if level is None else f"repeats level {level}"
                raise core.InputError(
                    f"point {label!r}", f"{reason}; name each point by its level (e.g. L1)"
                )
            continue
        position = [0.0, 0.0, 0.0]
        markupsNode.GetNthControlPointPositionWorld(index, position)
        points[level] = tuple(float(x) for x in position)
    if strict and not points:
        raise core.InputError(nodeName(markupsNode), "has no points; place one point per level")
    return points


def updateMarkupsFromLevelPoints(points, markupsNode=None, name="RefractureRisk points"):
    """Write {level: RAS point} into a point list (one control point per level, labelled)."""
    if markupsNode is None:
        markupsNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    wasModifying = markupsNode.StartModify()
    try:
        markupsNode.RemoveAllControlPoints()
        for level in sorted(points, key=LEVELS.index):
            markupsNode.AddControlPoint(vtk.vtkVector3d(*points[level]), level)
    finally:
        markupsNode.EndModify(wasModifying)
    return markupsNode


def nextLevelToPlace(placedLevels):
    """The level "place next level" asks for (None when every level has a point).

    L1 first; then the level below (caudal to) the lowest placed one; once S1 has a point,
    the lowest level still missing.
    """
    placed = sorted(LEVELS.index(lv) for lv in placedLevels)
    if not placed:
        return "L1"
    if placed[-1] + 1 < len(LEVELS):
        return LEVELS[placed[-1] + 1]
    missing = [lv for i, lv in enumerate(LEVELS) if i not in placed]
    return missing[-1] if missing else None


def parseLevels(text):
    """Level names from "L1, L2" or "l1 l2"; anything else (e.g. "L1-L2") is refused."""
    levels = []
    for part in re.split(r"[,;\s]+", text or ""):
        if not part:
            continue
        if part.upper() not in LEVELS:
            raise lib("core").InputError(
                "index levels", f"{part!r} is not a level ({', '.join(LEVELS)})"
            )
        levels.append(part.upper())
    return tuple(levels)


def levelFromName(name):
    """The vertebral level a name refers to ("L1", "l1 vertebra", "vertebrae_L1"), else None."""
    match = re.search(
        r"(?<![A-Za-z0-9])(T1[0-2]|L[1-5]|S1)(?![0-9])", (name or "").upper().replace("_", " ")
    )
    if match and match.group(1) in LEVELS:
        return match.group(1)
    return None


# -- small helpers ---------------------------------------------------------------------------
def records_(records):
    """A list of dicts from a DataFrame (duck-typed: no pandas import) or an iterable of dicts."""
    if hasattr(records, "to_dict") and hasattr(records, "columns"):
        records = records.to_dict("records")
    return [
        {str(k): (v.item() if isinstance(v, np.generic) else v) for k, v in dict(row).items()}
        for row in records
    ]


def isNan(value):
    return isinstance(value, float) and math.isnan(value)


def isNumberOrMissing(value):
    if value is None:
        return True
    return isinstance(value, (bool, int, float, np.integer, np.floating))


def nodeName(node):
    return node.GetName() if node is not None else "(no node)"
