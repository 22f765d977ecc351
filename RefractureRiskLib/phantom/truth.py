"""Ground truth of a synthetic study: per-level values, body label map and tissue map."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import IntEnum

import numpy as np
import numpy.typing as npt
import pandas as pd

from RefractureRiskLib.core.study import Study
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.phantom.spec import PhantomSpec


class Tissue(IntEnum):
    """Tissue classes of :attr:`PhantomTruth.tissue` (class at each voxel centre)."""

    AIR = 0
    SOFT_TISSUE = 1  # abdominal/retroperitoneal contents
    SUBCUTANEOUS_FAT = 2
    MUSCLE = 3  # paraspinal (erector spinae + multifidus) and psoas
    CSF = 4  # spinal canal
    DISC = 5
    CORTEX = 6  # vertebral-body cortical shell
    MARROW_RIM = 7  # marrow < CORE_DEPTH_MM from the body surface (PDFF drops towards cortex)
    MARROW_CORE = 8  # marrow >= CORE_DEPTH_MM from the body surface: the level's true value
    POSTERIOR_ELEMENT = 9  # pedicles, laminae, spinous and transverse processes
    VEIN = 10  # basivertebral vein
    LESION = 11  # focal low-fat lesion
    CEMENT = 12  # PMMA cement: signal void
    OTHER_VERTEBRA = 13  # T9 and S2 bodies (and S3 below a lumbarised S1; unlabelled)
    VISCERAL_FAT = 14  # retroperitoneal fat in front of the spine
    BLOOD = 15  # aorta and inferior vena cava


@dataclass(frozen=True)
class PhantomLevel:
    """True values of one labelled vertebral body as built.

    ``marrow_pdff_pct`` (percent) and ``marrow_r2s_per_s`` (1/s at the study's field strength)
    are the values of the body's core marrow (>= 3 mm from the body surface, outside vein,
    lesion and cement); fractured levels include their oedema. Dimensions in mm are the
    specified shape (elliptic cylinder with rounded edges); ``height_mm`` is the height where
    it is least (fractured: ``nominal_height_mm * (1 - height_loss_frac)``; the whole body for a
    "crush" fracture, the anterior wall for a "wedge", the end-plate centres for "biconcave").
    ``body_volume_ml`` counts the voxelised label on the study grid, ``analytic_volume_ml`` is
    the shape's volume.
    ``centre_ras`` is the body centre (RAS, mm).
    """

    level: str
    label: int
    marrow_pdff_pct: float
    marrow_r2s_per_s: float
    height_mm: float
    width_mm: float
    depth_mm: float
    body_volume_ml: float
    centre_ras: tuple[float, float, float]
    fractured: bool
    height_loss_frac: float
    cemented: bool
    lesion: bool
    analytic_volume_ml: float = 0.0
    nominal_height_mm: float = 0.0  # before any height loss
    oedema_pdff_drop_pct: float = 0.0  # PDFF points removed by fracture oedema
    rim_pdff_drop_pct: float = 0.0  # PDFF points lower just inside the cortex than in the core
    superior_ras: tuple[float, float, float] = (0.0, 0.0, 0.0)  # unit cranial axis of the body
    anterior_ras: tuple[float, float, float] = (0.0, 0.0, 0.0)  # unit anterior axis of the body
    lesion_centre_ras: tuple[float, float, float] | None = None
    lesion_radius_mm: float = 0.0
    fracture_shape: str = "crush"
    # Heights on the mid-sagittal line 90 % of the way to the anterior wall, at the centre and
    # 90 % of the way to the posterior wall (Genant-style anterior/middle/posterior heights).
    height_anterior_mm: float = 0.0
    height_middle_mm: float = 0.0
    height_posterior_mm: float = 0.0
    # Cut by the edge of the field of view (only part of the body is imaged): its height and
    # volume are not the body's, so it must be reported "truncated", never "fractured".
    truncated: bool = False


@dataclass(frozen=True, eq=False)
class PhantomTruth:
    """Ground truth on the study grid.

    ``body_labels``: int16 whole-vertebral-body labels (T10=1 .. L5=8, S1=9; 0 elsewhere), a voxel
    is labelled when at least half of its slice sub-samples lie in the body.
    ``tissue``: uint8 :class:`Tissue` class at each voxel centre.
    ``core``: uint8, 1 where the whole voxel (every slice sub-sample) is core marrow of a
    labelled body: >= 3 mm deep and outside vein, lesion and cement, so a noiseless study holds
    exactly the level's true PDFF and R2* there (on average only, when the spec asks for
    marrow heterogeneity).
    """

    body_labels: Volume
    levels: tuple[PhantomLevel, ...]
    tissue: Volume | None = None
    core: Volume | None = None

    def level(self, name: str) -> PhantomLevel:
        """The entry of level ``name`` (KeyError if absent)."""
        for lv in self.levels:
            if lv.level == name:
                return lv
        raise KeyError(f"level {name} not in phantom truth")

    def core_mask(self, name: str) -> npt.NDArray[np.bool_]:
        """Voxels of level ``name`` wholly in its core marrow (see ``core``): in a noiseless
        study their PDFF and R2* equal the level's true values."""
        if self.core is None:
            raise ValueError("this truth has no core map")
        label = self.level(name).label
        return (self.body_labels.array == label) & (self.core.array > 0)

    def level_table(self) -> pd.DataFrame:
        """One row per level; columns are the :class:`PhantomLevel` fields (units in names)."""
        rows = [{f.name: getattr(lv, f.name) for f in fields(PhantomLevel)} for lv in self.levels]
        return pd.DataFrame(rows, columns=[f.name for f in fields(PhantomLevel)])


@dataclass(frozen=True, eq=False)
class LabelledStudy:
    """Any study with level truth, from any generator (evaluation and tests): ``name`` says
    where it comes from (e.g. "world-test-1000007", "realct-dev-3"), ``conditions`` the
    acquisition and anatomy it was made under, as short strings (the evaluation table is broken
    down by them, e.g. {"orientation": "sagittal", "snr": "5-10", "maps": "pdff+r2s"})."""

    name: str
    study: Study
    truth: PhantomTruth
    conditions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class PhantomStudy:
    """A synthetic study (maps with provenance) with the spec that made it and its truth."""

    spec: PhantomSpec
    study: Study
    truth: PhantomTruth
