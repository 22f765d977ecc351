"""What the panel shows: PDFF colours, segment colours, the risk beside the spine, the results
text, the PDFF/R2* chart and the results layout. Only the layout needs the application."""

import html
import itertools

import numpy as np
import slicer
import vtk

from . import mrml
from .library import lib

PDFF_COLOR_NODE_NAME = "RefractureRisk PDFF"
RISK_ANNOTATION_NODE_NAME = "RefractureRisk result"
CHART_NODE_NAME = "RefractureRisk chart"
CHART_TABLE_NAME = "RefractureRisk PDFF by level"

#: Segment colours (RGB 0-1) for levels that are shown but not measured as usual.
INDEX_LEVEL_COLOR = (0.85, 0.1, 0.85)
EXCLUDED_LEVEL_COLOR = (0.55, 0.55, 0.55)


def pdffColor(pdffPct):
    """RGB (0-1) of a PDFF value on the panel's colour map: 0 % dark blue -> 100 % yellow."""
    t = min(max(float(pdffPct) / 100.0, 0.0), 1.0)
    anchors = (
        (0.0, (0.05, 0.03, 0.35)),
        (0.35, (0.1, 0.45, 0.75)),
        (0.65, (0.45, 0.8, 0.35)),
        (1.0, (1.0, 0.92, 0.2)),
    )
    for (t0, c0), (t1, c1) in itertools.pairwise(anchors):
        if t <= t1:
            w = (t - t0) / (t1 - t0)
            return tuple(a + w * (b - a) for a, b in zip(c0, c1, strict=True))
    return anchors[-1][1]


def levelColor(levelRoi, meanPdffPct=None, fallback=None):
    """Segment colour of one level: index levels magenta, other excluded levels grey, included
    levels by their mean PDFF (%) on the PDFF colour map, else ``fallback`` (the library's level
    palette, before statistics exist)."""
    flags = {str(f) for f in levelRoi.flags}
    if "index" in flags:
        return INDEX_LEVEL_COLOR
    if not levelRoi.included:
        return EXCLUDED_LEVEL_COLOR
    if meanPdffPct is not None and not mrml.isNan(meanPdffPct):
        return pdffColor(meanPdffPct)
    if fallback is not None:
        return tuple(fallback)
    i = mrml.LEVELS.index(levelRoi.level)
    return pdffColor(20.0 + 60.0 * i / (len(mrml.LEVELS) - 1))


def levelColors(roiSet, meanPdffByLevel=None):
    """{level: RGB} of every level of ``roiSet`` (see :func:`levelColor`)."""
    palette = lib("io.segmentation").LEVEL_COLORS
    means = meanPdffByLevel or {}
    return {
        lv.level: levelColor(lv, means.get(lv.level), palette.get(lv.level)) for lv in roiSet.levels
    }


def pdffColorNode():
    """A 256-entry colour table for PDFF 0-100 % (dark blue: water, yellow: fat)."""
    node = slicer.mrmlScene.GetFirstNodeByName(PDFF_COLOR_NODE_NAME)
    if node is not None:
        return node
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLColorTableNode", PDFF_COLOR_NODE_NAME)
    node.SetTypeToUser()
    node.SetNumberOfColors(256)
    for i in range(256):
        r, g, b = pdffColor(100.0 * i / 255.0)
        node.SetColor(i, f"{100.0 * i / 255.0:.1f}%", r, g, b, 1.0)
    return node


def showPdff(pdffNode):
    """Show PDFF with the fat-fraction colour map, window 0-100 % (in the views with the app)."""
    pdffNode.CreateDefaultDisplayNodes()
    display = pdffNode.GetDisplayNode()
    display.SetAndObserveColorNodeID(pdffColorNode().GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 100.0)
    if getattr(slicer, "app", None) is not None and hasattr(slicer.app, "layoutManager"):
        slicer.util.setSliceViewerLayers(background=pdffNode, fit=True)
    return display


def riskAnnotationText(risk):
    """One-paragraph risk text for the views: percent, 95% interval, horizon, warning."""
    lines = [f"Re-fracture risk ({risk.horizon_days} days): {risk.risk_text()}"]
    if risk.is_range:
        lines.append(f"missing: {', '.join(risk.missing_inputs)}")
    elif risk.interval is not None:
        lo, hi = risk.interval
        lines.append(f"95% interval {100.0 * lo:.1f}-{100.0 * hi:.1f}%")
    else:
        lines.append(f"no interval: {risk.interval_note}")
    lines.append(f"Model: {risk.model_name}")
    if risk.model_warning:
        lines.append(risk.model_warning.upper())
    return "\n".join(lines)


def showRiskAnnotation(outcome):
    """Show the risk beside the spine: a locked, labelled point 60 mm anterior to the index
    level's ROI centre (else the centre of all ROIs); its label is :func:`riskAnnotationText`."""
    risk = outcome["risk"]
    roiSet = outcome["roiSet"]
    labels = np.asarray(roiSet.labelmap.array)
    index = [lv for lv in roiSet.levels if "index" in {str(f) for f in lv.flags}]
    kji = np.argwhere(labels == index[0].label) if index else np.argwhere(labels > 0)
    middleIjk = kji[:, ::-1].mean(axis=0) if len(kji) else np.asarray(labels.shape[::-1]) / 2.0
    centre = roiSet.labelmap.ijk_to_ras_points(middleIjk)[0]
    position = centre + np.array([0.0, 60.0, 0.0])  # +A: anterior
    node = slicer.mrmlScene.GetFirstNodeByName(RISK_ANNOTATION_NODE_NAME)
    if node is None:
        node = slicer.mrmlScene.AddNewNodeByClass(
            "vtkMRMLMarkupsFiducialNode", RISK_ANNOTATION_NODE_NAME
        )
    node.RemoveAllControlPoints()
    node.AddControlPoint(vtk.vtkVector3d(*position), riskAnnotationText(risk))
    node.SetLocked(True)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if display is not None:
        display.SetTextScale(3.0)
        display.SetGlyphScale(1.0)
        color = (1.0, 0.3, 0.1) if not risk.validated else (0.2, 1.0, 0.4)
        display.SetSelectedColor(*color)
        display.SetColor(*color)
    return node


