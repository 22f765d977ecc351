"""Vertebral ROIs: geometry, manual ROIs from points, automatic detection and labels, QC flags.

Public API:

- :func:`rois_from_points`, :func:`update_level`, :func:`rois_from_labelmap` (manual ROIs);
- :func:`automatic_rois` with an optional :class:`Anchor` (automatic ROIs and level labels);
- :class:`RoiResult` (= ``AutoRoiResult``): the core ``RoiSet``, whole-body labels
  (``body_labels``, volumes in mL in ``levels``), per-level label confidence, ``uncertain`` and
  ``reasons``;
- :data:`QC_RULES` / :func:`apply_qc` (per-level QC flags, registered in one place);
- :class:`CoreRoiParams`, :class:`RoiShape`, :class:`MarrowCriteria` (documented thresholds).
"""

from RefractureRiskLib.roi.auto import Anchor, automatic_rois
from RefractureRiskLib.roi.geometry import CoreRoiParams, RoiShape
from RefractureRiskLib.roi.manual import rois_from_labelmap, rois_from_points, update_level
from RefractureRiskLib.roi.marrow import MarrowCriteria
from RefractureRiskLib.roi.qc import QC_RULES, QC_THRESHOLDS, QcRule, apply_qc
from RefractureRiskLib.roi.result import AutoRoiResult, LevelPlacement, RoiResult

__all__ = [
    "QC_RULES",
    "QC_THRESHOLDS",
    "Anchor",
    "AutoRoiResult",
    "CoreRoiParams",
    "LevelPlacement",
    "MarrowCriteria",
    "QcRule",
    "RoiResult",
    "RoiShape",
    "apply_qc",
    "automatic_rois",
    "rois_from_labelmap",
    "rois_from_points",
    "update_level",
]
