"""Tissue values of the world: relative proton density, PDFF (%) and R2* (1/s) per material.

R2* values are given at 1.5 T and multiplied by ``r2s_factor`` (2 at 3 T). Proton densities
are relative to fat (1.0); marrow is ~0.9. Per-level marrow draws live here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from RefractureRiskLib.phantom.truth import Tissue
from RefractureRiskLib.phantom.world.canvas import Materials, WorldTissue
from RefractureRiskLib.phantom.world.spec import CHAIN_LEVELS, WorldSpec

T = Tissue
W = WorldTissue


@dataclass(frozen=True)
class LevelMarrow:
    """Material ids and true values of one body's marrow."""

    core: int
    rim: int
    cortex: int
    vein: int
    pdff_pct: float  # as built, with oedema
    r2s_per_s: float  # at the study's field strength
    oedema_pct: float


@dataclass
class Palette:
    """Material ids by name (``ids``) and per-level marrow (``levels``)."""

    materials: Materials
    ids: dict[str, int] = field(default_factory=dict)
    levels: dict[str, LevelMarrow] = field(default_factory=dict)
    r2s_factor: float = 1.0

    def add(self, name: str, tissue: int, pd: float, pdff: float, r2s_1p5: float) -> int:
        mid = self.materials.add(
            tissue, pd, float(np.clip(pdff, 0, 100)), r2s_1p5 * self.r2s_factor
        )
        self.ids[name] = mid
        return mid

    def __getitem__(self, name: str) -> int:
        return self.ids[name]


def make_palette(spec: WorldSpec, rng: np.random.Generator) -> Palette:
    """All materials of one study (draws small per-tissue variations from ``rng``, in the
    order of the helpers below: the frozen sets are generated from their seeds)."""
    fs = 2.0 if spec.field_strength_t == 3.0 else 1.0
    p = Palette(Materials.with_air(), r2s_factor=fs)
    _add_soft_tissues(p, spec, rng)
    _add_bone(p, spec, rng)
    _add_level_marrow(p, spec, rng, fs)
    return p


def _add_soft_tissues(p: Palette, spec: WorldSpec, rng: np.random.Generator) -> None:
    """Skin, fat, muscle, organs, vessels, bowel, the canal's contents, discs and cement."""
    u = rng.uniform
    p.add("skin", W.SKIN, 0.6, u(10, 25), 35)
    p.add("subcut_fat", T.SUBCUTANEOUS_FAT, 1.0, u(90, 95), 25)
    p.add("muscle", T.MUSCLE, 0.7, 3.0, 30)
    p.add("paraspinal", T.MUSCLE, 0.72, spec.paraspinal_pdff_pct, 32)
    p.add("psoas", T.MUSCLE, 0.7, u(2, 6), 30)
    p.add("retro_fat", T.VISCERAL_FAT, 0.97, spec.mesentery_pdff_pct + u(-2, 2), 28)
    p.add("mesentery", W.MESENTERIC_FAT, 0.96, spec.mesentery_pdff_pct, 28)
    p.add("soft", T.SOFT_TISSUE, 0.8, u(3, 10), 30)
    p.add("lung", T.AIR, 0.03, 0.0, 400)
    p.add("blood", T.BLOOD, 0.92, 0.0, 15)
    p.add("venous", T.BLOOD, 0.9, 0.0, 22)
    p.add("kidney", W.KIDNEY, 0.85, 2.0, 20)
    p.add("renal_sinus", T.VISCERAL_FAT, 0.95, u(75, 90), 30)
    p.add("liver", W.LIVER, 0.75, spec.liver_pdff_pct, spec.liver_r2s_per_s)
    p.add("spleen", W.SPLEEN, 0.8, 2.0, 25)
    p.add("bowel_wall", W.BOWEL_WALL, 0.75, u(3, 12), 35)
    p.add("bowel_fluid", W.BOWEL_FLUID, 0.95, u(0, 5), 15)
    p.add("gas", W.BOWEL_GAS, 0.0, 0.0, 300)
    p.add("csf", T.CSF, 1.0, 0.0, 8)
    p.add("cord", W.CORD, 0.8, 1.0, 25)
    p.add("epidural_fat", W.EPIDURAL_FAT, 0.97, u(85, 93), 28)
    p.add("disc", T.DISC, 0.85, u(0, 3), 25)
    p.add("nucleus", T.DISC, 1.0, u(0, 2), 18)
    p.add("disc_degen", T.DISC, 0.55, u(1, 4), 35)
    p.add("disc_remnant", T.DISC, 0.5, u(2, 8), 40)
    p.add("cement", T.CEMENT, 0.0, 0.0, u(200, 600))