def resultsHtml(outcome):
    """The results panel text: risk, interval, contributions, summaries, warnings, model."""
    risk = outcome["risk"]
    parts = [f"<h3>{html.escape(riskAnnotationText(risk)).replace(chr(10), '<br>')}</h3>"]
    if risk.model_warning:
        parts.append(f"<p style='color:#c00'><b>{html.escape(risk.model_warning)}</b></p>")
    scoring = lib("model.scoring")
    parts.append(
        "<table border='1' cellspacing='0' cellpadding='2'><tr><th>factor</th>"
        "<th>effect</th><th>log-odds</th></tr>"
    )
    for c in risk.contributions:
        parts.append(
            f"<tr><td>{html.escape(scoring.factor_text(c))}</td>"
            f"<td>{html.escape(scoring.direction_text(c))}</td>"
            f"<td>{html.escape(scoring.format_log_odds(c))}</td></tr>"
        )
    parts.append("</table><p><b>Summaries</b><br>")
    parts.extend(f"{html.escape(line)}<br>" for line in summaryLines(outcome["summary"]))
    parts.append("</p>")
    if risk.warnings:
        parts.append(
            "<p><b>Warnings</b><br>" + "<br>".join(html.escape(w) for w in risk.warnings) + "</p>"
        )
    return "".join(parts)


def summaryLines(summary):
    """The patient summaries in the report's words, each naming the levels it averages."""
    text = lib("report.text")
    lines = [text.summary_line(summary, field) for field in text.SUMMARY_NAMES]
    if summary.index_levels:
        lines.append("Index levels: " + ", ".join(summary.index_levels))
    lines += [f"Left out: {level} ({why})" for level, why in summary.excluded]
    return lines + list(summary.notes)


def setResultsLayout(tableNode=None, chartNode=None):
    """Slice views, the table and the chart (needs the application)."""
    slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
    appLogic = slicer.app.applicationLogic()
    if tableNode is not None:
        appLogic.GetSelectionNode().SetActiveTableID(tableNode.GetID())
        appLogic.PropagateTableSelection()
    if chartNode is not None:
        appLogic.GetSelectionNode().SetActivePlotChartID(chartNode.GetID())
        appLogic.PropagatePlotChartSelection()


def updatePdffChart(statistics, chartNode=None):
    """A chart of mean PDFF (%) and R2* (1/s) per level, cranial to caudal.

    Its table has one row per level: ``level``, ``position`` (1 = most cranial level shown),
    ``pdff_mean_pct`` and ``r2s_mean_per_s`` (NaN when the map was not measured).
    """
    rows = {}
    for row in mrml.records_(statistics):
        entry = rows.setdefault(row["level"], {"level": row["level"]})
        if row.get("map") in ("pdff", "r2s") and mrml.isNumberOrMissing(row.get("mean")):
            unit = "pct" if row["map"] == "pdff" else "per_s"
            entry[f"{row['map']}_mean_{unit}"] = row["mean"]
    ordered = [rows[lv] for lv in mrml.LEVELS if lv in rows]
    for position, entry in enumerate(ordered, start=1):
        entry["position"] = position
        entry.setdefault("pdff_mean_pct", None)
        entry.setdefault("r2s_mean_per_s", None)
    table = slicer.mrmlScene.GetFirstNodeByName(CHART_TABLE_NAME)
    table = mrml.updateTableNode(ordered, table, name=CHART_TABLE_NAME)
    if chartNode is None:
        chartNode = slicer.mrmlScene.GetFirstNodeByName(CHART_NODE_NAME)
    if chartNode is None:
        chartNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotChartNode", CHART_NODE_NAME)
    chartNode.RemoveAllPlotSeriesNodeIDs()
    for column, name, color in (
        ("pdff_mean_pct", "PDFF (%)", (0.95, 0.75, 0.1)),
        ("r2s_mean_per_s", "R2* (1/s)", (0.3, 0.6, 1.0)),
    ):
        series = slicer.mrmlScene.GetFirstNodeByName(f"RefractureRisk {name}")
        if series is None:
            series = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLPlotSeriesNode", f"RefractureRisk {name}"
            )
        series.SetAndObserveTableNodeID(table.GetID())
        series.SetXColumnName("position")
        series.SetYColumnName(column)
        series.SetLabelColumnName("level")
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
        series.SetColor(*color)
        chartNode.AddAndObservePlotSeriesNodeID(series.GetID())
    chartNode.SetTitle("Marrow PDFF and R2* by level (cranial to caudal)")
    chartNode.SetXAxisTitle("level position (cranial to caudal)")
    chartNode.SetYAxisTitle("PDFF (%) / R2* (1/s)")
    return chartNode
