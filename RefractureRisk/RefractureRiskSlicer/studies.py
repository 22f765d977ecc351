"""Studies in the scene: each loaded study is remembered with its volume nodes, so a Study built
from those nodes keeps its provenance (vendor, UIDs, scaling) and non-identifying patient facts;
the last Study built from nodes is reused while the nodes are unchanged (a live point move does
not copy the maps again, and the ROI engine's per-study caches keep hitting)."""

import dataclasses
import sys
import uuid

import slicer

from . import mrml
from .library import lib

STUDY_KEY = "RefractureRisk.StudyKey"
MAP_KIND = "RefractureRisk.MapKind"
#: Node names of companion volumes (the field map is in Hz).
COMPANION_NAMES = {"fieldmap": "field map (Hz)"}

#: {key in the nodes' STUDY_KEY attribute: Study}, shared by every logic instance.
_loaded = {}
#: [(nodes' stamps, Study)]: the last Study built from nodes.
_built = []
#: [(Study, {name: Volume})]: volumes computed with the last study read that are no map kind
#: of a Study (the field map of maps computed from echoes), added to the scene with it.
_companions = []


def clear():
    """Forget every study and cached array (the scene was closed)."""
    _loaded.clear()
    _built.clear()
    _companions.clear()
    # The ROI engine keeps the arrays of its last two studies: dropped too, when the engine
    # was loaded at all (not imported here just to clear it).
    cache = sys.modules.get("RefractureRiskLib.roi.cache")
    if cache is not None:
        cache.clear_study_cache()


def keepCompanions(study, volumes):
    """Add ``volumes`` ({name: Volume}, e.g. the field map in Hz) with ``study`` when it is
    added to the scene (:func:`addToScene`)."""
    _companions[:] = [(study, dict(volumes))] if volumes else []


def addToScene(study, baseName="RefractureRisk"):
    """One scalar volume node per map of ``study``, and one per companion volume kept with it
    (:func:`keepCompanions`); returns {kind or name: node}. Each node's description says where
    its map came from (the study's provenance). Studies whose nodes have all left the scene are
    forgotten."""
    inScene = {
        node.GetAttribute(STUDY_KEY)
        for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
    }
    for key in set(_loaded) - inScene:
        del _loaded[key]
    _built.clear()
    key = uuid.uuid4().hex
    _loaded[key] = study
    nodes = {}
    for kind, volume in study.maps.items():
        node = mrml.updateVolumeNode(volume, name=f"{baseName} {kind}")
        node.SetAttribute(MAP_KIND, kind)
        node.SetAttribute(STUDY_KEY, key)
        node.SetDescription(_origin(study, kind))
        nodes[kind] = node
    companions = _companions[0][1] if _companions and _companions[0][0] is study else {}
    for name, volume in companions.items():  # no MAP_KIND: never taken for a map of the study
        title = COMPANION_NAMES.get(name, name)
        node = mrml.updateVolumeNode(volume, name=f"{baseName} {title}")
        node.SetAttribute(STUDY_KEY, key)
        node.SetDescription(f"{title}, made with the PDFF map: {_origin(study, 'pdff')}")
        nodes[name] = node
    return nodes


def panelFieldStrength(study):
    """The panel's choice (1.5 or 3.0 T) nearest the study's field strength, or None when the
    study states none or one more than 0.2 T from both (scanners report e.g. 1.494 T)."""
    fieldStrength = study.provenance.field_strength_t
    if fieldStrength is None:
        return None
    nearest = min((1.5, 3.0), key=lambda t: abs(t - fieldStrength))
    return nearest if abs(nearest - fieldStrength) < 0.2 else None


def _origin(study, kind):
    """Where a map of ``study`` came from, in one line (its series provenance)."""
    series = study.provenance.series.get(kind)
    if series is None:
        return ""
    return "; ".join(part for part in (series.classified_by, *series.scaling) if part)


def fromNodes(nodesByKind, fieldStrengthT=None):
    """A library ``Study`` from volume nodes chosen per kind (None entries are skipped).

    ``fieldStrengthT`` (T) is the panel's value; it replaces the loaded study's. Nodes of one
    loaded study in their own kinds keep its provenance; any other choice is described as
    chosen in the panel. The same nodes, unchanged, give the same Study object.
    """
    core = lib("core")
    chosen = {kind: node for kind, node in nodesByKind.items() if node is not None}
    if "pdff" not in chosen:
        raise core.InputError("PDFF volume", "choose the PDFF map (percent) first")
    stamp = (tuple((k, mrml.nodeStamp(n)) for k, n in sorted(chosen.items())), fieldStrengthT)
    if _built and _built[0][0] == stamp:
        return _built[0][1]
    maps = {kind: mrml.volumeFromNode(node) for kind, node in chosen.items()}
    keys = {node.GetAttribute(STUDY_KEY) for node in chosen.values()}
    loaded = _loaded.get(keys.pop()) if len(keys) == 1 else None
    if loaded is not None and all(n.GetAttribute(MAP_KIND) == k for k, n in chosen.items()):
        provenance = dataclasses.replace(
            loaded.provenance,
            field_strength_t=fieldStrengthT or loaded.provenance.field_strength_t,
            series={k: v for k, v in loaded.provenance.series.items() if k in chosen},
        )
        patient = loaded.patient
    else:
        series = {
            kind: core.SeriesProvenance(
                kind=kind,
                source=f"Slicer volume node {node.GetName()}",
                classified_by="chosen in the Slicer panel",
            )
            for kind, node in chosen.items()
        }
        provenance = core.StudyProvenance(
            vendor="unknown", field_strength_t=fieldStrengthT, series=series
        )
        patient = core.PatientInfo()
    try:
        study = core.Study(maps=maps, provenance=provenance, patient=patient)
    except ValueError as err:
        raise core.InputError("selected volumes", str(err)) from None
    _built[:] = [(stamp, study)]
    return study