def _add_bone(p: Palette, spec: WorldSpec, rng: np.random.Generator) -> None:
    """Posterior elements, pelvis, ribs, osteophytes and focal marrow findings."""
    u = rng.uniform
    pe_pdff = spec.marrow_pdff_pct + u(0, 10)
    p.add("pe_cortex", T.POSTERIOR_ELEMENT, 0.08, pe_pdff, 250)
    p.add("pe_marrow", T.POSTERIOR_ELEMENT, 0.85, pe_pdff, spec.marrow_r2s_per_s * 1.1)
    p.add("pelvis_cortex", W.PELVIC_BONE, 0.08, pe_pdff + 5, 250)
    p.add("pelvis_marrow", W.PELVIC_BONE, 0.88, min(pe_pdff + 10, 92), spec.marrow_r2s_per_s)
    p.add("rib_cortex", W.RIB, 0.08, pe_pdff, 250)
    p.add("rib_marrow", W.RIB, 0.85, pe_pdff, spec.marrow_r2s_per_s * 1.1)
    p.add("osteophyte", W.OSTEOPHYTE, 0.3, pe_pdff, 180)
    p.add("haemangioma", T.LESION, 0.95, u(80, 95), spec.marrow_r2s_per_s * 0.5)
    p.add("modic1", T.MARROW_RIM, 1.0, u(10, 20), spec.marrow_r2s_per_s * 0.7)
    p.add("modic2", T.MARROW_RIM, 0.95, u(70, 85), spec.marrow_r2s_per_s * 0.8)
    p.add("bowel_fatmix", W.BOWEL_FAT_MIXED, 0.9, u(20, 60), u(30, 80))


def _add_level_marrow(p: Palette, spec: WorldSpec, rng: np.random.Generator, fs: float) -> None:
    """Each level's core and rim marrow, cortex and vein (oedema lowers an acute fracture's
    PDFF); ``fs`` scales R2* to the field strength."""
    u = rng.uniform
    fractured = {f.level: f for f in spec.fractures}
    for nm in CHAIN_LEVELS:
        base = spec.marrow_pdff_pct + rng.normal(0, spec.level_pdff_sd_pct)
        if nm.startswith("S"):
            base += u(0, 8)  # sacral marrow is fattier
        base = float(np.clip(base, 8, 92))
        oedema = fractured[nm].oedema_pct if nm in fractured and fractured[nm].acute else 0.0
        pdff = float(np.clip(base - oedema, 3, 95))
        r2s = float(spec.marrow_r2s_per_s * u(0.9, 1.1) * (0.8 if oedema else 1.0))
        pd = 0.9 * (1.15 if oedema else 1.0)
        labelled = nm in ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1")
        core_tissue = T.MARROW_CORE if labelled else T.OTHER_VERTEBRA
        rim_tissue = T.MARROW_RIM if labelled else T.OTHER_VERTEBRA
        p.levels[nm] = LevelMarrow(
            core=p.add(f"{nm}_core", core_tissue, pd, pdff, r2s),
            rim=p.add(f"{nm}_rim", rim_tissue, pd, pdff, r2s),
            cortex=p.add(f"{nm}_cortex", T.CORTEX, 0.05, pdff, 300),
            vein=p.add(f"{nm}_vein", T.VEIN, 0.9, u(2, 8), 25),
            pdff_pct=pdff,
            r2s_per_s=r2s * fs,
            oedema_pct=oedema,
        )
