"""Tissue values of the phantom: proton density, fat fraction and R2*, and the marrow draws.

Proton density ``pd`` is relative to marrow (marrow water + fat = 1); ``ff`` is the fat fraction
(0-1); ``r2s_per_s`` is R2* in 1/s at 1.5 T and is scaled by ``field_strength_t / 1.5`` (R2* about
doubles at 3 T). Values are typical literature figures rounded, chosen so every tissue lands in
the typical values of docs/architecture.md, "Facts about the inputs" (discs and CSF ~0 % fat,
subcutaneous fat > 90 %, muscle 2-15 %, lumbar marrow 30-70 %, marrow R2* 40-80 1/s at 1.5 T).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS, level_index
from RefractureRiskLib.phantom.spec import PhantomSpec
from RefractureRiskLib.phantom.truth import Tissue


@dataclass(frozen=True)
class TissueValue:
    """Proton density (marrow = 1), fat fraction (0-1) and R2* (1/s)."""

    pd: float
    ff: float
    r2s_per_s: float

    def at_field(self, field_factor: float) -> TissueValue:
        """The same tissue with R2* scaled from 1.5 T by ``field_factor``."""
        return TissueValue(self.pd, self.ff, self.r2s_per_s * field_factor)


#: Tissues with fixed values (R2* at 1.5 T).
FIXED_TISSUES: Mapping[Tissue, TissueValue] = MappingProxyType(
    {
        Tissue.SOFT_TISSUE: TissueValue(0.75, 0.05, 30.0),  # abdominal contents
        Tissue.CSF: TissueValue(1.0, 0.0, 4.0),
        Tissue.DISC: TissueValue(0.85, 0.01, 15.0),
        Tissue.CORTEX: TissueValue(0.2, 0.10, 250.0),  # short T2*: little signal, little fat
        Tissue.VEIN: TissueValue(0.9, 0.02, 25.0),  # basivertebral venous blood
        Tissue.BLOOD: TissueValue(0.9, 0.0, 15.0),  # aorta, vena cava
        Tissue.CEMENT: TissueValue(0.003, 0.5, 600.0),  # PMMA: signal void, fraction meaningless
    }
)

# Tissues drawn per study from the seed: (pd, fat-fraction range, R2* at 1.5 T).
SUBCUTANEOUS_FAT = (0.95, (0.92, 0.96), 25.0)
VISCERAL_FAT = (0.95, (0.85, 0.92), 25.0)
MUSCLE = (0.8, (0.03, 0.12), 28.0)  # left and right drawn separately

# Marrow: a patient mean PDFF, a caudal trend and level-to-level scatter; R2* falls a little as
# PDFF rises (osteoporotic marrow: more fat, fewer trabeculae).
MARROW_MEAN_PDFF_PCT = (38.0, 60.0)
MARROW_TREND_PCT_PER_LEVEL = 0.8
MARROW_SCATTER_PCT = 1.5
MARROW_PDFF_RANGE_PCT = (30.0, 70.0)
MARROW_R2S_BASE_PER_S = (48.0, 72.0)
MARROW_R2S_PER_PDFF = -0.2
MARROW_R2S_SCATTER_PER_S = 3.0
MARROW_R2S_RANGE_PER_S = (40.0, 80.0)
OEDEMA_DROP_PCT = (10.0, 30.0)  # acute fracture oedema lowers PDFF by 10-30 points
OEDEMA_R2S_FACTOR = 0.9  # more water, slightly lower R2*
OEDEMA_MIN_PDFF_PCT = 2.0
RIM_DROP_PCT = (4.0, 8.0)  # PDFF just inside the cortex is 4-8 points below the core
RIM_R2S_RISE = 0.2  # denser trabeculae near the cortex: R2* up to 20 % higher
# Posterior elements: thin bone with a little more fat; lesion: low-fat, lower R2*.
POSTERIOR_PD, POSTERIOR_FF_OFFSET, POSTERIOR_FF_MAX, POSTERIOR_R2S_FACTOR = 0.85, 0.08, 0.95, 1.1
LESION_PD, LESION_PDFF_PCT, LESION_R2S_FACTOR = 0.95, (3.0, 12.0), 0.5


@dataclass(frozen=True)
class LevelValues:
    """Truth of one level: core marrow PDFF (%) and R2* (1/s, study field), oedema and rim."""

    pdff_pct: float
    r2s_per_s: float
    oedema_drop_pct: float
    rim_drop_pct: float


def draw_level_values(spec: PhantomSpec, rng: np.random.Generator) -> dict[str, LevelValues]:
    """Per-level marrow truth for T10-S1.

    Every draw happens whatever the options, so a level's values do not depend on which other
    options are set. Given values (``spec.marrow_pdff_pct`` / ``marrow_r2s_per_s``) replace the
    draws and, for fractured levels, are the as-built (post-oedema) values.
    """
    field = spec.field_factor
    mean_pdff = rng.uniform(*MARROW_MEAN_PDFF_PCT)
    base_r2 = rng.uniform(*MARROW_R2S_BASE_PER_S) + MARROW_R2S_PER_PDFF * (mean_pdff - 49.0)
    out: dict[str, LevelValues] = {}
    for name in VERTEBRAL_LEVELS:
        i = level_index(name)
        pdff = mean_pdff + MARROW_TREND_PCT_PER_LEVEL * (i - 4)
        pdff = float(np.clip(pdff + rng.normal(0.0, MARROW_SCATTER_PCT), *MARROW_PDFF_RANGE_PCT))
        r2 = base_r2 + rng.normal(0.0, MARROW_R2S_SCATTER_PER_S)
        r2 = float(np.clip(r2, *MARROW_R2S_RANGE_PER_S)) * field
        oedema = float(rng.uniform(*OEDEMA_DROP_PCT))
        rim = float(rng.uniform(*RIM_DROP_PCT))
        given_pdff = (spec.marrow_pdff_pct or {}).get(name)
        given_r2 = (spec.marrow_r2s_per_s or {}).get(name)
        fractured = name in spec.fractured
        if given_pdff is not None:
            pdff = given_pdff
            oedema = 0.0  # the given value is the as-built value
        elif fractured:
            oedema = pdff - max(pdff - oedema, OEDEMA_MIN_PDFF_PCT)
            pdff -= oedema
        if given_r2 is not None:
            r2 = given_r2
        elif fractured:
            r2 *= OEDEMA_R2S_FACTOR
        out[name] = LevelValues(pdff, r2, oedema if fractured else 0.0, rim)
    return out
